"""Guidance: classifier-free guidance (with condition mixing) and a generic x̂_0-guidance hook. Both wrap a denoiser
into a denoiser, so every sampler uses them unchanged. This is the only place guidance is computed.

* :func:`guided_call` — one guided evaluation, the single implementation of classifier-free guidance
  (Ho & Salimans 2022, eq. 6, whose w is our w − 1): D = D_u + w·(D_c − D_u), the conditional and unconditional
  predictions from one batched network call. With several conditions c_i of weights a_i (summing to 1) it is the guided denoiser of the
  geometric mixture p(x|c_1)^a_1·…·p(x|c_k)^a_k (the conjunction of Liu et al. 2022, "Compositional Visual
  Generation with Composable Diffusion Models", with weights w·a_i): D = D_u + w·(Σ a_i·D_i − D_u)
  = D_u + w·Σ a_i·(D_i − D_u), computed in the first form. The unconditional prediction comes either
  from explicit unconditional conditions (``uncond``) or from the first condition with the network's ``drop``
  flag set (how noisebrush's networks learn it: the condition is dropped during training). A negative prompt is
  such an explicit ``uncond``: D = D_neg + w·(D_c − D_neg) = D_c + (w − 1)·(D_c − D_neg), guidance away from the
  negative text's prediction instead of the unconditional one (the weights a_i of a weighted prompt may be
  negative: see :meth:`noisebrush.paint.pipeline.Pipeline.condition_mix`).
* :func:`cfg` — :func:`guided_call` as a denoiser wrapper for explicit (cond, uncond) pairs.
* :func:`x0_guidance` — nudge the prediction with any function ``grad_fn(x0_hat, sigma) -> gradient`` of a
  loss on x̂_0 (a palette loss, a preference score…): D' = x̂_0 - scale·weight(σ)·grad. Because the samplers
  move x toward D', the trajectory follows. :func:`loss_gradient` turns a differentiable loss into grad_fn.

    den = cfg(den, cond={"labels": y}, uncond={"labels": y_null}, scale=4.0)
    den = x0_guidance(den, loss_gradient(palette_loss), scale=0.3)
    x0 = guided_call(net_den, x, sigma, [{"labels": y}], 3.0)          # drop flag for the unconditional half

:func:`noisebrush.diffusion.sample.make_denoiser` builds the painting denoisers (per picture or batched) on these.
"""
from __future__ import annotations

from typing import Callable, Optional, Sequence

import torch

__all__ = ["cfg", "guided_call", "x0_guidance", "loss_gradient", "per_sample_sigma"]


def _cat(values: list):
    if all(torch.is_tensor(v) for v in values):
        return torch.cat(values)
    if all(v is None for v in values):
        return None
    raise ValueError("cfg: conditioning values must be tensors batched along dim 0 (or None in all)")


def per_sample_sigma(sigma, x: torch.Tensor) -> torch.Tensor:
    """σ (a number, or a tensor with one value or one per sample) as a float64 tensor with one value per sample."""
    s = torch.as_tensor(sigma, dtype=torch.float64, device=x.device).reshape(-1)
    return s.expand(x.shape[0]) if s.numel() == 1 else s


def _stacked(denoiser, x, sigma, rows: list[dict], drop: Optional[list[bool]], extra: dict) -> list[torch.Tensor]:
    """One network call on len(rows) copies of the batch, copy j with the conditions rows[j] (and, when ``drop`` is
    given, the network's drop flag drop[j]); returns the prediction of each copy."""
    k, n = len(rows), x.shape[0]
    if any(set(r) != set(rows[0]) for r in rows):
        raise ValueError("cfg: cond and uncond need the same keys")
    args = {key: _cat([r[key] for r in rows]) for key in rows[0]}
    if drop is not None:
        args["drop"] = torch.cat([torch.full((n,), d, dtype=torch.bool, device=x.device) for d in drop])
    # other batched arguments (a mask, say) go to every copy
    args.update({key: torch.cat([v] * k) if torch.is_tensor(v) and v.ndim > 0 and v.shape[0] == n else v
                 for key, v in extra.items()})
    out = denoiser(torch.cat([x] * k), torch.cat([sigma] * k), **args)
    return [out[j * n:(j + 1) * n] for j in range(k)]


def guided_call(denoiser, x: torch.Tensor, sigma: torch.Tensor, conds: Sequence[dict], scale: float, *,
                weights: Optional[Sequence[float]] = None, uncond: Optional[dict] = None, mix: bool = False,
                **extra) -> torch.Tensor:
    """One classifier-free-guided evaluation of ``denoiser(x, sigma, **cond)`` (see the module docstring).

    ``conds``: the conditions (keyword arguments for the denoiser, each batched like x); ``weights``: their mixing
    weights (default: 1 for a single condition); ``uncond``: explicit unconditional conditions, or None to use
    ``conds[0]`` with ``drop=True``. ``scale`` 1 is plain conditional sampling: a single condition (``mix`` False)
    is then evaluated alone, without its unconditional twin; a mixture (``mix`` True, as morphs use it) always
    evaluates the twin with its conditions, so its batch does not change with the scale. ``extra`` keyword
    arguments go to every copy. All conditions and the unconditional half go through the network as one batch."""
    conds = list(conds)
    weights = [1.0] * len(conds) if weights is None else list(weights)
    if len(conds) != len(weights) or not conds:
        raise ValueError("cfg: one weight per condition, at least one condition")
    if scale == 1.0 and len(conds) == 1 and not mix:
        return denoiser(x, sigma, **conds[0], **extra)
    rows = conds + [conds[0] if uncond is None else uncond]
    drop = [False] * len(conds) + [True] if uncond is None else None
    *outs, u = _stacked(denoiser, x, sigma, rows, drop, extra)
    if len(outs) == 1 and weights[0] == 1.0:
        c = outs[0]
    else:
        c = weights[0] * outs[0]
        for a, d in zip(weights[1:], outs[1:]):
            c = c + a * d
    if mix and scale == 1.0:
        return c
    return u + scale * (c - u)


def cfg(denoiser, cond: dict, uncond: dict, scale: float):
    """Classifier-free guidance as a denoiser wrapper. ``cond``/``uncond`` are keyword arguments for the denoiser
    with the same keys, each value batched like x. scale = 1 is plain conditional sampling (one call on the
    conditional half); scale = 0 unconditional (one call on the unconditional half)."""
    if set(cond) != set(uncond):
        raise ValueError("cfg: cond and uncond need the same keys")
    for k in cond:
        _cat([cond[k], uncond[k]])  # fail now on values that cannot be batched

    def guided(x, sigma, **extra):
        sigma = per_sample_sigma(sigma, x)
        if scale == 0.0:
            return denoiser(x, sigma, **uncond, **extra)
        return guided_call(denoiser, x, sigma, [cond], scale, uncond=uncond, **extra)

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
        sigma = per_sample_sigma(sigma, x)
        x0 = denoiser(x, sigma, **extra)
        g = grad_fn(x0, sigma)
        w = torch.ones_like(sigma) if weight is None else weight(sigma)
        w = (scale * w).reshape(-1, *([1] * (x0.ndim - 1))).to(x0.dtype)
        return x0 - w * g.to(x0.dtype)

    return guided
