"""The Langevin corrector (langevin_correct) and the predictor-corrector sampler (langevin).

The corrector at a fixed σ is a random walk whose target is the noisy marginal p_σ; with the exact
Gaussian-mixture oracle we know that marginal's mean and variance in closed form:

    mean = Σ_k w_k·μ_k,     var = Σ_k w_k·(v_k + σ² + μ_k²) - mean²   (per dimension)
"""
from __future__ import annotations

import math

import pytest
import torch

from noisebrush.diffusion.noise import SampleNoise
from noisebrush.diffusion.oracle import GaussianMixture
from noisebrush.diffusion.samplers import langevin, langevin_correct
from noisebrush.diffusion.samplers._common import Denoise
from noisebrush.diffusion.schedules import karras
from noisebrush.errors import BadParameter

F64 = torch.float64


pytestmark = pytest.mark.usefixtures("one_thread")


def exact_moments(gm: GaussianMixture, sigma: float):
    """Per-dimension mean and variance of p_σ (flattened)."""
    w = gm.weights[:, None]
    mean = (w * gm.means).sum(0)
    var = (w * (gm.variances + sigma**2 + gm.means**2)).sum(0) - mean**2
    return mean, var


def _moment_report(y: torch.Tensor, mean: torch.Tensor, var: torch.Tensor):
    """(z-scores of the per-dimension sample means, per-dimension variance ratios)."""
    n = y.shape[0]
    y = y.reshape(n, -1).double()
    z = (y.mean(0) - mean) / (var / n).sqrt()
    return z, y.var(0) / var


def _low_dim_mixture(d: int = 4) -> GaussianMixture:
    g = torch.Generator().manual_seed(3)
    means = torch.randn(3, d, generator=g, dtype=F64)
    var = torch.rand(3, d, generator=g, dtype=F64) * 0.2 + 0.05
    return GaussianMixture(means, var, [0.5, 0.3, 0.2])


def test_exact_moments_match_oracle_samples():
    """The closed form above agrees with gm.sample_noisy (guards the helper the other tests rely on)."""
    gm = _low_dim_mixture()
    sigma, n = 0.5, 4000
    z, ratio = _moment_report(gm.sample_noisy(sigma, range(n)), *exact_moments(gm, sigma))
    assert z.abs().max() < 4.0, z
    assert (ratio - 1).abs().max() < 4.5 * math.sqrt(2 / n) + 0.03, ratio


# ---- the corrector leaves p_σ (approximately) invariant -----------------------------------------------------

IMG_SHAPE = (3, 8, 8)  # d = 192, image-like


def test_corrector_keeps_exact_marginal_image_dims():
    """Start from exact samples of p_σ, take 20 corrector steps: per-dimension means and variances stay put.

    Langevin with a finite step is biased; with snr = 0.16 the step is ε ≈ 2·snr²·σ², so the unadjusted walk
    inflates the variance by ≈ snr² ≈ 2.6 %, and the per-sample step size (∝ 1/‖score‖²) adds ≈ 4/d more. The
    6 % band allows that, no more."""
    gm = GaussianMixture.random(IMG_SHAPE, components=3, seed=0)
    sigma, n, k = 1.0, 800, 20
    mean, var = exact_moments(gm, sigma)
    noise = SampleNoise.from_seeds(range(n))
    x = gm.sample_noisy(sigma, noise)
    z0, r0 = _moment_report(x, mean, var)
    y, y0, steps = langevin_correct(gm, x, gm(x, sigma), sigma, noise, min_steps=k, max_steps=k)
    assert steps.tolist() == [k] * n
    assert torch.allclose(y0, gm(y, sigma), rtol=0, atol=1e-12)  # x̂_0 handed back belongs to the returned x
    moved = float((y - x).reshape(n, -1).norm(dim=1).mean() / (x.reshape(n, -1).norm(dim=1).mean()))
    assert moved > 0.2, f"the walk barely moved ({moved:.3f} of ‖x‖)"  # it is not invariant by standing still
    z, ratio = _moment_report(y, mean, var)
    msg = (f"start: |z|max {float(z0.abs().max()):.2f}, var ratio {float(r0.mean()):.3f}; after {k} steps: "
           f"|z|max {float(z.abs().max()):.2f}, z rms {float(z.pow(2).mean().sqrt()):.2f}, "
           f"var ratio mean {float(ratio.mean()):.3f} [{float(ratio.min()):.3f}, {float(ratio.max()):.3f}]")
    assert z.abs().max() < 4.5, msg
    assert z.pow(2).mean().sqrt() < 1.3, msg
    assert abs(float(ratio.mean()) - 1) < 0.06, msg
    assert (ratio - 1).abs().max() < 0.06 + 4.5 * math.sqrt(2 / n), msg


# regression: a per-sample, state-dependent step size once inflated the variance by ≈ (d+2)/(d-2)
def test_corrector_keeps_exact_marginal_low_dim():
    gm = _low_dim_mixture(4)
    sigma, n, k = 0.5, 2000, 20
    mean, var = exact_moments(gm, sigma)
    noise = SampleNoise.from_seeds(range(n))
    x = gm.sample_noisy(sigma, noise)
    y, _, _ = langevin_correct(gm, x, gm(x, sigma), sigma, noise, min_steps=k, max_steps=k)
    z, ratio = _moment_report(y, mean, var)
    msg = f"after {k} steps: z {[round(v, 2) for v in z.tolist()]}, var ratios {[round(v, 3) for v in ratio.tolist()]}"
    assert z.abs().max() < 4.5, msg
    assert (ratio - 1).abs().max() < 0.10, msg


@pytest.mark.parametrize("start_scale,k", [(0.5, 20), (1.6, 60)], ids=["too-little-noise", "too-much-noise"])
def test_corrector_moves_toward_marginal(start_scale, k):
    """From x_0 + c·σ·ε with c ≠ 1 the per-dimension variance is off; the walk brings it to p_σ's. With too much
    noise ‖score‖ is large, so the step ε ∝ 1/‖score‖² is small and the walk needs more steps (≈ 4 %/step at first)."""
    gm = GaussianMixture.random(IMG_SHAPE, components=3, seed=0)
    sigma, n = 1.0, 400
    mean, var = exact_moments(gm, sigma)
    noise = SampleNoise.from_seeds(range(10_000, 10_000 + n))
    x = gm.sample(noise) + start_scale * sigma * noise.randn(IMG_SHAPE, dtype=F64)
    _, r0 = _moment_report(x, mean, var)
    y_mid, x0_mid, _ = langevin_correct(gm, x, gm(x, sigma), sigma, noise, min_steps=3, max_steps=3)
    _, r_mid = _moment_report(y_mid, mean, var)
    y, _, _ = langevin_correct(gm, y_mid, x0_mid, sigma, noise, min_steps=k - 3, max_steps=k - 3)
    _, r = _moment_report(y, mean, var)
    start, mid, end = float(r0.mean()), float(r_mid.mean()), float(r.mean())
    msg = f"variance ratio to p_σ: start {start:.3f}, after 3 steps {mid:.3f}, after {k} steps {end:.3f}"
    assert abs(start - 1) > 0.35, msg  # the start really is off
    assert abs(mid - 1) < abs(start - 1), msg  # monotone progress
    assert abs(end - 1) < abs(mid - 1), msg
    assert abs(end - 1) < 0.2 * abs(start - 1), msg
    assert abs(end - 1) < 0.08, msg


# ---- steady-state detection in the sampler ---------------------------------------------------------------------

SHAPE = (3, 8, 8)
SEEDS = list(range(8))


def _run(sigmas, **kw):
    gm = GaussianMixture.random(SHAPE, components=3, seed=0)
    noise = SampleNoise.from_seeds(SEEDS)
    x = noise.randn(SHAPE, dtype=F64) * float(sigmas[0])
    stats: dict = {}
    y = langevin(gm, x, sigmas, noise=noise, stats=stats, **kw)
    assert torch.isfinite(y).all()
    return y, stats


def _per_sample_steps(stats) -> list[int]:
    return torch.tensor(stats["corrector_steps"]).sum(0).tolist()


def test_looser_tol_stops_sooner():
    sigmas = karras(8, sigma_min=0.01, sigma_max=40)
    runs = {tol: _run(sigmas, tol=tol, max_steps=30)[1] for tol in (0.5, 0.05, 0.005)}
    steps = {tol: _per_sample_steps(s) for tol, s in runs.items()}
    msg = f"corrector steps per sample: {steps}; nfe: { {t: s['nfe'] for t, s in runs.items()} }"
    for loose, tight in [(0.5, 0.05), (0.05, 0.005)]:
        assert all(a <= b for a, b in zip(steps[loose], steps[tight])), msg
        assert sum(steps[loose]) < sum(steps[tight]), msg
        assert sum(runs[loose]["nfe"]) < sum(runs[tight]["nfe"]), msg
    # tol = 0.5 with min_steps = 1 is about one step per level; 0.005 needs many more but stops before the cap
    n_levels = len(runs[0.5]["levels"])
    assert all(n_levels <= s < 1.5 * n_levels for s in steps[0.5]), msg
    cap = 30 * len(runs[0.005]["levels"])
    assert all(s < cap for s in steps[0.005]), msg
    assert len(set(steps[0.005])) > 1, msg  # each sample decides for itself


@pytest.mark.parametrize("correct_first", [False, True])
def test_stats_one_entry_per_corrected_level(correct_first):
    sigmas = karras(6, sigma_min=0.01, sigma_max=40)
    _, st = _run(sigmas, tol=0.02, correct_first=correct_first)
    expected = sigmas[:-1] if correct_first else sigmas[1:-1]  # every σ > 0 a predictor lands on (and σ_0)
    assert st["levels"] == pytest.approx(expected.tolist(), rel=1e-12)
    assert len(st["corrector_steps"]) == len(st["levels"])
    assert all(len(lvl) == len(SEEDS) for lvl in st["corrector_steps"])
    assert all(1 <= s <= 10 for lvl in st["corrector_steps"] for s in lvl)  # defaults min_steps=1, max_steps=10
    # one evaluation at σ_0, one after each predictor step onto σ > 0, one per corrector step
    steps = _per_sample_steps(st)
    assert st["nfe"] == [1 + len(expected) - int(correct_first) + s for s in steps]


def test_max_steps_caps_and_min_steps_floors():
    sigmas = karras(5, sigma_min=0.01, sigma_max=40)
    _, never_settles = _run(sigmas, tol=0.0, max_steps=3)
    assert never_settles["corrector_steps"] == [[3] * len(SEEDS)] * len(never_settles["levels"])
    _, tight = _run(sigmas, tol=0.001, max_steps=4)
    assert all(s <= 4 for lvl in tight["corrector_steps"] for s in lvl)
    assert any(s == 4 for lvl in tight["corrector_steps"] for s in lvl)  # the cap is what stopped it
    _, always_settled = _run(sigmas, tol=10.0, min_steps=2, max_steps=6)
    assert always_settled["corrector_steps"] == [[2] * len(SEEDS)] * len(always_settled["levels"])
    _, none = _run(sigmas, min_steps=0, max_steps=0)
    assert none["corrector_steps"] == [[0] * len(SEEDS)] * len(none["levels"])


def test_corrector_counts_evaluations_per_sample():
    gm = GaussianMixture.random(SHAPE, components=3, seed=0)
    sigma = 0.5
    noise = SampleNoise.from_seeds(SEEDS)
    x = gm.sample_noisy(sigma, noise)
    D = Denoise(gm, len(SEEDS), None)
    _, _, steps = langevin_correct(D, x, gm(x, sigma), sigma, noise, tol=0.01, max_steps=25)
    assert D.nfe.tolist() == steps.tolist()
    assert len(set(steps.tolist())) > 1


def test_bad_parameters():
    gm = GaussianMixture.random(SHAPE, components=2, seed=0)
    noise = SampleNoise.from_seeds([0, 1])
    x = gm.sample_noisy(1.0, noise)
    x0 = gm(x, 1.0)
    for kw in (dict(min_steps=3, max_steps=2), dict(min_steps=-1), dict(snr=0.0), dict(tol=-0.1), dict(ema=1.0)):
        with pytest.raises(BadParameter):
            langevin_correct(gm, x, x0, 1.0, noise, **kw)
    with pytest.raises(BadParameter, match="predictor"):
        langevin(gm, x, karras(3), noise=noise, predictor="rk4")
    with pytest.raises(BadParameter, match="noise"):
        langevin(gm, x, karras(3))


def test_euler_predictor_also_converges():
    """predictor='euler' (probability-flow ODE predictor) is a valid alternative: finite, data-like output."""
    gm = GaussianMixture.random(SHAPE, components=3, seed=0)
    sigmas = karras(10, sigma_min=0.01, sigma_max=40)
    y, st = _run(sigmas, predictor="euler")
    lp = gm.log_prob(y, 0.01)
    lp_exact = gm.log_prob(gm.sample(range(100, 132)), 0.01)
    assert lp.min() > lp_exact.min() - math.prod(SHAPE), (lp.tolist(), float(lp_exact.min()))
