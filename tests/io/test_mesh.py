"""Meshes from signed-distance grids (issue 17): marching cubes in world coordinates, watertight and wound outwards,
surface points by seed, the four file formats byte-identical for the same grid and written atomically."""
import io

import numpy as np
import pytest

from noisebrush.data.shapes import grid_points
from noisebrush.errors import BadParameter
from noisebrush.io.mesh import MESH_FORMATS, grid_to_mesh, mesh_bytes, surface_points, write_mesh

trimesh = pytest.importorskip("trimesh")


def _sphere(res=32, r=0.5, centre=(0.0, 0.0, 0.0)):
    return np.linalg.norm(grid_points(res) - np.asarray(centre, np.float32), axis=-1) - r


def test_a_sphere_becomes_a_closed_outward_sphere_in_world_coordinates():
    mesh = grid_to_mesh(_sphere(centre=(0.25, 0.0, -0.125)))
    assert mesh.is_watertight and mesh.volume > 0
    assert mesh.volume == pytest.approx(4 / 3 * np.pi * 0.125, rel=0.03)
    radius = np.linalg.norm(mesh.vertices - [0.25, 0.0, -0.125], axis=1)
    assert np.abs(radius - 0.5).max() < 0.01
    # (x, y, z) order: the centre's x is +0.25 and its z −0.125
    centre = mesh.vertices.mean(0)
    assert centre == pytest.approx([0.25, 0.0, -0.125], abs=0.01)


def test_a_surface_that_meets_the_border_is_closed_there():
    half = grid_points(16)[..., 1].copy()  # y < 0 is inside: the lower half of the box
    mesh = grid_to_mesh(half)
    assert mesh.is_watertight and mesh.volume > 0
    assert mesh.bounds[1][1] == pytest.approx(0.0, abs=1e-6)


def test_surface_points_follow_the_seed_and_lie_on_the_surface():
    mesh = grid_to_mesh(_sphere())
    a, b = surface_points(mesh, 512, seed=3), surface_points(mesh, 512, seed=3)
    assert a.shape == (512, 3) and a.dtype == np.float32 and np.array_equal(a, b)
    assert not np.array_equal(a, surface_points(mesh, 512, seed=4))
    assert np.abs(np.linalg.norm(a, axis=1) - 0.5).max() < 0.01
    with pytest.raises(BadParameter, match="n:"):
        surface_points(mesh, 0)


@pytest.mark.parametrize("fmt", MESH_FORMATS)
def test_every_format_is_byte_identical_for_the_same_grid_and_loads_back(fmt, tmp_path):
    grid = _sphere(res=16)
    data = mesh_bytes(grid_to_mesh(grid), fmt)
    assert data == mesh_bytes(grid_to_mesh(grid), fmt)
    path = write_mesh(grid_to_mesh(grid), tmp_path / f"ball.{fmt}")
    assert path.read_bytes() == data and [p.name for p in tmp_path.iterdir()] == [f"ball.{fmt}"]
    back = trimesh.load(io.BytesIO(data), file_type=fmt, force="mesh")
    assert back.volume == pytest.approx(grid_to_mesh(grid).volume, rel=1e-4)


def test_bad_grids_and_formats_are_refused(tmp_path):
    assert len(grid_to_mesh(np.ones((8, 8, 8))).faces) == 0  # nothing inside: an empty mesh
    with pytest.raises(BadParameter, match="grid"):
        grid_to_mesh(np.zeros((8, 8)))
    bad = _sphere(res=8)
    bad[0, 0, 0] = np.nan
    with pytest.raises(BadParameter, match="finite"):
        grid_to_mesh(bad)
    with pytest.raises(BadParameter, match="ends in one of"):
        write_mesh(grid_to_mesh(_sphere(res=8)), tmp_path / "ball.fbx")
    with pytest.raises(BadParameter, match="format"):
        mesh_bytes(grid_to_mesh(_sphere(res=8)), "fbx")
    with pytest.raises(BadParameter, match="no surface"):
        surface_points(grid_to_mesh(np.ones((8, 8, 8))), 10)
