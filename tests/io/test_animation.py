"""GIF and MP4 writing."""
import imageio.v2 as iio2
import numpy as np
import pytest
import torch
from PIL import Image

from noisebrush.errors import BadParameter
from noisebrush.io.animation import frames_uint8, save_gif, save_mp4


def _frames(n=5):
    g = torch.Generator().manual_seed(0)
    return torch.rand(n, 3, 12, 12, generator=g) * 2 - 1


def test_gif_has_every_frame_enlarged(tmp_path):
    x = _frames()
    path = save_gif(x, tmp_path / "m.gif", fps=10, zoom=3)
    with Image.open(path) as im:
        assert im.n_frames == 5 and im.size == (36, 36)
    assert not list(tmp_path.glob("*.tmp*"))


def test_mp4_plays_back_with_every_frame(tmp_path):
    x = _frames(7)
    path = save_mp4(x, tmp_path / "m.mp4", fps=8, zoom=4)
    r = iio2.get_reader(str(path))
    try:
        frames = [f for f in r]
    finally:
        r.close()
    assert len(frames) == 7 and frames[0].shape == (48, 48, 3)  # 48 is already a multiple of 16
    # lossy, but close to the enlarged original (a flat test would pass for any picture: compare per frame)
    ref = frames_uint8(x, 4).astype(float)
    err = [np.abs(f.astype(float) - r_).mean() for f, r_ in zip(frames, ref)]
    assert max(err) < 40


def test_mp4_pads_to_macroblocks(tmp_path):
    path = save_mp4(_frames(2), tmp_path / "p.mp4", zoom=1)
    r = iio2.get_reader(str(path))
    try:
        assert r.get_meta_data()["size"] == (16, 16)
    finally:
        r.close()


def test_bad_arguments(tmp_path):
    with pytest.raises(BadParameter, match="fps"):
        save_gif(_frames(), tmp_path / "x.gif", fps=0)
    with pytest.raises(BadParameter, match="zoom"):
        save_mp4(_frames(), tmp_path / "x.mp4", zoom=0)
