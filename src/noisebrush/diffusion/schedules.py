"""Noise-level discretizations: functions that return descending σ values ending in 0.

All of noisebrush works in the σ-space of Karras et al. 2022 ("Elucidating the Design Space of
Diffusion-Based Generative Models", EDM): x_σ = x_0 + σ·ε. A schedule of n steps is a float64 tensor
of n+1 values σ_0 > σ_1 > … > σ_{n-1} > σ_n = 0.

    >>> karras(10, sigma_min=0.002, sigma_max=80.0)[:3]
    tensor([80.0000, 42.4152, 21.1087], dtype=torch.float64)

VP (DDPM) models are trained on a discrete table ᾱ_t, t = 0..T-1; σ_t = sqrt((1 - ᾱ_t) / ᾱ_t)
(see :mod:`noisebrush.diffusion.vp`). ``vp_linear`` and ``vp_cosine`` pick n of those T levels.
"""
from __future__ import annotations

import math

import torch

from noisebrush.errors import BadParameter

__all__ = [
    "karras",
    "exponential",
    "vp_linear",
    "vp_cosine",
    "ddgan",
    "linear_alphas_cumprod",
    "cosine_alphas_cumprod",
    "alphas_cumprod_to_sigmas",
    "pick_timesteps",
    "append_zero",
    "check_sigmas",
    "SCHEDULES",
]

F64 = torch.float64


def append_zero(sigmas: torch.Tensor) -> torch.Tensor:
    return torch.cat([sigmas.to(F64), sigmas.new_zeros(1, dtype=F64)])


def _check_range(n: int, sigma_min: float, sigma_max: float) -> None:
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise BadParameter(f"steps: must be a positive integer, got {n!r}")
    if not (0 < sigma_min < sigma_max) or not math.isfinite(sigma_max):
        raise BadParameter(f"sigma_min/sigma_max: need 0 < sigma_min < sigma_max, got {sigma_min!r}, {sigma_max!r}")


def karras(n: int, sigma_min: float = 0.002, sigma_max: float = 80.0, rho: float = 7.0) -> torch.Tensor:
    """EDM's discretization (Karras et al. 2022, eq. 5): σ_i = (σ_max^{1/ρ} + i/(n-1)·(σ_min^{1/ρ} - σ_max^{1/ρ}))^ρ."""
    _check_range(n, sigma_min, sigma_max)
    if not rho > 0 or not math.isfinite(rho):
        raise BadParameter(f"rho: must be positive, got {rho!r}")
    if n == 1:
        return append_zero(torch.tensor([sigma_max], dtype=F64))
    ramp = torch.linspace(0, 1, n, dtype=F64)
    lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    return append_zero((hi + ramp * (lo - hi)) ** rho)


def exponential(n: int, sigma_min: float = 0.002, sigma_max: float = 80.0) -> torch.Tensor:
    """Evenly spaced in log σ (equal steps in λ = -log σ, the natural time of DPM-Solver)."""
    _check_range(n, sigma_min, sigma_max)
    if n == 1:
        return append_zero(torch.tensor([sigma_max], dtype=F64))
    return append_zero(torch.linspace(math.log(sigma_max), math.log(sigma_min), n, dtype=F64).exp())


def linear_alphas_cumprod(T: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> torch.Tensor:
    """ᾱ_t for DDPM's linear β schedule (Ho et al. 2020): β_t = linspace(β_start, β_end, T), ᾱ_t = Π(1-β)."""
    if T < 2:
        raise BadParameter(f"T: need at least 2 training steps, got {T!r}")
    betas = torch.linspace(beta_start, beta_end, T, dtype=F64)
    return torch.cumprod(1 - betas, 0)


def cosine_alphas_cumprod(T: int = 1000, s: float = 0.008, max_beta: float = 0.999) -> torch.Tensor:
    """ᾱ_t for improved DDPM's cosine schedule (Nichol & Dhariwal 2021, eq. 17), β clipped at 0.999."""
    if T < 2:
        raise BadParameter(f"T: need at least 2 training steps, got {T!r}")

    def f(t):
        return math.cos((t / T + s) / (1 + s) * math.pi / 2) ** 2

    betas = torch.tensor([min(1 - f(i + 1) / f(i), max_beta) for i in range(T)], dtype=F64)
    return torch.cumprod(1 - betas, 0)


def alphas_cumprod_to_sigmas(alphas_cumprod: torch.Tensor) -> torch.Tensor:
    ac = alphas_cumprod.to(F64)
    return ((1 - ac) / ac).sqrt()


def pick_timesteps(n: int, T: int, spacing: str = "trailing") -> torch.Tensor:
    """n of T training timesteps, descending. 'trailing' starts at T-1 (the noisiest level, recommended by
    Lin et al. 2024); 'leading' is DDIM's original T/n·i; 'linspace' rounds linspace(0, T-1, n)."""
    if not isinstance(n, int) or not 1 <= n <= T:
        raise BadParameter(f"steps: must be an integer in 1..{T}, got {n!r}")
    if spacing == "trailing":
        t = torch.round(T - torch.arange(n, dtype=F64) * (T / n)) - 1
    elif spacing == "leading":
        t = torch.arange(n, dtype=F64).mul(T // n).flip(0)
    elif spacing == "linspace":
        t = torch.linspace(0, T - 1, n, dtype=F64).round().flip(0)
    else:
        raise BadParameter(f"spacing: one of trailing, leading, linspace; got {spacing!r}")
    return t.long()


def _vp(n: int, alphas_cumprod: torch.Tensor, spacing: str) -> torch.Tensor:
    table = alphas_cumprod_to_sigmas(alphas_cumprod)
    return append_zero(table[pick_timesteps(n, len(table), spacing)])


def vp_linear(n: int, T: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02, spacing: str = "trailing") -> torch.Tensor:
    """n of the T levels of DDPM's linear-β schedule, as σ values (σ_max ≈ 157 for the defaults)."""
    return _vp(n, linear_alphas_cumprod(T, beta_start, beta_end), spacing)


def vp_cosine(n: int, T: int = 1000, s: float = 0.008, spacing: str = "trailing") -> torch.Tensor:
    """n of the T levels of the improved-DDPM cosine schedule, as σ values."""
    return _vp(n, cosine_alphas_cumprod(T, s), spacing)


def ddgan(n: int, beta_min: float = 0.1, beta_max: float = 20.0) -> torch.Tensor:
    """The n-step ladder of Denoising Diffusion GANs (Xiao et al. 2022, appendix: the continuous VP SDE with a
    linear β(t) from ``beta_min`` to ``beta_max``, cut at t_i = i/n) as σ values: ᾱ(t) = exp(−β_min·t −
    ½(β_max − β_min)·t²) and σ = sqrt(1/ᾱ − 1), for t = 1, (n−1)/n, …, 1/n, then 0. n = 4 gives about
    152.2, 17.0, 3.41, 0.95, 0; n = 1 a single jump from σ ≈ 152 (pure noise at σ_data 0.5) to the picture."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise BadParameter(f"steps: a whole number ≥ 1, got {n!r}")
    if not 0 < beta_min < beta_max:
        raise BadParameter(f"beta_min/beta_max: need 0 < beta_min < beta_max, got {beta_min}, {beta_max}")
    t = torch.arange(n, 0, -1, dtype=F64) / n
    log_alpha = -(beta_min * t + 0.5 * (beta_max - beta_min) * t**2)
    return append_zero(torch.expm1(-log_alpha).sqrt())


def check_sigmas(sigmas) -> torch.Tensor:
    """Validate a σ sequence for a sampler: 1-D, at least 2 values, finite, ≥ 0, strictly descending."""
    s = torch.as_tensor(sigmas, dtype=F64).detach().cpu()
    if s.ndim != 1 or len(s) < 2:
        raise BadParameter("sigmas: need a 1-D sequence of at least 2 noise levels")
    if not torch.isfinite(s).all() or (s < 0).any():
        raise BadParameter("sigmas: values must be finite and non-negative")
    if not (s[1:] < s[:-1]).all():
        raise BadParameter("sigmas: must be strictly descending (e.g. karras(20) ends ..., 0.002, 0)")
    return s


SCHEDULES = {
    "karras": karras,
    "exponential": exponential,
    "vp_linear": vp_linear,
    "vp_cosine": vp_cosine,
    "ddgan": ddgan,
}
