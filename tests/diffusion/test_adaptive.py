"""The error-controlled adaptive sampler: tolerance vs cost vs error, and its per-sample bookkeeping."""
from __future__ import annotations

import functools
import math

import pytest
import torch

from noisebrush.diffusion.noise import SampleNoise
from noisebrush.diffusion.oracle import GaussianMixture
from noisebrush.diffusion.samplers import adaptive, dpmpp_3m
from noisebrush.diffusion.schedules import karras
from noisebrush.errors import BadParameter

F64 = torch.float64
SHAPE = (2, 4, 4)
SIGMA_MIN, SIGMA_MAX = 0.01, 40.0
N = 6


pytestmark = pytest.mark.usefixtures("one_thread")


def _open(n: int) -> torch.Tensor:
    """n karras steps from σ_max down to σ_min (no final jump to 0)."""
    return karras(n + 1, sigma_min=SIGMA_MIN, sigma_max=SIGMA_MAX)[:-1]


@functools.lru_cache(maxsize=None)
def _problem():
    gm = GaussianMixture.random(SHAPE, components=4, seed=0)
    x = SampleNoise.from_seeds(range(200, 200 + N)).randn(SHAPE, dtype=F64) * SIGMA_MAX
    ref = dpmpp_3m(gm, x, _open(1000))  # converged to ~1e-7 (see test_samplers.test_reference_solutions_agree)
    return gm, x, ref


def _err(y, ref) -> torch.Tensor:
    """RMS error per sample."""
    return (y - ref).reshape(len(y), -1).pow(2).mean(1).sqrt()


def test_tighter_rtol_costs_more_and_errs_less():
    gm, x, ref = _problem()
    tols = (1e-2, 1e-3, 1e-4)
    nfe, err = [], []
    for tol in tols:
        stats: dict = {}
        y = adaptive(gm, x, _open(10), rtol=tol, atol=tol / 10, stats=stats)
        nfe.append(stats["nfe"])
        err.append(_err(y, ref))
    msg = f"tolerances {tols}: nfe {nfe}; per-sample RMS error {[[f'{v:.1e}' for v in e.tolist()] for e in err]}"
    for i in range(len(tols) - 1):
        assert all(a < b for a, b in zip(nfe[i], nfe[i + 1])), msg  # every sample pays more ...
        assert (err[i + 1] < err[i]).all(), msg  # ... and gets closer to the exact solve
        assert float(err[i].mean() / err[i + 1].mean()) > 4, msg  # a decade of tolerance buys a clear gain
    # The controller keeps the global error in proportion to the tolerance (2nd-order pair, local extrapolation).
    assert float(err[-1].max()) < 5 * tols[-1], msg


def test_error_proportional_to_tolerance_down_to_the_reference():
    """At tight tolerance the adaptive solve meets the fixed-step reference; slope of log error vs log tol ≈ 1."""
    gm, x, ref = _problem()
    tols = (1e-4, 1e-5)
    errs = []
    for tol in tols:
        y = adaptive(gm, x[:3], _open(10), rtol=tol, atol=tol, max_nfe=100_000)
        errs.append(float(_err(y, ref[:3]).mean()))
    slope = math.log10(errs[0] / errs[1])
    assert 0.7 < slope < 1.3, f"errors {errs} at tolerances {tols}: slope {slope:.2f}"
    assert errs[1] < 5e-5, errs


@pytest.mark.parametrize("ends_in_zero", [False, True], ids=["open", "to-zero"])
def test_stats_are_consistent(ends_in_zero):
    gm, x, _ = _problem()
    sigmas = karras(8, sigma_min=SIGMA_MIN, sigma_max=SIGMA_MAX)
    if not ends_in_zero:
        sigmas = sigmas[:-1]
    calls = []

    def den(x, sigma):
        calls.append(len(x))
        return gm(x, sigma)

    stats: dict = {}
    y = adaptive(den, x, sigmas, rtol=0.02, stats=stats)
    assert y.shape == x.shape and torch.isfinite(y).all()
    assert set(stats) >= {"nfe", "accepted", "rejected", "sigmas"}
    for key in ("nfe", "accepted", "rejected", "sigmas"):
        assert len(stats[key]) == N, key  # one entry per sample
    assert sum(calls) == sum(stats["nfe"])  # the per-sample count is what the denoiser saw
    assert len(set(stats["nfe"])) > 1, stats["nfe"]  # samples really take their own steps
    assert sum(stats["rejected"]) > 0, stats["rejected"]  # and the controller does reject sometimes
    for i in range(N):
        acc, rej, nfe = stats["accepted"][i], stats["rejected"][i], stats["nfe"][i]
        # One evaluation at σ_0; an accepted step costs 2 (its trial point and x̂_0 at the new level), a rejected
        # one 1 — except that the last accepted step needs no x̂_0 at its end unless a final denoise onto σ = 0
        # was asked for, and then that evaluation *is* the final denoise.
        assert nfe == (1 + 2 * acc + rej if ends_in_zero else 2 * acc + rej), (i, nfe, acc, rej)
        levels = stats["sigmas"][i]
        assert len(levels) == acc + 1
        assert levels[0] == float(sigmas[0])
        assert all(b < a for a, b in zip(levels, levels[1:]))
        assert levels[-1] == pytest.approx(SIGMA_MIN, rel=1e-10)  # reaches the end of the schedule


def test_final_denoise_returns_x0_hat_at_the_end():
    """With sigmas ending in 0 the result is x̂_0 of the solve that stops at the last non-zero σ."""
    gm, x, _ = _problem()
    sigmas = karras(8, sigma_min=SIGMA_MIN, sigma_max=SIGMA_MAX)
    s_zero, s_open = {}, {}
    y_zero = adaptive(gm, x, sigmas, rtol=0.05, stats=s_zero)
    y_open = adaptive(gm, x, sigmas[:-1], rtol=0.05, stats=s_open)
    assert s_zero["accepted"] == s_open["accepted"] and s_zero["rejected"] == s_open["rejected"]
    assert torch.equal(y_zero, gm(y_open, float(sigmas[-2])))
    assert not torch.equal(y_zero, y_open)


def test_interior_sigmas_only_set_the_first_step():
    gm, x, _ = _problem()
    a = adaptive(gm, x, torch.tensor([SIGMA_MAX, 5.0, SIGMA_MIN], dtype=F64), rtol=0.05)
    b = adaptive(gm, x, torch.tensor([SIGMA_MAX, 0.3, SIGMA_MIN], dtype=F64), rtol=0.05)
    assert torch.equal(a, b)


def test_max_nfe_caps_evaluations():
    gm, x, _ = _problem()
    stats: dict = {}
    adaptive(gm, x, _open(10), rtol=1e-6, atol=1e-6, max_nfe=50, stats=stats)
    # a sample stops being stepped once it has used max_nfe; the step in flight may add one more evaluation
    assert all(50 <= n <= 51 for n in stats["nfe"]), stats["nfe"]
    # ... and then it has not reached σ_min (the sampler does not say so except through stats["sigmas"])
    assert all(levels[-1] > 10 * SIGMA_MIN for levels in stats["sigmas"])


def test_bad_tolerances():
    gm, x, _ = _problem()
    for kw in (dict(rtol=-1.0), dict(atol=-1e-3), dict(rtol=0.0, atol=0.0)):
        with pytest.raises(BadParameter):
            adaptive(gm, x, _open(4), **kw)
