"""ProceduralShapes (issue 17): deterministic captioned shapes as truncated SDF grids; the primitives' distances by
hand; every category closes into a watertight mesh."""
import math

import numpy as np
import pytest
import torch

from noisebrush.data import shapes
from noisebrush.data.shapes import (CATEGORIES, FLOOR, SHAPE_ATTRIBUTES, TRUNCATION, ProceduralShapes, make_shape,
                                    sdf_grid)
from noisebrush.errors import BadParameter
from noisebrush.io.mesh import grid_points, grid_to_mesh


def _p(*xyz):
    return np.asarray([xyz], dtype=np.float32)


def test_primitive_distances_by_hand():
    assert shapes.sd_sphere(_p(0, 0, 2), (0, 0, 0), 0.5)[0] == pytest.approx(1.5)
    assert shapes.sd_box(_p(2, 0, 0), (0, 0, 0), (1, 1, 1))[0] == pytest.approx(1.0)
    assert shapes.sd_box(_p(2, 2, 0), (0, 0, 0), (1, 1, 1))[0] == pytest.approx(math.sqrt(2))  # to the edge
    assert shapes.sd_box(_p(0.5, 0, 0), (0, 0, 0), (1, 1, 1))[0] == pytest.approx(-0.5)
    assert shapes.sd_cylinder(_p(1, 0, 0), (0, 0, 0), 0.25, 0.5)[0] == pytest.approx(0.75)
    assert shapes.sd_cylinder(_p(0, 1, 0), (0, 0, 0), 0.25, 0.5)[0] == pytest.approx(0.5)
    assert shapes.sd_capsule(_p(0, 0.5, 1), (0, 0, 0), (0, 1, 0), 0.25)[0] == pytest.approx(0.75)
    assert shapes.sd_torus_xy(_p(0, 0, 0), (0, 0, 0), 0.5, 0.1)[0] == pytest.approx(0.4)
    # a square polygon: negative inside, the distance to the nearest side outside
    sq = [(-1, -1), (1, -1), (1, 1), (-1, 1)]
    d = shapes.sd_polygon(np.array([0.0, 3.0, 0.5]), np.array([0.0, 0.0, 0.0]), sq)
    np.testing.assert_allclose(d, [-1.0, 2.0, -0.5], atol=1e-6)
    # a rectangle (radius, height) revolved about the axis is a capped cylinder
    pts = np.random.default_rng(0).uniform(-1, 1, (500, 3)).astype(np.float32)
    rev = shapes.sd_revolve(pts, (0, -0.5, 0), [(0, 0), (0.4, 0), (0.4, 1.0), (0, 1.0)])
    np.testing.assert_allclose(rev, shapes.sd_cylinder(pts, (0, 0, 0), 0.4, 0.5), atol=1e-5)


def test_a_shape_depends_on_seed_and_index_only():
    a, b = ProceduralShapes(size=50, seed=3), ProceduralShapes(size=50, seed=3)
    for i in (49, 0, 17):  # any order
        assert a.shape(i) == b.shape(i) and a.caption(i) == b.caption(i)
        assert np.array_equal(a.grid(i), b.grid(i))
    other = ProceduralShapes(size=50, seed=4)
    assert [a.caption(i) for i in range(20)] != [other.caption(i) for i in range(20)]
    # the resolution changes the grid, not the shape
    assert ProceduralShapes(resolution=16, size=50, seed=3).shape(5) == a.shape(5)


def test_captions_name_every_attribute_and_the_labels_agree():
    ds = ProceduralShapes(size=600, seed=0)
    seen = set()
    for i in range(len(ds)):
        s = ds.shape(i)
        seen.add(s.category)
        cap = s.caption
        assert s.category in cap and s.attributes["height"] in cap
        for name, value in s.attributes.items():
            if name in ("category", "height"):
                continue
            word = {("arms", "yes"): "with arms", ("arms", "no"): "without arms", ("handle", "yes"): "with a handle",
                    ("handle", "no"): "without a handle"}.get((name, value), value)
            assert word in cap, (cap, name, value)
        idx = s.attr_indices()
        assert len(idx) == len(SHAPE_ATTRIBUTES)
        for (name, values), k in zip(SHAPE_ATTRIBUTES.items(), idx):
            assert (k == -1) == (name not in s.attributes)
            if k >= 0:
                assert values[k] == s.attributes[name]
    assert seen == set(CATEGORIES)


def test_the_grid_is_a_truncated_sdf_of_an_object_on_the_floor():
    ds = ProceduralShapes(resolution=32, size=40, seed=1)
    item = ds[3]
    assert item["grid"].shape == (1, 32, 32, 32) and item["grid"].dtype == torch.float32
    assert item["label"] == CATEGORIES.index(ds.shape(3).category)
    for i in range(len(ds)):
        g = ds.grid(i)
        assert g.min() < 0 and g.max() == 1.0 and g.min() >= -1.0
        assert (g[:, :, 0] > 0).all() and (g[:, :, -1] > 0).all()  # the walls of the box are outside
        inside_y = grid_points(32)[..., 1][g < 0]
        assert FLOOR < inside_y.min() < FLOOR + 1.5 * 2 / 32  # it stands on the floor (within a cell and a half)
    # the grid is the distance / TRUNCATION where it is not clipped
    s = ds.shape(0)
    pts = grid_points(16)
    raw = s.sdf(pts)
    g = sdf_grid(s, 16)
    near = np.abs(raw) < TRUNCATION
    np.testing.assert_allclose(g[near], raw[near] / TRUNCATION, rtol=1e-6)


def test_every_category_closes_into_a_watertight_mesh():
    ds = ProceduralShapes(resolution=32, size=200, seed=2)
    firsts = {}
    for i in range(len(ds)):
        firsts.setdefault(ds.shape(i).category, i)
    assert set(firsts) == set(CATEGORIES)
    for cat, i in firsts.items():
        mesh = grid_to_mesh(ds.grid(i))
        assert mesh.is_watertight and mesh.volume > 0, cat


def test_bad_parameters_are_refused():
    with pytest.raises(BadParameter, match="resolution"):
        ProceduralShapes(resolution=4)
    with pytest.raises(BadParameter, match="size"):
        ProceduralShapes(size=0)
    with pytest.raises(IndexError):
        ProceduralShapes(size=3)[3]
    with pytest.raises(TypeError):
        ProceduralShapes(size=3)["a"]
    assert make_shape(0, 5) == make_shape(0, 5)
