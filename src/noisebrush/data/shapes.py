"""ProceduralShapes: composite 3-D objects built from primitives, with captions that name their parts and
proportions, as truncated signed-distance grids — the data of the shape model (issue 17).

    from noisebrush.data.shapes import ProceduralShapes, make_shape, sdf_grid
    ds = ProceduralShapes(resolution=32, size=20000, seed=0)
    item = ds[7]
    item["grid"]            # float32, 1 x 32 x 32 x 32, the truncated SDF / TRUNCATION in [-1, 1], indexed [z, y, x]
    item["caption"]         # "a tall wide round table with three legs"
    ds.shape(7).attributes  # {"category": "table", "height": "tall", "width": "wide", "plan": "round", "legs": "three"}

Eleven categories (``CATEGORIES``): chairs (with or without arms), tables (round or square top, three or four
legs), lamps, vases, cups (with or without a handle), trees (round or cone crown), houses (flat, gabled or pointed
roof), rockets (three or four fins), towers (round or square), mushrooms and bottles; each is short or tall and
narrow or wide, drawn within its category's ranges. The caption names every attribute the shape has
(``SHAPE_ATTRIBUTES``; -1 in ``attr_indices`` where a category has no such part).

Geometry. Space is [-1, 1]³ with y up; every object stands on the plane y = ``FLOOR``. A shape is a union /
difference of analytic signed distances (boxes, capped cylinders, ellipsoids, solids of revolution of a 2-D
profile, extruded polygons, tori), exact or (ellipsoid, unions) a bound that is exact on the surface, so the zero
level set is the object and marching cubes closes it. The grid holds sdf / ``TRUNCATION`` clipped to [-1, 1] at the
centres of resolution³ cells (a truncated SDF, as SDFusion and SDF-Diffusion train on), float32, indexed [z, y, x].

Determinism. Shape i of ``seed`` comes from a ``random.Random`` seeded by an integer mix of (seed, i) and a salt of
its own (never ``hash()``): the same (seed, i) gives the same shape in any process, order or resolution.
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Mapping

import numpy as np
import torch

from noisebrush.data.procedural import _int_param, _splitmix64, item_index
from noisebrush.io.mesh import grid_points

__all__ = ["CATEGORIES", "SHAPE_ATTRIBUTES", "FLOOR", "TRUNCATION", "ShapeScene", "ProceduralShapes", "make_shape",
           "sdf_grid"]

CATEGORIES = ("chair", "table", "lamp", "vase", "cup", "tree", "house", "rocket", "tower", "mushroom", "bottle")
SHAPE_ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "category": CATEGORIES,
    "height": ("short", "tall"),
    "width": ("narrow", "wide"),
    "plan": ("round", "square"),            # a table's top, a tower's body
    "legs": ("three", "four"),              # a table's
    "arms": ("no", "yes"),                  # a chair's
    "handle": ("no", "yes"),                # a cup's
    "roof": ("flat", "gabled", "pointed"),  # a house's
    "crown": ("round", "cone"),             # a tree's
    "fins": ("three", "four"),              # a rocket's
}
FLOOR = -0.85     # every object stands on this plane (y is up); the grid spans [-1, 1] on each axis
TRUNCATION = 0.2  # |sdf| beyond this is clipped: the grid holds sdf / TRUNCATION in [-1, 1]
_THIN = 0.045     # the half thickness of the thinnest parts (a lamp's stem, a rocket's fins): a 32³ grid's cell
                  #   centres are 0.0625 apart, so a part this thick always holds one (thinner ones vanished)
_SALT = 0x5A17E   # the shapes' own random stream
_MIN_RES, _MAX_RES = 8, 128


# ---- signed distances of primitives: p is ...×3 (x, y, z), the result ... -----------------------------------------

def _len(*a):
    return np.sqrt(sum(x * x for x in a))


def sd_box(p, c, h):
    q = np.abs(p - np.asarray(c, np.float32)) - np.asarray(h, np.float32)
    out = _len(*(np.maximum(q[..., i], 0) for i in range(3)))
    return out + np.minimum(q.max(-1), 0)


def sd_cylinder(p, c, r, hh):
    """Vertical capped cylinder: centre c, radius r, half height hh."""
    x, y, z = (p[..., i] - c[i] for i in range(3))
    dx, dy = _len(x, z) - r, np.abs(y) - hh
    return np.minimum(np.maximum(dx, dy), 0) + _len(np.maximum(dx, 0), np.maximum(dy, 0))


def sd_sphere(p, c, r):
    return _len(*(p[..., i] - c[i] for i in range(3))) - r


def sd_ellipsoid(p, c, r):
    """A bound, exact on the surface (Quilez's k0·(k0 - 1)/k1 form)."""
    q = [(p[..., i] - c[i]) for i in range(3)]
    k0 = _len(*(q[i] / r[i] for i in range(3)))
    k1 = _len(*(q[i] / (r[i] * r[i]) for i in range(3)))
    return k0 * (k0 - 1) / np.maximum(k1, 1e-9)


def sd_capsule(p, a, b, r):
    a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
    pa, ba = p - a, b - a
    h = np.clip((pa @ ba) / float(ba @ ba), 0, 1)
    return np.linalg.norm(pa - h[..., None] * ba, axis=-1) - r


def sd_polygon(x, y, poly):
    """2-D signed distance to a closed polygon ((x, y) vertices), negative inside."""
    v = np.asarray(poly, np.float32)
    d = (x - v[0, 0]) ** 2 + (y - v[0, 1]) ** 2
    s = np.ones_like(x)
    for i in range(len(v)):
        a, b = v[i - 1], v[i]
        ex, ey = a[0] - b[0], a[1] - b[1]
        wx, wy = x - b[0], y - b[1]
        t = np.clip((wx * ex + wy * ey) / (ex * ex + ey * ey), 0, 1)
        d = np.minimum(d, (wx - ex * t) ** 2 + (wy - ey * t) ** 2)
        c1, c2, c3 = y >= b[1], y < a[1], ex * wy > ey * wx
        flip = (c1 & c2 & c3) | (~c1 & ~c2 & ~c3)
        s = np.where(flip, -s, s)
    return s * np.sqrt(d)


def sd_revolve(p, c, profile):
    """A solid of revolution about the vertical axis through c: ``profile`` is the polygon of (radius, height)
    points from a point on the axis (radius 0) round to another, radii ≥ 0 between. The distance is that of the
    whole cross-section (the profile and its mirror image across the axis), so the axis is no surface inside."""
    if profile[0][0] != 0 or profile[-1][0] != 0:
        raise ValueError("sd_revolve: the profile starts and ends on the axis (radius 0)")
    section = [*profile, *[(-r, y) for r, y in reversed(profile[1:-1])]]
    r = _len(p[..., 0] - c[0], p[..., 2] - c[2])
    return sd_polygon(r, p[..., 1] - c[1], section)


def sd_extrude(p, c, poly, hz):
    """A 2-D polygon in the x-y plane (about c) extruded ±hz along z."""
    d = sd_polygon(p[..., 0] - c[0], p[..., 1] - c[1], poly)
    w = np.abs(p[..., 2] - c[2]) - hz
    return np.minimum(np.maximum(d, w), 0) + _len(np.maximum(d, 0), np.maximum(w, 0))


def sd_torus_xy(p, c, R, r):
    """A torus in the x-y plane (axis along z): ring radius R, tube radius r."""
    q = _len(p[..., 0] - c[0], p[..., 1] - c[1]) - R
    return _len(q, p[..., 2] - c[2]) - r


def rotate_y(p, angle):
    ca, sa = math.cos(angle), math.sin(angle)
    x, z = p[..., 0], p[..., 2]
    return np.stack([ca * x - sa * z, p[..., 1], sa * x + ca * z], -1)


# ---- the objects ---------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ShapeScene:
    category: str
    attributes: Mapping[str, str] = field(hash=False)
    caption: str
    params: tuple

    def attr_indices(self) -> tuple[int, ...]:
        return tuple(values.index(self.attributes[n]) if n in self.attributes else -1
                     for n, values in SHAPE_ATTRIBUTES.items())

    def sdf(self, p: np.ndarray) -> np.ndarray:
        return _SDF[self.category](p, dict(self.params))


def _u(rng, lo, hi):
    return round(rng.uniform(lo, hi), 4)


def _hw(rng, short, tall, narrow, wide):
    height, width = rng.choice(("short", "tall")), rng.choice(("narrow", "wide"))
    h = _u(rng, *(short if height == "short" else tall))
    w = _u(rng, *(narrow if width == "narrow" else wide))
    return height, width, h, w


def _gen_chair(rng):
    height, width, h, w = _hw(rng, (0.95, 1.15), (1.4, 1.65), (0.5, 0.6), (0.8, 0.95))
    arms = rng.choice(("no", "yes"))
    prm = dict(h=h, w=w, seat=_u(rng, 0.4, 0.5), d=_u(rng, 0.55, 0.7), leg=_u(rng, 0.05, 0.07), arms=arms == "yes")
    a = {"height": height, "width": width, "arms": arms}
    cap = f"a {height} {width} chair {'with' if arms == 'yes' else 'without'} arms"
    return a, cap, prm


def _chair(p, q):
    h, w, s, d, lg = q["h"], q["w"], q["seat"], q["d"], q["leg"]
    y0 = FLOOR
    ys = y0 + s * (h / 1.3)  # seat height grows a little with the chair
    out = sd_box(p, (0, ys, 0), (w / 2, 0.05, d / 2))
    for sx in (-1, 1):
        for sz in (-1, 1):
            lx, lz = sx * (w / 2 - lg), sz * (d / 2 - lg)
            out = np.minimum(out, sd_box(p, (lx, (y0 + ys) / 2, lz), (lg, (ys - y0) / 2, lg)))
    top = y0 + h
    out = np.minimum(out, sd_box(p, (0, (ys + top) / 2, -d / 2 + 0.04), (w / 2, (top - ys) / 2, 0.045)))
    if q["arms"]:
        ya = ys + 0.25
        for sx in (-1, 1):
            out = np.minimum(out, sd_box(p, (sx * (w / 2 - 0.03), ya, 0), (0.04, 0.035, d / 2)))
            out = np.minimum(out, sd_box(p, (sx * (w / 2 - 0.03), (ys + ya) / 2, d / 2 - 0.05), (0.035, 0.125, 0.035)))
    return out


def _gen_table(rng):
    height, width, h, w = _hw(rng, (0.55, 0.7), (1.0, 1.2), (0.6, 0.8), (1.2, 1.5))
    plan, legs = rng.choice(("round", "square")), rng.choice(("three", "four"))
    prm = dict(h=h, w=w, plan=plan, legs=3 if legs == "three" else 4, leg=_u(rng, 0.05, 0.075), top=_u(rng, 0.05, 0.08))
    a = {"height": height, "width": width, "plan": plan, "legs": legs}
    cap = f"a {height} {width} {plan} table with {legs} legs"
    return a, cap, prm


def _table(p, q):
    h, w, lg, t = q["h"], q["w"], q["leg"], q["top"]
    yt = FLOOR + h - t
    if q["plan"] == "round":
        out = sd_cylinder(p, (0, yt, 0), w / 2, t)
    else:
        out = sd_box(p, (0, yt, 0), (w / 2, t, w / 2))
    rr = w / 2 - lg - 0.06
    for k in range(q["legs"]):
        ang = 2 * math.pi * k / q["legs"] + (math.pi / 4 if q["legs"] == 4 else math.pi / 2)
        lx, lz = rr * math.cos(ang), rr * math.sin(ang)
        if q["legs"] == 4 and q["plan"] == "square":
            lx, lz = lx * math.sqrt(2) * 0.95, lz * math.sqrt(2) * 0.95
        out = np.minimum(out, sd_cylinder(p, (lx, (FLOOR + yt) / 2, lz), lg, (yt - FLOOR) / 2))
    return out


def _gen_lamp(rng):
    height, width, h, w = _hw(rng, (0.9, 1.1), (1.5, 1.7), (0.35, 0.45), (0.7, 0.85))
    prm = dict(h=h, w=w, base=_u(rng, 0.2, 0.3), shade=_u(rng, 0.3, 0.4), taper=_u(rng, 0.45, 0.7))
    return {"height": height, "width": width}, f"a {height} lamp with a {width} shade", prm


def _lamp(p, q):
    h, w, sh = q["h"], q["w"], q["shade"]
    out = sd_cylinder(p, (0, FLOOR + 0.04, 0), q["base"], 0.04)
    top = FLOOR + h
    out = np.minimum(out, sd_cylinder(p, (0, (FLOOR + top - sh) / 2, 0), _THIN, (top - sh - FLOOR) / 2))
    r0, r1 = w / 2, w / 2 * q["taper"]
    shade = sd_revolve(p, (0, top - sh, 0), [(0, 0), (r0, 0), (r1, sh), (0, sh)])
    return np.minimum(out, shade)


def _gen_vase(rng):
    height, width, h, w = _hw(rng, (0.7, 0.95), (1.4, 1.7), (0.35, 0.45), (0.7, 0.9))
    prm = dict(h=h, w=w, belly=_u(rng, 0.3, 0.5), neck=_u(rng, 0.35, 0.55), lip=_u(rng, 0.5, 0.8), foot=_u(rng, 0.5, 0.7))
    return {"height": height, "width": width}, f"a {height} {width} vase", prm


def _vase(p, q):
    h, r = q["h"], q["w"] / 2
    prof = [(0, 0), (r * q["foot"], 0), (r, h * q["belly"]), (r * q["neck"], h * 0.85), (r * q["lip"], h), (0, h)]
    return sd_revolve(p, (0, FLOOR, 0), prof)


def _gen_cup(rng):
    height, width, h, w = _hw(rng, (0.55, 0.7), (1.0, 1.2), (0.45, 0.55), (0.85, 1.0))
    handle = rng.choice(("no", "yes"))
    prm = dict(h=h, w=w, taper=_u(rng, 0.75, 1.0), wall=_u(rng, 0.1, 0.13), handle=handle == "yes")
    cap = f"a {height} {width} cup {'with' if handle == 'yes' else 'without'} a handle"
    return {"height": height, "width": width, "handle": handle}, cap, prm


def _cup(p, q):
    h, r, wl = q["h"], q["w"] / 2, q["wall"]
    rb = r * q["taper"]
    outer = sd_revolve(p, (0, FLOOR, 0), [(0, 0), (rb, 0), (r, h), (0, h)])
    inner = sd_revolve(p, (0, FLOOR, 0), [(0, wl), (rb - wl, wl), (r - wl, h + 0.2), (0, h + 0.2)])
    out = np.maximum(outer, -inner)
    if q["handle"]:
        R = min(0.3, h * 0.3)
        ring = sd_torus_xy(p, (r - 0.02 + R * 0.6, FLOOR + h * 0.5, 0), R, 0.055)
        out = np.minimum(out, np.maximum(ring, -outer))
    return out


def _gen_tree(rng):
    height, width, h, w = _hw(rng, (0.9, 1.1), (1.5, 1.75), (0.5, 0.65), (0.9, 1.1))
    crown = rng.choice(("round", "cone"))
    prm = dict(h=h, w=w, crown=crown, trunk=_u(rng, 0.06, 0.1), share=_u(rng, 0.3, 0.45))
    return {"height": height, "width": width, "crown": crown}, f"a {height} {width} tree with a {crown} crown", prm


def _tree(p, q):
    h, r, tr = q["h"], q["w"] / 2, q["trunk"]
    ty = FLOOR + h * q["share"]
    out = sd_cylinder(p, (0, (FLOOR + ty) / 2 + 0.05, 0), tr, (ty - FLOOR) / 2 + 0.05)
    ch = FLOOR + h - ty
    if q["crown"] == "round":
        crown = sd_ellipsoid(p, (0, ty + ch / 2, 0), (r, ch / 2, r))
    else:
        crown = sd_revolve(p, (0, ty, 0), [(0, 0), (r, 0), (0, ch)])
    return np.minimum(out, crown)


def _gen_house(rng):
    height, width, h, w = _hw(rng, (0.8, 1.0), (1.35, 1.6), (0.7, 0.85), (1.25, 1.5))
    roof = rng.choice(("flat", "gabled", "pointed"))
    prm = dict(h=h, w=w, roof=roof, depth=_u(rng, 0.7, 0.9), share=_u(rng, 0.55, 0.7))
    return {"height": height, "width": width, "roof": roof}, f"a {height} {width} house with a {roof} roof", prm


def _house(p, q):
    h, w, d = q["h"], q["w"], q["depth"]
    if q["roof"] == "flat":
        body_h = h - 0.08
        out = sd_box(p, (0, FLOOR + body_h / 2, 0), (w / 2, body_h / 2, d / 2))
        return np.minimum(out, sd_box(p, (0, FLOOR + h - 0.04, 0), (w / 2 + 0.06, 0.04, d / 2 + 0.06)))
    body_h = h * q["share"]
    out = sd_box(p, (0, FLOOR + body_h / 2, 0), (w / 2, body_h / 2, d / 2))
    rh = h - body_h
    y0 = FLOOR + body_h
    if q["roof"] == "gabled":
        roof = sd_extrude(p, (0, y0, 0), [(-w / 2 - 0.06, 0), (w / 2 + 0.06, 0), (0, rh)], d / 2 + 0.04)
    else:  # a pyramid: four planes over the body's footprint
        hx, hz = w / 2 + 0.05, d / 2 + 0.05
        y = p[..., 1] - y0
        nx, nz = rh / math.hypot(rh, hx), rh / math.hypot(rh, hz)
        roof = np.maximum.reduce([-y, (np.abs(p[..., 0]) * nx + y * hx / math.hypot(rh, hx) - hx * nx),
                                  (np.abs(p[..., 2]) * nz + y * hz / math.hypot(rh, hz) - hz * nz)])
    return np.minimum(out, roof)


def _gen_rocket(rng):
    height, width, h, w = _hw(rng, (1.0, 1.2), (1.55, 1.75), (0.22, 0.28), (0.38, 0.46))
    fins = rng.choice(("three", "four"))
    prm = dict(h=h, w=w, fins=3 if fins == "three" else 4, nose=_u(rng, 0.2, 0.3), fin=_u(rng, 0.18, 0.26))
    return {"height": height, "width": width, "fins": fins}, f"a {height} {width} rocket with {fins} fins", prm


def _rocket(p, q):
    h, r = q["h"], q["w"] / 2
    nose = h * q["nose"]
    y0 = FLOOR + 0.02
    body = sd_revolve(p, (0, y0, 0), [(0, 0), (r * 0.85, 0), (r, 0.15), (r, h - nose), (0, h)])
    f, out = q["fin"], body
    for k in range(q["fins"]):
        pk = rotate_y(p, 2 * math.pi * k / q["fins"])
        fin = sd_extrude(pk[..., [0, 1, 2]], (0, y0, 0), [(r * 0.5, 0), (r + f, 0), (r + f, f * 0.6), (r * 0.5, f * 1.8)], _THIN)
        out = np.minimum(out, fin)
    return out


def _gen_tower(rng):
    height, width, h, w = _hw(rng, (0.9, 1.1), (1.55, 1.75), (0.35, 0.45), (0.65, 0.8))
    plan = rng.choice(("round", "square"))
    prm = dict(h=h, w=w, plan=plan, roof=_u(rng, 0.25, 0.4))
    return {"height": height, "width": width, "plan": plan}, f"a {height} {width} {plan} tower", prm


def _tower(p, q):
    h, r, rh = q["h"], q["w"] / 2, q["roof"]
    bh = h - rh
    if q["plan"] == "round":
        body = sd_cylinder(p, (0, FLOOR + bh / 2, 0), r, bh / 2)
        roof = sd_revolve(p, (0, FLOOR + bh, 0), [(0, 0), (r + 0.06, 0), (0, rh)])
    else:
        body = sd_box(p, (0, FLOOR + bh / 2, 0), (r, bh / 2, r))
        # crenellations: a parapet with notches
        par = sd_box(p, (0, FLOOR + bh + rh * 0.25, 0), (r + 0.04, rh * 0.25, r + 0.04))
        notch = sd_box(p, (0, FLOOR + bh + rh * 0.4, 0), (r - 0.1, rh * 0.3, r + 0.2))
        notch = np.minimum(notch, sd_box(p, (0, FLOOR + bh + rh * 0.4, 0), (r + 0.2, rh * 0.3, r - 0.1)))
        roof = np.maximum(par, -notch)
    return np.minimum(body, roof)


def _gen_mushroom(rng):
    height, width, h, w = _hw(rng, (0.6, 0.8), (1.2, 1.45), (0.5, 0.65), (1.0, 1.3))
    prm = dict(h=h, w=w, stem=_u(rng, 0.08, 0.14), cap=_u(rng, 0.25, 0.4))
    return {"height": height, "width": width}, f"a {height} mushroom with a {width} cap", prm


def _mushroom(p, q):
    h, r, ch = q["h"], q["w"] / 2, q["cap"]
    sh = h - ch * 0.7
    stem = sd_revolve(p, (0, FLOOR, 0), [(0, 0), (q["stem"] * 1.3, 0), (q["stem"], sh), (0, sh)])
    cap = np.maximum(sd_ellipsoid(p, (0, FLOOR + sh - ch * 0.3, 0), (r, ch, r)), FLOOR + sh - ch * 0.3 - p[..., 1])
    return np.minimum(stem, cap)


def _gen_bottle(rng):
    height, width, h, w = _hw(rng, (0.8, 1.0), (1.45, 1.7), (0.3, 0.38), (0.55, 0.7))
    prm = dict(h=h, w=w, shoulder=_u(rng, 0.5, 0.65), neck=_u(rng, 0.08, 0.1))
    return {"height": height, "width": width}, f"a {height} {width} bottle", prm


def _bottle(p, q):
    h, r, s, n = q["h"], q["w"] / 2, q["shoulder"], q["neck"]
    prof = [(0, 0), (r, 0), (r, h * s), (n, h * s + 0.25 * r + 0.1), (n, h), (0, h)]
    return sd_revolve(p, (0, FLOOR, 0), prof)


_GEN = {"chair": _gen_chair, "table": _gen_table, "lamp": _gen_lamp, "vase": _gen_vase, "cup": _gen_cup,
        "tree": _gen_tree, "house": _gen_house, "rocket": _gen_rocket, "tower": _gen_tower,
        "mushroom": _gen_mushroom, "bottle": _gen_bottle}
_SDF = {"chair": _chair, "table": _table, "lamp": _lamp, "vase": _vase, "cup": _cup, "tree": _tree,
        "house": _house, "rocket": _rocket, "tower": _tower, "mushroom": _mushroom, "bottle": _bottle}


def make_shape(seed: int, index: int) -> ShapeScene:
    """Shape ``index`` of ``seed``: its category, attributes, caption and drawing parameters."""
    rng = random.Random(_splitmix64(_splitmix64(seed & 0xFFFFFFFFFFFFFFFF) ^ index) ^ _SALT)
    cat = rng.choice(CATEGORIES)
    attrs, caption, prm = _GEN[cat](rng)
    return ShapeScene(cat, {"category": cat, **attrs}, caption, tuple(sorted(prm.items())))


def sdf_grid(scene: ShapeScene, resolution: int = 32) -> np.ndarray:
    """The truncated signed distance (sdf / TRUNCATION, clipped to [-1, 1]; negative inside) at the cell centres of
    a resolution³ grid over [-1, 1]³, float32, indexed [z, y, x]."""
    resolution = _int_param("resolution", resolution, _MIN_RES, _MAX_RES)
    return np.clip(scene.sdf(grid_points(resolution)) / TRUNCATION, -1, 1).astype(np.float32)


class ProceduralShapes(torch.utils.data.Dataset):
    """``size`` captioned shapes of ``seed`` as truncated SDF grids of ``resolution``³ (8..128); shape i depends only
    on (seed, i)."""

    def __init__(self, resolution: int = 32, size: int = 20000, seed: int = 0):
        self.resolution = _int_param("resolution", resolution, _MIN_RES, _MAX_RES)
        self.size = _int_param("size", size, 1)
        self.seed = _int_param("seed", seed, -(2**63), 2**64 - 1)

    def __repr__(self) -> str:
        return f"ProceduralShapes(resolution={self.resolution}, size={self.size}, seed={self.seed})"

    def __len__(self) -> int:
        return self.size

    @property
    def classes(self) -> list[str]:
        return list(CATEGORIES)

    def _index(self, i) -> int:
        return item_index(self, i)

    def shape(self, i: int) -> ShapeScene:
        return make_shape(self.seed, self._index(i))

    def caption(self, i: int) -> str:
        return self.shape(i).caption

    def grid(self, i: int, resolution: int | None = None) -> np.ndarray:
        """Shape i's grid (resolution³, this set's by default), float32 [z, y, x]."""
        return sdf_grid(self.shape(i), self.resolution if resolution is None else resolution)

    def __getitem__(self, i) -> dict:
        i = self._index(i)
        s = make_shape(self.seed, i)
        return {"grid": torch.from_numpy(sdf_grid(s, self.resolution))[None], "caption": s.caption,
                "label": CATEGORIES.index(s.category), "attrs": torch.tensor(s.attr_indices(), dtype=torch.long),
                "index": i}
