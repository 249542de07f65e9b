"""Unit tests for noisebrush.diffusion.schedules: values checked against hand calculations and closed forms."""
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from noisebrush.diffusion.schedules import (
    SCHEDULES,
    alphas_cumprod_to_sigmas,
    append_zero,
    check_sigmas,
    cosine_alphas_cumprod,
    exponential,
    karras,
    linear_alphas_cumprod,
    pick_timesteps,
    vp_cosine,
    vp_linear,
)
from noisebrush.errors import BadParameter, UserError

FAST = settings(max_examples=25, deadline=None)

sigma_ranges = st.tuples(
    st.floats(min_value=1e-4, max_value=1.0),  # sigma_min
    st.floats(min_value=2.0, max_value=1e4),  # sigma_max / sigma_min
).map(lambda t: (t[0], t[0] * t[1]))


def _strictly_descending(s):
    return bool((s[1:] < s[:-1]).all())


# ---------------------------------------------------------------- karras


def test_karras_known_values():
    # σ_i = (80^(1/7) + i/9·(0.002^(1/7) − 80^(1/7)))^7, worked out by hand with math (not torch).
    s = karras(10, sigma_min=0.002, sigma_max=80.0)
    assert s.dtype == torch.float64 and s.shape == (11,)
    hi, lo = 80.0 ** (1 / 7), 0.002 ** (1 / 7)
    for i in (0, 1, 4, 9):
        assert s[i].item() == pytest.approx((hi + i / 9 * (lo - hi)) ** 7, rel=1e-12)
    # literal values (independent of the formula above): 80, 42.415…, 21.108…
    assert s[1].item() == pytest.approx(42.41519, rel=1e-6)
    assert s[2].item() == pytest.approx(21.10868, rel=1e-6)
    assert s[-1].item() == 0.0


def test_karras_rho_one_is_linear_in_sigma():
    s = karras(5, sigma_min=1.0, sigma_max=9.0, rho=1.0)
    assert torch.allclose(s, torch.tensor([9.0, 7.0, 5.0, 3.0, 1.0, 0.0], dtype=torch.float64), atol=1e-12)


def test_karras_single_step():
    assert karras(1, sigma_min=0.1, sigma_max=3.0).tolist() == [3.0, 0.0]


@FAST
@given(n=st.integers(2, 200), rng=sigma_ranges, rho=st.floats(1.0, 10.0))
def test_karras_properties(n, rng, rho):
    sigma_min, sigma_max = rng
    s = karras(n, sigma_min=sigma_min, sigma_max=sigma_max, rho=rho)
    assert s.shape == (n + 1,) and s.dtype == torch.float64
    assert s[0].item() == pytest.approx(sigma_max, rel=1e-9)
    assert s[-2].item() == pytest.approx(sigma_min, rel=1e-9)
    assert s[-1].item() == 0.0
    assert _strictly_descending(s)
    check_sigmas(s)  # a schedule is always a valid sampler input


# ---------------------------------------------------------------- exponential


def test_exponential_known_values():
    # evenly spaced in log σ between 100 and 0.01: 100, 10, 1, 0.1, 0.01
    s = exponential(5, sigma_min=0.01, sigma_max=100.0)
    assert torch.allclose(s, torch.tensor([100.0, 10.0, 1.0, 0.1, 0.01, 0.0], dtype=torch.float64), rtol=1e-12)


@FAST
@given(n=st.integers(2, 200), rng=sigma_ranges)
def test_exponential_even_in_log_sigma(n, rng):
    sigma_min, sigma_max = rng
    s = exponential(n, sigma_min=sigma_min, sigma_max=sigma_max)
    assert s.shape == (n + 1,) and s[-1].item() == 0.0
    assert s[0].item() == pytest.approx(sigma_max, rel=1e-9)
    assert s[-2].item() == pytest.approx(sigma_min, rel=1e-9)
    steps = s[:-1].log().diff()
    expected = (math.log(sigma_min) - math.log(sigma_max)) / (n - 1)
    assert torch.allclose(steps, torch.full_like(steps, expected), rtol=1e-9, atol=1e-12)
    assert _strictly_descending(s)


# ---------------------------------------------------------------- VP tables


def test_linear_alphas_cumprod_matches_hand_cumprod():
    T, b0, b1 = 1000, 1e-4, 0.02
    ac = linear_alphas_cumprod(T, b0, b1)
    prod, expected = 1.0, []
    for t in range(T):
        prod *= 1.0 - (b0 + t / (T - 1) * (b1 - b0))
        expected.append(prod)
    assert ac.shape == (T,) and ac.dtype == torch.float64
    assert torch.allclose(ac, torch.tensor(expected, dtype=torch.float64), rtol=1e-10, atol=0)
    assert ac[0].item() == pytest.approx(0.9999, rel=1e-12)
    assert ac[-1].item() == pytest.approx(4.0358e-5, rel=1e-4)  # the well-known last entry of DDPM's table


def test_alphas_cumprod_to_sigmas_values():
    ac = torch.tensor([0.5, 0.2, 0.01], dtype=torch.float64)
    # σ = sqrt((1-ᾱ)/ᾱ): 1, 2, sqrt(99)
    assert torch.allclose(alphas_cumprod_to_sigmas(ac), torch.tensor([1.0, 2.0, 99**0.5], dtype=torch.float64))


def test_vp_linear_sigma_range():
    s = vp_linear(10)
    assert s[0].item() == pytest.approx(157.4, abs=0.05)
    assert s[-1].item() == 0.0
    assert _strictly_descending(s)
    # trailing spacing of 10 of 1000 levels: t = 999, 899, …, 99
    table = alphas_cumprod_to_sigmas(linear_alphas_cumprod())
    assert torch.equal(s[:-1], table[torch.arange(999, 0, -100)])
    # the smallest level of the whole table: sqrt(1e-4/0.9999)
    assert vp_linear(1000)[-2].item() == pytest.approx(math.sqrt(1e-4 / 0.9999), rel=1e-9)


def test_cosine_alphas_cumprod_matches_improved_ddpm_formula():
    T, s = 1000, 0.008

    def f(t):
        return math.cos((t / T + s) / (1 + s) * math.pi / 2) ** 2

    ac = cosine_alphas_cumprod(T, s)
    assert ac.shape == (T,)
    # ᾱ at index i is the product of (1-β_j), j ≤ i, i.e. f(i+1)/f(0) wherever no β was clipped.
    unclipped = [i for i in range(T) if 1 - f(i + 1) / f(i) < 0.999]
    assert len(unclipped) == T - 1  # only the very last β (f(T) = 0) hits the clip
    for i in (0, 1, 100, 500, 900, 998):
        assert ac[i].item() == pytest.approx(f(i + 1) / f(0), rel=1e-9)
    # last step: β clipped to 0.999
    assert ac[-1].item() == pytest.approx(ac[-2].item() * 0.001, rel=1e-9)
    assert _strictly_descending(ac)


def test_vp_cosine_uses_table():
    table = alphas_cumprod_to_sigmas(cosine_alphas_cumprod())
    s = vp_cosine(4)
    assert torch.equal(s, torch.cat([table[torch.tensor([999, 749, 499, 249])], torch.zeros(1, dtype=torch.float64)]))


# ---------------------------------------------------------------- pick_timesteps


def test_pick_timesteps_spacings_by_hand():
    assert pick_timesteps(10, 1000, "trailing").tolist() == [999, 899, 799, 699, 599, 499, 399, 299, 199, 99]
    assert pick_timesteps(10, 1000, "leading").tolist() == [900, 800, 700, 600, 500, 400, 300, 200, 100, 0]
    assert pick_timesteps(10, 1000, "linspace").tolist() == [999, 888, 777, 666, 555, 444, 333, 222, 111, 0]
    # T/n not an integer: trailing = round(1000, 666.67, 333.33) - 1
    assert pick_timesteps(3, 1000, "trailing").tolist() == [999, 666, 332]
    assert pick_timesteps(3, 10, "leading").tolist() == [6, 3, 0]
    assert pick_timesteps(1, 1000, "trailing").tolist() == [999]
    assert pick_timesteps(1000, 1000, "trailing").tolist() == list(range(999, -1, -1))
    assert pick_timesteps(5, 1000).dtype == torch.long


@FAST
@given(T=st.integers(2, 2000), data=st.data(), spacing=st.sampled_from(["leading", "linspace"]))
def test_pick_timesteps_properties(T, data, spacing):
    n = data.draw(st.integers(1, T))
    t = pick_timesteps(n, T, spacing)
    assert t.shape == (n,)
    assert 0 <= t.min() and t.max() <= T - 1
    assert bool((t[1:] < t[:-1]).all())


# regression: a float arange once gave n+1 steps ending in -1 for some n (e.g. pick_timesteps(61, 1000))
def test_pick_timesteps_trailing_all_n():
    T = 1000
    bad = []
    for n in range(1, T + 1):
        t = pick_timesteps(n, T, "trailing")
        if t.shape != (n,) or t.min() < 0 or t[0] != T - 1 or not bool((t[1:] < t[:-1]).all()):
            bad.append(n)
    assert bad == []


def test_vp_linear_61_steps_descending():
    s = vp_linear(61)
    assert s.shape == (62,)
    check_sigmas(s)


# ---------------------------------------------------------------- validation


@pytest.mark.parametrize(
    "bad",
    [
        [1.0, 2.0, 0.0],  # ascending start
        [5.0, 1.0, 1.0, 0.0],  # not strictly descending
        [2.0, -1.0],  # negative
        [float("nan"), 0.0],
        [float("inf"), 1.0, 0.0],
        [3.0],  # too short
        [],
        [[2.0, 1.0], [1.0, 0.0]],  # not 1-D
    ],
)
def test_check_sigmas_rejects(bad):
    with pytest.raises(BadParameter, match="sigmas") as info:
        check_sigmas(bad)
    assert isinstance(info.value, UserError) and isinstance(info.value, ValueError)


def test_check_sigmas_accepts_and_converts():
    out = check_sigmas([3, 2, 0.5, 0])
    assert out.dtype == torch.float64 and out.tolist() == [3.0, 2.0, 0.5, 0.0]
    assert check_sigmas([1.0, 0.5]).tolist() == [1.0, 0.5]  # need not end in 0


@pytest.mark.parametrize("fn", [karras, exponential, vp_linear, vp_cosine])
@pytest.mark.parametrize("n", [0, -3, 2.5])
def test_bad_steps_rejected(fn, n):
    with pytest.raises(BadParameter, match="steps"):
        fn(n)


def test_pick_timesteps_rejects():
    with pytest.raises(BadParameter, match="steps"):
        pick_timesteps(1001, 1000)
    with pytest.raises(BadParameter, match="steps"):
        pick_timesteps(0, 1000)
    with pytest.raises(BadParameter, match="spacing"):
        pick_timesteps(10, 1000, "evenly")


@pytest.mark.parametrize("fn", [karras, exponential])
@pytest.mark.parametrize("lo,hi", [(1.0, 1.0), (2.0, 1.0), (0.0, 1.0), (-1.0, 1.0), (0.1, float("inf")), (float("nan"), 1.0)])
def test_bad_sigma_range_rejected(fn, lo, hi):
    with pytest.raises(BadParameter, match="sigma_min"):
        fn(10, sigma_min=lo, sigma_max=hi)


def test_other_bad_parameters():
    with pytest.raises(BadParameter, match="rho"):
        karras(10, rho=0.0)
    with pytest.raises(BadParameter, match="T"):
        linear_alphas_cumprod(1)
    with pytest.raises(BadParameter, match="T"):
        cosine_alphas_cumprod(1)


def test_append_zero_and_registry():
    out = append_zero(torch.tensor([2.0, 1.0]))
    assert out.dtype == torch.float64 and out.tolist() == [2.0, 1.0, 0.0]
    assert set(SCHEDULES) == {"karras", "exponential", "vp_linear", "vp_cosine", "ddgan"}
    for name, fn in SCHEDULES.items():
        check_sigmas(fn(8))


def test_ddgan_ladder_is_the_papers_vp_chain_as_sigmas():
    from noisebrush.diffusion.schedules import ddgan

    four = ddgan(4)
    assert four.dtype == torch.float64 and float(four[-1]) == 0.0 and len(four) == 5
    # Xiao et al.'s β(t) from 0.1 to 20: ᾱ(t) = exp(-0.1 t - 9.95 t²), σ = sqrt(1/ᾱ - 1)
    for i, t in enumerate((1.0, 0.75, 0.5, 0.25)):
        want = math.sqrt(math.exp(0.1 * t + 9.95 * t * t) - 1)
        assert float(four[i]) == pytest.approx(want, rel=1e-12)
    assert [round(float(s), 2) for s in four[:-1]] == [152.17, 17.02, 3.41, 0.95]
    assert ddgan(1).tolist() == [pytest.approx(152.1669702839464), 0.0]
    assert ddgan(8)[0] == four[0] and torch.equal(ddgan(8)[2::2], four[1:])  # t = 3/4, 1/2, 1/4 and the end
    for bad in (0, 9.5, True):
        with pytest.raises(BadParameter, match="steps"):
            ddgan(bad)
