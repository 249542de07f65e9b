"""Unit tests for noisebrush.diffusion.vp: σ ↔ ᾱ conversions and the VPDenoiser wrapper."""
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from noisebrush.diffusion.schedules import cosine_alphas_cumprod, linear_alphas_cumprod
from noisebrush.diffusion.vp import VPDenoiser, alpha_cumprod_to_sigma, sigma_to_alpha_cumprod, vp_input_scale
from noisebrush.errors import BadParameter

F64 = torch.float64
AC = linear_alphas_cumprod()  # T = 1000
TABLE = ((1 - AC) / AC).sqrt()  # σ_t, computed here by hand


def test_conversions_by_hand():
    assert sigma_to_alpha_cumprod(1.0) == 0.5
    assert sigma_to_alpha_cumprod(0.0) == 1.0
    assert sigma_to_alpha_cumprod(3.0) == pytest.approx(0.1)
    assert alpha_cumprod_to_sigma(0.5) == pytest.approx(1.0)
    assert alpha_cumprod_to_sigma(0.2) == pytest.approx(2.0)
    assert vp_input_scale(3.0) == pytest.approx(1 / math.sqrt(10))
    assert vp_input_scale(0.0) == 1.0


@settings(max_examples=30, deadline=None)
@given(st.floats(min_value=1e-3, max_value=1e3))
def test_sigma_alpha_round_trip(sigma):
    ac = sigma_to_alpha_cumprod(sigma)
    assert 0 < ac <= 1
    assert alpha_cumprod_to_sigma(ac) == pytest.approx(sigma, rel=1e-9)
    assert vp_input_scale(sigma) == pytest.approx(math.sqrt(ac), rel=1e-12)


def test_conversions_on_tensors():
    s = torch.tensor([0.5, 1.0, 10.0], dtype=F64)
    assert torch.allclose(alpha_cumprod_to_sigma(sigma_to_alpha_cumprod(s)), s)


# ---------------------------------------------------------------- timestep mapping


def _den(prediction="eps", quantize=False, model=None, ac=AC):
    return VPDenoiser(model or (lambda x, t, **k: torch.zeros_like(x)), ac, prediction=prediction, quantize=quantize)


def test_sigma_min_max():
    den = _den()
    assert den.sigma_min == pytest.approx(math.sqrt(1e-4 / 0.9999), rel=1e-9)
    assert den.sigma_max == pytest.approx(157.4, abs=0.05)


def test_table_entries_map_to_integer_t():
    den = _den()
    idx = torch.tensor([0, 1, 2, 10, 499, 998, 999])
    t = den.sigma_to_t(TABLE[idx])
    assert t.dtype == F64
    assert torch.allclose(t, idx.to(F64), atol=1e-9, rtol=0)
    assert torch.allclose(den.t_to_sigma(idx.to(F64)), TABLE[idx], rtol=1e-12)


def test_sigma_to_t_interpolates_in_log_sigma():
    den = _den()
    # geometric mean of two neighbouring levels sits halfway in log σ
    for k in (0, 17, 500, 998):
        s = (TABLE[k] * TABLE[k + 1]).sqrt().reshape(1)
        assert den.sigma_to_t(s).item() == pytest.approx(k + 0.5, abs=1e-9)
        s30 = (TABLE[k] ** 0.7 * TABLE[k + 1] ** 0.3).reshape(1)
        assert den.sigma_to_t(s30).item() == pytest.approx(k + 0.3, abs=1e-9)


def test_sigma_to_t_clamps_outside_table():
    den = _den()
    t = den.sigma_to_t(torch.tensor([1e-6, 1e4], dtype=F64))
    assert t.tolist() == [0.0, 999.0]


def test_sigma_t_round_trip():
    den = _den()
    g = torch.Generator().manual_seed(0)
    log_s = torch.empty(200, dtype=F64).uniform_(math.log(den.sigma_min), math.log(den.sigma_max), generator=g)
    s = log_s.exp()
    t = den.sigma_to_t(s)
    assert bool((t >= 0).all() and (t <= 999).all())
    assert torch.allclose(den.t_to_sigma(t), s, rtol=1e-9)
    # monotone
    order = s.argsort()
    assert bool((t[order].diff() >= 0).all())
    tt = torch.linspace(0, 999, 301, dtype=F64)
    assert torch.allclose(den.sigma_to_t(den.t_to_sigma(tt)), tt, atol=1e-8)


def test_quantize_rounds_t():
    den = _den(quantize=True)
    k = 300
    s30 = (TABLE[k] ** 0.7 * TABLE[k + 1] ** 0.3).reshape(1)  # t = k + 0.3
    s70 = (TABLE[k] ** 0.3 * TABLE[k + 1] ** 0.7).reshape(1)  # t = k + 0.7
    assert den.sigma_to_t(s30).item() == k
    assert den.sigma_to_t(s70).item() == k + 1


def test_bad_prediction_rejected():
    with pytest.raises(BadParameter, match="prediction"):
        _den(prediction="score")


# ---------------------------------------------------------------- denoising with an exact network


def _x0_eps(shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g, dtype=F64), torch.randn(shape, generator=g, dtype=F64)


def _bc(v, x):
    return v.reshape(-1, *([1] * (x.ndim - 1)))


@pytest.mark.parametrize("prediction", ["eps", "v", "x0"])
@pytest.mark.parametrize("shape", [(3, 2, 4, 4), (2, 5, 3)])
def test_exact_network_recovers_x0_at_table_levels(prediction, shape):
    """A 'perfect' VP network: it reads t, looks ᾱ_t up in the table itself, and inverts
    x_t = sqrt(ᾱ_t)·x0 + sqrt(1-ᾱ_t)·ε using the true x0. At table levels the wrapper must return x0."""
    x0, eps = _x0_eps(shape)
    idx = torch.tensor([5, 400, 999, 0, 123][: shape[0]])
    sigma = TABLE[idx]
    x_sigma = x0 + _bc(sigma, x0) * eps
    calls = []

    def model(x_t, t, **cond):
        calls.append(cond)
        assert torch.allclose(t, idx.to(t.dtype), atol=1e-6)  # integer training steps
        ti = t.round().long()
        a, s = _bc(AC[ti].sqrt(), x_t), _bc((1 - AC[ti]).sqrt(), x_t)
        # the network input is the VP forward process
        assert torch.allclose(x_t, a * x0 + s * eps, atol=1e-10)
        e = (x_t - a * x0) / s
        if prediction == "eps":
            return e
        if prediction == "v":
            return a * e - s * x0
        return x0.clone()

    den = VPDenoiser(model, AC, prediction=prediction)
    out = den(x_sigma, sigma, label="cat")
    assert out.shape == x0.shape and out.dtype == F64
    assert torch.allclose(out, x0, atol=1e-8)
    assert calls == [{"label": "cat"}]


@pytest.mark.parametrize("prediction", ["eps", "v", "x0"])
def test_exact_network_recovers_x0_between_levels(prediction):
    """At arbitrary σ the exact targets (in terms of σ: α = 1/sqrt(1+σ²), σ_vp = σ/sqrt(1+σ²)) recover x0."""
    x0, eps = _x0_eps((4, 3, 5), seed=1)
    sigma = torch.tensor([0.013, 0.7, 3.3, 120.0], dtype=F64)
    x_sigma = x0 + _bc(sigma, x0) * eps
    alpha = _bc(1 / (1 + sigma**2).sqrt(), x0)
    sigma_vp = _bc(sigma / (1 + sigma**2).sqrt(), x0)

    def model(x_t, t, **_):
        assert torch.allclose(x_t, alpha * x0 + sigma_vp * eps, atol=1e-10)
        return {"eps": eps, "v": alpha * eps - sigma_vp * x0, "x0": x0}[prediction]

    out = VPDenoiser(model, AC, prediction=prediction)(x_sigma, sigma)
    assert torch.allclose(out, x0, atol=1e-8)


def test_scalar_sigma_and_float32():
    x0, eps = _x0_eps((2, 3, 4), seed=2)
    x0, eps = x0.float(), eps.float()
    sigma = 2.5
    den = VPDenoiser(lambda x_t, t, **_: eps, AC, prediction="eps")
    out = den(x0 + sigma * eps, sigma)
    assert out.dtype == torch.float32
    assert torch.allclose(out, x0, atol=1e-5)


def test_model_sees_timestep_of_sigma():
    seen = {}

    def model(x_t, t, **_):
        seen["t"] = t.clone()
        return torch.zeros_like(x_t)

    den = VPDenoiser(model, AC, prediction="eps")
    x = torch.zeros(3, 2, dtype=F64)
    den(x, TABLE[torch.tensor([10, 20, 30])])
    assert seen["t"].dtype == torch.float32  # whatever x's dtype: bf16 cannot hold t = 999
    assert torch.allclose(seen["t"], torch.tensor([10.0, 20.0, 30.0]), atol=1e-4)
    den_q = VPDenoiser(model, AC, prediction="eps", quantize=True)
    mid = (TABLE[41] ** 0.6 * TABLE[42] ** 0.4).reshape(1)
    den_q(x[:1], mid)
    assert seen["t"].tolist() == [41.0]


def test_other_tables():
    ac = cosine_alphas_cumprod(200)
    den = _den(ac=ac)
    sig = ((1 - ac) / ac).sqrt()
    assert torch.allclose(den.sigma_to_t(sig[[3, 100, 199]]), torch.tensor([3.0, 100.0, 199.0], dtype=F64), atol=1e-8)
