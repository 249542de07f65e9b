"""Unit tests for noisebrush.eval.swd: sliced Wasserstein distance against closed forms."""
import math

import pytest
import torch

from noisebrush.eval import sliced_wasserstein
from noisebrush.eval.swd import sliced_wasserstein as swd_direct

F64 = torch.float64


def _randn(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=F64)


def test_exported():
    assert sliced_wasserstein is swd_direct


def test_identical_sets_give_zero():
    a = _randn(200, 5)
    assert sliced_wasserstein(a, a.clone()) == 0.0
    assert sliced_wasserstein(a, a[torch.randperm(200, generator=torch.Generator().manual_seed(1))]) == 0.0


@pytest.mark.parametrize("shift", [0.1, 0.7, -2.5])
def test_1d_shift_is_exactly_the_shift(shift):
    # In 1-D every unit direction is ±1 and W2 between a set and its translate is |shift|.
    a = _randn(300, 1)
    assert sliced_wasserstein(a, a + shift, projections=16) == pytest.approx(abs(shift), rel=1e-12)


def test_shift_in_d_dims_closed_form():
    # E_u[(δ·u)²] = |δ|²/d for u uniform on the sphere, so SWD → |δ|/sqrt(d) for a pure translation.
    d = 4
    a = _randn(100, d)
    delta = torch.tensor([1.0, -2.0, 0.5, 2.0], dtype=F64)
    got = sliced_wasserstein(a, a + delta, projections=4000, seed=3)
    assert got == pytest.approx(delta.norm().item() / math.sqrt(d), rel=0.05)


def test_larger_shift_gives_larger_distance():
    a, b = _randn(256, 8, seed=1), _randn(256, 8, seed=2)
    base = sliced_wasserstein(a, b)
    d = [sliced_wasserstein(a, b + s) for s in (0.5, 1.0, 2.0)]
    assert 0 < base < d[0] < d[1] < d[2]


def test_scale_homogeneity_and_symmetry():
    a, b = _randn(128, 6, seed=4), _randn(128, 6, seed=5) * 2 + 1
    d = sliced_wasserstein(a, b, seed=7)
    assert sliced_wasserstein(3 * a, 3 * b, seed=7) == pytest.approx(3 * d, rel=1e-12)
    assert sliced_wasserstein(b, a, seed=7) == pytest.approx(d, rel=1e-12)


def test_same_distribution_different_sizes_is_small():
    # Exact N(0,1) quantiles (no sampling noise): 400 vs 1000 points of the same law, then shifted by 1.
    normal = torch.distributions.Normal(torch.tensor(0.0, dtype=F64), torch.tensor(1.0, dtype=F64))
    q = lambda n: normal.icdf((torch.arange(n, dtype=F64) + 0.5) / n)[:, None]
    a, b = q(400), q(1000)
    assert sliced_wasserstein(a, b) < 0.02
    assert sliced_wasserstein(a, b + 1.0) == pytest.approx(1.0, abs=0.02)


def test_variance_difference_1d():
    # W2 between N(0,1) and N(0,4) is |1 − 2| = 1; with exact quantiles of both sets it is ≈ 1.
    normal = torch.distributions.Normal(torch.tensor(0.0, dtype=F64), torch.tensor(1.0, dtype=F64))
    z = normal.icdf((torch.arange(2000, dtype=F64) + 0.5) / 2000)[:, None]
    assert sliced_wasserstein(z, 2 * z) == pytest.approx(1.0, rel=0.02)


def test_images_are_flattened_and_seed_is_deterministic():
    a, b = _randn(16, 3, 4, 4, seed=8), _randn(16, 3, 4, 4, seed=9)
    d = sliced_wasserstein(a, b, projections=64, seed=1)
    assert d == sliced_wasserstein(a.flatten(1), b.flatten(1), projections=64, seed=1)
    assert sliced_wasserstein(a.float(), b.float(), projections=64, seed=1) == pytest.approx(d, rel=1e-5)
    assert d != sliced_wasserstein(a, b, projections=64, seed=2)
    assert isinstance(d, float)


def test_dimension_mismatch():
    with pytest.raises(ValueError, match="dimensions"):
        sliced_wasserstein(_randn(5, 3), _randn(5, 4))
