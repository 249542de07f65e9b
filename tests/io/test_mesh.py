"""Meshes from signed-distance grids (issue 17): marching cubes in world coordinates, watertight and wound outwards,
on refined grids too; surface points by seed; the four file formats byte-identical for the same grid and written
atomically; and back: a mesh file read as one mesh (bad files one line) and turned into a grid by exact ray
parity."""
import io

import numpy as np
import pytest

import torch

from noisebrush.errors import BadParameter, UserError
from noisebrush.io.mesh import (MESH_FORMATS, grid_points, grid_to_mesh, inside, mesh_bytes, mesh_to_grid, read_mesh,
                                surface_points, write_mesh)

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


def test_a_refined_grid_meshes_where_the_coarse_one_does():
    coarse = _sphere(16, r=0.5)
    fine = torch.nn.functional.interpolate(torch.from_numpy(coarse)[None, None], size=(31, 31, 31), mode="trilinear",
                                           align_corners=True)[0, 0].numpy()
    a, b = grid_to_mesh(coarse), grid_to_mesh(fine, refined=2)
    assert b.is_watertight and len(b.faces) > 3 * len(a.faces)
    assert b.bounds == pytest.approx(a.bounds, abs=0.02)
    assert b.volume == pytest.approx(a.volume, rel=0.03)
    with pytest.raises(BadParameter, match="refined 2 times"):
        grid_to_mesh(np.zeros((32, 32, 32), np.float32), refined=2)


def test_inside_is_exact_for_a_mesh_made_on_the_same_grid():
    """Ray parity along the grid's own rows: the lines are moved off the vertices marching cubes puts on them."""
    for centre in [(0.0, 0.0, 0.0), (0.3, -0.2, 0.1)]:
        g = _sphere(24, r=0.45, centre=centre)
        assert np.array_equal(inside(grid_to_mesh(g), 24), g < 0)
    ring = np.maximum(np.abs(np.linalg.norm(grid_points(24)[..., [0, 2]], axis=-1) - 0.6) - 0.15,
                      np.abs(grid_points(24)[..., 1]) - 0.2)  # a torus-like ring: a hole through the middle
    assert np.array_equal(inside(grid_to_mesh(ring), 24), ring < 0)


def test_mesh_to_grid_reads_a_mesh_back_as_its_field():
    g = np.clip(_sphere(24, r=0.5) / 0.2, -1, 1)
    back = mesh_to_grid(grid_to_mesh(g), 24, 0.2)
    assert back.dtype == np.float32 and back.shape == (24, 24, 24)
    assert np.array_equal(back < 0, g < 0)
    near = np.abs(g) < 1
    assert np.abs(back - g)[near].mean() < 0.05 and back.min() >= -1 and back.max() <= 1


def test_read_mesh_takes_every_format_and_refuses_bad_files(tmp_path):
    mesh = grid_to_mesh(_sphere(16))
    for fmt in MESH_FORMATS:
        write_mesh(mesh, tmp_path / f"s.{fmt}")
        back = read_mesh(tmp_path / f"s.{fmt}")
        assert len(back.faces) == len(mesh.faces), fmt
    (tmp_path / "junk.ply").write_bytes(b"ply\nformat nonsense\n")
    with pytest.raises(UserError, match="junk.ply: cannot be read"):
        read_mesh(tmp_path / "junk.ply")
    with pytest.raises(UserError, match="no such file"):
        read_mesh(tmp_path / "missing.obj")
    with pytest.raises(BadParameter, match="a mesh file ends in"):
        read_mesh(tmp_path / "s.txt")
    (tmp_path / "empty.obj").write_text("# nothing\n")
    with pytest.raises(UserError, match="empty.obj"):
        read_mesh(tmp_path / "empty.obj")
