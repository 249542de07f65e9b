"""Guides: differentiable wishes about the finished picture, applied while it is painted.

A guide is a loss on the predicted clean picture x̂_0. At every step the pipeline's denoiser output is moved down
that loss's gradient (the engine's x̂_0-guidance hook, :func:`noisebrush.diffusion.guidance.x0_guidance`, which the
sampling core applies for every guide passed as ``guides`` to :func:`noisebrush.diffusion.sample.make_denoiser`):

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

from noisebrush.errors import UserError

__all__ = ["Guide", "guidance_recipes", "guides_from_recipe", "register_guide", "GUIDES"]


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


def guidance_recipes(guides: Sequence[Guide] | None) -> list[dict]:
    """What a recipe records about the guides (``[]`` when there are none)."""
    return [{"name": g.name, "scale": float(g.scale), **g.recipe()} for g in guides or ()]


#: guide name → its class (each has ``from_recipe(dict) -> Guide``); a guide class joins with :func:`register_guide`
#: when its module is imported: the palette here in paint, the learned preference in
#: :mod:`noisebrush.workflows.preference` (a higher layer, which paint never imports).
GUIDES: dict[str, type] = {}


def register_guide(cls: type) -> type:
    """Class decorator: recipes that name ``cls.name`` are rebuilt with ``cls.from_recipe``."""
    GUIDES[cls.name] = cls
    return cls


def guides_from_recipe(recorded) -> list[Guide]:
    """The guides a recipe's ``guidance`` list describes (to paint a picture again)."""
    out = []
    for d in recorded or []:
        cls = GUIDES.get(d.get("name")) if isinstance(d, dict) and isinstance(d.get("name"), str) else None
        if cls is None:
            hint = " (import noisebrush.workflows.preference first)" if isinstance(d, dict) and \
                d.get("name") == "preference" else ""
            raise UserError(f"recipe: unknown guide {d!r}{hint}")
        out.append(cls.from_recipe(d))
    return out
