"""Shapes from a shape model: text → shape, variations of a mesh, completion of a partly given shape (issue 17).

    pipe = noisebrush.load("builtin-shape")
    grids, recipes = pipe.sculpt("a tall round table with three legs", seed=3)    # N×1×32×32×32 in [-1, 1]
    grids, _ = pipe.sculpt("a wide vase", source="vase.obj", strength=0.5)          # variations (SDEdit)
    grids, _ = pipe.sculpt("a chair with arms", source="chair.obj", keep="bottom:0.4")   # completion (RePaint)
    mesh = to_mesh(grids[0], resolution=64)     # a trimesh.Trimesh, watertight where the field is closed
    frames = views(pipe, grids[0], frames=24)   # a shaded turntable, uint8 arrays

A shape model (``noisebrush train --task shape``) paints truncated signed-distance grids — sdf / truncation in
[-1, 1], negative inside, indexed [z, y, x] over [-1, 1]³ with y up (:mod:`noisebrush.data.shapes`) — through the
same sampling core as pictures; the Volume modality (:mod:`noisebrush.paint.modality`) gives their size.

* **text → shape**: the pipeline's ``generate``; shape i uses seed ``seed + i``.
* **variations** (``source`` and ``strength``): the source mesh turned into the model's grid
  (:func:`noisebrush.io.mesh.mesh_to_grid`), noised to the level ``strength`` selects and denoised (SDEdit,
  :func:`noisebrush.paint.edit.sdedit`, as picture variations).
* **completion** (``source`` and ``keep``): the part of the source's grid that ``keep`` names — ``SIDE[:F]`` with
  SIDE one of bottom, top, left, right, back, front (y, x and z; front faces the turntable's first view) and F the
  share of the grid along that axis (default 0.5) — is kept exactly and the rest painted to agree with it (RePaint,
  :func:`noisebrush.paint.edit.repaint_known`, as inpainting).

A source mesh whose vertices lie in [-1, 1]³ (every mesh noisebrush writes) is taken where it is; any other is
scaled uniformly to the size of the training shapes (its longest side :data:`FIT_SIDE`), centred over the origin
and stood on the floor, and the recipe says so (``source_fitted``).

**Meshes.** :func:`to_mesh` runs marching cubes on the grid (:func:`noisebrush.io.mesh.grid_to_mesh`); at
``resolution`` twice the grid's side it first interpolates the field (trilinear, cell centres kept) to the finer grid:
a smoother surface with smaller facets, not new detail — a learned 64³ stage is not built. Same recipe, same grid,
same bytes: the mesh a recipe gives is byte-identical each time on the same machine.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from noisebrush.checks import number
from noisebrush.data.shapes import FLOOR
from noisebrush.errors import BadParameter, UserError
from noisebrush.io.hashing import file_sha256
from noisebrush.io.mesh import grid_to_mesh, mesh_to_grid, read_mesh
from noisebrush.io.render3d import render_grid, turntable
from noisebrush.paint.edit import check_jumps, repaint_known, sdedit, strength_start

__all__ = ["sculpt", "to_mesh", "views", "preview", "truncation", "parse_keep", "keep_mask", "load_shape",
           "SIDES", "FIT_SIDE", "mesh_resolutions"]

SIDES = {"bottom": (1, False), "top": (1, True), "left": (2, False), "right": (2, True), "back": (0, False),
         "front": (0, True)}  # side → (axis of the D×H×W grid, from its far end)
FIT_SIDE = 1.6  # the longest side a foreign mesh is scaled to (the training shapes stand up to ~1.6 high)
_KEEP_SHARE = (0.05, 0.95)


def _check_model(pipe, what: str = "sculpt") -> None:
    if pipe.modality.kind != "volume":
        raise UserError(f"{what}: {pipe.name} paints {pipe.modality.kind}s, not shapes; use a shape model "
                        f"(builtin-shape, or one trained with noisebrush train --task shape)")


def truncation(pipe) -> float:
    """The distance a grid value of 1 stands for (the model's ``shape.truncation``; 0.2 if it records none)."""
    shape = pipe.config.get("shape")
    t = shape.get("truncation", 0.2) if isinstance(shape, dict) else 0.2
    return float(t) if isinstance(t, (int, float)) and not isinstance(t, bool) and 0 < t <= 2 else 0.2


def mesh_resolutions(pipe) -> tuple[int, int]:
    """The marching-cubes resolutions offered: the model's grid side and twice it (interpolated)."""
    side = int(pipe.modality.default[-1])
    return side, 2 * side


def parse_keep(text) -> tuple[str, float]:
    """``"SIDE[:F]"`` → (side, share); BadParameter naming ``keep`` otherwise."""
    if not isinstance(text, str) or not text.strip():
        raise BadParameter(f"keep: SIDE or SIDE:SHARE with SIDE one of {', '.join(SIDES)}, got {text!r}")
    side, _, share = text.strip().lower().partition(":")
    if side not in SIDES:
        raise BadParameter(f"keep: the side is one of {', '.join(SIDES)}, got {side!r}")
    try:
        f = float(share) if share else 0.5
    except ValueError:
        raise BadParameter(f"keep: the share after ':' is a number, got {share!r}") from None
    return side, number("keep share", f, *_KEEP_SHARE)


def keep_mask(keep: str, size: tuple[int, int, int]) -> torch.Tensor:
    """bool 1×1×D×H×W, true in the part of the grid ``keep`` (:func:`parse_keep`) names."""
    side, share = parse_keep(keep)
    axis, far = SIDES[side]
    n = size[axis]
    cells = min(n - 1, max(1, round(share * n)))
    index = torch.arange(n)
    along = index >= n - cells if far else index < cells
    shape = [1, 1, 1]
    shape[axis] = n
    return along.view(1, 1, *shape).expand(1, 1, *size).clone()


def _fit(mesh) -> bool:
    """Move ``mesh`` into the box the model paints, unless it is in it already; whether it was moved."""
    lo, hi = mesh.bounds
    if lo.min() >= -1 and hi.max() <= 1:
        return False
    extent = float((hi - lo).max())
    if extent <= 0:
        raise UserError("source: the mesh has no extent")
    scale = FIT_SIDE / extent
    centre = (lo + hi) / 2
    shift = np.array([-centre[0] * scale, FLOOR - lo[1] * scale, -centre[2] * scale])
    mesh.apply_scale(scale)
    mesh.apply_translation(shift)
    return True


def load_shape(pipe, source, name: str = "source") -> tuple[torch.Tensor, dict]:
    """(1×1×D×H×W grid at the model's size, the recipe's note) from a mesh file or a grid (D×H×W or 1×D×H×W array
    or tensor in [-1, 1])."""
    size = tuple(pipe.modality.default)
    if isinstance(source, (np.ndarray, torch.Tensor)):
        g = torch.as_tensor(np.asarray(source, dtype=np.float32) if isinstance(source, np.ndarray) else source)
        g = g.detach().to("cpu", torch.float32)
        g = g[0] if g.ndim == 4 and g.shape[0] == 1 else g
        if tuple(g.shape) != size:
            raise BadParameter(f"{name}: a grid {'×'.join(map(str, size))} for this model, got {tuple(g.shape)}")
        if not torch.isfinite(g).all():
            raise BadParameter(f"{name}: the grid has values that are not finite")
        return g.clamp(-1, 1)[None, None], {}
    mesh = read_mesh(source, name)
    fitted = _fit(mesh)
    side = size[0]
    if size != (side, side, side):
        raise UserError(f"{name}: meshes are read into cubic grids; this model paints {'×'.join(map(str, size))}")
    grid = mesh_to_grid(mesh, side, truncation(pipe))
    note = {"source": Path(source).name, "source_sha256": file_sha256(source)[:16]}
    if fitted:
        note["source_fitted"] = True
    return torch.from_numpy(grid)[None, None], note


@torch.no_grad()
def sculpt(pipe, prompt: str = "", *, seed: int = 0, n: int = 1, steps: int | None = None, sampler: str | None = None,
           cfg: float = 3.0, negative: str | None = None, label=None, sigma_min: float | None = None,
           sigma_max: float | None = None, resolution: int | None = None, source=None,
           strength: float | None = None, keep: str | None = None, jump_length: int | None = None, jumps: int = 3,
           callback=None) -> tuple[torch.Tensor, list[dict]]:
    """``n`` shapes (N×1×D×H×W in [-1, 1]) and one recipe each; see the module docstring. ``resolution``: the
    marching-cubes resolution the recipe records (:func:`mesh_resolutions`; default the grid's side)."""
    _check_model(pipe)
    sides = mesh_resolutions(pipe)
    resolution = sides[0] if resolution is None else resolution
    if resolution not in sides:
        raise BadParameter(f"resolution: {' or '.join(map(str, sides))} for this model (its grid, or twice it "
                           f"interpolated), got {resolution!r}")
    if source is None and (strength is not None or keep is not None):
        raise BadParameter("source: a variation (strength) or a completion (keep) needs a source shape")
    if strength is not None and keep is not None:
        raise BadParameter("keep: a completion keeps part of the source exactly; strength is for variations — "
                           "give one of them")
    if keep is not None:
        parse_keep(keep)  # before any work
    if source is not None and keep is None:
        strength = number("strength", 0.6 if strength is None else strength, 0.0, 1.0)
    completing = keep is not None
    o = pipe.check(prompt, steps=steps, seed=seed, n=n, sampler="ddpm" if completing else sampler, cfg=cfg,
                   sigma_min=sigma_min, sigma_max=sigma_max, label=label, negative=negative)
    if completing:
        jump_length, jumps = check_jumps(o.steps, jump_length, jumps)
    extra: dict = {"mode": "sculpt", "resolution": int(resolution)}
    if source is None:
        grids, recipes = pipe.generate(prompt, steps=o.steps, seed=o.seed, n=o.n, sampler=o.sampler, cfg=o.cfg,
                                       sigma_min=o.sigma_min, sigma_max=o.sigma_max, label=label, negative=negative,
                                       callback=callback)
        return grids, [{**r, **extra} for r in recipes]
    x0, note = load_shape(pipe, source)
    extra |= note
    if completing:
        extra |= {"keep": keep.strip().lower(), "jump_length": jump_length, "jumps": jumps}
        mask = keep_mask(keep, tuple(x0.shape[2:]))
        out = repaint_known(pipe, x0, mask, prompt, o, jump_length=jump_length, jumps=jumps, label=label,
                            negative=negative, callback=callback)
        out = torch.where(mask, x0, out.clamp(-1, 1))  # the kept part, exactly
    else:
        extra["strength"] = strength
        k = strength_start(o.steps, strength)
        out = x0.expand(o.n, *x0.shape[1:]).clone() if k >= o.steps else \
            sdedit(pipe, x0, prompt, o, k, label=label, negative=negative, callback=callback)
    recipes = [{**pipe.recipe(prompt, seed=s, steps=o.steps, sampler="repaint" if completing else o.sampler,
                              cfg=o.cfg, size=tuple(x0.shape[2:]), sigma_min=o.sigma_min, sigma_max=o.sigma_max,
                              label=label, negative=negative), **extra} for s in o.seeds]
    return out.cpu(), recipes


def to_mesh(grid, resolution: int | None = None):
    """The zero level set of ``grid`` (1×D×H×W or D×H×W) as a trimesh.Trimesh in world coordinates. ``resolution``
    twice (or up to four times) the grid's side: of the field interpolated trilinearly between the cell centres
    (the grid's own samples kept, so a part one cell thick stays), with facets that much smaller."""
    g = torch.from_numpy(_array(grid))
    if g.ndim != 3:
        raise BadParameter(f"grid: D×H×W or 1×D×H×W, got {tuple(g.shape)}")
    side = int(g.shape[-1])
    if resolution is None or resolution == side:
        return grid_to_mesh(g.numpy())
    if resolution % side or not 2 <= resolution // side <= 4:
        raise BadParameter(f"resolution: {side} or a multiple of it up to {4 * side} for a grid of {side}, got "
                           f"{resolution}")
    r = resolution // side
    fine = F.interpolate(g[None, None], size=tuple((n - 1) * r + 1 for n in g.shape), mode="trilinear",
                         align_corners=True)[0, 0]
    return grid_to_mesh(fine.numpy(), refined=r)


def _array(grid) -> np.ndarray:
    g = grid.detach().to("cpu", torch.float32).numpy() if torch.is_tensor(grid) else np.asarray(grid, np.float32)
    return g[0] if g.ndim == 4 else g


def views(pipe, grid, *, frames: int = 24, size: int = 128) -> list[np.ndarray]:
    """A shaded turntable of ``grid`` (1×D×H×W or D×H×W): uint8 size×size×3 arrays, once round."""
    return turntable(_array(grid), frames=frames, size=size, scale=truncation(pipe))


def preview(pipe, grid, *, size: int = 256) -> Image.Image:
    """One shaded view of ``grid`` as a PIL picture (the PNG that carries a shape's recipe)."""
    return Image.fromarray(render_grid(_array(grid), size=size, scale=truncation(pipe)))
