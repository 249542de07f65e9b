"""Shaded views of a signed-distance grid (issue 17): where the object is, it is drawn; its silhouette has the size
the camera gives it; a sphere looks the same from every side and a chair does not; bad settings are refused."""
import math

import numpy as np
import pytest

from noisebrush.data.shapes import ProceduralShapes
from noisebrush.io.mesh import grid_points
from noisebrush.errors import BadParameter
from noisebrush.io.render3d import render_grid, turntable


def _sphere(r=0.4, res=32):
    return (np.linalg.norm(grid_points(res) - np.array([0, -0.1, 0], np.float32), axis=-1) - r) / 0.2


def _silhouette(img):
    backdrop = img[:, :1].astype(int)  # each row's first pixel is backdrop (it darkens downwards)
    return np.abs(img.astype(int) - backdrop).sum(-1) > 30


def test_a_sphere_has_the_silhouette_the_camera_gives_it():
    img = render_grid(_sphere(), size=128, azimuth=0, elevation=0)
    assert img.shape == (128, 128, 3) and img.dtype == np.uint8
    mask = _silhouette(img)
    assert mask[64, 64] and not mask[2, 2]
    # camera 3.2 from the centre, field of view 38°: a sphere of radius r spans asin(r/3.2) of the half angle
    expected = math.tan(math.asin(0.4 / 3.2)) / math.tan(math.radians(19)) * 64
    measured = math.sqrt(mask.sum() / math.pi)
    assert measured == pytest.approx(expected, rel=0.05)


def test_a_turntable_turns():
    ball = turntable(_sphere(), frames=4, size=64)
    assert len(ball) == 4 and all(np.abs(f.astype(int) - ball[0].astype(int)).max() <= 8 for f in ball)
    ds = ProceduralShapes(size=50, seed=0)
    chair = next(i for i in range(50) if ds.shape(i).category == "chair")
    views = turntable(ds.grid(chair), frames=4, size=64)
    assert all((_silhouette(views[0]) != _silhouette(v)).sum() > 50 for v in views[1:])
    assert np.array_equal(views[1], render_grid(ds.grid(chair), size=64, azimuth=30 + 90))  # deterministic


def test_bad_settings_are_refused():
    for kw, name in ((dict(size=8), "size"), (dict(elevation=90), "elevation"), (dict(scale=0), "scale"),
                     (dict(steps=2), "steps")):
        with pytest.raises(BadParameter, match=name):
            render_grid(_sphere(res=8), **kw)
    with pytest.raises(BadParameter, match="grid"):
        render_grid(np.zeros((4, 4)))
    with pytest.raises(BadParameter, match="frames"):
        turntable(_sphere(res=8), frames=0)
