"""Ancestral samplers: a deterministic step to σ_down, then fresh Gaussian noise of size σ_up.

* ``ddpm`` — Ho et al. 2020's sampler, written as the exact Gaussian posterior of the VE chain:
  given x_σ and x̂_0, x_{σ'} ~ N(x̂_0 + (σ'/σ)²·(x_σ - x̂_0), σ'²·(σ² - σ'²)/σ²). On the same σ grid this is
  DDIM with η = 1 and Euler-ancestral with η = 1 (the σ-space forms coincide), so all three cross-check.
* ``euler_ancestral`` — k-diffusion's Euler-ancestral with η and s_noise.
"""
from __future__ import annotations

import math

import torch

from noisebrush.diffusion.samplers._common import ancestral_sigmas, prepare, require_noise
from noisebrush.errors import BadParameter

__all__ = ["ddpm", "euler_ancestral", "posterior_step"]


def ddpm(denoiser, x, sigmas, *, extra_args=None, callback=None, noise=None):
    """Ancestral sampling from the exact posterior q(x_{σ'} | x_σ, x̂_0); 1 evaluation per step."""
    s, D, noise = prepare(denoiser, x, sigmas, extra_args, noise)
    noise = require_noise(noise, "ddpm")
    for i in range(len(s) - 1):
        sig, nxt = float(s[i]), float(s[i + 1])
        x0 = D(x, sig)
        if callback is not None:
            callback(x, x0, sig, i)
        x = posterior_step(x, x0, sig, nxt, noise)
    return x


def posterior_step(x, x0, sig: float, nxt: float, noise):
    """One draw of x_{σ'} ~ q(x_{σ'} | x_σ, x̂_0) of the VE chain (``nxt`` = σ' < ``sig`` = σ; σ' = 0 gives x̂_0),
    the fresh noise from each sample's own generator: ddpm's step, and the gan sampler's."""
    x = torch.lerp(x0, x, (nxt / sig) ** 2)
    if nxt > 0:
        x = x + (nxt / sig) * math.sqrt(sig**2 - nxt**2) * noise.randn_like(x)
    return x


def euler_ancestral(denoiser, x, sigmas, *, eta: float = 1.0, s_noise: float = 1.0, extra_args=None,
                    callback=None, noise=None):
    """Euler step to σ_down, then σ_up·s_noise of fresh noise; η scales the noise added (η = 0: Euler)."""
    return ancestral_loop(denoiser, x, sigmas, eta, s_noise, extra_args, callback, noise, "euler_ancestral")


def ancestral_loop(denoiser, x, sigmas, eta, s_noise, extra_args, callback, noise, name):
    """The shared loop of euler_ancestral and ddim: a deterministic step to σ_down, then σ_up·s_noise of noise."""
    if eta < 0:
        raise BadParameter(f"eta: must be ≥ 0, got {eta!r}")
    s, D, noise = prepare(denoiser, x, sigmas, extra_args, noise)
    if eta > 0:
        noise = require_noise(noise, name)
    for i in range(len(s) - 1):
        sig, nxt = float(s[i]), float(s[i + 1])
        x0 = D(x, sig)
        if callback is not None:
            callback(x, x0, sig, i)
        down, up = ancestral_sigmas(sig, nxt, eta)
        x = torch.lerp(x0, x, down / sig)
        if up > 0:
            x = x + (up * s_noise) * noise.randn_like(x)
    return x
