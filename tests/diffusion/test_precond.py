"""Unit tests for noisebrush.diffusion.precond: EDM Table 1 coefficients and the EDMPrecond wrapper."""
import math

import pytest
import torch

from noisebrush.diffusion.precond import EDMPrecond, edm_coefficients

F64 = torch.float64


def _table1(sigma, sd):
    """Karras et al. 2022, Table 1, written out with math (floats)."""
    return (
        sd**2 / (sigma**2 + sd**2),
        sigma * sd / math.sqrt(sigma**2 + sd**2),
        1 / math.sqrt(sigma**2 + sd**2),
        0.25 * math.log(sigma),
    )


@pytest.mark.parametrize("sd", [0.5, 1.0, 0.2])
def test_coefficients_match_table1(sd):
    sigmas = [0.002, 0.1, 0.5, 1.0, 7.3, 80.0]
    got = edm_coefficients(torch.tensor(sigmas, dtype=F64), sd)
    for j, s in enumerate(sigmas):
        want = _table1(s, sd)
        for k in range(4):
            assert got[k].dtype == F64
            assert got[k][j].item() == pytest.approx(want[k], rel=1e-12, abs=1e-15)


def test_coefficients_literal_values():
    # σ = σ_d = 0.5: c_skip = 1/2, c_out = 0.25/sqrt(0.5), c_in = sqrt(2), c_noise = ln(0.5)/4
    c_skip, c_out, c_in, c_noise = edm_coefficients(torch.tensor([0.5], dtype=F64), 0.5)
    assert c_skip.item() == pytest.approx(0.5)
    assert c_out.item() == pytest.approx(0.3535533906, rel=1e-9)
    assert c_in.item() == pytest.approx(1.4142135624, rel=1e-9)
    assert c_noise.item() == pytest.approx(-0.1732867951, rel=1e-9)


def test_coefficients_unit_variance_properties():
    """The design goals of Table 1: unit-variance input and unit-variance training target."""
    sd = 0.5
    s = torch.logspace(-3, 2, 50, dtype=F64)
    c_skip, c_out, c_in, _ = edm_coefficients(s, sd)
    assert torch.allclose(c_in**2 * (sd**2 + s**2), torch.ones_like(s))  # Var[c_in·(y + σn)] = 1
    # Var[(y − c_skip·(y + σn)) / c_out] = ((1 − c_skip)²σ_d² + c_skip²σ²) / c_out² = 1
    target_var = ((1 - c_skip) ** 2 * sd**2 + c_skip**2 * s**2) / c_out**2
    assert torch.allclose(target_var, torch.ones_like(s))


def _ideal_net(y, sd):
    """F such that D(x; σ) = y exactly: F = (y − c_skip·x) / c_out. It recovers σ from c_noise = ln σ / 4
    and x from c_in·x by itself (Table 1 formulas, not edm_coefficients)."""
    seen = {}

    def net(x_in, c_noise, **cond):
        seen["c_noise"], seen["cond"] = c_noise.clone(), cond
        assert c_noise.shape == (x_in.shape[0],)
        sigma = (4 * c_noise).exp().reshape(-1, *([1] * (x_in.ndim - 1)))
        x = x_in * (sigma**2 + sd**2).sqrt()
        c_skip = sd**2 / (sigma**2 + sd**2)
        c_out = sigma * sd / (sigma**2 + sd**2).sqrt()
        return (y - c_skip * x) / c_out

    return net, seen


@pytest.mark.parametrize("shape", [(3, 2, 16), (3, 3, 8, 8), (3, 2, 4, 6, 6), (3, 32, 3)], ids=["1d", "2d", "3d", "points"])
def test_ideal_net_returns_the_data_point(shape):
    g = torch.Generator().manual_seed(0)
    y = torch.randn(shape, generator=g, dtype=F64)
    sd = 0.5
    net, seen = _ideal_net(y, sd)
    sigma = torch.tensor([0.01, 1.3, 60.0], dtype=F64)
    x = y + sigma.reshape(-1, *([1] * (len(shape) - 1))) * torch.randn(shape, generator=g, dtype=F64)
    out = EDMPrecond(net, sigma_data=sd)(x, sigma, labels="dog")
    assert out.shape == shape and out.dtype == F64
    assert torch.allclose(out, y, atol=1e-9)
    assert torch.allclose(seen["c_noise"], sigma.log() / 4)
    assert seen["cond"] == {"labels": "dog"}


def test_wrapper_is_cskip_x_plus_cout_F_by_hand():
    # F(x_in, c_noise) = 2·x_in + c_noise; one sample, scalar σ = 2, σ_d = 1.
    net = lambda x_in, c_noise, **_: 2 * x_in + c_noise.reshape(-1, 1)
    x = torch.tensor([[1.0, -3.0]], dtype=F64)
    out = EDMPrecond(net, sigma_data=1.0)(x, 2.0)
    c_skip, c_out, c_in, c_noise = 1 / 5, 2 / math.sqrt(5), 1 / math.sqrt(5), math.log(2) / 4
    want = [c_skip * v + c_out * (2 * c_in * v + c_noise) for v in (1.0, -3.0)]
    assert out[0].tolist() == pytest.approx(want, rel=1e-6)


def test_float32_dtype_and_scalar_sigma():
    g = torch.Generator().manual_seed(3)
    y = torch.randn(2, 3, 4, 4, generator=g)
    net, _ = _ideal_net(y.double(), 0.5)
    x = y + 0.3 * torch.randn(2, 3, 4, 4, generator=g)
    out = EDMPrecond(lambda a, b, **k: net(a.double(), b.double()).float(), 0.5)(x, 0.3)
    assert out.dtype == torch.float32
    assert torch.allclose(out, y, atol=1e-4)
