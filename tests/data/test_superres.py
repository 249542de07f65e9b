"""Super-resolution pairs (noisebrush.data.superres): box downsampling, bicubic upsampling, blur, the augmented
condition, the SuperRes task's checks and training pairs (deterministic, aligned crops), and PSNR."""
from __future__ import annotations

import math

import pytest
import torch

from noisebrush.data.superres import (
    SuperRes,
    blur,
    consistency_psnr,
    downsample,
    low_condition,
    psnr,
    upsample,
)
from noisebrush.errors import BadParameter


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def smooth(c=3, h=16, w=16):
    """A smooth picture in [-1, 1]: low-frequency sines, different per channel."""
    y = torch.arange(h, dtype=torch.float32).reshape(h, 1)
    x = torch.arange(w, dtype=torch.float32).reshape(1, w)
    return torch.stack([0.6 * torch.sin(2 * math.pi * (x / w * 0.5 + y / h * 0.25) + i) for i in range(c)])


# -- downsample / upsample ---------------------------------------------------------------------------------------


def test_downsample_of_a_constant_is_the_constant():
    x = torch.full((3, 8, 12), 0.375)
    y = downsample(x, 4)
    assert y.shape == (3, 2, 3)
    assert torch.equal(y, torch.full((3, 2, 3), 0.375))


def test_downsample_is_the_box_average():
    x = torch.arange(16, dtype=torch.float32).reshape(1, 4, 4)
    # blocks {0,1,4,5}, {2,3,6,7}, {8,9,12,13}, {10,11,14,15}
    assert torch.equal(downsample(x, 2), torch.tensor([[[2.5, 4.5], [10.5, 12.5]]]))
    assert torch.equal(downsample(x, 4), torch.tensor([[[7.5]]]))
    # a random picture, against an explicit block mean; batched input keeps its batch axis
    r = torch.randn(2, 3, 8, 8, generator=gen(1))
    want = r.reshape(2, 3, 4, 2, 4, 2).mean(dim=(3, 5))
    torch.testing.assert_close(downsample(r, 2), want, atol=1e-6, rtol=0)
    assert downsample(r[0], 2).shape == (3, 4, 4)


def test_downsample_refuses_sizes_not_divisible_by_the_scale_and_bad_ranks():
    with pytest.raises(BadParameter, match="not divisible"):
        downsample(torch.zeros(3, 8, 6), 4)
    with pytest.raises(BadParameter, match="not divisible"):
        downsample(torch.zeros(3, 7, 8), 2)
    with pytest.raises(BadParameter, match="picture"):
        downsample(torch.zeros(8, 8), 2)
    with pytest.raises(BadParameter, match="picture"):
        upsample(torch.zeros(1, 1, 3, 8, 8), 2)


@pytest.mark.parametrize("scale", [2, 4])
def test_upsample_shape_and_box_average_undoes_it_for_smooth_pictures(scale):
    x = smooth(3, 8, 12)
    up = upsample(x, scale)
    assert up.shape == (3, 8 * scale, 12 * scale) and up.dtype == torch.float32
    assert upsample(x.unsqueeze(0), scale).shape == (1, 3, 8 * scale, 12 * scale)
    back = downsample(up, scale)
    assert back.shape == x.shape
    # away from the border the bicubic kernel interpolates a smooth picture closely
    inner = (slice(None), slice(2, -2), slice(2, -2))
    err = (back - x)[inner].abs().max()
    assert err < 0.02, err
    assert (back - x).abs().max() < 0.1
    # a constant stays exactly (to rounding) constant
    c = upsample(torch.full((3, 4, 4), -0.25), scale)
    torch.testing.assert_close(c, torch.full((3, 4 * scale, 4 * scale), -0.25), atol=1e-6, rtol=0)


# -- blur ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("sigma", [0.3, 1.0, 2.5, 4.0])
def test_blur_keeps_a_constant_picture_constant(sigma):
    x = torch.full((3, 8, 8), 0.6)
    y = blur(x, sigma)
    assert y.shape == x.shape
    torch.testing.assert_close(y, x, atol=1e-6, rtol=0)
    # also when the kernel is wider than the picture (it is cut to the picture), batched
    small = torch.full((2, 3, 3, 3), -0.4)
    torch.testing.assert_close(blur(small, sigma), small, atol=1e-6, rtol=0)


def test_blur_sigma_zero_is_the_identity():
    x = torch.randn(3, 8, 8, generator=gen(2))
    assert blur(x, 0) is x
    assert blur(x, 0.0) is x
    assert torch.equal(blur(x, -1.0), x)


def test_blur_smooths_symmetrically_and_keeps_the_mean_of_an_inner_impulse():
    x = torch.zeros(1, 21, 21)
    x[0, 10, 10] = 1.0
    y = blur(x, 1.5)[0]
    assert y[10, 10] == y.max() and y[10, 10] < 0.2
    torch.testing.assert_close(y, y.flip(0), atol=1e-7, rtol=0)
    torch.testing.assert_close(y, y.t(), atol=1e-7, rtol=0)
    assert float(y.sum()) == pytest.approx(1.0, abs=1e-5)  # the kernel (radius 5) never reaches the edges
    noise = torch.randn(3, 16, 16, generator=gen(3))
    assert blur(noise, 1.0).std() < 0.6 * noise.std()


# -- the condition ------------------------------------------------------------------------------------------------


def test_low_condition_adds_aug_times_noise_before_upsampling():
    low = torch.rand(3, 4, 6, generator=gen(4)) * 2 - 1
    noise = torch.randn(3, 4, 6, generator=gen(5))
    cond = low_condition(low, 2, aug=0.3, noise=noise)
    assert cond.shape == (3, 8, 12)
    assert torch.equal(cond, upsample(low + 0.3 * noise, 2))
    assert not torch.allclose(cond, upsample(low, 2), atol=1e-3)
    # no augmentation: the upsampled picture, and no noise needed
    assert torch.equal(low_condition(low, 4), upsample(low, 4))
    assert torch.equal(low_condition(low, 2, aug=0.0, noise=noise), upsample(low, 2))
    # batched
    lows, noises = low.expand(2, -1, -1, -1), noise.expand(2, -1, -1, -1)
    assert torch.equal(low_condition(lows, 2, aug=0.3, noise=noises)[1], cond)


def test_low_condition_refuses_missing_or_misshapen_noise():
    low = torch.zeros(3, 4, 4)
    with pytest.raises(BadParameter, match="noise"):
        low_condition(low, 2, aug=0.1)
    with pytest.raises(BadParameter, match="noise"):
        low_condition(low, 2, aug=0.1, noise=torch.zeros(3, 8, 8))
    with pytest.raises(BadParameter, match="noise"):
        low_condition(low, 2, aug=0.1, noise=torch.zeros(1, 3, 4, 4))


# -- SuperRes ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kw, match", [
    (dict(scale=3), "scale"), (dict(scale=1), "scale"), (dict(scale=8), "scale"),
    (dict(scale=2, crop=7), "crop_size"), (dict(scale=4, crop=6), "crop_size"), (dict(crop=-2), "crop_size"),
    (dict(aug_max=-0.1), "sr_aug_max"), (dict(aug_max=2.5), "sr_aug_max"),
    (dict(blur_max=-0.5), "sr_blur"), (dict(blur_max=4.5), "sr_blur"),
    (dict(blur_prob=-0.1), "blur_prob"), (dict(blur_prob=1.5), "blur_prob"),
])
def test_superres_bad_values(kw, match):
    with pytest.raises(BadParameter, match=match):
        SuperRes(**kw)


def test_superres_good_values_and_dict():
    for kw in (dict(), dict(scale=4, crop=0), dict(scale=4, crop=8), dict(aug_max=0, blur_max=0),
               dict(aug_max=2, blur_max=4, blur_prob=1)):
        sr = SuperRes(**kw)
        assert SuperRes(**sr.to_dict()) == sr


def test_check_resolution():
    SuperRes(scale=2, crop=8).check_resolution(16, 8)
    SuperRes(scale=4, crop=0).check_resolution(32, 16)
    with pytest.raises(BadParameter, match="resolution: 15 is not divisible by the scale 2"):
        SuperRes(scale=2).check_resolution(15)
    with pytest.raises(BadParameter, match="resolution"):
        SuperRes(scale=4).check_resolution(18)
    with pytest.raises(BadParameter, match="crop_size: 32 is larger"):
        SuperRes(scale=2, crop=32).check_resolution(16)
    with pytest.raises(BadParameter, match="crop_size: the network needs a side divisible by 8, got 12"):
        SuperRes(scale=2, crop=12).check_resolution(16, 8)
    with pytest.raises(BadParameter, match="divisible by 8, got 20"):  # whole pictures
        SuperRes(scale=2, crop=0).check_resolution(20, 8)


def _picture(seed=0, h=16, w=16):
    return torch.rand(3, h, w, generator=gen(seed)) * 2 - 1


def _window(full, crop):
    """(oy, ox) of the place ``crop`` was cut from ``full`` (random pictures: one place fits)."""
    h, w = crop.shape[-2:]
    hits = [(oy, ox) for oy in range(full.shape[-2] - h + 1) for ox in range(full.shape[-1] - w + 1)
            if torch.equal(full[..., oy:oy + h, ox:ox + w], crop)]
    assert len(hits) == 1, hits
    return hits[0]


def test_training_pair_is_a_function_of_the_generator():
    sr = SuperRes(scale=2, crop=8, aug_max=0.5, blur_max=1.0, blur_prob=0.5)
    x = _picture()
    for seed in range(6):
        a, b = sr.training_pair(x, gen(seed)), sr.training_pair(x, gen(seed))
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) and a[2] == b[2]
    pairs = [sr.training_pair(x, gen(seed)) for seed in range(8)]
    assert len({p[2] for p in pairs}) == 8  # other seeds, other draws
    assert len({_window(x, p[0]) for p in pairs}) > 1


@pytest.mark.parametrize("scale, crop, size", [(2, 8, (16, 16)), (4, 8, (16, 24)), (2, 0, (16, 16)),
                                               (4, 16, (16, 16))])
def test_training_pair_shapes_windows_and_aug_range(scale, crop, size):
    sr = SuperRes(scale=scale, crop=crop, aug_max=0.7, blur_max=2.0, blur_prob=0.5)
    x = _picture(1, *size)
    side = (crop, crop) if crop else size
    for seed in range(20):
        hi, cond, aug = sr.training_pair(x, gen(seed))
        assert hi.shape == cond.shape == (3, *side)
        assert cond.dtype == torch.float32 and isinstance(aug, float)
        assert 0 <= aug <= 0.7
        oy, ox = _window(x, hi)
        assert oy % scale == 0 and ox % scale == 0  # on the low-resolution grid


def test_training_pair_without_augmentation_is_the_aligned_upsampled_low_picture():
    sr = SuperRes(scale=2, crop=8, aug_max=0.0, blur_max=0.0)
    x = _picture(2, 16, 16)
    cond_full = upsample(downsample(x, 2), 2)
    windows = set()
    for seed in range(12):
        hi, cond, aug = sr.training_pair(x, gen(seed))
        assert aug == 0.0
        oy, ox = _window(x, hi)
        windows.add((oy, ox))
        assert torch.equal(cond, cond_full[..., oy:oy + 8, ox:ox + 8])
    assert len(windows) > 1
    # scale 4, whole pictures
    hi, cond, aug = SuperRes(scale=4, crop=0, aug_max=0.0).training_pair(x, gen(0))
    assert torch.equal(hi, x) and torch.equal(cond, upsample(downsample(x, 4), 4)) and aug == 0.0


def test_training_pair_draws_in_the_documented_order():
    """σ_aug, blur (yes/no, width), offsets, noise — all from the generator: the condition is reproducible."""
    sr = SuperRes(scale=2, crop=8, aug_max=0.5, blur_max=0.0)
    x = _picture(3)
    hi, cond, aug = sr.training_pair(x, gen(9))
    g = gen(9)
    want_aug = float(torch.rand((), generator=g, dtype=torch.float64)) * 0.5
    torch.rand((), generator=g, dtype=torch.float64), torch.rand((), generator=g, dtype=torch.float64)
    oy = int(torch.randint(0, 5, (), generator=g)) * 2
    ox = int(torch.randint(0, 5, (), generator=g)) * 2
    noise = torch.randn(3, 8, 8, generator=g)
    assert aug == want_aug > 0
    assert torch.equal(hi, x[:, oy:oy + 8, ox:ox + 8])
    want = upsample(downsample(x, 2) + aug * noise, 2)[:, oy:oy + 8, ox:ox + 8]
    torch.testing.assert_close(cond, want, atol=1e-6, rtol=0)


def test_training_pair_blurs_only_when_asked():
    x = _picture(4)
    plain = SuperRes(scale=2, crop=0, aug_max=0.0, blur_max=0.0).training_pair(x, gen(0))[1]
    never = SuperRes(scale=2, crop=0, aug_max=0.0, blur_max=2.0, blur_prob=0.0).training_pair(x, gen(0))[1]
    always = SuperRes(scale=2, crop=0, aug_max=0.0, blur_max=2.0, blur_prob=1.0).training_pair(x, gen(0))[1]
    assert torch.equal(never, plain)
    assert not torch.allclose(always, plain, atol=1e-3)
    assert always.std() < plain.std()  # blurred before upsampling: smoother


# -- PSNR ---------------------------------------------------------------------------------------------------------


def test_psnr():
    a = _picture(5)
    assert psnr(a, a) >= 100
    assert psnr(a, a.clone().double()) >= 100
    # MSE 0.04 on [-1, 1] is 0.01 on [0, 1]: 20 dB
    assert psnr(torch.zeros(3, 4, 4), torch.full((3, 4, 4), 0.2)) == pytest.approx(20.0, abs=1e-4)
    b = torch.randn(3, 8, 8, generator=gen(6)) * 0.1
    mse = float(((a[:, :8, :8] - (a[:, :8, :8] + b)) ** 2).mean()) / 4
    assert psnr(a[:, :8, :8], a[:, :8, :8] + b) == pytest.approx(10 * math.log10(1 / mse), abs=1e-3)
    assert psnr(a, torch.zeros_like(a)) < psnr(a, 0.5 * a)


def test_consistency_psnr():
    low = _picture(7, 8, 8)
    for s in (2, 4):
        nearest = low.repeat_interleave(s, -1).repeat_interleave(s, -2)  # box-averages back to low exactly
        assert consistency_psnr(nearest, low) >= 100
        assert consistency_psnr(nearest + 0.2, low) == pytest.approx(20.0, abs=1e-3)
    hi = upsample(low, 2)
    assert 15 < consistency_psnr(hi, low) < 100
    assert consistency_psnr(hi.unsqueeze(0), low.unsqueeze(0)) == pytest.approx(consistency_psnr(hi, low))
