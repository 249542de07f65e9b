"""Unit tests for noisebrush.diffusion.forward: x_σ = x_0 + σ·ε for any sample shape."""
import pytest
import torch

from noisebrush.diffusion.forward import add_noise, expand_sigma

SHAPES = {
    "images": (3, 3, 8, 8),
    "clips": (2, 3, 4, 8, 8),  # N, C, T, H, W
    "voxels": (2, 1, 6, 6, 6),
    "points": (4, 16, 3),  # N, P, 3
    "vectors": (5, 7),
}


def _pair(shape, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g, dtype=dtype), torch.randn(shape, generator=g, dtype=dtype)


@pytest.mark.parametrize("name", list(SHAPES))
def test_scalar_sigma_all_shapes(name):
    x0, eps = _pair(SHAPES[name])
    out = add_noise(x0, 0.75, eps)
    assert out.shape == x0.shape and out.dtype == x0.dtype
    assert torch.allclose(out, x0 + 0.75 * eps)


@pytest.mark.parametrize("name", list(SHAPES))
def test_per_sample_sigma_all_shapes(name):
    shape = SHAPES[name]
    x0, eps = _pair(shape, seed=1, dtype=torch.float64)
    sigma = torch.linspace(0.1, 5.0, shape[0], dtype=torch.float64)
    out = add_noise(x0, sigma, eps)
    assert out.shape == shape
    for i in range(shape[0]):  # sample by sample, by hand
        assert torch.allclose(out[i], x0[i] + sigma[i].item() * eps[i], atol=1e-12)


def test_sigma_zero_is_identity_and_column_sigma_accepted():
    x0, eps = _pair((3, 4, 2))
    assert torch.equal(add_noise(x0, 0.0, eps), x0)
    col = torch.tensor([[1.0], [2.0], [3.0]])  # (N, 1) is flattened to one value per sample
    assert torch.allclose(add_noise(x0, col, eps), x0 + col.reshape(3, 1, 1) * eps)


def test_dtype_follows_x0():
    x0, eps = _pair((2, 3))
    out = add_noise(x0, torch.tensor([0.5, 1.5], dtype=torch.float64), eps)
    assert out.dtype == torch.float32
    x0h, epsh = x0.to(torch.float16), eps.to(torch.float16)
    assert add_noise(x0h, 2.0, epsh).dtype == torch.float16


def test_expand_sigma_shapes():
    x = torch.zeros(4, 3, 5, 6)
    assert expand_sigma(2.0, x).shape == (4, 1, 1, 1)
    assert expand_sigma(2.0, x).flatten().tolist() == [2.0] * 4
    s = torch.tensor([1.0, 2.0, 3.0, 4.0])
    assert expand_sigma(s, x).flatten().tolist() == [1.0, 2.0, 3.0, 4.0]
    assert expand_sigma(s, torch.zeros(4, 9)).shape == (4, 1)


def test_mismatches_rejected():
    x0, eps = _pair((3, 4))
    with pytest.raises(ValueError, match="noise"):
        add_noise(x0, 1.0, eps[:2])
    with pytest.raises(ValueError, match="sigma"):
        add_noise(x0, torch.tensor([1.0, 2.0]), eps)
