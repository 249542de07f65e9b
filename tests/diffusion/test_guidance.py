"""Unit tests for noisebrush.diffusion.guidance: classifier-free guidance and x̂_0 guidance."""
import pytest
import torch

from noisebrush.diffusion.guidance import cfg, guided_call, loss_gradient, x0_guidance

F64 = torch.float64


class Recorder:
    """D(x, σ, labels) = x·(1 + labels) + σ, with labels a per-sample float; records every call's batch."""

    def __init__(self):
        self.calls = []

    def __call__(self, x, sigma, labels=None, **extra):
        self.calls.append({"batch": x.shape[0], "labels": labels, "sigma": sigma, "extra": extra})
        lab = torch.zeros(x.shape[0], dtype=x.dtype) if labels is None else labels.to(x.dtype)
        return x * (1 + lab.reshape(-1, 1, 1)) + sigma.reshape(-1, 1, 1).to(x.dtype)


def _setup():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 2, 4, generator=g, dtype=F64)
    sigma = torch.tensor([0.5, 1.0, 2.0], dtype=F64)
    cond = {"labels": torch.tensor([1.0, 2.0, 3.0])}
    uncond = {"labels": torch.tensor([0.0, 0.0, 0.0])}
    return x, sigma, cond, uncond


def _hand(x, sigma, lab):
    return x * (1 + lab.reshape(-1, 1, 1).to(x.dtype)) + sigma.reshape(-1, 1, 1)


def test_scale_one_is_conditional():
    x, sigma, cond, uncond = _setup()
    rec = Recorder()
    out = cfg(rec, cond, uncond, 1.0)(x, sigma)
    assert torch.allclose(out, _hand(x, sigma, cond["labels"]))
    assert [c["batch"] for c in rec.calls] == [3]


def test_scale_zero_is_unconditional():
    x, sigma, cond, uncond = _setup()
    rec = Recorder()
    out = cfg(rec, cond, uncond, 0.0)(x, sigma)
    assert torch.allclose(out, _hand(x, sigma, uncond["labels"]))
    assert [c["batch"] for c in rec.calls] == [3]


@pytest.mark.parametrize("w", [4.0, 0.5, -1.0])
def test_scale_w_hand_calc_in_one_batched_call(w):
    x, sigma, cond, uncond = _setup()
    rec = Recorder()
    out = cfg(rec, cond, uncond, w)(x, sigma, flag=True)
    c, u = _hand(x, sigma, cond["labels"]), _hand(x, sigma, uncond["labels"])
    assert torch.allclose(out, u + w * (c - u), atol=1e-12)
    # by hand: c − u = x·labels, so out = x + σ + w·labels·x
    assert torch.allclose(out, x + sigma.reshape(-1, 1, 1) + w * cond["labels"].reshape(-1, 1, 1).double() * x)
    assert len(rec.calls) == 1
    call = rec.calls[0]
    assert call["batch"] == 6
    assert call["labels"].tolist() == [1.0, 2.0, 3.0, 0.0, 0.0, 0.0]  # conditional first
    assert call["sigma"].tolist() == [0.5, 1.0, 2.0, 0.5, 1.0, 2.0]
    assert call["extra"] == {"flag": True}


def test_none_conditioning_in_both():
    x, sigma, _, _ = _setup()
    rec = Recorder()
    out = cfg(rec, {"labels": None}, {"labels": None}, 3.0)(x, sigma)
    assert torch.allclose(out, _hand(x, sigma, torch.zeros(3)))
    assert rec.calls[0]["batch"] == 6


def test_cfg_rejects_bad_conditioning():
    x, sigma, cond, uncond = _setup()
    with pytest.raises(ValueError, match="same keys"):
        cfg(Recorder(), cond, {"other": uncond["labels"]}, 2.0)
    with pytest.raises(ValueError, match="tensors"):
        cfg(Recorder(), {"labels": 1.0}, {"labels": 0.0}, 2.0)


def test_guided_call_mixes_conditions_in_one_call():
    x, sigma, cond, uncond = _setup()
    other = {"labels": torch.tensor([-1.0, 0.5, 2.0])}
    rec = Recorder()
    out = guided_call(rec, x, sigma, [cond, other], 3.0, weights=[0.25, 0.75], uncond=uncond, mix=True)
    a, b = _hand(x, sigma, cond["labels"]), _hand(x, sigma, other["labels"])
    u = _hand(x, sigma, uncond["labels"])
    assert torch.allclose(out, u + 3.0 * (0.25 * (a - u) + 0.75 * (b - u)), atol=1e-12)
    assert [c["batch"] for c in rec.calls] == [9]
    # without explicit unconditional conditions, the first condition with drop=True is the unconditional half
    rec = Recorder()
    guided_call(rec, x, sigma, [cond], 2.0)
    assert rec.calls[0]["extra"]["drop"].tolist() == [False] * 3 + [True] * 3
    assert rec.calls[0]["labels"].tolist() == [1.0, 2.0, 3.0] * 2
    # a mixture at scale 1 still evaluates the unconditional half, and returns the mixture itself
    rec = Recorder()
    one = guided_call(rec, x, sigma, [cond, other], 1.0, weights=[0.5, 0.5], uncond=uncond, mix=True)
    assert rec.calls[0]["batch"] == 9 and torch.allclose(one, 0.5 * a + 0.5 * b, atol=1e-12)
    with pytest.raises(ValueError, match="one weight per condition"):
        guided_call(rec, x, sigma, [cond], 2.0, weights=[0.5, 0.5])


# ---------------------------------------------------------------- x̂_0 guidance


def test_loss_gradient_by_hand():
    x0 = torch.tensor([[1.0, -2.0], [0.5, 3.0]], dtype=F64)
    sigma = torch.tensor([1.0, 2.0], dtype=F64)
    grad = loss_gradient(lambda x, s: (x**3).sum(1) * s)  # ∂/∂x = 3x²·σ
    with torch.no_grad():  # the gradient is taken even when the sampler runs without autograd
        g = grad(x0, sigma)
    assert torch.allclose(g, 3 * x0**2 * sigma[:, None])
    assert not x0.requires_grad


def test_x0_guidance_moves_toward_target():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 3, 4, generator=g, dtype=F64)
    target = torch.randn(2, 3, 4, generator=g, dtype=F64)
    sigma = torch.tensor([0.7, 3.0], dtype=F64)
    base = lambda x, s, **_: 0.5 * x  # x̂_0 = x / 2
    grad_fn = loss_gradient(lambda x0, s: 0.5 * ((x0 - target) ** 2).flatten(1).sum(1))
    scale = 0.3
    out = x0_guidance(base, grad_fn, scale=scale)(x, sigma)
    x0 = 0.5 * x
    assert torch.allclose(out, x0 - scale * (x0 - target), atol=1e-12)
    # strictly closer to the target, by the factor (1 − scale)
    assert torch.allclose((out - target).norm(), (1 - scale) * (x0 - target).norm())
    # scale 1 lands exactly on the target; scale 0 leaves the denoiser alone
    assert torch.allclose(x0_guidance(base, grad_fn, scale=1.0)(x, sigma), target)
    assert torch.allclose(x0_guidance(base, grad_fn, scale=0.0)(x, sigma), x0)


def test_x0_guidance_weight_and_extra_args():
    x = torch.ones(2, 3, dtype=F64)
    sigma = torch.tensor([1.0, 2.0], dtype=F64)
    seen = {}

    def base(x, s, **extra):
        seen.update(extra)
        return x.clone()

    grad_fn = lambda x0, s: torch.full_like(x0, 1.0)
    out = x0_guidance(base, grad_fn, scale=0.5, weight=lambda s: s**2)(x, sigma, labels="a")
    # D' = 1 − 0.5·σ²·1 → [0.5, −1.0]
    assert out[:, 0].tolist() == pytest.approx([0.5, -1.0])
    assert seen == {"labels": "a"}


def test_cfg_then_x0_guidance_compose():
    x, sigma, cond, uncond = _setup()
    den = cfg(Recorder(), cond, uncond, 2.0)
    target = torch.zeros_like(x)
    den = x0_guidance(den, loss_gradient(lambda x0, s: 0.5 * (x0**2).flatten(1).sum(1)), scale=0.25)
    c, u = _hand(x, sigma, cond["labels"]), _hand(x, sigma, uncond["labels"])
    assert torch.allclose(den(x, sigma), 0.75 * (u + 2.0 * (c - u)) + 0.25 * target)


# -- negative prompts: the negative condition takes the unconditional half's place (issue 13) ------------------------
class ByKey:
    """D(x, σ, v=…) = v per sample (broadcast over x), whatever x and σ: guidance arithmetic by hand. Records each
    call's batch and whether a drop flag came with it."""

    def __init__(self):
        self.calls = []

    def __call__(self, x, sigma, v=None, drop=None):
        self.calls.append((x.shape[0], drop is not None))
        return torch.ones_like(x) * v.to(x.dtype).reshape(-1, *([1] * (x.ndim - 1)))


def test_negative_replaces_the_unconditional_half_by_hand():
    """Two conditions by hand: prompt 2.0, negative 0.5, w = 3 → 0.5 + 3·(2.0 − 0.5) = 5.0; no drop flag is passed
    (the negative is a condition of its own), and both halves go through the network in one call."""
    from noisebrush.diffusion.sample import make_denoiser

    x, sigma = torch.zeros(1, 1, 2, 2), torch.tensor([1.0], dtype=F64)
    den = ByKey()
    out = guided_call(den, x, sigma, [{"v": torch.tensor([2.0])}], 3.0, uncond={"v": torch.tensor([0.5])})
    assert torch.equal(out, torch.full_like(x, 5.0))
    assert den.calls == [(2, False)]
    # the same through the sampling core, per picture and batched, with the negative shared by two pictures
    x2, s2 = torch.zeros(2, 1, 2, 2), torch.tensor([1.0, 2.0], dtype=F64)
    for batched in (False, True):
        d = make_denoiser(ByKey(), {"v": torch.tensor([2.0, 4.0])}, cfg=3.0, batched=batched,
                          negative={"v": torch.tensor([0.5])})
        got = d(x2, s2)
        assert torch.equal(got[0], torch.full_like(x2[0], 5.0))          # 0.5 + 3·(2 − 0.5)
        assert torch.equal(got[1], torch.full_like(x2[1], 11.0))         # 0.5 + 3·(4 − 0.5)
        assert set(d.extra_args) == {"0.v", "neg.v"}                     # the negative travels with the sampler


def test_negative_with_a_weighted_mix_and_at_scale_one():
    """A weighted mix (a weighted prompt: weights 1.5 and −0.5) against a negative: n + w·(Σ a_i·D_i − n); at w = 1
    a single condition is evaluated alone (the negative has no effect and costs nothing)."""
    from noisebrush.diffusion.sample import make_denoiser

    x, sigma = torch.zeros(1, 1, 2, 2), torch.tensor([1.0], dtype=F64)
    d = make_denoiser(ByKey(), mix=[({"v": torch.tensor([2.0])}, 1.5), ({"v": torch.tensor([1.0])}, -0.5)],
                      cfg=2.0, negative={"v": torch.tensor([0.25])})
    # Σ a_i·D_i = 1.5·2 − 0.5·1 = 2.5; 0.25 + 2·(2.5 − 0.25) = 4.75
    assert torch.equal(d(x, sigma), torch.full_like(x, 4.75))
    den = ByKey()
    one = make_denoiser(den, {"v": torch.tensor([2.0])}, cfg=1.0, negative={"v": torch.tensor([0.5])})
    assert torch.equal(one(x, sigma), torch.full_like(x, 2.0)) and den.calls == [(1, False)]


def test_negative_needs_the_prompts_keys():
    from noisebrush.diffusion.sample import make_denoiser
    from noisebrush.errors import BadParameter

    with pytest.raises(BadParameter, match="negative"):
        make_denoiser(ByKey(), {"v": torch.tensor([2.0])}, cfg=3.0, negative={"w": torch.tensor([0.5])})
