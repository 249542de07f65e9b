"""Meshes from signed-distance grids, and the files people open them with (issue 17).

    from noisebrush.io.mesh import grid_to_mesh, surface_points, write_mesh, MESH_FORMATS
    mesh = grid_to_mesh(grid)                 # grid: D×H×W signed distance (any scale), negative inside, [z, y, x]
    points = surface_points(mesh, 2048, seed=0)   # float32 2048×3, the same for the same seed
    write_mesh(mesh, "chair.glb")             # obj, ply, stl or glb by the suffix (or format=), written atomically

A grid covers [-1, 1]³ with cell centres at (k + 0.5)·2/R − 1, indexed [z, y, x] (``noisebrush.data.shapes``);
the mesh's vertices are in those world coordinates as (x, y, z), y up. Marching cubes is scikit-image's
(Lewiner et al.), on the grid padded by one outside cell, so a surface that meets the grid's border is closed there
and every mesh of a bounded field is watertight (trimesh checks it: ``mesh.is_watertight``). Faces wind outwards
(positive volume). Export is trimesh's.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from noisebrush.errors import BadParameter
from noisebrush.io.atomic import atomic_write_bytes

__all__ = ["MESH_FORMATS", "grid_to_mesh", "surface_points", "write_mesh", "mesh_bytes"]

MESH_FORMATS = ("obj", "ply", "stl", "glb")


def _libs():
    import trimesh  # lazy: trimesh loads in ~0.5 s and only the shape commands need it
    from skimage.measure import marching_cubes  # lazy: as trimesh
    return trimesh, marching_cubes


def grid_to_mesh(grid, level: float = 0.0):
    """The ``level`` set of ``grid`` (D×H×W, negative inside, indexed [z, y, x] over [-1, 1]³) as a trimesh.Trimesh
    in world coordinates (x, y, z). An empty mesh (no vertices) where the grid never crosses ``level``."""
    trimesh, marching_cubes = _libs()
    g = np.asarray(grid, dtype=np.float32)
    if g.ndim != 3 or min(g.shape) < 2:
        raise BadParameter(f"grid: a D×H×W array with every side ≥ 2, got shape {g.shape}")
    if not np.isfinite(g).all():
        raise BadParameter("grid: has values that are not finite")
    if not (g.min() < level < g.max()):
        return trimesh.Trimesh(np.zeros((0, 3)), np.zeros((0, 3), dtype=np.int64))
    outside = max(float(g.max()), level + 1.0)
    padded = np.pad(g, 1, constant_values=outside)
    verts, faces, _, _ = marching_cubes(padded, level=level)
    size = np.asarray(g.shape, dtype=np.float64)
    zyx = (verts - 1 + 0.5) * (2.0 / size) - 1.0  # padded index → cell centre → world
    mesh = trimesh.Trimesh(zyx[:, ::-1].copy(), faces, process=True)
    if mesh.is_watertight and mesh.volume < 0:
        mesh.invert()
    return mesh


def surface_points(mesh, n: int, seed: int = 0) -> np.ndarray:
    """``n`` points drawn uniformly by area on the mesh's surface (float32 n×3), a function of ``seed``."""
    trimesh, _ = _libs()
    if n < 1:
        raise BadParameter(f"n: at least 1 point, got {n}")
    if len(mesh.faces) == 0:
        raise BadParameter("mesh: has no surface to sample")
    points, _ = trimesh.sample.sample_surface(mesh, int(n), seed=int(seed))
    return np.asarray(points, dtype=np.float32)


def mesh_bytes(mesh, fmt: str) -> bytes:
    """The mesh as a file of format ``fmt`` (one of MESH_FORMATS), as bytes."""
    fmt = fmt.lower()
    if fmt not in MESH_FORMATS:
        raise BadParameter(f"format: one of {', '.join(MESH_FORMATS)}; got {fmt!r}")
    data = mesh.export(file_type=fmt)
    return data.encode() if isinstance(data, str) else bytes(data)


def write_mesh(mesh, path, fmt: str | None = None) -> Path:
    """Write ``mesh`` to ``path`` (format from ``fmt`` or the suffix) atomically: a temporary file, then rename."""
    path = Path(path)
    fmt = (fmt or path.suffix.lstrip(".")).lower()
    if fmt not in MESH_FORMATS:
        raise BadParameter(f"{path}: a mesh file ends in one of .{', .'.join(MESH_FORMATS)} (or give format=)")
    atomic_write_bytes(path, mesh_bytes(mesh, fmt))
    return path
