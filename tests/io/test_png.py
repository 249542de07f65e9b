"""PNGs that carry their recipe: JSON chunk + A1111 ``parameters`` chunk, atomic writes, clear errors."""
import json
import os

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from noisebrush.errors import UserError
from noisebrush.io.png import RECIPE_KEY, a1111_parameters, read_picture, read_recipe, save_png

RECIPE = {"prompt": "a red sun over purple mountains", "label": None, "sampler": "dpmpp_2m", "steps": 20, "cfg": 3.0,
          "seed": 7, "width": 16, "height": 16, "sigma_min": 0.002, "sigma_max": 80.0, "model": "mymodel",
          "model_hash": "0123456789", "noisebrush": "0.1.0"}


def _picture(w=16, h=12):
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), "RGB")


def _umask():
    m = os.umask(0)
    os.umask(m)
    return m


def test_round_trip(tmp_path):
    pic = _picture()
    path = save_png(pic, tmp_path / "sun.png", RECIPE)
    assert path == tmp_path / "sun.png" and path.is_file()
    assert read_recipe(path) == RECIPE
    assert read_recipe(str(path)) == RECIPE
    with Image.open(path) as im:
        assert im.format == "PNG" and im.size == (16, 12)
        assert np.array_equal(np.asarray(im.convert("RGB")), np.asarray(pic))


def test_parameters_chunk_in_a1111_layout(tmp_path):
    path = save_png(_picture(), tmp_path / "sun.png", RECIPE)
    with Image.open(path) as im:
        text = im.text
    assert set(text) >= {"parameters", RECIPE_KEY}
    assert json.loads(text[RECIPE_KEY]) == RECIPE
    lines = text["parameters"].split("\n")
    assert lines == ["a red sun over purple mountains",
                     "Steps: 20, Sampler: dpmpp_2m, CFG scale: 3.0, Seed: 7, Size: 16x16, Model hash: 0123456789, "
                     "Model: mymodel, Version: noisebrush 0.1.0"]
    # what an A1111 "PNG info" reader does: last line → key: value pairs
    fields = dict(kv.split(": ", 1) for kv in lines[-1].split(", "))
    assert fields["Seed"] == "7" and fields["Size"] == "16x16" and fields["Sampler"] == "dpmpp_2m"


def test_a1111_parameters_leaves_out_missing_fields():
    text = a1111_parameters({"prompt": "p", "steps": 4, "seed": 1, "width": 8, "height": 8})
    assert text == "p\nSteps: 4, Seed: 1, Size: 8x8, Version: noisebrush None"


def test_unicode_prompt(tmp_path):
    rec = {**RECIPE, "prompt": "un soleil rouge — 赤い太陽 🌅"}
    path = save_png(_picture(), tmp_path / "u.png", rec)
    assert read_recipe(path) == rec
    with Image.open(path) as im:
        assert im.text["parameters"].split("\n")[0] == rec["prompt"]


def test_png_without_recipe(tmp_path):
    p = tmp_path / "plain.png"
    _picture().save(p)
    with pytest.raises(UserError, match="no noisebrush parameters"):
        read_recipe(p)


def test_png_with_only_a1111_parameters(tmp_path):
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", "a cat\nSteps: 20, Seed: 1")
    p = tmp_path / "a1111.png"
    _picture().save(p, pnginfo=info)
    with pytest.raises(UserError, match="no noisebrush parameters"):
        read_recipe(p)


@pytest.mark.parametrize("raw, match", [("{not json", "not valid JSON"), ("[1, 2]", "not a JSON object"),
                                        ('"text"', "not a JSON object")])
def test_bad_recipe_chunk(tmp_path, raw, match):
    info = PngImagePlugin.PngInfo()
    info.add_text(RECIPE_KEY, raw)
    p = tmp_path / "bad.png"
    _picture().save(p, pnginfo=info)
    with pytest.raises(UserError, match=match):
        read_recipe(p)


def test_not_an_image(tmp_path):
    p = tmp_path / "notes.png"
    p.write_text("hello, I am not a picture")
    with pytest.raises(UserError, match="not a readable image") as e:
        read_recipe(p)
    assert "\n" not in str(e.value)


def test_truncated_png(tmp_path):
    p = save_png(_picture(64, 64), tmp_path / "t.png", RECIPE)
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError) as e:
        read_recipe(p)
    assert "\n" not in str(e.value)


def test_other_image_format(tmp_path):
    p = tmp_path / "pic.jpg"
    _picture().save(p, format="JPEG")
    with pytest.raises(UserError, match="no noisebrush parameters"):
        read_recipe(p)


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(UserError, match="no such file"):
        read_recipe(tmp_path / "missing.png")
    with pytest.raises(UserError, match="no such file"):
        read_recipe(tmp_path)


def test_atomic_write_leaves_no_temp_files(tmp_path):
    save_png(_picture(), tmp_path / "a.png", RECIPE)
    save_png(_picture(), tmp_path / "a.png", {**RECIPE, "seed": 8})  # replaces
    assert sorted(os.listdir(tmp_path)) == ["a.png"]
    assert read_recipe(tmp_path / "a.png")["seed"] == 8
    assert (tmp_path / "a.png").stat().st_mode & 0o777 == 0o666 & ~_umask()


def test_creates_the_folder(tmp_path):
    p = save_png(_picture(), tmp_path / "new" / "deeper" / "a.png", RECIPE)
    assert read_recipe(p) == RECIPE


def test_failure_mid_save_leaves_the_old_file(tmp_path, monkeypatch):
    path = save_png(_picture(), tmp_path / "a.png", RECIPE)
    before = path.read_bytes()

    def broken_save(self, fp, *args, **kwargs):
        with open(fp, "wb") as f:
            f.write(b"\x89PNG half a picture")
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_png(_picture(), path, {**RECIPE, "seed": 99})
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["a.png"]
    assert read_recipe(path) == RECIPE


def test_failure_on_a_new_file_leaves_nothing(tmp_path, monkeypatch):
    def broken_save(self, fp, *args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(KeyboardInterrupt):
        save_png(_picture(), tmp_path / "new.png", RECIPE)
    assert os.listdir(tmp_path) == []


def test_read_picture_returns_rgb_and_the_recipe_or_none(tmp_path):
    path = save_png(_picture(), tmp_path / "r.png", RECIPE)
    picture, recipe = read_picture(path)
    assert picture.mode == "RGB" and picture.size == _picture().size and recipe == RECIPE
    plain = tmp_path / "plain.png"
    _picture().convert("L").save(plain)
    picture, recipe = read_picture(plain)
    assert picture.mode == "RGB" and recipe is None
    for raw in ("{not json", "[1, 2]", "{}"):
        info = PngImagePlugin.PngInfo()
        info.add_text(RECIPE_KEY, raw)
        _picture().save(tmp_path / "bad.png", pnginfo=info)
        assert read_picture(tmp_path / "bad.png")[1] is None


def test_read_picture_errors_are_one_line(tmp_path):
    with pytest.raises(UserError, match="missing.png: no such file"):
        read_picture(tmp_path / "missing.png")
    p = tmp_path / "notes.png"
    p.write_text("hello, I am not a picture")
    with pytest.raises(UserError, match="notes.png: not a readable image") as e:
        read_picture(p)
    assert "\n" not in str(e.value)


def test_a1111_parameters_carry_the_negative_prompt():
    text = a1111_parameters({"prompt": "a red sun", "negative": "blue", "steps": 4, "seed": 1, "width": 8,
                             "height": 8})
    assert text.splitlines()[:2] == ["a red sun", "Negative prompt: blue"]
    assert "Negative prompt" not in a1111_parameters({"prompt": "a red sun", "steps": 4})
