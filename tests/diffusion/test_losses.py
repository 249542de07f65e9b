"""Unit tests for noisebrush.diffusion.losses: EDM and VP (min-SNR) losses against hand calculations."""

import pytest
import torch

from noisebrush.diffusion.losses import edm_loss, edm_weight, min_snr_weight, sample_edm_sigma, vp_loss
from noisebrush.diffusion.schedules import linear_alphas_cumprod
from noisebrush.errors import BadParameter

F64 = torch.float64
AC = linear_alphas_cumprod()


def _data(shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g, dtype=F64), torch.randn(shape, generator=g, dtype=F64)


# ---------------------------------------------------------------- EDM


def test_edm_weight_by_hand():
    # λ(σ) = (σ² + σ_d²) / (σ·σ_d)²
    assert edm_weight(torch.tensor(0.5), 0.5).item() == pytest.approx(8.0)
    assert edm_weight(torch.tensor(1.0), 0.5).item() == pytest.approx(5.0)
    assert edm_weight(torch.tensor(2.0), 1.0).item() == pytest.approx(1.25)
    s = torch.tensor([0.01, 80.0], dtype=F64)
    assert torch.allclose(edm_weight(s), (s**2 + 0.25) / (0.25 * s**2))


def test_edm_loss_hand_computation():
    x0, eps = _data((2, 3, 4))
    sigma = torch.tensor([0.5, 2.0], dtype=F64)
    den = lambda x, s, **_: 0.9 * x  # a deliberately imperfect denoiser
    loss = edm_loss(den, x0, sigma=sigma, noise=eps)
    assert loss.shape == (2,)
    for i, s in enumerate([0.5, 2.0]):
        lam = (s * s + 0.25) / (s * 0.5) ** 2
        err = 0.9 * (x0[i] + s * eps[i]) - x0[i]
        assert loss[i].item() == pytest.approx(lam * (err**2).mean().item(), rel=1e-12)


def test_edm_loss_mask_averages_over_the_counted_elements_only():
    x0, eps = _data((2, 3, 4))
    sigma = torch.tensor([0.5, 2.0], dtype=F64)
    den = lambda x, s, **_: 0.9 * x
    full = edm_loss(den, x0, sigma=sigma, noise=eps)
    assert torch.allclose(edm_loss(den, x0, sigma=sigma, noise=eps, mask=torch.ones(1, 1, 4)), full, rtol=1e-6)
    mask = torch.tensor([1.0, 1.0, 0.0, 0.0])  # the last two positions (a clip's given frames) do not count
    part = edm_loss(den, x0, sigma=sigma, noise=eps, mask=mask)
    half = edm_loss(den, x0[..., :2], sigma=sigma, noise=eps[..., :2])
    torch.testing.assert_close(part, half, rtol=1e-12, atol=0)
    moved = x0.clone()
    moved[..., 2:] += 10
    torch.testing.assert_close(edm_loss(den, moved, sigma=sigma, noise=eps, mask=mask), part, rtol=0, atol=0)


def test_edm_loss_sigma_data_and_scalar_sigma():
    x0, eps = _data((3, 5))
    den = lambda x, s, **_: torch.zeros_like(x)
    loss = edm_loss(den, x0, sigma=1.0, noise=eps, sigma_data=1.0)
    assert torch.allclose(loss, 2.0 * (x0**2).mean(1))  # λ(1; σ_d=1) = 2


def test_edm_loss_passes_sigma_and_cond_to_denoiser():
    x0, eps = _data((2, 3))
    seen = {}

    def den(x, s, **cond):
        seen.update(sigma=s.clone(), x=x.clone(), cond=cond)
        return x0.clone()  # perfect

    sigma = torch.tensor([0.3, 4.0], dtype=F64)
    loss = edm_loss(den, x0, sigma=sigma, noise=eps, labels=torch.tensor([1, 2]))
    assert torch.equal(loss, torch.zeros(2, dtype=F64))
    assert torch.equal(seen["sigma"], sigma)
    assert torch.allclose(seen["x"], x0 + sigma[:, None] * eps)
    assert seen["cond"]["labels"].tolist() == [1, 2]


def test_edm_loss_random_draws_are_seeded():
    x0, _ = _data((4, 3, 2))
    den = lambda x, s, **_: 0.5 * x
    a = edm_loss(den, x0, generator=torch.Generator().manual_seed(5))
    b = edm_loss(den, x0, generator=torch.Generator().manual_seed(5))
    c = edm_loss(den, x0, generator=torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert bool((a > 0).all())


def test_sample_edm_sigma_is_lognormal():
    s = sample_edm_sigma(20000, generator=torch.Generator().manual_seed(0))
    assert s.shape == (20000,) and bool((s > 0).all())
    log_s = s.log()
    assert log_s.mean().item() == pytest.approx(-1.2, abs=0.04)
    assert log_s.std().item() == pytest.approx(1.2, abs=0.03)
    s2 = sample_edm_sigma(20000, generator=torch.Generator().manual_seed(0), P_mean=0.5, P_std=0.1)
    assert s2.log().mean().item() == pytest.approx(0.5, abs=0.01)
    assert s2.log().std().item() == pytest.approx(0.1, abs=0.005)


# ---------------------------------------------------------------- min-SNR weights


def test_min_snr_weight_by_hand():
    snr = torch.tensor([1.0, 5.0, 20.0], dtype=F64)
    assert min_snr_weight(snr, None, "eps").tolist() == [1.0, 1.0, 1.0]
    assert min_snr_weight(snr, 5.0, "eps").tolist() == pytest.approx([1.0, 1.0, 0.25])
    assert min_snr_weight(snr, 5.0, "v").tolist() == pytest.approx([0.5, 5 / 6, 5 / 21])
    assert min_snr_weight(snr, 5.0, "x0").tolist() == pytest.approx([1.0, 5.0, 5.0])
    with pytest.raises(BadParameter, match="prediction"):
        min_snr_weight(snr, 5.0, "score")


# ---------------------------------------------------------------- VP


def _vp_hand(x0, eps, t):
    a = AC[t].sqrt().reshape(-1, *([1] * (x0.ndim - 1)))
    s = (1 - AC[t]).sqrt().reshape(-1, *([1] * (x0.ndim - 1)))
    return a, s, a * x0 + s * eps


@pytest.mark.parametrize("prediction", ["eps", "v", "x0"])
@pytest.mark.parametrize("gamma", [None, 5.0])
def test_vp_loss_hand_computation(prediction, gamma):
    x0, eps = _data((3, 2, 4), seed=1)
    t = torch.tensor([10, 300, 900])
    a, s, x_t = _vp_hand(x0, eps, t)
    model = lambda x, tt, **_: 0.5 * x + 0.1  # imperfect
    loss = vp_loss(model, x0, AC, t=t, noise=eps, prediction=prediction, min_snr_gamma=gamma)
    target = {"eps": eps, "v": a * eps - s * x0, "x0": x0}[prediction]
    plain = ((0.5 * x_t + 0.1 - target) ** 2).reshape(3, -1).mean(1)
    for i in range(3):
        ac = AC[t[i]].item()
        snr = ac / (1 - ac)
        if gamma is None:
            w = 1.0
        else:
            w = {"eps": min(snr, gamma) / snr, "v": min(snr, gamma) / (snr + 1), "x0": min(snr, gamma)}[prediction]
        assert loss[i].item() == pytest.approx(w * plain[i].item(), rel=1e-10)


@pytest.mark.parametrize("prediction", ["eps", "v", "x0"])
def test_min_snr_loss_equals_min_snr_times_x0_error(prediction):
    """Hang et al. 2023: for every parameterization the weighted loss is min(SNR, γ)·‖x̂_0 − x_0‖²."""
    x0, eps = _data((4, 6), seed=2)
    t = torch.tensor([0, 50, 400, 999])
    gamma = 5.0
    a, s, x_t = _vp_hand(x0, eps, t)
    g = torch.Generator().manual_seed(9)
    out = torch.randn(x0.shape, generator=g, dtype=F64)
    loss = vp_loss(lambda *_, **__: out, x0, AC, t=t, noise=eps, prediction=prediction, min_snr_gamma=gamma)
    if prediction == "eps":
        x0_hat = (x_t - s * out) / a
    elif prediction == "v":
        x0_hat = a * x_t - s * out
    else:
        x0_hat = out
    snr = AC[t] / (1 - AC[t])
    want = snr.clamp(max=gamma) * ((x0_hat - x0) ** 2).mean(1)
    assert torch.allclose(loss, want, rtol=1e-8)


@pytest.mark.parametrize("prediction", ["eps", "v", "x0"])
def test_vp_perfect_model_has_zero_loss(prediction):
    """A network that reads t and x_t and knows x0 gives exactly the target → loss 0."""
    x0, eps = _data((3, 3, 4, 4), seed=3)
    seen = {}

    def model(x_t, t, **cond):
        seen.update(t=t.clone(), cond=cond)
        a = AC[t].sqrt().reshape(-1, 1, 1, 1)
        s = (1 - AC[t]).sqrt().reshape(-1, 1, 1, 1)
        e = (x_t - a * x0) / s
        return {"eps": e, "v": a * e - s * x0, "x0": x0}[prediction]

    t = torch.tensor([1, 500, 999])
    loss = vp_loss(model, x0, AC, t=t, noise=eps, prediction=prediction, min_snr_gamma=5.0, labels="x")
    assert loss.shape == (3,)
    assert torch.allclose(loss, torch.zeros(3, dtype=F64), atol=1e-20)
    assert seen["t"].tolist() == [1, 500, 999] and seen["cond"] == {"labels": "x"}


def test_vp_loss_random_t_and_noise():
    x0, _ = _data((64, 2))
    seen = {}

    def model(x_t, t, **_):
        seen["t"] = t
        return torch.zeros_like(x_t)

    g = torch.Generator().manual_seed(0)
    a = vp_loss(model, x0, AC, generator=g)
    t1 = seen["t"]
    assert t1.dtype == torch.long and 0 <= t1.min() and t1.max() <= 999 and len(set(t1.tolist())) > 30
    b = vp_loss(model, x0, AC, generator=torch.Generator().manual_seed(0))
    assert torch.equal(a, b)


def test_vp_loss_float32():
    x0, eps = _data((2, 5))
    x0, eps = x0.float(), eps.float()
    loss = vp_loss(lambda x, t, **_: torch.zeros_like(x), x0, AC, t=torch.tensor([3, 7]), noise=eps)
    assert loss.dtype == torch.float32
    assert torch.allclose(loss, (eps**2).mean(1))


def test_vp_loss_bad_prediction():
    x0, eps = _data((2, 3))
    with pytest.raises(BadParameter, match="prediction"):
        vp_loss(lambda x, t: x, x0, AC, prediction="score")
