"""Deterministic probability-flow ODE solvers in σ-space: dx/dσ = (x - D(x; σ)) / σ.

* ``euler`` — first order (Karras et al. 2022, eq. 4 with σ(t) = t).
* ``ddim`` — DDIM (Song et al. 2021a). In σ-space DDIM with η = 0 *is* the Euler step (Karras et al. 2022,
  Appendix C.2.2); η > 0 mixes in fresh noise like an ancestral step.
* ``heun`` — EDM's Algorithm 2 (second order, with optional stochastic churn S_churn/S_tmin/S_tmax/S_noise);
  the last step to σ = 0 is an Euler step.

    x0 = heun(denoiser, noise.randn((3, 32, 32)) * sigmas[0], karras(18))
"""
from __future__ import annotations

import math

import torch

from noisebrush.diffusion.samplers._common import prepare, require_noise
from noisebrush.diffusion.samplers.ancestral import ancestral_loop

__all__ = ["euler", "ddim", "heun"]


def _toward(x: torch.Tensor, x0: torch.Tensor, ratio: float) -> torch.Tensor:
    """x0 + ratio·(x - x0): the exact solution of the ODE if x̂_0 stayed fixed over the step (ratio = σ'/σ)."""
    return torch.lerp(x0, x, ratio)


def euler(denoiser, x, sigmas, *, extra_args=None, callback=None, noise=None):
    """Euler's method on the probability-flow ODE; 1 network evaluation per step."""
    s, D, _ = prepare(denoiser, x, sigmas, extra_args)
    for i in range(len(s) - 1):
        sig, nxt = float(s[i]), float(s[i + 1])
        x0 = D(x, sig)
        if callback is not None:
            callback(x, x0, sig, i)
        x = _toward(x, x0, nxt / sig)
    return x


def ddim(denoiser, x, sigmas, *, eta: float = 0.0, extra_args=None, callback=None, noise=None):
    """DDIM with stochasticity η ∈ [0, 1] (η = 0: deterministic; η = 1: DDPM's ancestral sampler)."""
    return ancestral_loop(denoiser, x, sigmas, eta, 1.0, extra_args, callback, noise, "ddim(eta>0)")


def heun(denoiser, x, sigmas, *, s_churn: float = 0.0, s_tmin: float = 0.0, s_tmax: float = math.inf,
         s_noise: float = 1.0, extra_args=None, callback=None, noise=None):
    """EDM Algorithm 2: Heun's second-order method with optional churn; 2 evaluations per step (1 for the last)."""
    s, D, noise = prepare(denoiser, x, sigmas, extra_args, noise)
    n = len(s) - 1
    if s_churn > 0:
        noise = require_noise(noise, "heun(s_churn>0)")
    for i in range(n):
        sig, nxt = float(s[i]), float(s[i + 1])
        gamma = min(s_churn / n, math.sqrt(2) - 1) if s_tmin <= sig <= s_tmax else 0.0
        sig_hat = sig * (1 + gamma)
        if gamma > 0:
            x = x + math.sqrt(sig_hat**2 - sig**2) * s_noise * noise.randn_like(x)
        x0 = D(x, sig_hat)
        if callback is not None:
            callback(x, x0, sig_hat, i)
        d = (x - x0) / sig_hat
        x_next = x + (nxt - sig_hat) * d
        if nxt > 0:
            d2 = (x_next - D(x_next, nxt)) / nxt
            x_next = x + (nxt - sig_hat) * 0.5 * (d + d2)
        x = x_next
    return x
