"""Shapes from a shape model (issue 17): text → shape on the Volume modality, variations of a mesh (SDEdit on the
grid), completion that keeps the given part to the bit (RePaint on the grid), meshes at the grid's resolution or
twice it, recipes that replay to the same grid and the same mesh bytes, and bad requests refused before work."""
import numpy as np
import pytest
import torch

import noisebrush
from _model_fixture import one_thread, write_model
from noisebrush.data.shapes import TRUNCATION, make_shape, sdf_grid
from noisebrush.errors import BadParameter, UserError
from noisebrush.io.mesh import grid_to_mesh, mesh_bytes, write_mesh
from noisebrush.paint import sculpt as shapes
from noisebrush.paint.recipe import replay

R = 16


@pytest.fixture(scope="module")
def pipe(tmp_path_factory):
    path = write_model(tmp_path_factory.mktemp("shape") / "model", factorized=False, in_channels=1, resolution=R,
                       task="shape", shape={"truncation": TRUNCATION})
    with one_thread():
        yield noisebrush.load(path)


@pytest.fixture(scope="module")
def chair(tmp_path_factory):
    """The first procedural chair of seed 1 at 16³, as an OBJ mesh and as its grid."""
    scene = next(s for s in map(lambda i: make_shape(1, i), range(50)) if s.category == "chair")
    grid = sdf_grid(scene, R)
    path = tmp_path_factory.mktemp("mesh") / "chair.obj"
    write_mesh(grid_to_mesh(grid), path)
    return path, grid


def test_text_to_shape_is_a_grid_per_seed_whatever_the_batch(pipe):
    grids, recipes = pipe.sculpt("a chair", seed=5, n=2, steps=3)
    assert grids.shape == (2, 1, R, R, R) and grids.min() >= -1 and grids.max() <= 1
    assert [r["seed"] for r in recipes] == [5, 6]
    assert recipes[0]["mode"] == "sculpt" and recipes[0]["resolution"] == R and recipes[0]["depth"] == R
    one, _ = pipe.sculpt("a chair", seed=6, steps=3)
    assert torch.equal(one[0], grids[1])


def test_meshes_at_the_grid_and_at_twice_it(chair):
    _, grid = chair
    coarse, fine = shapes.to_mesh(grid), shapes.to_mesh(grid, 2 * R)
    assert coarse.is_watertight and fine.is_watertight
    assert len(fine.faces) > 2 * len(coarse.faces)
    assert abs(fine.volume - coarse.volume) < 0.1 * coarse.volume  # the same object, finer facets
    assert mesh_bytes(shapes.to_mesh(grid, 2 * R), "glb") == mesh_bytes(fine, "glb")
    with pytest.raises(BadParameter, match="resolution"):
        shapes.to_mesh(grid, R // 2)


def test_resolution_is_the_grid_or_twice_it(pipe):
    _, rec = pipe.sculpt("x", steps=2, resolution=2 * R)
    assert rec[0]["resolution"] == 2 * R
    with pytest.raises(BadParameter, match=f"resolution: {R} or {2 * R}"):
        pipe.sculpt("x", steps=2, resolution=24)


def test_a_variation_starts_from_the_mesh(pipe, chair):
    path, grid = chair
    x0, note = shapes.load_shape(pipe, path)
    assert note["source"] == "chair.obj" and len(note["source_sha256"]) == 16 and "source_fitted" not in note
    assert ((x0[0, 0] > 0) == (torch.from_numpy(grid) > 0)).float().mean() > 0.99  # the mesh read back
    same, rec = pipe.sculpt("a chair", source=path, strength=0.0, n=2, steps=4)
    assert torch.equal(same, x0.expand(2, -1, -1, -1, -1)) and rec[0]["strength"] == 0.0
    near, _ = pipe.sculpt("a chair", source=path, strength=0.3, steps=10, seed=1)
    far, _ = pipe.sculpt("a chair", source=path, strength=1.0, steps=10, seed=1)
    assert (near - x0).abs().mean() < (far - x0).abs().mean()


def test_completion_keeps_the_given_part_exactly(pipe, chair):
    path, _ = chair
    x0, _ = shapes.load_shape(pipe, path)
    out, rec = pipe.sculpt("a chair", source=path, keep="bottom:0.25", steps=3, jumps=2, n=2, seed=2)
    mask = shapes.keep_mask("bottom:0.25", (R, R, R))
    assert int(mask.sum()) == R * R * 4 and bool(mask[0, 0, :, :4].all())  # y is the grid's second axis
    assert torch.equal(out[:, :, :, :4], x0[:, :, :, :4].expand(2, -1, -1, -1, -1))
    assert not torch.equal(out[:, :, :, 4:], x0[:, :, :, 4:].expand(2, -1, -1, -1, -1))
    assert rec[0]["keep"] == "bottom:0.25" and rec[0]["sampler"] == "repaint" and rec[0]["jumps"] == 2


@pytest.mark.parametrize("side,axis,far", [("top", 1, True), ("left", 2, False), ("front", 0, True)])
def test_keep_sides(side, axis, far):
    m = shapes.keep_mask(f"{side}:0.5", (8, 8, 8))[0, 0]
    along = m.any(dim=tuple(a for a in range(3) if a != axis))
    assert along.tolist() == ([False] * 4 + [True] * 4 if far else [True] * 4 + [False] * 4)


@pytest.mark.parametrize("keep,match", [("middle", "side is one of"), ("bottom:x", "a number"),
                                        ("bottom:0.99", "keep share"), ("", "SIDE")])
def test_bad_keep_is_refused(keep, match):
    with pytest.raises(BadParameter, match=match):
        shapes.parse_keep(keep)


def test_a_foreign_mesh_is_fitted_into_the_box(pipe, chair, tmp_path):
    path, _ = chair
    import trimesh

    big = trimesh.load(path, force="mesh")
    big.apply_scale(40.0)
    big.apply_translation([100, 7, -3])
    write_mesh(big, tmp_path / "big.stl")
    x0, note = shapes.load_shape(pipe, tmp_path / "big.stl")
    assert note["source_fitted"] is True
    assert (x0 < 0).any() and (x0 > 0).any()
    assert (x0[0, 0, :, 0] > 0).all()  # it stands on the floor: the lowest layer of cells is outside


def test_recipes_replay_to_the_same_grids(pipe, chair):
    path, _ = chair
    for kw in (dict(), dict(source=path, strength=0.5), dict(source=path, keep="top:0.5", jumps=1, sigma_max=20.0)):
        grids, recipes = pipe.sculpt("a chair", seed=4, steps=3, **kw)
        again, rec = replay(pipe, recipes[0], where=str(path))
        assert torch.equal(again, grids) and rec == recipes, kw


def test_bad_requests_are_refused_before_work(pipe, chair, tmp_path):
    path, _ = chair
    with pytest.raises(BadParameter, match="needs a source"):
        pipe.sculpt("x", strength=0.5)
    with pytest.raises(BadParameter, match="give one of them"):
        pipe.sculpt("x", source=path, strength=0.5, keep="bottom")
    with pytest.raises(BadParameter, match="strength"):
        pipe.sculpt("x", source=path, strength=1.5)
    (tmp_path / "bad.obj").write_text("this is not a mesh\n")
    with pytest.raises(UserError, match="bad.obj"):
        pipe.sculpt("x", source=tmp_path / "bad.obj")
    with pytest.raises(BadParameter, match="grid 16×16×16"):
        pipe.sculpt("x", source=np.zeros((8, 8, 8), np.float32), strength=0.5)


def test_an_image_model_cannot_sculpt(tmp_path_factory):
    from _model_fixture import tiny_model

    with one_thread():
        image = noisebrush.load(tiny_model(tmp_path_factory))
    with pytest.raises(UserError, match="not shapes"):
        image.sculpt("x")


def test_views_and_preview(pipe, chair):
    _, grid = chair
    frames = shapes.views(pipe, grid, frames=3, size=32)
    assert len(frames) == 3 and frames[0].shape == (32, 32, 3) and frames[0].dtype == np.uint8
    assert not np.array_equal(frames[0], frames[1])
    assert shapes.preview(pipe, torch.from_numpy(grid)[None], size=48).size == (48, 48)
