"""Annealed Langevin dynamics as a predictor–corrector sampler — the brief's "random walk" with
"steady-state detection" (Song et al. 2021, "Score-Based Generative Modeling through SDEs", Algorithms 2–5).

At each noise level the corrector takes Langevin steps, a random walk guided by the score
s(x) = ∇ log p_σ(x) = (D(x; σ) - x) / σ²:

    x ← x + ε·s(x) + sqrt(2ε)·z,      ε = 2·(snr·σ)²

and keeps going until the walk has settled into a steady state. The observable watched is the noise
energy of each sample,

    q = ‖x - D(x; σ)‖² / (σ²·d)        (d = number of elements of a sample)

which is ≈ 1 when x carries exactly the noise of level σ (less at small σ, where x̂_0 absorbs some of it),
smaller when a predictor left too little noise and larger when it left too much. Its running mean
q̄ (exponential, weight ``ema``) drifts while the walk is still moving toward p_σ and stops drifting once it
is there, so a sample's corrector stops when the relative change |q̄_k - q̄_{k-1}| / q̄_{k-1} ≤ ``tol`` —
after at least ``min_steps`` and at most ``max_steps`` steps. A looser tolerance stops sooner. Each sample
decides for itself, so a result never depends on its batch; each corrector step costs one network
evaluation (the x̂_0 it computes also serves the next step).

Song et al. (Alg. 5) set ε = 2·(snr·‖z‖/‖s(x)‖)² from each sample's current score; since ‖s‖ ≈ ‖z‖/σ near
p_σ that is the same size on average, but a step that depends on the state breaks the walk's balance: the
stationary variance grows by about (d+2)/(d-2) per level (measured: ×2.6 for d = 4, ×1.14 for d = 32, and
unbounded for d ≤ 2). The fixed step keeps p_σ invariant up to the usual O(ε) discretization bias.

    stats = {}
    x0 = langevin(den, x_T, karras(30), noise=seeds, tol=0.005, stats=stats)
    stats["corrector_steps"]   # one list per level: steps each sample took there
"""
from __future__ import annotations

import math

import torch

from noisebrush.diffusion.noise import SampleNoise
from noisebrush.diffusion.samplers._common import Denoise, ancestral_sigmas, prepare, require_noise
from noisebrush.errors import BadParameter

__all__ = ["langevin", "langevin_correct"]


def _rows(t: torch.Tensor) -> torch.Tensor:
    return t.reshape(t.shape[0], -1)


def _energy(x: torch.Tensor, x0: torch.Tensor, sigma: float) -> torch.Tensor:
    """q = ‖x - x̂_0‖² / (σ²·d) per sample, float64."""
    r = _rows(x - x0).double()
    return (r * r).mean(1) / sigma**2


def langevin_correct(D, x: torch.Tensor, x0: torch.Tensor, sigma: float, noise: SampleNoise, *, snr: float = 0.16,
                     tol: float = 0.02, min_steps: int = 1, max_steps: int = 10, ema: float = 0.5):
    """Langevin corrector at one fixed σ until steady state.

    ``D`` is a denoiser (or a :class:`Denoise` counter); ``x0`` = D(x, σ). Returns (x, x̂_0, steps) where
    ``steps`` is a long tensor with the number of corrector steps each sample took.
    """
    if not isinstance(D, Denoise):
        D = Denoise(D, x.shape[0], None)
    if not 0 <= min_steps <= max_steps:
        raise BadParameter(f"min_steps/max_steps: need 0 ≤ min_steps ≤ max_steps, got {min_steps}, {max_steps}")
    if snr <= 0 or tol < 0 or not 0 <= ema < 1:
        raise BadParameter("snr must be > 0, tol ≥ 0 and 0 ≤ ema < 1")
    n = x.shape[0]
    x, x0 = x.clone(), x0.clone()
    steps = torch.zeros(n, dtype=torch.long)
    qbar = _energy(x, x0, sigma)
    active = torch.arange(n)
    inv_var = 1.0 / sigma**2
    eps = 2 * (snr * sigma) ** 2
    for k in range(max_steps):
        if len(active) == 0:
            break
        xa, x0a = x[active], x0[active]
        score = (x0a - xa) * inv_var
        z = noise.subset(active.tolist()).randn_like(xa)
        xa = xa + eps * score + math.sqrt(2 * eps) * z
        x0a = D(xa, sigma, index=active) if len(active) < n else D(xa, sigma)
        x[active], x0[active] = xa, x0a
        steps[active] += 1
        old = qbar[active]
        new = ema * old + (1 - ema) * _energy(xa, x0a, sigma)
        qbar[active] = new
        if k + 1 >= min_steps:
            active = active[(new - old).abs() > tol * old.clamp(min=1e-12)]
    return x, x0, steps


def langevin(denoiser, x, sigmas, *, snr: float = 0.16, tol: float = 0.02, min_steps: int = 1, max_steps: int = 10,
             ema: float = 0.5, predictor: str = "ancestral", correct_first: bool = False, extra_args=None,
             callback=None, noise=None, stats: dict | None = None):
    """Predictor–corrector sampling. ``predictor``: 'ancestral' (reverse diffusion, Song et al.'s choice) or
    'euler' (probability-flow ODE). After every predictor step that lands on σ > 0 (and at σ_0 too when
    ``correct_first``), Langevin corrector steps run until steady state (see the module docstring).

    ``stats`` (optional dict) receives: ``corrector_steps`` (per level, a list with each sample's count),
    ``levels`` (the σ of each corrected level) and ``nfe`` (evaluations per sample)."""
    if predictor not in ("ancestral", "euler"):
        raise BadParameter(f"predictor: one of ancestral, euler; got {predictor!r}")
    s, D, noise = prepare(denoiser, x, sigmas, extra_args, noise)
    noise = require_noise(noise, "langevin")
    per_level, levels = [], []

    def correct(x, x0, sig):
        x, x0, steps = langevin_correct(D, x, x0, sig, noise, snr=snr, tol=tol, min_steps=min_steps,
                                        max_steps=max_steps, ema=ema)
        per_level.append(steps.tolist())
        levels.append(sig)
        return x, x0

    x0 = D(x, float(s[0]))
    if correct_first:
        x, x0 = correct(x, x0, float(s[0]))
    for i in range(len(s) - 1):
        sig, nxt = float(s[i]), float(s[i + 1])
        if callback is not None:
            callback(x, x0, sig, i)
        down, up = ancestral_sigmas(sig, nxt, 1.0 if predictor == "ancestral" else 0.0)
        x = torch.lerp(x0, x, down / sig)
        if up > 0:
            x = x + up * noise.randn_like(x)
        if nxt == 0:
            break
        x0 = D(x, nxt)
        x, x0 = correct(x, x0, nxt)
    if stats is not None:
        stats.update(corrector_steps=per_level, levels=levels, nfe=D.nfe.tolist())
    return x
