"""EDM preconditioning: the explicit wrapper that turns a raw network F into a denoiser D(x, σ) → x̂_0.

Karras et al. 2022, Table 1 and eq. 7:

    D(x; σ) = c_skip(σ)·x + c_out(σ)·F(c_in(σ)·x; c_noise(σ))
    c_skip = σ_d² / (σ² + σ_d²),  c_out = σ·σ_d / sqrt(σ² + σ_d²),  c_in = 1 / sqrt(σ² + σ_d²),  c_noise = ¼·ln σ

so that the network's input and its training target both have unit variance at every noise level.

    den = EDMPrecond(net, sigma_data=0.5)
    x0_hat = den(x, sigma, labels=y)
"""
from __future__ import annotations

import torch

from noisebrush.diffusion.forward import expand_sigma

__all__ = ["EDMPrecond", "edm_coefficients"]


def edm_coefficients(sigma: torch.Tensor, sigma_data: float):
    """(c_skip, c_out, c_in, c_noise) for σ (float64 in, float64 out)."""
    sigma = sigma.to(torch.float64)
    sd2 = sigma_data**2
    c_skip = sd2 / (sigma**2 + sd2)
    c_out = sigma * sigma_data / (sigma**2 + sd2).sqrt()
    c_in = 1 / (sigma**2 + sd2).sqrt()
    c_noise = sigma.log() / 4
    return c_skip, c_out, c_in, c_noise


class EDMPrecond(torch.nn.Module):
    """Wraps ``net(x_in, c_noise, **cond) -> F`` (any shape) as a denoiser ``D(x, sigma, **cond) -> x̂_0``."""

    def __init__(self, net: torch.nn.Module, sigma_data: float = 0.5):
        super().__init__()
        self.net = net
        self.sigma_data = float(sigma_data)

    def forward(self, x: torch.Tensor, sigma, **cond) -> torch.Tensor:
        s = expand_sigma(sigma, x).to(torch.float64)
        c_skip, c_out, c_in, c_noise = edm_coefficients(s, self.sigma_data)
        F = self.net(x * c_in.to(x.dtype), c_noise.reshape(-1).to(x.dtype), **cond)
        return c_skip.to(x.dtype) * x + c_out.to(x.dtype) * F.to(x.dtype)
