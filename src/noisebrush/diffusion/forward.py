"""The forward process — "adding Gaussian noise at a noise level": x_σ = x_0 + σ·ε (Karras et al. 2022, eq. 1).

    x_sigma = add_noise(x0, sigma=torch.tensor([0.5, 2.0]), noise=SampleNoise.from_seeds([1, 2]).randn_like(x0))

``sigma`` may be a float or one value per sample; every shape works (N×C×H×W, N×C×T×H×W, N×P×3, …).
For a VP model's input, multiply by :func:`noisebrush.diffusion.vp.vp_input_scale` (σ).
"""
from __future__ import annotations

import torch

from noisebrush.errors import BadParameter

__all__ = ["add_noise", "expand_sigma"]


def expand_sigma(sigma, x: torch.Tensor) -> torch.Tensor:
    """σ as a tensor broadcastable against x: a float, or one value per sample, → shape (N, 1, 1, …)."""
    s = torch.as_tensor(sigma, device=x.device)
    if s.ndim == 0:
        s = s.expand(x.shape[0])
    s = s.reshape(-1)
    if s.shape[0] != x.shape[0]:
        raise BadParameter(f"sigma: {s.shape[0]} values for a batch of {x.shape[0]}")
    return s.reshape(x.shape[0], *([1] * (x.ndim - 1)))


def add_noise(x0: torch.Tensor, sigma, noise: torch.Tensor) -> torch.Tensor:
    """x_σ = x_0 + σ·ε, computed in x0's dtype."""
    if noise.shape != x0.shape:
        raise BadParameter(f"noise: shape {tuple(noise.shape)} does not match x0 {tuple(x0.shape)}")
    return x0 + expand_sigma(sigma, x0).to(x0.dtype) * noise
