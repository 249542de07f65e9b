"""Guides: differentiable wishes about the finished picture, applied while it is painted.

A guide is a loss on the predicted clean picture x̂_0. At every step the pipeline's denoiser output is moved down
that loss's gradient (the engine's x̂_0-guidance hook, :func:`noisebrush.diffusion.guidance.x0_guidance`):

    D'(x, σ) = x̂_0 - scale · weight(σ) · ∇ loss(x̂_0)

and since every sampler steps toward D', the whole trajectory follows. The gradient is taken with respect to x̂_0
only, never through the denoising network, so a guide costs one small backward pass per step and works with any
model. :class:`noisebrush.paint.palette.PaletteGuide` (``--palette``) and the learned preference
(:class:`noisebrush.workflows.preference.PreferenceGuide`, ``--prefer``) are guides.

    pipe.generate("a red circle", guidance=[PaletteGuide("#aa3300,#002255", scale=0.15)])

A guide also describes itself (:meth:`Guide.recipe`), so a PNG painted with it can be painted again.
"""
from __future__ import annotations

from typing import Sequence

import torch

__all__ = ["Guide", "guided", "guidance_recipes"]


class Guide:
    """Base class. Subclasses set ``name`` and ``scale`` and implement :meth:`loss` and :meth:`recipe`.

    ``loss(x0, sigma)`` gets the predicted pictures N×C×H×W (float32, about [-1, 1]) and the per-sample noise
    level σ (float64, shape [N]) and returns one loss per picture (shape [N]); it must be differentiable in x0.
    ``weight(sigma)`` scales the step per picture (default: 1 at every noise level).
    """

    name: str = "guide"
    scale: float = 1.0

    def loss(self, x0: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def weight(self, sigma: torch.Tensor) -> torch.Tensor:
        return torch.ones_like(sigma)

    def recipe(self) -> dict:  # pragma: no cover - abstract
        raise NotImplementedError

    def gradient(self, x0: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        with torch.enable_grad():
            x = x0.detach().to(torch.float32).requires_grad_(True)
            loss = self.loss(x, sigma)
            (g,) = torch.autograd.grad(loss.sum(), x)
        return g


def guided(denoiser, guides: Sequence[Guide] | None):
    """``denoiser(x, sigma, **kw)`` with every guide's step applied to its output, in order."""
    from noisebrush.diffusion.guidance import x0_guidance

    for g in guides or ():
        if g.scale:
            denoiser = x0_guidance(denoiser, g.gradient, scale=float(g.scale), weight=g.weight)
    return denoiser


def guidance_recipes(guides: Sequence[Guide] | None) -> list[dict]:
    """What a recipe records about the guides (``[]`` when there are none)."""
    return [{"name": g.name, "scale": float(g.scale), **g.recipe()} for g in guides or ()]


#: guide name → "module:Class"; each class has ``from_recipe(dict) -> Guide``
GUIDES = {"palette": "noisebrush.paint.palette:PaletteGuide", "preference": "noisebrush.workflows.preference:PreferenceGuide"}


def guides_from_recipe(recorded) -> list[Guide]:
    """The guides a recipe's ``guidance`` list describes (to paint a picture again)."""
    import importlib

    from noisebrush.errors import UserError

    out = []
    for d in recorded or []:
        where = GUIDES.get(d.get("name")) if isinstance(d, dict) else None
        if where is None:
            raise UserError(f"recipe: unknown guide {d!r}")
        mod, cls = where.split(":")
        out.append(getattr(importlib.import_module(mod), cls).from_recipe(d))
    return out
