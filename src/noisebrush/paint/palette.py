"""Colour control: paint with a palette, through the x̂_0-guidance hook, with any model.

    noisebrush paint "a landscape" --palette "#aa3300,#002255,#e0c080"
    pipe.generate("a landscape", guidance=[PaletteGuide("#aa3300,#002255,#e0c080", scale=0.15)])

The loss of a picture is half the sum, over its pixels, of the squared distance to the nearest palette colour (a
soft minimum with temperature ``tau``, so that it is differentiable everywhere). Its gradient at a pixel is the
pixel minus (a soft choice of) its nearest palette colour, so one guided step moves every pixel of x̂_0 the share
``scale`` of the way to its colour: scale 0 leaves the picture alone, scale 1 snaps x̂_0 onto the palette at every
step. Shapes come from the model, colours from the palette. Only steps with ``until`` < σ ≤ ``below`` are
guided: the composition is settled at high noise levels, and pulling x̂_0 toward the palette there changes what
is painted rather than its colours (measured by ``python -m noisebrush.bench palette``); ``until`` can leave the
last, finest steps to the model.

:func:`palette_distance` measures the result: the mean over pixels of the distance (RGB in [0, 1]) from each pixel
to its nearest palette colour; 0 means every pixel is a palette colour.
"""
from __future__ import annotations

import re

import torch

from noisebrush.errors import BadParameter
from noisebrush.paint.guides import Guide, register_guide

__all__ = ["parse_palette", "PaletteGuide", "palette_distance", "palette_hex"]

_HEX = re.compile(r"^#?([0-9a-fA-F]{3}|[0-9a-fA-F]{6})$")


def parse_palette(text, name: str = "palette") -> torch.Tensor:
    """"#aa3300,#002255,…" (also without '#', or 3-digit '#a30') → K×3 float32 in [0, 1]. A list of such strings
    or of (r, g, b) triples in 0–255 works too."""
    try:
        items = [p.strip() for p in text.split(",")] if isinstance(text, str) else list(text)
    except TypeError:
        raise BadParameter(f"{name}: colours as text like '#aa3300,#002255', got {text!r:.40}") from None
    items = [p for p in items if not (isinstance(p, str) and not p)]
    if not items:
        raise BadParameter(f"{name}: give at least one colour, e.g. '#aa3300,#002255'")
    rows = []
    for p in items:
        if isinstance(p, str):
            m = _HEX.match(p)
            if not m:
                raise BadParameter(f"{name}: {p!r} is not a colour; use hex like #aa3300")
            h = m.group(1)
            if len(h) == 3:
                h = "".join(c * 2 for c in h)
            rows.append([int(h[i:i + 2], 16) for i in (0, 2, 4)])
        else:
            try:
                rgb = [int(v) for v in p]
            except (TypeError, ValueError, OverflowError):
                raise BadParameter(f"{name}: {p!r:.40} is not a colour") from None
            if len(rgb) != 3 or not all(0 <= v <= 255 for v in rgb):
                raise BadParameter(f"{name}: {p!r} is not an (r, g, b) triple in 0–255")
            rows.append(rgb)
    if len(rows) > 64:
        raise BadParameter(f"{name}: at most 64 colours, got {len(rows)}")
    return torch.tensor(rows, dtype=torch.float32) / 255


def palette_hex(palette: torch.Tensor) -> str:
    return ",".join("#" + "".join(f"{round(float(v) * 255):02x}" for v in c) for c in palette)


def _sq_dist(pixels01: torch.Tensor, palette: torch.Tensor) -> torch.Tensor:
    """N×K×H×W squared distances between N×3×H×W pixels and K colours."""
    p = palette.to(pixels01.dtype).reshape(1, -1, 3, 1, 1)
    return ((pixels01.unsqueeze(1) - p) ** 2).sum(2)


def palette_distance(images: torch.Tensor, palette) -> torch.Tensor:
    """Per picture: mean over pixels of the RGB distance (in [0, 1]) to the nearest palette colour. Images
    N×3×H×W in [-1, 1]."""
    pal = parse_palette(palette) if not torch.is_tensor(palette) else palette
    x = ((images.to(torch.float32).clamp(-1, 1) + 1) / 2)
    return _sq_dist(x, pal).min(1).values.sqrt().flatten(1).mean(1)


@register_guide
class PaletteGuide(Guide):
    """Pull every pixel of x̂_0 toward its nearest palette colour (see the module doc)."""

    name = "palette"

    def __init__(self, palette, scale: float = 0.15, *, tau: float = 0.1, until: float = 0.0,
                 below: float = float("inf")):
        self.palette = parse_palette(palette) if not torch.is_tensor(palette) else palette.to(torch.float32)
        for key, v, lo, hi in (("palette scale", scale, 0.0, 1.0), ("palette tau", tau, 1e-6, 10.0),
                               ("palette until", until, 0.0, 1e6)):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not lo <= v <= hi:
                raise BadParameter(f"{key}: a number in [{lo:g}, {hi:g}], got {v!r}")
        if isinstance(below, bool) or not isinstance(below, (int, float)) or not below > until:
            raise BadParameter(f"palette below: a σ above 'until' ({until:g}), got {below!r}")
        self.scale, self.tau, self.until, self.below = float(scale), float(tau), float(until), float(below)

    def loss(self, x0: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        # in [-1, 1] units: colour c ↦ 2c - 1, so the gradient at a pixel is (pixel - nearest colour)
        pal = self.palette * 2 - 1
        d2 = _sq_dist(x0, pal)
        soft = -self.tau * torch.logsumexp(-d2 / self.tau, dim=1)
        return 0.5 * soft.flatten(1).sum(1)

    def weight(self, sigma: torch.Tensor) -> torch.Tensor:
        return ((sigma > self.until) & (sigma <= self.below)).to(torch.float64)

    def recipe(self) -> dict:
        d = {"palette": palette_hex(self.palette), "tau": self.tau, "until": self.until}
        if self.below != float("inf"):
            d["below"] = self.below  # JSON has no infinity
        return d

    @classmethod
    def from_recipe(cls, d: dict) -> "PaletteGuide":
        """The guide a recipe's ``guidance`` entry describes; one UserError line for a damaged entry."""
        try:
            return cls(d["palette"], scale=float(d["scale"]), tau=float(d.get("tau", 0.1)),
                       until=float(d.get("until", 0.0)), below=float(d.get("below", float("inf"))))
        except BadParameter:
            raise
        except (KeyError, TypeError, ValueError, OverflowError, AttributeError) as e:
            raise BadParameter(f"palette: the recipe's palette guide is damaged ({type(e).__name__}: {e})") from None
