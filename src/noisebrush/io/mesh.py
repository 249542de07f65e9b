"""Meshes from signed-distance grids, and the files people open them with (issue 17).

    from noisebrush.io.mesh import grid_to_mesh, surface_points, write_mesh, MESH_FORMATS
    mesh = grid_to_mesh(grid)                 # grid: D×H×W signed distance (any scale), negative inside, [z, y, x]
    points = surface_points(mesh, 2048, seed=0)   # float32 2048×3, the same for the same seed
    write_mesh(mesh, "chair.glb")             # obj, ply, stl or glb by the suffix (or format=), written atomically
    mesh = read_mesh("mine.stl")              # any file trimesh reads, as one mesh (UserError naming the file)
    grid = mesh_to_grid(mesh, 32, 0.2)        # back: the truncated signed distance at a 32³ grid's cell centres

A grid covers [-1, 1]³ with cell centres at (k + 0.5)·2/R − 1, indexed [z, y, x] (``noisebrush.data.shapes``);
the mesh's vertices are in those world coordinates as (x, y, z), y up. Marching cubes is scikit-image's
(Lewiner et al.), on the grid padded by one outside cell, so a surface that meets the grid's border is closed there
and every mesh of a bounded field is watertight (trimesh checks it: ``mesh.is_watertight``). Faces wind outwards
(positive volume). Export is trimesh's.

**Back from a mesh** (variations and completion of a shape someone gives): :func:`mesh_to_grid`. Inside or
outside is decided exactly by ray parity: along each axis, a line through every row of cell centres (moved off
them by a hair, so it never runs through a vertex of a mesh made on the same grid) is intersected with every
triangle whose shadow it crosses, and a cell is inside when an odd number of crossings lie below it; the three
axes vote, so a mesh with a small hole is still read. The distance is to the nearest of ``samples`` points drawn on
the surface (scipy's k-d tree — scikit-image's own dependency — searched only out to the truncation), good to
about the samples' spacing. trimesh's own ``contains``/``signed_distance`` need rtree or embree, which a fresh
machine lacks.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from noisebrush.checks import whole
from noisebrush.errors import BadParameter, UserError
from noisebrush.io.atomic import atomic_write_bytes

__all__ = ["MESH_FORMATS", "MESH_SUFFIXES", "grid_to_mesh", "surface_points", "write_mesh", "mesh_bytes", "read_mesh",
           "grid_points", "inside", "mesh_to_grid"]

MESH_FORMATS = ("obj", "ply", "stl", "glb")
MESH_SUFFIXES = (*MESH_FORMATS, "gltf", "off")  # what read_mesh takes
MAX_GRID = 128  # the largest grid side (memory and marching cubes grow with its cube)
MAX_FACES = 2_000_000  # a mesh read back is at most this large (a 32³ grid's mesh has ~10⁴ faces)


def _libs():
    import trimesh  # lazy: trimesh loads in ~0.5 s and only the shape commands need it
    from skimage.measure import marching_cubes  # lazy: as trimesh
    return trimesh, marching_cubes


def grid_to_mesh(grid, level: float = 0.0, *, refined: int = 1):
    """The ``level`` set of ``grid`` (D×H×W, negative inside, indexed [z, y, x] over [-1, 1]³) as a trimesh.Trimesh
    in world coordinates (x, y, z). An empty mesh (no vertices) where the grid never crosses ``level``.
    ``refined``: the grid is a cell-centre grid refined that many times by an interpolation that keeps its samples
    (side (n − 1)·refined + 1, from the first cell centre to the last), so the mesh lies where the coarse one does."""
    trimesh, marching_cubes = _libs()
    g = np.asarray(grid, dtype=np.float32)
    refined = whole("refined", refined, 1, 8)
    if g.ndim != 3 or min(g.shape) < 2:
        raise BadParameter(f"grid: a D×H×W array with every side ≥ 2, got shape {g.shape}")
    if any((n - 1) % refined for n in g.shape):
        raise BadParameter(f"grid: a grid refined {refined} times has sides (n − 1)·{refined} + 1, got {g.shape}")
    if not np.isfinite(g).all():
        raise BadParameter("grid: has values that are not finite")
    if not (g.min() < level < g.max()):
        return trimesh.Trimesh(np.zeros((0, 3)), np.zeros((0, 3), dtype=np.int64))
    outside = max(float(g.max()), level + 1.0)
    padded = np.pad(g, 1, constant_values=outside)
    verts, faces, _, _ = marching_cubes(padded, level=level)
    coarse = (np.asarray(g.shape, dtype=np.float64) - 1) / refined + 1  # cells a side of the unrefined grid
    zyx = ((verts - 1) / refined + 0.5) * (2.0 / coarse) - 1.0  # padded index → cell centre → world
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


def read_mesh(path, name: str = "mesh"):
    """The mesh in the file ``path`` (one of :data:`MESH_SUFFIXES`; a scene's parts are joined) as a
    trimesh.Trimesh; one UserError line naming the file when it cannot be read or holds no faces."""
    trimesh, _ = _libs()
    path = Path(path)
    suffix = path.suffix.lower().lstrip(".")
    if suffix not in MESH_SUFFIXES:
        raise BadParameter(f"{name} {path}: a mesh file ends in .{', .'.join(MESH_SUFFIXES)}")
    if not path.is_file():
        raise UserError(f"{name} {path}: no such file")
    try:
        mesh = trimesh.load(str(path), file_type=suffix, force="mesh", process=True)
    except Exception as e:  # noqa: BLE001  trimesh raises many kinds for a broken file; the user gets one line
        why = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise UserError(f"{name} {path}: cannot be read as a {suffix} mesh ({why})") from None
    if not isinstance(mesh, trimesh.Trimesh) or len(mesh.faces) == 0:
        raise UserError(f"{name} {path}: holds no triangles")
    if len(mesh.faces) > MAX_FACES:
        raise UserError(f"{name} {path}: {len(mesh.faces)} faces; at most {MAX_FACES}")
    if not np.isfinite(mesh.vertices).all():
        raise UserError(f"{name} {path}: has vertices that are not finite")
    return mesh


def grid_points(resolution: int) -> np.ndarray:
    """The cell centres of a resolution³ grid over [-1, 1]³: float32 D×H×W×3, the last axis (x, y, z), so that the
    grid is indexed [z, y, x]."""
    resolution = whole("resolution", resolution, 2, MAX_GRID)
    c = (np.arange(resolution, dtype=np.float32) + 0.5) / resolution * 2 - 1
    z, y, x = np.meshgrid(c, c, c, indexing="ij")
    return np.stack([x, y, z], -1)


def inside(mesh, resolution: int) -> np.ndarray:
    """bool resolution³ grid ([z, y, x], cell centres over [-1, 1]³): inside ``mesh`` by ray parity along x, y and z,
    the majority of the three (see the module docstring)."""
    resolution = whole("resolution", resolution, 2, MAX_GRID)
    tri = np.asarray(mesh.triangles, dtype=np.float64)  # F×3 corners×(x, y, z)
    step = 2.0 / resolution
    centres = (np.arange(resolution) + 0.5) * step - 1
    votes = np.zeros((resolution,) * 3, dtype=np.int8)
    for axis in range(3):  # world axis the lines run along
        u_ax, v_ax = [a for a in range(3) if a != axis]
        # the lines sit a hair off the cell centres (irrational-looking offsets), off any vertex on the grid
        u0, v0 = centres[0] + 1.3e-5 * step, centres[0] + 2.9e-5 * step
        tu, tv, tw = tri[..., u_ax], tri[..., v_ax], tri[..., axis]
        ilo = np.clip(np.ceil((tu.min(1) - u0) / step), 0, resolution).astype(np.int64)
        ihi = np.clip(np.floor((tu.max(1) - u0) / step), -1, resolution - 1).astype(np.int64)
        jlo = np.clip(np.ceil((tv.min(1) - v0) / step), 0, resolution).astype(np.int64)
        jhi = np.clip(np.floor((tv.max(1) - v0) / step), -1, resolution - 1).astype(np.int64)
        nu, nv = np.maximum(ihi - ilo + 1, 0), np.maximum(jhi - jlo + 1, 0)
        count = nu * nv
        t = np.repeat(np.arange(len(tri)), count)  # one row per (triangle, line under its shadow)
        k = np.arange(len(t)) - np.repeat(np.cumsum(count) - count, count)
        iu = ilo[t] + k // np.maximum(nv[t], 1)
        jv = jlo[t] + k % np.maximum(nv[t], 1)
        pu, pv = u0 + iu * step, v0 + jv * step
        a, b, c = (np.stack([tu[t, n], tv[t, n]], -1) for n in range(3))
        p = np.stack([pu, pv], -1)

        def cross(o, q, r):
            return (q[:, 0] - o[:, 0]) * (r[:, 1] - o[:, 1]) - (q[:, 1] - o[:, 1]) * (r[:, 0] - o[:, 0])

        w0, w1, w2 = cross(b, c, p), cross(c, a, p), cross(a, b, p)
        area = w0 + w1 + w2
        hit = (np.abs(area) > 1e-18) & (((w0 >= 0) & (w1 >= 0) & (w2 >= 0)) | ((w0 <= 0) & (w1 <= 0) & (w2 <= 0)))
        at = (w0[hit] * tw[t[hit], 0] + w1[hit] * tw[t[hit], 1] + w2[hit] * tw[t[hit], 2]) / area[hit]
        first = np.searchsorted(centres, at, side="right")  # the first cell centre above the crossing
        crossings = np.zeros((resolution, resolution, resolution + 1), dtype=np.int64)
        np.add.at(crossings, (iu[hit], jv[hit], first), 1)
        odd = (np.cumsum(crossings, -1)[..., :resolution] % 2).astype(bool)  # [u, v, w]
        # back to [z, y, x]: axes (x, y, z) are grid axes (2, 1, 0)
        order = {0: 2, 1: 1, 2: 0}
        votes += np.moveaxis(odd, (0, 1, 2), (order[u_ax], order[v_ax], order[axis])).astype(np.int8)
    return votes >= 2


def mesh_to_grid(mesh, resolution: int, truncation: float, *, samples: int = 50_000, seed: int = 0) -> np.ndarray:
    """``mesh`` (world coordinates; the part in [-1, 1]³ counts) as the truncated signed-distance grid the shape
    models paint: sdf / ``truncation`` clipped to [-1, 1] at the cell centres of a resolution³ grid, float32,
    [z, y, x]; the sign by :func:`inside`, the distance to the nearest of ``samples`` surface points."""
    from scipy.spatial import cKDTree  # lazy: as trimesh

    trimesh, _ = _libs()
    if len(mesh.faces) == 0:
        raise BadParameter("mesh: has no surface")
    points = grid_points(resolution).reshape(-1, 3).astype(np.float64)
    where, _ = trimesh.sample.sample_surface(mesh, int(samples), seed=int(seed))
    dist, _ = cKDTree(where).query(points, k=1, distance_upper_bound=float(truncation))
    d = np.minimum(dist, truncation).reshape((resolution,) * 3)
    return np.where(inside(mesh, resolution), -d, d).astype(np.float32) / np.float32(truncation)
