"""Saving pictures with their recipes (noisebrush.io.outputs): free names, sets with a contact sheet, morph files."""
import numpy as np
import pytest
import torch
from PIL import Image

from noisebrush.errors import BadParameter, UserError
from noisebrush.io.outputs import (bounce_frames, contact_sheet, free_path, morph_name, output_folder, save_morph,
                                   save_set, slug)
from noisebrush.io.png import read_recipe


def _images(n=3, size=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, size, size, generator=g) * 2 - 1


def _recipes(n=3, seed=7):
    return [{"prompt": "a red sun", "seed": seed + i, "steps": 4, "sampler": "euler", "cfg": 3.0} for i in range(n)]


def test_slug():
    assert slug("A red sun, over purple mountains!") == "a-red-sun-over-purple-mountains"
    assert slug("???") == "image"
    assert slug("abc def ghi", limit=5) == "abc-d"
    assert slug("abc def", limit=4) == "abc"  # no dash left at the end


def test_free_path_never_overwrites(tmp_path):
    p = tmp_path / "a.png"
    assert free_path(p) == p
    p.write_bytes(b"x")
    assert free_path(p) == tmp_path / "a-2.png"
    (tmp_path / "a-2.png").write_bytes(b"y")
    assert free_path(p) == tmp_path / "a-3.png"
    assert p.read_bytes() == b"x"


def test_output_folder(tmp_path):
    assert output_folder(tmp_path / "new" / "deep").is_dir()
    (tmp_path / "f").write_text("")
    with pytest.raises(UserError, match=r"exists and is not a folder \(--out\)"):
        output_folder(tmp_path / "f")


def test_save_set_writes_pictures_and_a_sheet_with_every_recipe(tmp_path):
    images, recipes = _images(), _recipes()
    paths = save_set(images, recipes, tmp_path / "o", "sun", zoom=3)
    assert [p.name for p in paths] == ["sun-s7.png", "sun-s8.png", "sun-s9.png", "sun-grid-s7.png"]
    for p, r in zip(paths, recipes):
        assert read_recipe(p) == r
        with Image.open(p) as im:
            assert im.size == (8, 8)
    sheet = read_recipe(paths[-1])
    assert sheet["sheet"] == {"cols": 3, "zoom": 3}
    assert sheet["images"] == recipes  # the sheet's recipe lists each picture
    assert sheet["seed"] == 7
    with Image.open(paths[-1]) as im:  # 3 pictures of 24 pixels in a row, 2-pixel gaps
        assert im.size == (3 * 24 + 4 * 2, 24 + 2 * 2)


def test_save_set_again_never_overwrites(tmp_path):
    first = save_set(_images(2), _recipes(2), tmp_path, "sun")
    again = save_set(_images(2, seed=1), _recipes(2), tmp_path, "sun")
    assert [p.name for p in again] == ["sun-s7-2.png", "sun-s8-2.png", "sun-grid-s7-2.png"]
    assert len(set(first) | set(again)) == 6


def test_one_picture_has_no_sheet_and_sheet_false_none(tmp_path):
    assert [p.name for p in save_set(_images(1), _recipes(1), tmp_path, "one")] == ["one-s7.png"]
    assert len(save_set(_images(2), _recipes(2), tmp_path, "two", sheet=False)) == 2


def test_contact_sheet_zooms_by_pixel_repetition():
    pics = [Image.fromarray(np.full((4, 4, 3), v, np.uint8)) for v in (10, 200)]
    pics[0].putpixel((0, 0), (255, 0, 0))
    sheet = contact_sheet(pics, {"cols": 1, "zoom": 2})
    assert sheet.size == (8 + 4, 2 * 8 + 3 * 2)
    a = np.asarray(sheet)
    assert (a[2:4, 2:4] == [255, 0, 0]).all() and (a[2:4, 4] == 10).all()
    assert (a[12, 2] == 200).all()


def test_sheet_zoom_is_checked(tmp_path):
    with pytest.raises(BadParameter, match="^zoom"):
        save_set(_images(2), _recipes(2), tmp_path, "z", zoom=0)


def test_bounce_and_morph_name():
    x = torch.arange(4.0).view(4, 1, 1, 1)
    assert bounce_frames(x).flatten().tolist() == [0, 1, 2, 3, 2, 1]
    assert bounce_frames(x[:2]).flatten().tolist() == [0, 1]
    assert morph_name("a red flower", "a blue flower", 1, 2) == "morph-a-red-flower-to-a-blue-flower-s1-2"
    assert morph_name("a red flower", None, 1, 2) == "morph-a-red-flower-s1-2"
    assert morph_name("a red flower", "a red flower", 3, None) == "morph-a-red-flower-s3"


def test_save_morph(tmp_path):
    frames = _images(3, size=8)
    recipe = {"mode": "morph", "prompt": "a", "seed": 1, "frames": 3}
    gif, mp4, strip = save_morph(frames, recipe, tmp_path, "m", fps=10, zoom=8, bounce=True)
    assert (gif.name, mp4.name, strip.name) == ("m.gif", "m.mp4", "m-strip.png")
    with Image.open(gif) as im:
        assert im.n_frames == 4 and im.size == (64, 64)  # forward and back: 0 1 2 1
    assert read_recipe(strip) == {**recipe, "bounce": True, "fps": 10}
    with Image.open(strip) as im:  # frames side by side at zoom // 4
        assert im.size == (3 * 8 * 2, 8 * 2)
    again = save_morph(frames, recipe, tmp_path, "m", fps=10, zoom=4)
    assert [p.name for p in again] == ["m-2.gif", "m-2.mp4", "m-2-strip.png"]
