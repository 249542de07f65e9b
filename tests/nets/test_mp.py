"""Tests for the magnitude-preserving building blocks (noisebrush.nets.mp, EDM2 section 3 / appendix B).

Every check is statistical on fixed seeds (deterministic) or exact; all tensors are small so the module runs in a
couple of seconds on one thread.
"""

import math

import pytest
import torch
import torch.nn.functional as F

from noisebrush.nets.mp import MPConv, MPFourier, mp_cat, mp_silu, mp_sum, normalize, resample




def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def interior(y: torch.Tensor, spatial: int, border: int = 1) -> torch.Tensor:
    """Drop `border` positions at each end of the last `spatial` axes (zero padding lowers the variance there)."""
    idx = (slice(None),) * (y.ndim - spatial) + (slice(border, -border),) * spatial
    return y[idx]


# -- normalize ------------------------------------------------------------------------------------------------


def test_normalize_default_dims_unit_rms_per_sample():
    scales = torch.tensor([0.5, 1.0, 10.0, 300.0]).view(4, 1, 1, 1)
    x = torch.randn(4, 3, 5, 6, generator=gen()) * scales
    y = normalize(x)
    rms = y.square().mean(dim=(1, 2, 3)).sqrt()
    torch.testing.assert_close(rms, torch.ones(4), atol=1e-3, rtol=0)
    # a positive rescaling per sample: the direction is unchanged
    ratio = y / x
    torch.testing.assert_close(ratio, ratio[:, :1, :1, :1].expand_as(ratio))
    assert (ratio > 0).all()


@pytest.mark.parametrize("dim, reduce", [(1, (1,)), (-1, (3,)), ((1, 3), (1, 3)), ([2, 3], (2, 3))])
def test_normalize_chosen_dims(dim, reduce):
    x = torch.randn(2, 4, 5, 6, generator=gen(1)) * 7
    y = normalize(x, dim=dim)
    rms = y.square().mean(dim=reduce).sqrt()
    torch.testing.assert_close(rms, torch.ones_like(rms), atol=1e-3, rtol=0)
    assert y.shape == x.shape


def test_normalize_zero_is_finite_and_dtype_kept():
    assert torch.equal(normalize(torch.zeros(2, 3)), torch.zeros(2, 3))
    xb = torch.randn(3, 64, generator=gen()).to(torch.bfloat16)
    yb = normalize(xb)
    assert yb.dtype == torch.bfloat16
    rms = yb.float().square().mean(1).sqrt()
    torch.testing.assert_close(rms, torch.ones(3), atol=1e-2, rtol=0)


# -- mp_silu / mp_sum / mp_cat ----------------------------------------------------------------------------------


def test_mp_silu_constant_is_silu_rms_of_unit_normal():
    # E[silu(z)²] by quadrature on a fine grid (float64): the divisor 0.596 must be its square root.
    z = torch.linspace(-12, 12, 200_001, dtype=torch.float64)
    pdf = torch.exp(-0.5 * z**2) / math.sqrt(2 * math.pi)
    second = torch.trapezoid(F.silu(z) ** 2 * pdf, z).item()
    assert math.sqrt(second) == pytest.approx(0.596, abs=5e-4)


def test_mp_silu_unit_second_moment_on_normal_sample():
    z = torch.randn(2_000_000, generator=gen())
    assert mp_silu(z).square().mean().item() == pytest.approx(1.0, abs=0.01)


@pytest.mark.parametrize("t", [0.0, 0.1, 0.3, 0.5, 0.8, 1.0])
def test_mp_sum_unit_variance(t):
    a = torch.randn(1_000_000, generator=gen(1))
    b = torch.randn(1_000_000, generator=gen(2))
    y = mp_sum(a, b, t)
    assert y.var().item() == pytest.approx(1.0, abs=0.01)
    if t == 0.0:
        torch.testing.assert_close(y, a)
    if t == 1.0:
        torch.testing.assert_close(y, b)


@pytest.mark.parametrize("na, nb, t", [(8, 8, 0.5), (4, 28, 0.5), (24, 8, 0.3), (3, 61, 0.8)])
def test_mp_cat_unit_variance_and_edm2_weights(na, nb, t):
    a = torch.randn(2000, na, 4, generator=gen(1))
    b = torch.randn(2000, nb, 4, generator=gen(2))
    y = mp_cat(a, b, dim=1, t=t)
    assert y.shape == (2000, na + nb, 4)
    assert y.square().mean().item() == pytest.approx(1.0, abs=0.01)
    # the EDM2 per-part weights: C/√Na·(1-t) and C/√Nb·t with C = √((Na+Nb)/((1-t)²+t²))
    c = math.sqrt((na + nb) / ((1 - t) ** 2 + t**2))
    torch.testing.assert_close(y[:, :na], a * (c / math.sqrt(na) * (1 - t)))
    torch.testing.assert_close(y[:, na:], b * (c / math.sqrt(nb) * t))


def test_mp_cat_other_dim():
    a, b = torch.randn(5, 2, 3), torch.randn(5, 6, 3)
    y = mp_cat(a.transpose(1, 2), b.transpose(1, 2), dim=-1)
    torch.testing.assert_close(y, mp_cat(a, b, dim=1).transpose(1, 2))


# -- MPConv ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kernel, xshape",
    [
        ((), (20_000, 16)),                 # linear
        ((1,), (16, 16, 256)),
        ((3,), (16, 16, 256)),
        ((3, 3), (8, 16, 24, 24)),
        ((1, 3, 3), (4, 16, 6, 12, 12)),    # the factorised spatial conv
        ((3, 1, 1), (4, 16, 12, 6, 6)),     # the factorised temporal conv
        ((3, 3, 3), (4, 16, 10, 10, 10)),
    ],
)
def test_mpconv_unit_variance_at_init(kernel, xshape):
    conv = MPConv(16, 64, kernel)
    x = torch.randn(xshape, generator=gen(3))
    with torch.no_grad():
        y = conv(x)
    assert y.shape == (xshape[0], 64, *xshape[2:])
    # the effective weight has unit L2 norm per output channel, so each channel has unit variance for iid input
    y = interior(y, len(xshape) - 2) if any(k > 1 for k in kernel) else y
    per_channel = y.transpose(0, 1).reshape(64, -1).square().mean(1)
    assert per_channel.mean().item() == pytest.approx(1.0, abs=0.05)
    assert per_channel.min().item() > 0.8 and per_channel.max().item() < 1.2


def test_mpconv_effective_weight_has_unit_norm_whatever_the_stored_scale():
    conv = MPConv(12, 5, (3, 3)).eval()
    x = torch.randn(2, 12, 9, 9, generator=gen())
    y0 = conv(x)
    with torch.no_grad():
        conv.weight.mul_(torch.tensor([0.5, 0.8, 3.0, 40.0, 1e3]).view(5, 1, 1, 1))
    # (up to normalize's eps = 1e-4 on the per-channel RMS, ~1e-4 relative here)
    torch.testing.assert_close(conv(x), y0, rtol=5e-4, atol=1e-5)


def test_mpconv_project_renormalises_stored_weight_and_forward_never_does():
    conv = MPConv(12, 5, (3, 3)).train()
    with torch.no_grad():
        conv.weight.mul_(torch.tensor([1e-1, 0.5, 3.0, 40.0, 1e3]).view(5, 1, 1, 1))
    before = conv.weight.detach().clone()
    conv(torch.randn(2, 12, 6, 6, generator=gen()))
    assert torch.equal(conv.weight.detach(), before)  # a forward pass never modifies parameters
    conv.project_()
    w = conv.weight.detach()
    # unit RMS per output channel, i.e. L2 norm √fan_in (EDM2 normalize: "unit magnitude" per element)
    rms = w.reshape(5, -1).square().mean(1).sqrt()
    torch.testing.assert_close(rms, torch.ones(5), atol=2e-3, rtol=0)
    # same direction as before
    cos = F.cosine_similarity(w.reshape(5, -1), before.reshape(5, -1), dim=1)
    torch.testing.assert_close(cos, torch.ones(5))


def test_mpconv_project_leaves_a_frozen_weight_exactly():
    conv = MPConv(6, 4, (3, 3))
    with torch.no_grad():
        conv.weight.mul_(3.0)
    conv.weight.requires_grad_(False)  # a weight a run does not train (train_only)
    before = conv.weight.detach().clone()
    conv.project_()
    assert torch.equal(conv.weight, before)


def test_mpconv_weights_start_projected():
    w = MPConv(12, 5, (3, 3)).weight.detach()
    torch.testing.assert_close(w.reshape(5, -1).square().mean(1).sqrt(), torch.ones(5), atol=1e-3, rtol=0)


def test_mpconv_eval_mode_leaves_stored_weight_alone():
    conv = MPConv(12, 5, (3,)).eval()
    with torch.no_grad():
        conv.weight.mul_(7.0)
    before = conv.weight.detach().clone()
    conv(torch.randn(2, 12, 10, generator=gen()))
    assert torch.equal(conv.weight.detach(), before)


def test_mpconv_train_forward_keeps_gradients():
    conv = MPConv(6, 4, (3, 3)).train()
    gain = torch.nn.Parameter(torch.tensor(0.7))
    conv(torch.randn(2, 6, 5, 5, generator=gen()), gain=gain).square().sum().backward()
    assert conv.weight.grad is not None and conv.weight.grad.abs().sum() > 0
    assert gain.grad is not None and gain.grad.abs() > 0


@pytest.mark.parametrize("kernel, xshape", [((), (3, 8)), ((3,), (2, 8, 11)), ((3, 3), (2, 8, 7, 7)),
                                            ((3, 3, 3), (1, 8, 4, 5, 5))])
def test_mpconv_gain_scales_output(kernel, xshape):
    conv = MPConv(8, 6, kernel).eval()
    x = torch.randn(xshape, generator=gen())
    y = conv(x)
    torch.testing.assert_close(conv(x, gain=2.5), 2.5 * y, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(conv(x, gain=torch.tensor(-0.3)), -0.3 * y, rtol=1e-5, atol=1e-6)
    assert torch.equal(conv(x, gain=0.0), torch.zeros_like(y))


def test_mpconv_keeps_same_spatial_size_for_odd_kernels():
    conv = MPConv(2, 3, (3, 1, 3))
    assert conv(torch.randn(1, 2, 5, 6, 7)).shape == (1, 3, 5, 6, 7)


# -- MPFourier ------------------------------------------------------------------------------------------------


def test_mpfourier_unit_variance_over_channels():
    emb = MPFourier(4096)
    x = torch.linspace(-3, 3, 9)
    y = emb(x)
    assert y.shape == (9, 4096)
    per_sample = y.square().mean(1)
    torch.testing.assert_close(per_sample, torch.ones(9), atol=0.06, rtol=0)


def test_mpfourier_deterministic_and_seeded():
    a, b, c = MPFourier(64), MPFourier(64), MPFourier(64, seed=1)
    x = torch.tensor([-1.0, 0.0, 0.25, 2.0])
    assert torch.equal(a(x), b(x))
    assert torch.equal(a(x), a(x))
    assert not torch.allclose(a(x), c(x))
    assert set(a.state_dict()) == {"freqs", "phases"}  # buffers travel with checkpoints
    assert not torch.allclose(a(x[:1]), a(x[1:2]))    # it actually depends on the input


def test_mpfourier_keeps_input_dtype():
    emb = MPFourier(16)
    x = torch.tensor([0.1, 0.2], dtype=torch.float64)
    assert emb(x).dtype == torch.float64
    assert emb(x.to(torch.bfloat16)).dtype == torch.bfloat16


# -- resample -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("spatial, shape", [(1, (2, 3, 16)), (2, (2, 3, 8, 12)), (3, (2, 3, 4, 8, 6))])
def test_resample_shapes(spatial, shape):
    x = torch.randn(shape, generator=gen())
    n, c, *s = shape
    down = resample(x, "down", spatial)
    up = resample(x, "up", spatial)
    assert down.shape == (n, c, *[v // 2 for v in s])
    assert up.shape == (n, c, *[v * 2 for v in s])
    assert resample(x, "keep", spatial) is x
    # nearest up then box down is the identity; box down of a constant keeps the constant
    torch.testing.assert_close(resample(up, "down", spatial), x)
    torch.testing.assert_close(resample(torch.full(shape, 2.5), "down", spatial), torch.full(down.shape, 2.5))


def test_resample_down_is_block_mean():
    x = torch.arange(16.0).view(1, 1, 4, 4)
    torch.testing.assert_close(resample(x, "down", 2), torch.tensor([[[[2.5, 4.5], [10.5, 12.5]]]]))


def test_resample_without_time_axis_keeps_first_spatial_axis():
    x = torch.randn(2, 3, 3, 8, 6, generator=gen())
    down = resample(x, "down", 3, time_axis=False)
    up = resample(x, "up", 3, time_axis=False)
    assert down.shape == (2, 3, 3, 4, 3)
    assert up.shape == (2, 3, 3, 16, 12)
    # frame t of the result only depends on frame t of the input
    torch.testing.assert_close(down[:, :, 1], resample(x[:, :, 1], "down", 2))
    torch.testing.assert_close(up[:, :, 2], resample(x[:, :, 2], "up", 2))


def test_resample_bad_mode():
    with pytest.raises(ValueError):
        resample(torch.zeros(1, 1, 4, 4), "sideways", 2)


# -- baking -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kernel, xshape", [((), (3, 8)), ((3,), (2, 8, 11)), ((3, 3), (2, 8, 7, 7)),
                                            ((1, 3, 3), (1, 8, 3, 5, 5)), ((3, 3, 3), (1, 8, 4, 5, 5))])
def test_mpconv_baked_is_bit_identical_and_reuses_its_weight(kernel, xshape):
    conv = MPConv(8, 6, kernel).eval()
    baked = MPConv(8, 6, kernel).eval()
    baked.load_state_dict(conv.state_dict())
    assert baked.bake() is baked and baked.baked and not conv.baked
    x = torch.randn(xshape, generator=gen())
    gain = torch.tensor(0.7)
    with torch.no_grad():
        for g in (1.0, 2.5, gain):
            assert torch.equal(baked(x, gain=g), conv(x, gain=g))
            assert torch.equal(baked(x, gain=g), conv(x, gain=g))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert torch.equal(baked(x, gain=2.5), conv(x, gain=2.5))
        ref = conv(x, gain=gain)
        # the baked weight really is reused: a write through .data (which PyTorch does not count) goes unseen …
        baked.weight.data.mul_(-1)
        assert torch.equal(baked(x, gain=gain), ref)
        baked.refresh_bake()  # … until the bake is refreshed
        assert torch.equal(baked(x, gain=gain), -ref)
        baked.unbake()
        assert not baked.baked and torch.equal(baked(x, gain=gain), -ref)


def test_mpconv_baked_weight_never_used_where_it_could_be_stale_or_take_a_gradient():
    conv = MPConv(6, 4, (3, 3)).eval()
    x = torch.randn(2, 6, 5, 5, generator=gen())
    conv.bake()
    with torch.no_grad():
        ref = conv(x)
    # in eval mode with grad enabled, weights that require grad still get their gradient
    conv(x).square().sum().backward()
    assert conv.weight.grad is not None and conv.weight.grad.abs().sum() > 0
    # a tensor gain that requires grad gets one too
    gain = torch.nn.Parameter(torch.tensor(0.5))
    conv(x, gain=gain).sum().backward()
    assert gain.grad is not None
    # an in-place change (counted by PyTorch) is seen
    with torch.no_grad():
        conv.weight.mul_(-1)
        assert torch.equal(conv(x), -ref)
        conv.weight.mul_(-1)
    # a weight swapped in by functional_call (how a peft LoRA layer runs) is used, not the baked one
    w = -conv.weight.detach()
    with torch.no_grad():
        assert torch.equal(torch.func.functional_call(conv, {"weight": w}, (x,)), -ref)
        assert torch.equal(conv(x), ref)
    with torch.no_grad():
        conv.weight.data = conv.weight.data * 3  # not normalised: project_ changes it
    conv.project_()  # re-bakes from the projected weight
    assert conv.baked
    plain = MPConv(6, 4, (3, 3)).eval()
    plain.load_state_dict(conv.state_dict())
    with torch.no_grad():
        assert torch.equal(conv(x), plain(x))
    conv.train()
    assert not conv.baked
