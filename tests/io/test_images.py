"""Tensors ↔ pictures: to_uint8, to_pil, make_grid, save_image."""
import os

import numpy as np
import pytest
import torch
from PIL import Image

from noisebrush.io.images import make_grid, save_image, to_pil, to_uint8


def test_to_uint8_end_points_and_clamping():
    x = torch.tensor([-1.0, 1.0, 0.0, -5.0, 7.0, float("inf"), float("-inf")])
    assert to_uint8(x).tolist() == [0, 255, 128, 0, 255, 255, 0]


def test_to_uint8_rounds_to_nearest():
    # (x + 1)·127.5 = v  ⇔  x = v / 127.5 - 1
    vals = torch.tensor([10.4, 10.6, 0.49, 254.51, 100.0], dtype=torch.float64)
    x = vals / 127.5 - 1
    assert to_uint8(x).tolist() == [10, 11, 0, 255, 100]
    # every level survives the round trip level → [-1, 1] → level
    levels = torch.arange(256, dtype=torch.float64)
    assert torch.equal(to_uint8(levels / 127.5 - 1), levels.to(torch.uint8))


def test_to_uint8_keeps_shape_and_accepts_other_dtypes():
    x = torch.zeros(2, 3, 4, 5, requires_grad=True)
    out = to_uint8(x)
    assert out.shape == (2, 3, 4, 5) and out.dtype == torch.uint8 and out.device.type == "cpu"
    for dt in (torch.float16, torch.bfloat16, torch.float64):
        assert to_uint8(torch.ones(3, dtype=dt)).tolist() == [255] * 3


def test_to_pil_rgb_orientation():
    x = -torch.ones(3, 4, 6)  # C×H×W: 4 rows, 6 columns
    x[:, 1, 2] = torch.tensor([1.0, -1.0, 1.0])  # row 1, column 2: magenta
    pic = to_pil(x)
    assert isinstance(pic, Image.Image) and pic.mode == "RGB" and pic.size == (6, 4)
    assert pic.getpixel((2, 1)) == (255, 0, 255)
    assert pic.getpixel((0, 0)) == (0, 0, 0)


def test_to_pil_one_channel():
    x = torch.linspace(-1, 1, 8).reshape(1, 2, 4)
    pic = to_pil(x)
    assert pic.mode == "L" and pic.size == (4, 2)
    assert np.array_equal(np.asarray(pic), to_uint8(x)[0].numpy())


def test_to_pil_batch():
    pics = to_pil(torch.zeros(3, 3, 5, 7))
    assert isinstance(pics, list) and len(pics) == 3
    assert all(p.size == (7, 5) and p.mode == "RGB" for p in pics)
    assert to_pil(torch.zeros(1, 1, 2, 2))[0].mode == "L"


def test_to_pil_four_channels_drops_alpha():
    pic = to_pil(torch.zeros(4, 2, 2))
    assert pic.mode == "RGB"


def _pics(n, w=16, h=16):
    return [Image.new("RGB", (w, h), (i * 10, 0, 0)) for i in range(n)]


@pytest.mark.parametrize("n, cols, grid", [(1, None, (1, 1)), (4, None, (2, 2)), (5, None, (3, 2)),
                                           (5, 4, (4, 2)), (5, 1, (1, 5)), (8, 4, (4, 2)), (2, 4, (4, 1)),
                                           (10, None, (4, 3))])
def test_make_grid_size(n, cols, grid):
    pad = 2
    sheet = make_grid(_pics(n), cols=cols)
    c, r = grid
    assert sheet.size == (c * 16 + (c + 1) * pad, r * 16 + (r + 1) * pad)
    assert sheet.mode == "RGB"


def test_make_grid_layout_and_padding():
    sheet = make_grid(_pics(3), cols=2, pad=3, background=(1, 2, 3))
    assert sheet.size == (2 * 16 + 3 * 3, 2 * 16 + 3 * 3)
    assert sheet.getpixel((0, 0)) == (1, 2, 3)
    assert sheet.getpixel((3, 3)) == (0, 0, 0)  # image 0
    assert sheet.getpixel((3 + 16 + 3, 3)) == (10, 0, 0)  # image 1, right of it
    assert sheet.getpixel((3, 3 + 16 + 3)) == (20, 0, 0)  # image 2, next row
    assert sheet.getpixel((3 + 16 + 3, 3 + 16 + 3)) == (1, 2, 3)  # the empty cell


def test_make_grid_from_tensors_and_mixed_sizes():
    assert make_grid(torch.zeros(6, 3, 8, 8), cols=3).size == (3 * 8 + 4 * 2, 2 * 8 + 3 * 2)
    assert make_grid(torch.zeros(3, 8, 8)).size == (8 + 4, 8 + 4)  # one C×H×W picture
    assert make_grid(torch.zeros(2, 1, 8, 8), cols=2).mode == "RGB"
    sheet = make_grid([Image.new("L", (4, 10)), Image.new("RGB", (12, 6))], cols=2, pad=0)
    assert sheet.size == (2 * 12, 10)


def test_make_grid_of_nothing():
    with pytest.raises(ValueError):
        make_grid([])


def test_save_image_atomic(tmp_path, monkeypatch):
    path = tmp_path / "sub" / "grid.png"
    sheet = make_grid(_pics(4))
    save_image(sheet, path)
    assert sorted(os.listdir(path.parent)) == ["grid.png"]
    with Image.open(path) as im:
        assert im.format == "PNG" and np.array_equal(np.asarray(im), np.asarray(sheet))
    before = path.read_bytes()

    def broken_save(self, fp, *args, **kwargs):
        with open(fp, "wb") as f:
            f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_image(_pics(1)[0], path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert sorted(os.listdir(path.parent)) == ["grid.png"]


def test_save_image_passes_png_options(tmp_path):
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    pic = Image.new("RGB", (64, 64), (200, 100, 50))  # compressible: level 0 stores, level 9 squeezes
    save_image(pic, a, compress_level=0)
    save_image(pic, b, compress_level=9)
    assert a.stat().st_size > b.stat().st_size
