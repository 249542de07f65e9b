"""Unit tests for noisebrush.diffusion.oracle: the Gaussian-mixture oracle against closed forms, quadrature and
torch.distributions."""
import math

import pytest
import torch
from torch.distributions import Categorical, Independent, MixtureSameFamily, Normal

from noisebrush.diffusion.noise import SampleNoise
from noisebrush.diffusion.oracle import GaussianMixture
from noisebrush.errors import BadParameter

F64 = torch.float64
SHAPES = [(3, 8, 8), (3, 4, 8, 8), (16, 3)]


def _reference_dist(gm: GaussianMixture, sigma: float):
    """p_σ as a torch.distributions mixture over flattened samples (independent implementation)."""
    comp = Independent(Normal(gm.means, (gm.variances + sigma**2).sqrt()), 1)
    return MixtureSameFamily(Categorical(probs=gm.weights), comp)


# ---------------------------------------------------------------- construction


@pytest.mark.parametrize("shape", SHAPES)
def test_random_is_deterministic_and_in_range(shape):
    a = GaussianMixture.random(shape, components=5, seed=3, std_range=(0.05, 0.3))
    b = GaussianMixture.random(shape, components=5, seed=3, std_range=(0.05, 0.3))
    c = GaussianMixture.random(shape, components=5, seed=4, std_range=(0.05, 0.3))
    assert a.shape == shape and a.components == 5
    assert torch.equal(a.means, b.means) and torch.equal(a.variances, b.variances) and torch.equal(a.weights, b.weights)
    assert not torch.equal(a.means, c.means)
    assert bool((a.means.abs() < 1).all())
    std = a.variances.sqrt()
    assert bool((std >= 0.05 - 1e-12).all() and (std <= 0.3 + 1e-12).all())
    assert a.weights.sum().item() == pytest.approx(1.0) and bool((a.weights > 0).all())


def test_constructor_broadcasting_and_validation():
    gm = GaussianMixture(torch.zeros(2, 3, 4), [0.1, 0.2], weights=[1.0, 3.0])
    assert gm.shape == (3, 4) and gm.variances.shape == (2, 12)
    assert gm.variances[1].tolist() == [0.2] * 12
    assert gm.weights.tolist() == [0.25, 0.75]
    assert GaussianMixture(torch.zeros(3, 5), 0.5).weights.tolist() == pytest.approx([1 / 3] * 3)
    with pytest.raises(BadParameter, match="means"):
        GaussianMixture(torch.zeros(5), 1.0)
    with pytest.raises(BadParameter, match="variances"):
        GaussianMixture(torch.zeros(2, 3), [-1.0, 1.0])
    with pytest.raises(BadParameter, match="weights"):
        GaussianMixture(torch.zeros(2, 3), 1.0, weights=[1.0, -1.0])
    with pytest.raises(BadParameter, match="weights"):
        GaussianMixture(torch.zeros(2, 3), 1.0, weights=[1.0, 1.0, 1.0])
    with pytest.raises(BadParameter, match="x"):
        gm.denoise(torch.zeros(2, 4, 3), 1.0)


# ---------------------------------------------------------------- exact samples


def test_sample_moments_single_component():
    mu = torch.tensor([[1.0, -2.0, 0.5], [0.0, 3.0, -1.0]], dtype=F64)
    var = torch.tensor([[0.25, 1.0, 0.04], [4.0, 0.01, 0.5]], dtype=F64)
    gm = GaussianMixture(mu[None], var[None])
    n = 4000
    x = gm.sample(range(n))
    assert x.shape == (n, 2, 3) and x.dtype == F64
    assert bool(((x.mean(0) - mu).abs() < 4 * (var / n).sqrt()).all())
    # sample variance: std error ≈ var·sqrt(2/n)
    assert bool(((x.var(0) - var).abs() < 5 * var * math.sqrt(2 / n)).all())


def test_sample_component_frequencies():
    gm = GaussianMixture(torch.tensor([[-10.0], [10.0]]), [1.0, 1.0], weights=[0.2, 0.8])
    x = gm.sample(range(3000))
    frac = (x > 0).double().mean().item()
    assert frac == pytest.approx(0.8, abs=4 * math.sqrt(0.16 / 3000))


def test_sample_noisy_variance():
    gm = GaussianMixture(torch.zeros(1, 4), [0.5])
    x = gm.sample_noisy(2.0, range(3000))
    assert x.shape == (3000, 4)
    assert x.var().item() == pytest.approx(0.5 + 4.0, rel=0.05)


def test_sample_is_batch_invariant():
    gm = GaussianMixture.random((3, 4, 4), components=4, seed=0)
    batch = gm.sample(SampleNoise.from_seeds([5, 6, 7]))
    assert torch.equal(gm.sample([6])[0], batch[1])
    assert torch.equal(gm.sample_noisy(0.5, [7])[0], gm.sample_noisy(0.5, [1, 7])[1])


# ---------------------------------------------------------------- denoiser


def test_single_gaussian_is_wiener_filter():
    """One component: E[x0 | x] = μ + v/(v+σ²)·(x − μ)."""
    mu, v = torch.tensor([[0.3, -0.7]], dtype=F64), torch.tensor([[0.5, 2.0]], dtype=F64)
    gm = GaussianMixture(mu, v)
    x = torch.tensor([[1.0, 1.0], [-2.0, 4.0]], dtype=F64)
    sigma = torch.tensor([0.5, 3.0], dtype=F64)
    want = mu + v / (v + sigma[:, None] ** 2) * (x - mu)
    assert torch.allclose(gm.denoise(x, sigma), want, atol=1e-12)


def test_two_component_1d_matches_quadrature():
    """Brute force: E[x0 | x_σ = x] = ∫ x0·p(x0)·N(x; x0, σ²) dx0 / ∫ p(x0)·N(x; x0, σ²) dx0 on a fine grid."""
    means, var, w = [-1.0, 2.0], [0.25, 0.5], [0.3, 0.7]
    gm = GaussianMixture(torch.tensor(means)[:, None], var, weights=w)
    grid = torch.linspace(-8, 10, 20001, dtype=F64)
    prior = sum(wk * torch.exp(-((grid - m) ** 2) / (2 * vk)) / math.sqrt(2 * math.pi * vk) for m, vk, wk in zip(means, var, w))
    xs = torch.tensor([-2.0, -0.3, 0.5, 1.7, 4.0], dtype=F64)
    for sigma in (0.1, 0.8, 2.5):
        got = gm.denoise(xs[:, None], sigma)[:, 0]
        lik = torch.exp(-((xs[:, None] - grid) ** 2) / (2 * sigma**2))  # 5 × grid
        want = torch.trapezoid(grid * prior * lik, grid, dim=1) / torch.trapezoid(prior * lik, grid, dim=1)
        assert torch.allclose(got, want, atol=1e-7, rtol=0)


def test_denoise_limits():
    gm = GaussianMixture.random((3, 4, 4), components=6, seed=1)
    x = gm.sample(range(4))
    # σ → 0: the data point itself
    assert torch.allclose(gm.denoise(x, 1e-6), x, atol=1e-9)
    # σ → ∞: the prior mean Σ w_k μ_k
    prior_mean = (gm.weights[:, None] * gm.means).sum(0).reshape(3, 4, 4)
    far = gm.denoise(1e3 * torch.randn(4, 3, 4, 4, generator=torch.Generator().manual_seed(0), dtype=F64), 1e5)
    assert torch.allclose(far, prior_mean.expand_as(far), atol=1e-3)


def test_log_prob_matches_torch_distributions():
    gm = GaussianMixture.random((2, 3), components=4, seed=2)
    x = gm.sample_noisy(0.4, range(5))
    ref = _reference_dist(gm, 0.4).log_prob(x.reshape(5, -1))
    assert torch.allclose(gm.log_prob(x, 0.4), ref, atol=1e-10)


@pytest.mark.parametrize("sigma", [0.05, 0.5, 3.0])
def test_score_is_gradient_of_log_density(sigma):
    gm = GaussianMixture.random((2, 3), components=4, seed=5)
    x = gm.sample_noisy(sigma, range(4)).requires_grad_(True)
    logp = _reference_dist(gm, sigma).log_prob(x.reshape(4, -1)).sum()
    (grad,) = torch.autograd.grad(logp, x)
    score = gm.score(x.detach(), sigma)
    assert score.shape == x.shape
    assert torch.allclose(score, grad, rtol=1e-8, atol=1e-8)
    # and a central finite difference of the oracle's own log_prob along a random direction
    d = torch.randn(x.shape, generator=torch.Generator().manual_seed(1), dtype=F64)
    h = 1e-5 * sigma
    fd = (gm.log_prob(x.detach() + h * d, sigma) - gm.log_prob(x.detach() - h * d, sigma)) / (2 * h)
    assert torch.allclose(fd, (score * d).flatten(1).sum(1), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("shape", SHAPES)
def test_denoise_shapes_dtype_and_batch_invariance(shape):
    gm = GaussianMixture.random(shape, components=4, seed=0)
    noise = SampleNoise.from_seeds([1, 2, 3])
    sigma = torch.tensor([0.05, 0.7, 10.0], dtype=F64)
    x = gm.sample(noise) + sigma.reshape(-1, *([1] * len(shape))) * noise.randn(shape, dtype=F64)
    out = gm.denoise(x, sigma)
    assert out.shape == (3, *shape) and out.dtype == F64
    for i in range(3):
        assert torch.equal(gm.denoise(x[i : i + 1], sigma[i : i + 1])[0], out[i])  # bit-for-bit
    assert torch.equal(gm.denoise(x.flip(0), sigma.flip(0)), out.flip(0))
    # callable as a denoiser, float32 in → float32 out
    out32 = gm(x.float(), sigma, labels=None)
    assert out32.dtype == torch.float32 and torch.allclose(out32.double(), out, atol=1e-4)
    # a scalar σ applies to every sample
    assert torch.equal(gm.denoise(x, 0.7)[1], out[1])
