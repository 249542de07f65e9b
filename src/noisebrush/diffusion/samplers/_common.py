"""What every sampler shares: σ validation, denoiser calls with per-sample σ, the step callback, noise."""
from __future__ import annotations

import math
from typing import Callable, Optional

import torch

from noisebrush.diffusion.noise import SampleNoise, as_noise
from noisebrush.diffusion.schedules import check_sigmas
from noisebrush.errors import BadParameter

#: callback(x, x0_hat, sigma, step): x and x̂_0 at the start of step ``step`` at noise level σ.
#: σ is a float, except in ``adaptive`` where each sample has its own σ (a float64 tensor of shape [N]).
StepCallback = Callable[[torch.Tensor, torch.Tensor, object, int], None]

__all__ = ["StepCallback", "Denoise", "prepare", "require_noise", "ancestral_sigmas"]


class Denoise:
    """Calls ``denoiser(x, sigma[N], **extra_args)`` and counts network evaluations per sample.

    ``sigma`` is passed as a float64 tensor with one value per sample. ``subset`` evaluates only some batch
    items; tensors in ``extra_args`` whose first dimension is the batch size are sliced alongside. Keyword
    ``inputs`` go to the denoiser with this call only (the ``gan`` sampler's latent z, one row per sample of x).
    """

    def __init__(self, denoiser, batch: int, extra_args: Optional[dict]):
        self.denoiser = denoiser
        self.batch = batch
        self.extra_args = dict(extra_args or {})
        self.nfe = torch.zeros(batch, dtype=torch.long)

    def __call__(self, x: torch.Tensor, sigma, index: Optional[torch.Tensor] = None, **inputs) -> torch.Tensor:
        n = x.shape[0]
        s = torch.as_tensor(sigma, dtype=torch.float64, device=x.device).reshape(-1)
        s = s.expand(n) if s.numel() == 1 else s
        args = self.extra_args
        if index is not None:
            args = {k: (v[index.to(v.device)] if torch.is_tensor(v) and v.ndim > 0 and v.shape[0] == self.batch else v)
                    for k, v in args.items()}
            self.nfe[index.cpu()] += 1
        else:
            self.nfe += 1
        out = self.denoiser(x, s, **args, **inputs)  # inputs: per-sample tensors of this call (a GAN's latent z)
        if out.shape != x.shape:
            raise BadParameter(f"denoiser: returned shape {tuple(out.shape)} for input {tuple(x.shape)}")
        return out


def prepare(denoiser, x: torch.Tensor, sigmas, extra_args, noise=None):
    """Validated σ (float64, CPU), a counting denoiser and the per-sample noise (or None)."""
    if not torch.is_tensor(x) or x.ndim < 2:
        raise BadParameter("x: need a batched tensor (N, ...)")
    s = check_sigmas(sigmas)
    return s, Denoise(denoiser, x.shape[0], extra_args), as_noise(noise, x.shape[0])


def require_noise(noise: Optional[SampleNoise], name: str) -> SampleNoise:
    if noise is None:
        raise BadParameter(f"{name}: this sampler is stochastic; pass noise=SampleNoise.from_seeds(seeds) or a list of seeds")
    return noise


def ancestral_sigmas(sigma: float, sigma_next: float, eta: float = 1.0) -> tuple[float, float]:
    """(σ_down, σ_up) for an ancestral step σ → σ_next: deterministic descent to σ_down, then fresh noise σ_up,
    with σ_down² + σ_up² = σ_next². η = 1 gives the exact posterior of the VE chain, i.e. DDPM and DDIM(η=1)."""
    if sigma_next == 0 or eta == 0:
        return sigma_next, 0.0
    up = min(sigma_next, eta * math.sqrt(sigma_next**2 * (sigma**2 - sigma_next**2) / sigma**2))
    return math.sqrt(sigma_next**2 - up**2), up
