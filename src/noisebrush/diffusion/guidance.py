"""Guidance: classifier-free guidance and a generic x̂_0-guidance hook. Both wrap a denoiser into a denoiser,
so every sampler uses them unchanged.

* :func:`cfg` — Ho & Salimans 2022: D = D_u + w·(D_c - D_u), conditional and unconditional in one batched call.
* :func:`x0_guidance` — nudge the prediction with any function ``grad_fn(x0_hat, sigma) -> gradient`` of a
  loss on x̂_0 (a palette loss, a preference score…): D' = x̂_0 - scale·weight(σ)·grad. Because the samplers
  move x toward D', the trajectory follows. :func:`loss_gradient` turns a differentiable loss into grad_fn.

    den = cfg(den, cond={"labels": y}, uncond={"labels": y_null}, scale=4.0)
    den = x0_guidance(den, loss_gradient(palette_loss), scale=0.3)
"""
from __future__ import annotations

from typing import Callable, Optional

import torch

__all__ = ["cfg", "x0_guidance", "loss_gradient"]


def _cat(a, b):
    if torch.is_tensor(a) and torch.is_tensor(b):
        return torch.cat([a, b])
    if a is None and b is None:
        return None
    raise ValueError("cfg: conditioning values must be tensors batched along dim 0 (or None in both)")


def _per_sample(sigma, x: torch.Tensor) -> torch.Tensor:
    s = torch.as_tensor(sigma, dtype=torch.float64, device=x.device).reshape(-1)
    return s.expand(x.shape[0]) if s.numel() == 1 else s


def cfg(denoiser, cond: dict, uncond: dict, scale: float):
    """Classifier-free guidance. ``cond``/``uncond`` are keyword arguments for the denoiser with the same keys,
    each value batched like x. scale = 1 is plain conditional sampling; scale = 0 unconditional."""
    if set(cond) != set(uncond):
        raise ValueError("cfg: cond and uncond need the same keys")
    both = {k: _cat(cond[k], uncond[k]) for k in cond}

    def guided(x, sigma, **extra):
        sigma = _per_sample(sigma, x)
        if scale == 1.0:
            return denoiser(x, sigma, **cond, **extra)
        if scale == 0.0:
            return denoiser(x, sigma, **uncond, **extra)
        # other batched arguments (a mask, say) go to both halves
        extra = {k: torch.cat([v, v]) if torch.is_tensor(v) and v.ndim > 0 and v.shape[0] == x.shape[0] else v
                 for k, v in extra.items()}
        out = denoiser(torch.cat([x, x]), torch.cat([sigma, sigma]), **both, **extra)
        c, u = out.chunk(2)
        return u + scale * (c - u)

    return guided


def loss_gradient(loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]):
    """grad_fn from a differentiable ``loss_fn(x0_hat, sigma) -> loss per sample (or a scalar)``."""

    def grad_fn(x0, sigma):
        with torch.enable_grad():
            x0 = x0.detach().requires_grad_(True)
            loss = loss_fn(x0, sigma).sum()
            (g,) = torch.autograd.grad(loss, x0)
        return g

    return grad_fn


def x0_guidance(denoiser, grad_fn, scale: float = 1.0, weight: Optional[Callable[[torch.Tensor], torch.Tensor]] = None):
    """D'(x, σ) = D(x, σ) - scale·weight(σ)·grad_fn(D(x, σ), σ). ``weight`` maps the per-sample σ tensor
    to a per-sample factor (default 1)."""

    def guided(x, sigma, **extra):
        sigma = _per_sample(sigma, x)
        x0 = denoiser(x, sigma, **extra)
        g = grad_fn(x0, sigma)
        w = torch.ones_like(sigma) if weight is None else weight(sigma)
        w = (scale * w).reshape(-1, *([1] * (x0.ndim - 1))).to(x0.dtype)
        return x0 - w * g.to(x0.dtype)

    return guided
