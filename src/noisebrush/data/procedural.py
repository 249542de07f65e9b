"""ProceduralArt: the built-in art data set, drawn on the fly with Pillow (no files, no network).

Every item is a small picture from one of six scene families, with a short English caption and attribute labels:

    from noisebrush.data.procedural import ProceduralArt, decode_attrs

    ds = ProceduralArt(resolution=32, size=60000, seed=0)
    item = ds[123]
    item["image"]          # float32, 3 x 32 x 32, in [-1, 1]
    item["caption"]        # e.g. "three small blue circles on a yellow background"
    item["label"]          # scene family index, 0 .. ds.num_classes - 1
    decode_attrs(item["attrs"])   # {"family": "shapes", "colour": "blue", "colour2": "yellow", ...}
    ds.render(123, resolution=256).save("big.png")   # the same scene, larger
    images = ds.cache_uint8(workers=4)               # N x 3 x 32 x 32 uint8, all items at once

How it works. ``scene(i)`` draws a scene recipe from a ``random.Random`` seeded by an integer mix of
(seed, i) only, so an item never depends on the process, the order of access or the resolution. The recipe
stores every position and size in relative coordinates (0..1 of the picture side) together with the exact RGB
values, and rendering uses no randomness at all: it draws at resolution x supersample with ``ImageDraw`` and
box-filters down, which gives anti-aliased edges and the same picture at 32, 64 or 128 pixels.

Families and their attributes (``ATTRIBUTES`` lists the value names; -1 in ``attrs`` where one does not apply):

=========== ======================================================= =====================================
family      picture                                                  attributes besides colour / colour2
=========== ======================================================= =====================================
shapes      1-5 circles, squares or triangles on a plain background  shape, size, count, position (if one)
mondrian    a Mondrian-like grid with cells in two colours           -
landscape   a sun (day, sunset) or moon (night) over mountains,      sky, ground, position, size
            hills or the sea
flower      a flower drawn as a rose curve, 3-6 petals, on a stem    position, size, count (petals)
rings       concentric op-art circles or squares                     shape, position, count (rings)
swirl       a starry swirl with 1-3 arms in a night sky              position, size, count (arms)
=========== ======================================================= =====================================

``colour`` is always the main subject's colour (shapes, the sun or moon, petals, rings, swirl, the first grid
colour) and ``colour2`` the second one (background, ground, second grid colour). Both are named palette colours
(``COLOURS``) with a small deterministic change of shade; the nearest palette colour of the drawn subject stays
the named one.

Captions. ``scene.caption`` is each scene's one canonical caption (a fixed template per family); eval, the tests,
old runs and the shipped model depend on it, so it never changes. Training can use many phrasings of a scene
instead: :mod:`noisebrush.data.captions` (``phrase(scene, rng)``, config ``captions = "family"``).
"""
from __future__ import annotations

import concurrent.futures
import math
import multiprocessing
import operator
import random
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

import numpy as np
from PIL import Image, ImageDraw
import torch

from noisebrush.errors import BadParameter

__all__ = [
    "ATTRIBUTES",
    "COLOURS",
    "FAMILIES",
    "ProceduralArt",
    "Scene",
    "SceneSet",
    "decode_attrs",
    "make_scene",
    "render_scene",
]

RGB = tuple[int, int, int]

COLOURS: dict[str, RGB] = {
    "red": (215, 38, 42),
    "orange": (245, 140, 30),
    "yellow": (250, 212, 45),
    "green": (62, 168, 72),
    "teal": (22, 150, 150),
    "blue": (40, 90, 210),
    "purple": (128, 60, 178),
    "pink": (245, 130, 182),
    "white": (244, 242, 236),
    "black": (26, 26, 32),
}

FAMILIES: tuple[str, ...] = ("shapes", "mondrian", "landscape", "flower", "rings", "swirl")

ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "family": FAMILIES,
    "colour": tuple(COLOURS),
    "colour2": tuple(COLOURS),
    "shape": ("circle", "square", "triangle"),
    "position": ("left", "centre", "right"),
    "size": ("small", "medium", "large"),
    "count": ("one", "two", "three", "four", "five", "six"),
    "sky": ("day", "sunset", "night"),
    "ground": ("mountains", "hills", "sea"),
}

_NUMBER = ATTRIBUTES["count"]
# Pairs too close in hue to tell apart at 32 px; never used together as colour and colour2.
_CLASH = {
    frozenset(p)
    for p in [("red", "orange"), ("red", "pink"), ("orange", "yellow"), ("blue", "purple"), ("blue", "teal"),
              ("green", "teal"), ("white", "yellow"), ("black", "purple"), ("black", "blue")]
}
_POS_X = (0.27, 0.5, 0.73)  # centre of the left / centre / right third (a little inwards)

_MIN_RES, _MAX_RES = 8, 1024
_MAX_SUPERSAMPLE = 8


# ----------------------------------------------------------------------------------------------------------------
# scenes
# ----------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scene:
    """What one item shows. ``params`` is the complete drawing recipe (relative coordinates, exact RGB values);
    two scenes with equal ``params`` render the same picture."""

    family: str
    attributes: Mapping[str, str] = field(hash=False)  # the attributes that apply (family included), by name
    caption: str
    params: tuple

    @property
    def label(self) -> int:
        return FAMILIES.index(self.family)

    def attr_indices(self) -> tuple[int, ...]:
        """Index of each attribute's value in ``ATTRIBUTES`` order; -1 where it does not apply."""
        return tuple(
            values.index(self.attributes[name]) if name in self.attributes else -1
            for name, values in ATTRIBUTES.items()
        )


def _splitmix64(z: int) -> int:
    z = (z + 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    return z ^ (z >> 31)


def _item_rng(seed: int, index: int) -> random.Random:
    # An integer mix, not hash(): string hashing is salted per process and would break determinism.
    return random.Random(_splitmix64(_splitmix64(seed & 0xFFFFFFFFFFFFFFFF) ^ index))


def _shade(rgb: Sequence[float], f: float) -> RGB:
    return tuple(int(min(255, max(0, round(c * f)))) for c in rgb)  # type: ignore[return-value]


def _mix(a: Sequence[float], b: Sequence[float], t: float) -> RGB:
    """(1 - t)·a + t·b."""
    return tuple(int(round(x + (y - x) * t)) for x, y in zip(a, b))  # type: ignore[return-value]


def _colour(rng: random.Random, name: str, lo: float = 0.93, hi: float = 1.05) -> RGB:
    return _shade(COLOURS[name], rng.uniform(lo, hi))


def _pick(rng: random.Random, options: Sequence[str], avoid: str | None = None) -> str:
    if avoid is not None:
        options = [c for c in options if c != avoid and frozenset((c, avoid)) not in _CLASH]
    return rng.choice(options)


def _freeze(x):
    """Lists → tuples, so that a recipe can be hashed and compared."""
    return tuple([_freeze(v) if type(v) in (list, tuple) else v for v in x])  # noqa: E721


def _scene(family: str, attrs: dict[str, str], caption: str, params: dict) -> Scene:
    return Scene(family, {"family": family, **attrs}, caption, _freeze(sorted(params.items())))


def _a(word: str) -> str:
    return ("an " if word[0] in "aeiou" else "a ") + word


def _where(pos: str) -> str:
    return "in the centre" if pos == "centre" else f"on the {pos}"


# A shape's size is its extent: the radius of the circle it fits in (a square's half-diagonal, a triangle's
# circumradius). Circles are drawn a little inside it so the three shapes look about as big as each other.
_SHAPE_R = (0.11, 0.15, 0.2)
_CIRCLE_SCALE = 0.88
_SHAPE_GAP = 0.06  # at least this much background between two shapes (2 px at 32 px)
# Layouts for several shapes, in unit coordinates that are stretched over the free area and then jittered.
_LAYOUTS = {
    2: [((0, .5), (1, .5)), ((0, 0), (1, 1)), ((0, .3), (1, .7))],
    3: [((0, 1), (1, 1), (.5, 0)), ((0, .5), (.5, .5), (1, .5)), ((0, 0), (.5, .5), (1, 1)),
        ((0, .2), (1, 0), (.4, 1))],
    4: [((0, 0), (1, 0), (0, 1), (1, 1)), ((.5, 0), (0, .5), (1, .5), (.5, 1)), ((0, 0), (.6, .1), (.4, .9), (1, 1))],
    5: [((0, 0), (1, 0), (0, 1), (1, 1), (.5, .5)), ((0, .15), (.5, 0), (1, .15), (.25, .9), (.75, .9))],
}


def _layout(rng: random.Random, count: int, ext: float) -> list[tuple[float, float]]:
    """``count`` centres for shapes of extent ``ext``, inside the picture and _SHAPE_GAP apart."""
    lo, hi = ext + 0.03, 1 - ext - 0.03
    span, sep = hi - lo, 2 * ext + _SHAPE_GAP

    def fits(pts):
        return all(math.dist(p, q) >= sep for k, p in enumerate(pts) for q in pts[:k])

    options = [t for t in _LAYOUTS[count] if fits([(lo + u * span, lo + v * span) for u, v in t])]
    template = rng.choice(options)
    flip_x, flip_y, swap = rng.random() < 0.5, rng.random() < 0.5, rng.random() < 0.5
    tries = 12
    for k in range(tries):
        last = k == tries - 1  # the plain template stretched over the whole free area always fits
        scale = 1.0 if last else rng.uniform(0.75, 1.0)
        ox, oy = (0.0, 0.0) if last else (rng.uniform(0, 1 - scale) * span, rng.uniform(0, 1 - scale) * span)
        jit = 0.0 if last else 0.06
        pts = []
        for u, v in template:
            u, v = (1 - u if flip_x else u), (1 - v if flip_y else v)
            u, v = (v, u) if swap else (u, v)
            x = lo + ox + u * scale * span + rng.uniform(-jit, jit)
            y = lo + oy + v * scale * span + rng.uniform(-jit, jit)
            pts.append((min(max(x, lo), hi), min(max(y, lo), hi)))
        if fits(pts):
            return pts
    raise AssertionError("unreachable: the last layout try always fits")


def _gen_shapes(rng: random.Random) -> Scene:
    colour = _pick(rng, list(COLOURS))
    colour2 = _pick(rng, list(COLOURS), avoid=colour)
    shape = rng.choice(ATTRIBUTES["shape"])
    size = rng.randrange(3)
    count = rng.randint(1, (5, 4, 3)[size])  # big shapes come in small numbers, so they fit
    attrs = {"colour": colour, "colour2": colour2, "shape": shape, "size": ATTRIBUTES["size"][size],
             "count": _NUMBER[count - 1]}
    ext = _SHAPE_R[size] * 1.05  # the largest a jittered shape can be
    if count == 1:
        pos = rng.randrange(3)
        e = ext + 0.03
        centres = [(min(max(_POS_X[pos] + rng.uniform(-0.04, 0.04), e), 1 - e), rng.uniform(0.32, 0.68))]
        attrs["position"] = ATTRIBUTES["position"][pos]
    else:
        centres = _layout(rng, count, ext)
    objects = [(x, y, _SHAPE_R[size] * rng.uniform(0.95, 1.05), rng.uniform(-0.4, 0.4)) for x, y in centres]
    if count == 1:
        caption = f"a {attrs['size']} {colour} {shape} {_where(attrs['position'])} of {_a(colour2)} background"
    else:
        caption = f"{_NUMBER[count - 1]} {attrs['size']} {colour} {shape}s on {_a(colour2)} background"
    params = {"fg": _colour(rng, colour), "bg": _colour(rng, colour2), "shape": shape, "objects": objects,
              "light": rng.uniform(0.04, 0.12)}
    return _scene("shapes", attrs, caption, params)


_MONDRIAN_COLOURS = ("red", "yellow", "blue", "orange", "green", "teal", "purple", "pink")


def _grid(v: float) -> float:
    """Cuts fall on the 32-px pixel grid, so lines stay crisp and land on the same pixels at 32, 64, 128..."""
    return round(v * 32) / 32


def _gen_mondrian(rng: random.Random) -> Scene:
    colour = rng.choice(_MONDRIAN_COLOURS)
    colour2 = _pick(rng, _MONDRIAN_COLOURS, avoid=colour)

    def split(rect, depth):
        x0, y0, x1, y1 = rect
        w, h = x1 - x0, y1 - y0
        if depth > 0 and (w > 0.3 or h > 0.3) and (depth >= 3 or rng.random() < 0.75):
            vertical = w > h if abs(w - h) > 0.15 else rng.random() < 0.5
            if vertical and w > 0.3:
                c = _grid(x0 + w * rng.uniform(0.3, 0.7))
                return split((x0, y0, c, y1), depth - 1) + split((c, y0, x1, y1), depth - 1)
            if h > 0.3:
                c = _grid(y0 + h * rng.uniform(0.3, 0.7))
                return split((x0, y0, x1, c), depth - 1) + split((x0, c, x1, y1), depth - 1)
        return [rect]

    cells = split((0.0, 0.0, 1.0, 1.0), 3)
    area = [(c[2] - c[0]) * (c[3] - c[1]) for c in cells]
    order = sorted(range(len(cells)), key=lambda k: -area[k])
    # colour goes to a big cell, colour2 to another reasonably big one, so both show at 32 px
    big = [k for k in order if area[k] >= 0.08] or order[:1]
    k1 = rng.choice(big)
    rest = [k for k in order if k != k1 and area[k] >= 0.05] or [k for k in order if k != k1][:1]
    k2 = rng.choice(rest)
    fills: list[RGB | None] = [None] * len(cells)
    fills[k1], fills[k2] = _colour(rng, colour), _colour(rng, colour2)
    spare = [k for k in order if fills[k] is None and area[k] >= 0.03]
    if spare and rng.random() < 0.4:  # sometimes a second, smaller cell in the main colour
        fills[rng.choice(spare)] = _colour(rng, colour)
    paper = _colour(rng, "white", 0.97, 1.02)
    rects = [(c, f if f is not None else paper) for c, f in zip(cells, fills)]
    attrs = {"colour": colour, "colour2": colour2}
    caption = f"a mondrian {rng.choice(('grid', 'painting'))} in {colour} and {colour2}"
    return _scene("mondrian", attrs, caption, {"rects": rects, "line": 1 / 32,
                                               "ink": _colour(rng, "black", 0.9, 1.0)})


_SUN_R = (0.08, 0.11, 0.15)


def _ridge_points(ridge) -> list[tuple[float, float]]:
    """A ridge is a list of (x, y) peaks and valleys, or (base, amplitude, frequency, phase) of rolling hills."""
    if isinstance(ridge[0], (tuple, list)):
        return list(ridge)
    base, amp, freq, phase = ridge
    return [(x, base - amp * (0.5 + 0.5 * math.sin(2 * math.pi * (freq * x + phase))))
            for x in (k / 24 for k in range(25))]


def _ridge_top(ridge) -> float:
    if isinstance(ridge[0], (tuple, list)):
        return min(y for _, y in ridge)
    base, amp, _, _ = ridge
    return base - amp


_SKY_SUN = {"day": ("yellow", "white", "orange"), "sunset": ("red", "orange", "yellow", "pink"),
            "night": ("white", "yellow")}
_GROUND_COLOURS = {"mountains": ("purple", "blue", "teal", "green", "black"),
                   "hills": ("green", "teal", "purple", "black"), "sea": ("blue", "teal", "purple")}


def _gen_landscape(rng: random.Random) -> Scene:
    sky = rng.choice(ATTRIBUTES["sky"])
    ground = rng.choice(ATTRIBUTES["ground"])
    colour = rng.choice(_SKY_SUN[sky])
    colour2 = _pick(rng, _GROUND_COLOURS[ground], avoid=colour)
    size, pos = rng.randrange(3), rng.randrange(3)
    r = _SUN_R[size] * rng.uniform(0.95, 1.05)
    horizon = rng.uniform(0.6, 0.72)  # where the near ridge's valleys meet the sky (the sea's horizon)
    sky_stops = {
        "day": [(0.0, _mix((52, 110, 196), (0, 0, 0), rng.uniform(0, 0.1))), (1.0, (178, 212, 236))],
        "sunset": [(0.0, (58, 34, 96)), (rng.uniform(0.45, 0.6), (214, 96, 96)), (1.0, (250, 186, 110))],
        "night": [(0.0, (8, 12, 34)), (1.0, _mix((38, 50, 96), (60, 40, 100), rng.uniform(0, 1)))],
    }[sky]
    # ridges: a far, hazy one, then the near one in colour2 (see _ridge_points)
    ridges = []
    g = _colour(rng, colour2)
    haze = sky_stops[-1][1]
    for far in (True, False):
        if ground == "sea":
            break
        base = horizon - (0.08 if far else 0.0)
        pts: list | tuple = []
        if ground == "mountains":  # zig-zag peaks, each peak's height and place jittered
            n = rng.randint(2, 4)
            amp = rng.uniform(0.18, 0.24) if far else rng.uniform(0.24, 0.32)
            step = 1.3 / (2 * n)
            for k in range(2 * n + 1):
                px = -0.15 + k * step
                if k % 2 == 1:
                    pts.append((px + rng.uniform(-0.3, 0.3) * step, base - amp * rng.uniform(0.7, 1.0)))
                else:
                    pts.append((px, base - amp * rng.uniform(0.0, 0.25)))
        else:  # smooth rolling hills: (base, amplitude, frequency, phase) of a sine, drawn by the renderer
            amp = 0.07 if far else 0.09
            pts = (base, amp, rng.uniform(0.8, 1.6), rng.uniform(0, 1))
        ridges.append((pts, _mix(g, haze, 0.5) if far else g))
    top = min([_ridge_top(pts) for pts, _ in ridges], default=horizon)  # the ground's highest point
    x = min(max(_POS_X[pos] + rng.uniform(-0.04, 0.04), r + 0.03), 1 - r - 0.03)
    if sky == "sunset":  # low, touching the ground, but mostly visible
        y = top - r * rng.uniform(0.4, 1.3)
    else:
        y = rng.uniform(r + 0.06, max(r + 0.06, top - 1.4 * r))
    params = {"sky": sky_stops, "sun": (x, y, r), "sun_rgb": _colour(rng, colour, 0.96, 1.03),
              "glow": rng.uniform(1.5, 1.9), "ridges": ridges, "sea": ground == "sea", "horizon": horizon,
              "sea_rgb": g, "crescent": rng.uniform(0.75, 1.0) if sky == "night" and size
              and rng.random() < 0.5 else 0.0, "tilt": rng.uniform(-0.8, 0.8)}
    attrs = {"colour": colour, "colour2": colour2, "sky": sky, "ground": ground,
             "position": ATTRIBUTES["position"][pos], "size": ATTRIBUTES["size"][size]}
    body = "moon" if sky == "night" else "sun"
    over = f"a {colour2} sea" if ground == "sea" else f"{colour2} {ground}"
    verb = " setting" if sky == "sunset" else ""
    night = " at night" if sky == "night" else ""
    caption = f"a {attrs['size']} {colour} {body}{verb} {_where(attrs['position'])} over {over}{night}"
    return _scene("landscape", attrs, caption, params)


_FLOWER_R = (0.2, 0.27, 0.34)
_FLOWER_BG = ("blue", "teal", "purple", "black", "white", "yellow", "pink", "green", "orange")
_PETALS = ("red", "orange", "yellow", "pink", "purple", "white", "blue")


def _gen_flower(rng: random.Random) -> Scene:
    colour = rng.choice(_PETALS)
    colour2 = _pick(rng, _FLOWER_BG, avoid=colour)
    size, pos = rng.randrange(3), rng.randrange(3)
    petals = rng.randint(3, 6)
    r = _FLOWER_R[size] * rng.uniform(0.95, 1.05)
    x = min(max(_POS_X[pos] + rng.uniform(-0.03, 0.03), 0.8 * r + 0.02), 1 - 0.8 * r - 0.02)
    y = max(rng.uniform(0.36, 0.5), 0.85 * r + 0.03)
    fg = _colour(rng, colour)
    heart = _colour(rng, "orange" if colour in ("yellow", "white") else "yellow")
    if colour == "orange":
        heart = (120, 62, 24)  # brown
    stem = (46, 118, 52) if colour2 not in ("green", "teal") else _shade(COLOURS[colour2], 0.55)
    params = {"bg": _colour(rng, colour2), "fg": fg, "inner": _mix(fg, (0, 0, 0), 0.14), "heart": heart,
              "stem": stem, "centre": (x, y), "r": r, "petals": petals, "angle": rng.uniform(0, 2 * math.pi),
              "fat": rng.uniform(0.45, 0.65), "lean": rng.uniform(-0.08, 0.08), "leaf": rng.uniform(0.35, 0.6)}
    attrs = {"colour": colour, "colour2": colour2, "position": ATTRIBUTES["position"][pos],
             "size": ATTRIBUTES["size"][size], "count": _NUMBER[petals - 1]}
    caption = (f"a {attrs['size']} {colour} flower with {_NUMBER[petals - 1]} petals "
               f"{_where(attrs['position'])} on {colour2}")
    return _scene("flower", attrs, caption, params)


def _gen_rings(rng: random.Random) -> Scene:
    colour = rng.choice(list(COLOURS))
    colour2 = _pick(rng, list(COLOURS), avoid=colour)
    shape = rng.choice(("circle", "square"))
    pos = rng.randrange(3)
    n = rng.randint(2, 4)
    outer = rng.uniform(0.42, 0.5) + 0.04 * n  # outer radius of the last ring
    # 2n bands alternating colour2 / colour from the middle out, widths jittered for an op-art feel
    widths = [rng.uniform(0.8, 1.2) for _ in range(2 * n)]
    radii = [sum(widths[: k + 1]) / sum(widths) * outer for k in range(2 * n)]
    x = _POS_X[pos] + rng.uniform(-0.04, 0.04)
    y = rng.uniform(0.4, 0.6)
    drift = (rng.uniform(-0.012, 0.012), rng.uniform(-0.012, 0.012))  # each ring's centre shifts a little
    params = {"fg": _colour(rng, colour), "bg": _colour(rng, colour2), "shape": shape, "centre": (x, y),
              "radii": radii, "drift": drift, "angle": rng.uniform(-0.4, 0.4)}
    attrs = {"colour": colour, "colour2": colour2, "shape": shape, "position": ATTRIBUTES["position"][pos],
             "count": _NUMBER[n - 1]}
    noun = "rings" if shape == "circle" else "squares"
    where = "" if pos == 1 else f", centred on the {ATTRIBUTES['position'][pos]}"
    caption = f"{_NUMBER[n - 1]} concentric {colour} {noun} on {colour2}{where}"
    return _scene("rings", attrs, caption, params)


_SWIRL_R = (0.25, 0.32, 0.39)


def _gen_swirl(rng: random.Random) -> Scene:
    colour = rng.choice(("yellow", "white", "orange", "pink"))
    colour2 = _pick(rng, ("blue", "black", "purple", "teal"), avoid=colour)
    size, pos = rng.randrange(3), rng.randrange(3)
    arms = rng.randint(1, 3)  # more arms blur into rings at 32 px
    r = _SWIRL_R[size] * rng.uniform(0.95, 1.05)
    x = min(max(_POS_X[pos] + rng.uniform(-0.04, 0.04), 0.85 * r), 1 - 0.85 * r)
    y = rng.uniform(0.4, 0.6)
    stars = []
    for _ in range(rng.randint(2, 4)):
        for _try in range(30):  # keep stars off the swirl
            sx, sy = rng.uniform(0.06, 0.94), rng.uniform(0.06, 0.94)
            if math.hypot(sx - x, sy - y) > r + 0.08 and all(math.hypot(sx - a, sy - b) > 0.15 for a, b in stars):
                stars.append((sx, sy))
                break
    bg = _colour(rng, colour2)
    params = {"bg": bg, "fg": _colour(rng, colour), "centre": (x, y), "r": r, "arms": arms,
              "turns": rng.uniform(*((1.2, 1.6), (0.9, 1.2), (0.65, 0.9))[arms - 1]),
              "spin": rng.choice((-1, 1)), "angle": rng.uniform(0, 2 * math.pi), "width": rng.uniform(0.048, 0.056),
              "stars": stars}
    attrs = {"colour": colour, "colour2": colour2, "position": ATTRIBUTES["position"][pos],
             "size": ATTRIBUTES["size"][size], "count": _NUMBER[arms - 1]}
    arm_s = "arm" if arms == 1 else "arms"
    caption = (f"a {attrs['size']} {colour} swirl with {_NUMBER[arms - 1]} {arm_s} "
               f"{_where(attrs['position'])} of a {colour2} starry sky")
    return _scene("swirl", attrs, caption, params)


_GENERATORS = {"shapes": _gen_shapes, "mondrian": _gen_mondrian, "landscape": _gen_landscape,
               "flower": _gen_flower, "rings": _gen_rings, "swirl": _gen_swirl}


def make_scene(seed: int, index: int) -> Scene:
    """The scene of item ``index`` in the data set with this ``seed`` (any non-negative index)."""
    rng = _item_rng(seed, index)
    return _GENERATORS[rng.choice(FAMILIES)](rng)


# ----------------------------------------------------------------------------------------------------------------
# rendering (no randomness below this line)
# ----------------------------------------------------------------------------------------------------------------


def _gradient(w: int, stops: Sequence[tuple[float, Sequence[int]]]) -> Image.Image:
    """A vertical gradient through (position, rgb) stops, as a w x w RGB image."""
    t = (np.arange(w) + 0.5) / w
    pos = [p for p, _ in stops]
    col = np.stack([np.interp(t, pos, [c[k] for _, c in stops]) for k in range(3)], axis=-1)
    col = np.round(col).astype(np.uint8)[:, None, :]
    return Image.fromarray(np.ascontiguousarray(np.broadcast_to(col, (w, w, 3))), "RGB")


def _plain(w: int, rgb: RGB, light: float = 0.06) -> Image.Image:
    """A flat background, lit a little from the top so it does not look dead."""
    return _gradient(w, [(0.0, _mix(rgb, (255, 255, 255), light)), (1.0, _shade(rgb, 1 - light))])


def _disc(d: ImageDraw.ImageDraw, x: float, y: float, r: float, fill) -> None:
    d.ellipse((x - r, y - r, x + r, y + r), fill=fill)


def _shape_points(shape: str, x: float, y: float, ext: float, angle: float) -> list[float]:
    """Corners of a square or an upward triangle that fits in the circle of radius ``ext`` around (x, y)."""
    n, base = (4, math.pi / 4) if shape == "square" else (3, -math.pi / 2)
    out: list[float] = []
    for k in range(n):
        a = base + angle + 2 * math.pi * k / n
        out += [x + ext * math.cos(a), y + ext * math.sin(a)]
    return out


def _draw_shapes(p: dict, w: int, s: int) -> Image.Image:
    img = _plain(w, p["bg"], p["light"])
    d = ImageDraw.Draw(img, "RGBA")
    shadow = (0, 0, 0, 60)
    for offset, fill in ((0.018, shadow), (0.0, p["fg"])):
        for x, y, r, a in p["objects"]:
            x, y, r, o = x * w, y * w, r * w, offset * w
            if p["shape"] == "circle":
                _disc(d, x + o, y + o, r * _CIRCLE_SCALE, fill)
            else:
                d.polygon([v + o for v in _shape_points(p["shape"], x, y, r, a)], fill=fill)
    return img


def _draw_mondrian(p: dict, w: int, s: int) -> Image.Image:
    # Edges and lines snap to the output pixel grid (s = supersample): crisp black lines even at 32 px.
    def snap(v: float) -> int:
        return round(v * w / s) * s

    img = Image.new("RGB", (w, w), p["rects"][0][1])
    d = ImageDraw.Draw(img)
    for (x0, y0, x1, y1), rgb in p["rects"]:
        d.rectangle((snap(x0), snap(y0), snap(x1) - 1, snap(y1) - 1), fill=tuple(rgb))
    line = max(1, round(p["line"] * w / s))
    lo, hi = 0, line * s - 1  # a line starts at its edge (not centred on it), like a 32-px line does
    ink = tuple(p["ink"])
    for (x0, y0, x1, y1), _ in p["rects"]:  # black lines on the inner cell edges (none along the border)
        for x in (x0, x1):
            if 0 < x < 1:
                d.rectangle((snap(x) - lo, snap(y0) - lo, snap(x) + hi, snap(y1) + hi), fill=ink)
        for y in (y0, y1):
            if 0 < y < 1:
                d.rectangle((snap(x0) - lo, snap(y) - lo, snap(x1) + hi, snap(y) + hi), fill=ink)
    return img


def _draw_landscape(p: dict, w: int, s: int) -> Image.Image:
    img = _gradient(w, p["sky"])
    d = ImageDraw.Draw(img, "RGBA")
    x, y, r = (v * w for v in p["sun"])
    rgb = tuple(p["sun_rgb"])
    _disc(d, x, y, r * p["glow"], rgb + (50,))
    _disc(d, x, y, r * (1 + p["glow"]) / 2, rgb + (60,))
    if p["crescent"]:
        # a crescent: the disc minus a shifted disc, cut through a mask so the sky gradient shows behind
        mask = Image.new("L", (w, w), 0)
        md = ImageDraw.Draw(mask)
        _disc(md, x, y, r, 255)
        c = p["crescent"] * r
        _disc(md, x + c * math.cos(p["tilt"]), y - c * math.sin(p["tilt"]) * 0.5, r, 0)
        img.paste(rgb, (0, 0, w, w), mask)
    else:
        _disc(d, x, y, r, rgb)
    for pts, col in p["ridges"]:
        poly = [v * w for pt in _ridge_points(pts) for v in pt] + [1.1 * w, 1.1 * w, -0.1 * w, 1.1 * w]
        d.polygon(poly, fill=tuple(col))
    if p["sea"]:
        h = p["horizon"]
        sea = _gradient(w, [(0.0, _mix(p["sea_rgb"], (255, 255, 255), 0.1)), (1.0, _shade(p["sea_rgb"], 0.85))])
        top = round(h * w)
        img.paste(sea.crop((0, 0, w, w - top)), (0, top))
        d = ImageDraw.Draw(img, "RGBA")
        # the sun's reflection on the water: bars that narrow away from the horizon
        for k in range(5):
            by = (h + 0.03 + 0.06 * k) * w
            half = r * (1.1 - 0.17 * k)
            d.rectangle((x - half, by, x + half, by + 0.022 * w), fill=rgb + (150,))
    return img


def _draw_flower(p: dict, w: int, s: int) -> Image.Image:
    img = _plain(w, p["bg"], 0.08)
    d = ImageDraw.Draw(img)
    (x, y), r = p["centre"], p["r"]
    x, y, r = x * w, y * w, r * w
    # stem (a slight curve) and one leaf
    bottom = (x + p["lean"] * w, 1.02 * w)
    mid = ((x + bottom[0]) / 2 + 0.04 * w * (1 if p["lean"] > 0 else -1), (y + bottom[1]) / 2)
    d.line([(x, y), mid, bottom], fill=tuple(p["stem"]), width=max(1, round(0.035 * w)), joint="curve")
    ly = y + (bottom[1] - y) * p["leaf"]
    lx = mid[0]
    side = -1 if p["lean"] > 0 else 1
    leaf = [(lx, ly), (lx + side * 0.09 * w, ly - 0.06 * w), (lx + side * 0.16 * w, ly - 0.02 * w),
            (lx + side * 0.08 * w, ly + 0.02 * w)]
    d.polygon([v for pt in leaf for v in pt], fill=tuple(p["stem"]))
    # petals: the rose curve r(θ) = R·|cos(nθ/2)|^fat has n petals for any n; fat < 1 makes them plump
    theta = np.linspace(0.0, 2 * np.pi, 241)[:-1]
    rho = np.abs(np.cos(p["petals"] * theta / 2)) ** p["fat"]
    for scale, col in ((1.0, p["fg"]), (0.55, p["inner"])):
        px = x + scale * r * rho * np.cos(theta + p["angle"])
        py = y + scale * r * rho * np.sin(theta + p["angle"])
        d.polygon(np.stack([px, py], 1).ravel().tolist(), fill=tuple(col))
    _disc(d, x, y, 0.17 * r, tuple(p["heart"]))
    return img


def _draw_rings(p: dict, w: int, s: int) -> Image.Image:
    img = _plain(w, p["bg"], 0.05)
    d = ImageDraw.Draw(img)
    x, y = p["centre"]
    radii = p["radii"]
    fg, bg = tuple(p["fg"]), tuple(p["bg"])
    # outside in: band k (counted from the middle, 0-based) is colour when k is odd
    for k in range(len(radii) - 1, -1, -1):
        cx, cy = (x + p["drift"][0] * k) * w, (y + p["drift"][1] * k) * w
        rk = radii[k] * w
        fill = fg if k % 2 == 1 else bg
        if p["shape"] == "circle":
            _disc(d, cx, cy, rk, fill)
        else:
            d.polygon(_shape_points("square", cx, cy, rk * math.sqrt(2), p["angle"]), fill=fill)
    return img


def _draw_swirl(p: dict, w: int, s: int) -> Image.Image:
    img = _gradient(w, [(0.0, _shade(p["bg"], 0.75)), (1.0, _mix(p["bg"], (255, 255, 255), 0.1))])
    d = ImageDraw.Draw(img, "RGBA")
    (x, y), r = p["centre"], p["r"]
    fg = tuple(p["fg"])
    width = p["width"] * w
    t = np.linspace(0.0, 1.0, 61)
    rad = r * w * (0.1 + 0.9 * t)
    pieces = 6
    for a in range(p["arms"]):
        ang = p["angle"] + 2 * np.pi * a / p["arms"] + p["spin"] * 2 * np.pi * p["turns"] * t
        px, py = x * w + rad * np.cos(ang), y * w + rad * np.sin(ang)
        # a faint halo stroke just outside the arm, then the arm itself, thickening outwards like a brush stroke
        for halo in (True, False):
            for k in range(pieces):
                lo, hi = k * 60 // pieces, (k + 1) * 60 // pieces + 1
                wk = width * (0.45 + 0.55 * (k + 1) / pieces)
                if halo:
                    g = 1.18  # 18% further out than the arm
                    pts = np.stack([x * w + (px[lo:hi] - x * w) * g, y * w + (py[lo:hi] - y * w) * g], 1)
                    d.line(pts.ravel().tolist(), fill=fg + (70,), width=max(1, round(0.5 * wk)), joint="curve")
                else:
                    pts = np.stack([px[lo:hi], py[lo:hi]], 1)
                    d.line(pts.ravel().tolist(), fill=fg, width=max(1, round(wk)), joint="curve")
                    _disc(d, px[hi - 1], py[hi - 1], wk / 2, fg)
    _disc(d, x * w, y * w, 0.09 * r * w + width / 2, fg)
    for sx, sy in p["stars"]:
        _disc(d, sx * w, sy * w, 0.05 * w, fg + (55,))
        _disc(d, sx * w, sy * w, 0.025 * w, fg)
    return img


_RENDERERS = {"shapes": _draw_shapes, "mondrian": _draw_mondrian, "landscape": _draw_landscape,
              "flower": _draw_flower, "rings": _draw_rings, "swirl": _draw_swirl}


def render_scene(scene: Scene, resolution: int, supersample: int = 4) -> Image.Image:
    """Draw ``scene`` at resolution x supersample and box-filter it down to resolution x resolution (RGB)."""
    w = resolution * supersample
    img = _RENDERERS[scene.family](dict(scene.params), w, supersample)
    if supersample > 1:
        img = img.reduce(supersample)  # exact box filter: each output pixel is the mean of an s x s block
    return img


# ----------------------------------------------------------------------------------------------------------------
# the data set
# ----------------------------------------------------------------------------------------------------------------


def _int_param(name: str, value, lo: int, hi: int | None = None) -> int:
    try:
        if isinstance(value, bool):
            raise TypeError
        v = operator.index(value)
    except TypeError:
        raise BadParameter(f"{name} must be an integer, got {value!r}") from None
    if v < lo or (hi is not None and v > hi):
        bound = f"between {lo} and {hi}" if hi is not None else f"at least {lo}"
        raise BadParameter(f"{name} must be {bound}, got {v}")
    return v


def decode_attrs(attrs) -> dict[str, str]:
    """Attribute indices (a tensor or sequence in ``ATTRIBUTES`` order) → {name: value} for those that apply."""
    values = attrs.tolist() if hasattr(attrs, "tolist") else list(attrs)
    if len(values) != len(ATTRIBUTES):
        raise BadParameter(f"attrs must have {len(ATTRIBUTES)} entries, got {len(values)}")
    return {name: names[v] for (name, names), v in zip(ATTRIBUTES.items(), values) if v >= 0}


def _to_uint8_chw(img: Image.Image) -> np.ndarray:
    return np.asarray(img, dtype=np.uint8).transpose(2, 0, 1)


def _render_range(seed: int, resolution: int, supersample: int, start: int, stop: int) -> np.ndarray:
    """Items start..stop-1 as a uint8 N x 3 x H x W array (a top-level function so worker processes can run it)."""
    out = np.empty((stop - start, 3, resolution, resolution), dtype=np.uint8)
    for k, i in enumerate(range(start, stop)):
        out[k] = _to_uint8_chw(render_scene(make_scene(seed, i), resolution, supersample))
    return out


def item_index(ds, i) -> int:
    """``i`` as an index into the data set ``ds`` (it has ``size``): TypeError / IndexError as a sequence's."""
    name = type(ds).__name__
    try:
        i = operator.index(i)
    except TypeError:
        raise TypeError(f"{name} indices must be integers, not {type(i).__name__}") from None
    if not 0 <= i < ds.size:
        raise IndexError(f"index {i} is out of range for {name} of size {ds.size}")
    return i


class SceneSet(torch.utils.data.Dataset):
    """What ProceduralArt and ProceduralClips share: ``size`` items of ``seed``, each a scene of
    :func:`make_scene` (item i depends only on (seed, i)), drawn at ``resolution`` with ``supersample``."""

    def __init__(self, resolution: int, size: int, seed: int, supersample: int):
        self.resolution = _int_param("resolution", resolution, _MIN_RES, _MAX_RES)
        self.size = _int_param("size", size, 1)
        self.seed = _int_param("seed", seed, -(2**63), 2**64 - 1)
        self.supersample = _int_param("supersample", supersample, 1, _MAX_SUPERSAMPLE)

    def __len__(self) -> int:
        return self.size

    @property
    def num_classes(self) -> int:
        return len(FAMILIES)

    @property
    def classes(self) -> list[str]:
        return list(FAMILIES)

    def _index(self, i) -> int:
        return item_index(self, i)

    def scene(self, i: int) -> Scene:
        """The (still) scene of item i."""
        return make_scene(self.seed, self._index(i))


def render_in_chunks(out: torch.Tensor, render, args: tuple, chunk: int, workers: int,
                     progress: Callable[[int, int], None] | None = None) -> torch.Tensor:
    """Fill ``out`` (items 0..len(out)-1) with ``render(*args, start, stop)`` blocks of ``chunk`` items, in
    ``workers`` spawned processes when more than one (``render`` must be a top-level function); ``progress(done,
    total)`` after each block. The result does not depend on ``workers``: each item depends only on its index."""
    n = out.shape[0]
    ranges = [(s, min(s + chunk, n)) for s in range(0, n, chunk)]
    done = 0
    if workers == 1 or len(ranges) <= 1:
        results = (render(*args, s, e) for s, e in ranges)
        pool = None
    else:
        # spawn, not fork: forking a process that has started torch's thread pools can hang
        pool = concurrent.futures.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
        results = pool.map(render, *zip(*[args + r for r in ranges]))
    try:
        for (s, e), block in zip(ranges, results):
            out[s:e] = torch.from_numpy(block)
            done += e - s
            if progress is not None:
                progress(done, n)
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    return out


class ProceduralArt(SceneSet):
    """``size`` procedural art pictures with captions and attribute labels; item i depends only on (seed, i).

    ``resolution``: side in pixels (8..1024). ``supersample``: drawing scale before the box filter (1..8;
    1 gives aliased edges). Items are rendered on demand; ``cache_uint8`` renders many at once.
    """

    def __init__(self, resolution: int = 32, size: int = 60000, seed: int = 0, supersample: int = 4):
        super().__init__(resolution, size, seed, supersample)

    def __repr__(self) -> str:
        return (f"ProceduralArt(resolution={self.resolution}, size={self.size}, seed={self.seed}, "
                f"supersample={self.supersample})")

    def caption(self, i: int) -> str:
        return self.scene(i).caption

    def render(self, i: int, resolution: int | None = None) -> Image.Image:
        """Item i as an RGB picture, at this data set's resolution or another one (same scene)."""
        res = self.resolution if resolution is None else _int_param("resolution", resolution, _MIN_RES, _MAX_RES)
        return render_scene(self.scene(i), res, self.supersample)

    def __getitem__(self, i) -> dict:
        i = self._index(i)
        scene = make_scene(self.seed, i)
        img = render_scene(scene, self.resolution, self.supersample)
        x = torch.from_numpy(_to_uint8_chw(img).copy()).float().div_(127.5).sub_(1.0)
        return {"image": x, "caption": scene.caption, "label": scene.label,
                "attrs": torch.tensor(scene.attr_indices(), dtype=torch.long), "index": i}

    def cache_uint8(self, n: int | None = None, progress: Callable[[int, int], None] | None = None,
                    workers: int = 1, chunk: int = 512) -> torch.Tensor:
        """Items 0..n-1 (all by default) as a uint8 tensor N x 3 x H x W (0..255; x / 127.5 - 1 gives the
        float images). ``progress(done, total)`` is called after each chunk; ``workers`` > 1 renders in that many
        spawned processes (the result is identical, since each item depends only on (seed, i)); as with any
        spawn pool, a script that uses them needs the ``if __name__ == "__main__":`` guard."""
        n = self.size if n is None else _int_param("n", n, 0, self.size)
        workers = _int_param("workers", workers, 1)
        chunk = _int_param("chunk", chunk, 1)
        out = torch.empty((n, 3, self.resolution, self.resolution), dtype=torch.uint8)
        return render_in_chunks(out, _render_range, (self.seed, self.resolution, self.supersample), chunk, workers,
                                progress)
