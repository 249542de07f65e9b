"""The evaluation metrics against closed forms and constructed cases."""
import math

import numpy as np
import pytest
import scipy.linalg
import torch

from noisebrush.eval.metrics import (frechet_distance, kid, laplacian_pyramid, memorization, pairwise_distances,
                                     precision_recall, swd_laplacian)


def _gauss(n, d, seed, shift=0.0, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g, dtype=torch.float64) * scale + shift


def _fd_scipy(a, b):
    a, b = a.numpy(), b.numpy()
    m1, m2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    return float(((m1 - m2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def test_fd_matches_scipy_sqrtm():
    a = _gauss(400, 16, 0) @ _gauss(16, 16, 1)  # correlated features
    b = _gauss(300, 16, 2, shift=0.3, scale=1.5)
    assert frechet_distance(a, b) == pytest.approx(_fd_scipy(a, b), rel=1e-8)


def test_fd_of_a_set_with_itself_is_zero_and_a_shift_adds_its_square():
    a = _gauss(500, 8, 3)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-9)
    v = torch.arange(8, dtype=torch.float64) / 10
    assert frechet_distance(a, a + v) == pytest.approx(float(v.square().sum()), rel=1e-9)
    b = _gauss(500, 8, 4)
    assert frechet_distance(a, b) == pytest.approx(frechet_distance(b, a), rel=1e-9)


def test_fd_rank_deficient_covariances_stay_real_and_finite():
    a = _gauss(10, 64, 5)  # fewer samples than dimensions: singular covariances
    b = _gauss(10, 64, 6)
    fd = frechet_distance(a, b)
    assert math.isfinite(fd) and fd > 0


def test_kid_is_unbiased_for_equal_distributions_and_grows_with_a_shift():
    vals = [kid(_gauss(100, 8, 10 + i), _gauss(100, 8, 100 + i), subsets=5, subset_size=100) for i in range(20)]
    assert abs(sum(vals) / len(vals)) < 0.02
    assert min(vals) < 0 < max(vals)  # unbiased: it scatters around zero, it is not a clipped distance
    far = kid(_gauss(100, 8, 1), _gauss(100, 8, 2, shift=1.0), subsets=5, subset_size=100)
    assert far > 5 * max(abs(v) for v in vals)


def test_pairwise_distances():
    a, b = _gauss(7, 5, 1), _gauss(9, 5, 2)
    assert torch.allclose(pairwise_distances(a, b, chunk=3), torch.cdist(a, b), atol=1e-10)


def test_precision_recall_constructed_cases():
    real = _gauss(300, 4, 0)
    p, r = precision_recall(real, real.clone())
    assert (p, r) == (1.0, 1.0)
    p, r = precision_recall(real, _gauss(300, 4, 1, shift=50.0))
    assert (p, r) == (0.0, 0.0)
    # mode collapse: every fake sits near a few real points → all precise, little recalled
    fake = real[:5].repeat(60, 1) + 1e-3 * _gauss(300, 4, 2)
    p, r = precision_recall(real, fake)
    assert p == 1.0 and r < 0.2
    # a fake set that is too wide: it covers the real set but much of it lies outside
    p, r = precision_recall(real, _gauss(300, 4, 3, scale=3.0))
    assert p < 0.6 and r > 0.9


def test_laplacian_pyramid_reconstructs_exactly():
    x = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    levels = laplacian_pyramid(x, min_size=8)
    assert [lv.shape[-1] for lv in levels] == [32, 16, 8]  # two band-pass levels and the low-pass residual
    rec = levels[-1]
    for band in reversed(levels[:-1]):
        rec = band + torch.nn.functional.interpolate(rec, size=band.shape[-2:], mode="bilinear", align_corners=False)
    assert torch.allclose(rec, x, atol=1e-12)


def test_swd_laplacian_orders_sets_by_similarity():
    g = torch.Generator().manual_seed(0)
    base = torch.rand(64, 3, 32, 32, generator=g) * 2 - 1
    same = torch.rand(64, 3, 32, 32, generator=g) * 2 - 1
    blurred = torch.nn.functional.avg_pool2d(same, 3, 1, 1)
    d_same = swd_laplacian(base, same, patches_per_image=16)
    d_blur = swd_laplacian(base, blurred, patches_per_image=16)
    assert d_same["sizes"] == [32, 16, 8] and len(d_same["levels"]) == 3
    assert d_blur["levels"][0] > 1.2 * d_same["levels"][0]  # blur changes the finest band most
    assert d_blur["mean"] > d_same["mean"]


def test_memorization_finds_copies_and_their_sources():
    g = torch.Generator().manual_seed(0)
    train = torch.rand(50, 3, 16, 16, generator=g) * 2 - 1
    copies = train[[3, 17, 42]] + 0.01 * torch.randn(3, 3, 16, 16, generator=g)
    fresh = torch.rand(5, 3, 16, 16, generator=g) * 2 - 1
    m = memorization(torch.cat([copies, fresh]), train, size=16)
    assert m["nearest"][:3] == [3, 17, 42]
    assert m["near_copy_fraction"] == pytest.approx(3 / 8)
    assert all(r < 0.1 for r in m["ratios"][:3]) and all(r > 0.5 for r in m["ratios"][3:])
    # the same answer when the training set arrives in chunks (one of them a single picture)
    chunked = memorization(torch.cat([copies, fresh]), [train[:17], train[17:18], train[18:]], size=16, chunk=7)
    assert chunked["nearest"] == m["nearest"]
    assert chunked["ratios"] == pytest.approx(m["ratios"], rel=1e-12)
    assert chunked["training_pictures"] == 50
