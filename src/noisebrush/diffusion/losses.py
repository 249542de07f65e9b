"""Training losses. Each returns one loss value per sample (reduce it yourself).

* :func:`edm_loss` — Karras et al. 2022, eq. 2 with the log-normal σ density (P_mean = -1.2, P_std = 1.2)
  and the weighting λ(σ) = (σ² + σ_d²) / (σ·σ_d)² of Table 1, which makes the effective weight of the
  preconditioned network's output uniform across σ.
* :func:`vp_loss` — DDPM's simple loss (Ho et al. 2020) for ε-, v- or x₀-prediction on a VP table, with the
  optional min-SNR-γ weighting of Hang et al. 2023 ("Efficient Diffusion Training via Min-SNR Weighting").

    loss = edm_loss(EDMPrecond(net), x0, generator=g).mean()
"""
from __future__ import annotations

import torch

from noisebrush.diffusion.forward import add_noise, expand_sigma
from noisebrush.errors import BadParameter

__all__ = ["sample_edm_sigma", "edm_weight", "edm_loss", "min_snr_weight", "vp_loss"]


def _flat_mean(t: torch.Tensor) -> torch.Tensor:
    return t.reshape(t.shape[0], -1).mean(1)


def sample_edm_sigma(n: int, *, generator: torch.Generator | None = None, P_mean: float = -1.2, P_std: float = 1.2,
                     device=None) -> torch.Tensor:
    """ln σ ~ N(P_mean, P_std²)."""
    z = torch.randn(n, generator=generator, dtype=torch.float64)
    return (P_mean + P_std * z).exp().to(device)


def edm_weight(sigma: torch.Tensor, sigma_data: float = 0.5) -> torch.Tensor:
    return (sigma**2 + sigma_data**2) / (sigma * sigma_data) ** 2


def edm_loss(denoiser, x0: torch.Tensor, *, sigma: torch.Tensor | None = None, noise: torch.Tensor | None = None,
             generator: torch.Generator | None = None, P_mean: float = -1.2, P_std: float = 1.2,
             sigma_data: float = 0.5, mask: torch.Tensor | None = None, **cond) -> torch.Tensor:
    """λ(σ)·‖D(x_0 + σε, σ) - x_0‖² averaged over elements, per sample. σ and ε are drawn when not given.
    ``mask`` (broadcastable to x_0, 1 = counted): average over the counted elements only (a clip's given frames are
    not learned: the network gets them as a condition)."""
    if sigma is None:
        sigma = sample_edm_sigma(x0.shape[0], generator=generator, P_mean=P_mean, P_std=P_std, device=x0.device)
    sigma = torch.as_tensor(sigma, device=x0.device).reshape(-1).expand(x0.shape[0])
    if noise is None:
        noise = torch.randn(x0.shape, generator=generator, dtype=x0.dtype).to(x0.device)
    x = add_noise(x0, sigma, noise)
    d = denoiser(x, sigma, **cond)
    w = expand_sigma(edm_weight(sigma.to(torch.float64), sigma_data), x0).to(d.dtype)
    if mask is None:
        return _flat_mean(w * (d - x0) ** 2)
    m = torch.broadcast_to(mask.to(device=d.device, dtype=d.dtype), x0.shape)
    err = w * (d - x0) ** 2 * m
    return err.reshape(x0.shape[0], -1).sum(1) / m.reshape(x0.shape[0], -1).sum(1).clamp(min=1)


def min_snr_weight(snr: torch.Tensor, gamma: float | None, prediction: str) -> torch.Tensor:
    """Loss weight that makes the objective equal min(SNR, γ)·‖x̂_0 - x_0‖² (γ=None: the plain loss)."""
    if gamma is None:
        return torch.ones_like(snr)
    clipped = snr.clamp(max=gamma)
    if prediction == "eps":
        return clipped / snr
    if prediction == "v":
        return clipped / (snr + 1)
    if prediction == "x0":
        return clipped
    raise BadParameter(f"prediction: one of eps, v, x0; got {prediction!r}")


def vp_loss(model, x0: torch.Tensor, alphas_cumprod: torch.Tensor, *, t: torch.Tensor | None = None,
            noise: torch.Tensor | None = None, generator: torch.Generator | None = None, prediction: str = "eps",
            min_snr_gamma: float | None = None, **cond) -> torch.Tensor:
    """DDPM loss for ``model(x_t, t, **cond)`` on a discrete VP table; per sample."""
    if prediction not in ("eps", "v", "x0"):
        raise BadParameter(f"prediction: one of eps, v, x0; got {prediction!r}")
    T = len(alphas_cumprod)
    if t is None:
        t = torch.randint(0, T, (x0.shape[0],), generator=generator)
    t = t.to(alphas_cumprod.device)
    if noise is None:
        noise = torch.randn(x0.shape, generator=generator, dtype=x0.dtype).to(x0.device)
    ac = alphas_cumprod.to(torch.float64)[t]
    a, s = ac.sqrt(), (1 - ac).sqrt()
    x_t = expand_sigma(a, x0).to(x0.dtype) * x0 + expand_sigma(s, x0).to(x0.dtype) * noise
    out = model(x_t, t.to(x0.device), **cond)
    if prediction == "eps":
        target = noise
    elif prediction == "v":
        target = expand_sigma(a, x0).to(x0.dtype) * noise - expand_sigma(s, x0).to(x0.dtype) * x0
    else:
        target = x0
    w = min_snr_weight(ac / (1 - ac), min_snr_gamma, prediction)
    return w.to(out.dtype).to(out.device) * _flat_mean((out - target) ** 2)
