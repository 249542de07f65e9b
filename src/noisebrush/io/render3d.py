"""Pictures of a signed-distance grid for people: shaded views and turntables, on a CPU, with no GL (issue 17).

    from noisebrush.io.render3d import render_grid, turntable
    render_grid(grid, size=256, azimuth=30)   # uint8 H×W×3: the object lit from above, on a light backdrop
    frames = turntable(grid, frames=24)       # the camera once round the object (save with io.animation.save_gif)

The grid is the one ``noisebrush.data.shapes`` makes and ``noisebrush.io.mesh`` meshes: D×H×W over [-1, 1]³,
indexed [z, y, x], y up, negative inside, in units of ``scale`` (the shapes' grids hold sdf / 0.2, so scale 0.2
turns a value back into a distance). Each pixel's ray is sphere-traced through the trilinearly interpolated field
(``torch.nn.functional.grid_sample``): a step as long as the distance says is safe, until the ray is within a
hair of the surface or leaves the box. The normal is the field's central-difference gradient; the colour a
Lambert key light placed relative to the camera (a turntable turns the object, not the studio), a sky term and a
rim. A 128 px view takes about 0.15 s on one core.

Why not the alternatives: pyrender needs an OpenGL context (EGL or OSMesa, absent on a fresh headless machine);
matplotlib's 3-D axes sort whole triangles (wrong where they cross) and take seconds for a 10⁴-face mesh. Tracing
the field needs only torch, draws what the network made (not a mesh of it) and is exact up to the interpolation.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from noisebrush.checks import number, whole
from noisebrush.errors import BadParameter

__all__ = ["render_grid", "turntable"]

_COLOUR = (0.85, 0.62, 0.42)           # terracotta
_BACKDROP = (0.93, 0.94, 0.96)
_LIGHT = (0.5, 0.8, 0.6)                # the key light: right, up and towards the camera, as a turntable's studio


def _field(grid, scale: float) -> torch.Tensor:
    g = torch.as_tensor(np.asarray(grid, dtype=np.float32))
    if g.ndim != 3 or min(g.shape) < 2:
        raise BadParameter(f"grid: a D×H×W array with every side ≥ 2, got shape {tuple(g.shape)}")
    return (g * scale)[None, None]


def _sample(field: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """The field (1×1×D×H×W, [z, y, x]) at points p (N×3, (x, y, z) in [-1, 1]): grid_sample's (x, y, z) order."""
    v = F.grid_sample(field, p.view(1, -1, 1, 1, 3), mode="bilinear", padding_mode="border", align_corners=False)
    return v.view(-1)


@torch.no_grad()
def render_grid(grid, *, size: int = 128, azimuth: float = 30.0, elevation: float = 20.0, scale: float = 0.2,
                steps: int = 96) -> np.ndarray:
    """An RGB uint8 size×size×3 view of ``grid``'s zero level set from ``azimuth`` degrees round the y axis (0:
    looking along −z) and ``elevation`` degrees above the horizon."""
    size = whole("size", size, 16, 1024)
    steps = whole("steps", steps, 8, 1024)
    az = math.radians(number("azimuth", azimuth, -3600, 3600))
    el = math.radians(number("elevation", elevation, -89, 89))
    f = _field(grid, number("scale", scale, 0, above=True))
    distance, fov = 3.2, math.radians(38.0)
    target = torch.tensor([0.0, -0.1, 0.0])
    eye = target + distance * torch.tensor([math.cos(el) * math.sin(az), math.sin(el), math.cos(el) * math.cos(az)])
    fwd = F.normalize(target - eye, dim=0)
    right = F.normalize(torch.linalg.cross(fwd, torch.tensor([0.0, 1.0, 0.0])), dim=0)
    up = torch.linalg.cross(right, fwd)
    c = (torch.arange(size, dtype=torch.float32) + 0.5) / size * 2 - 1
    yy, xx = torch.meshgrid(-c, c, indexing="ij")
    s = math.tan(fov / 2)
    d = F.normalize(fwd + s * (xx[..., None] * right + yy[..., None] * up), dim=-1).view(-1, 3)
    o = eye.expand_as(d)
    # where each ray enters and leaves the box [-1, 1]³
    inv = 1 / torch.where(d.abs() < 1e-9, torch.full_like(d, 1e-9), d)
    t0, t1 = (-1 - o) * inv, (1 - o) * inv
    t = torch.minimum(t0, t1).amax(-1).clamp_min(0)
    t_far = torch.maximum(t0, t1).amin(-1)
    hit = torch.zeros(d.shape[0], dtype=torch.bool)
    live = torch.nonzero(t < t_far).view(-1)  # only the rays still marching are sampled
    eps, min_step = 2e-3, 2.0 / max(f.shape[-3:]) / 8
    for _ in range(steps):
        if live.numel() == 0:
            break
        p = o[live] + t[live, None] * d[live]
        v = _sample(f, p.clamp(-1, 1))
        done = v < eps
        hit[live[done]] = True
        t[live] = torch.where(done, t[live], t[live] + torch.clamp(v * 0.9, min=min_step))
        live = live[~done & (t[live] < t_far[live])]
    p = o + t[:, None] * d
    e = 2.0 / max(f.shape[-3:])
    axes = torch.eye(3)
    n = torch.stack([_sample(f, (p + e * axes[i]).clamp(-1, 1)) - _sample(f, (p - e * axes[i]).clamp(-1, 1))
                     for i in range(3)], -1)
    n = F.normalize(n, dim=-1)
    key = F.normalize(_LIGHT[0] * right + _LIGHT[1] * up - _LIGHT[2] * fwd, dim=0)  # fixed to the camera
    lam = (n @ key).clamp_min(0)
    sky = 0.5 + 0.5 * n[:, 1]
    col = torch.tensor(_COLOUR) * (0.25 + 0.55 * lam[:, None] + 0.25 * sky[:, None])
    col = col + 0.15 * ((1 - (n * -d).sum(-1).clamp(0, 1)) ** 3)[:, None]
    backdrop = torch.tensor(_BACKDROP) * (0.85 + 0.15 * (yy.reshape(-1, 1) + 1) / 2)
    img = torch.where(hit[:, None], col, backdrop)
    return (img.clamp(0, 1).view(size, size, 3) * 255).round().to(torch.uint8).numpy()


def turntable(grid, *, frames: int = 24, size: int = 128, elevation: float = 20.0, scale: float = 0.2,
              start: float = 30.0) -> list[np.ndarray]:
    """``frames`` views with the camera once round the object (azimuth ``start`` + 360°·k/frames)."""
    frames = whole("frames", frames, 1, 360)
    return [render_grid(grid, size=size, azimuth=start + 360.0 * k / frames, elevation=elevation, scale=scale)
            for k in range(frames)]
