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


# -- reading A1111-style parameters back ------------------------------------------------------------------------------
def test_parse_a1111_inverts_a1111_parameters():
    from noisebrush.io.png import parse_a1111

    rec = {**RECIPE, "negative": "blue, grey", "model": "/models/mymodel"}
    got = parse_a1111(a1111_parameters(rec))
    assert {k: got[k] for k in ("prompt", "negative", "steps", "sampler", "cfg", "seed", "size", "model")} == {
        "prompt": rec["prompt"], "negative": "blue, grey", "steps": 20, "sampler": "dpmpp_2m", "cfg": 3.0,
        "seed": 7, "size": 16, "model": "mymodel"}
    assert got["extra"] == {"Model hash": "0123456789", "Version": "noisebrush 0.1.0"}
    wide = parse_a1111(a1111_parameters({**RECIPE, "width": 24, "height": 16, "prompt": "two\nlines"}))
    assert wide["width"] == 24 and wide["height"] == 16 and "size" not in wide and wide["prompt"] == "two\nlines"


def test_parse_a1111_reads_automatic1111_text():
    from noisebrush.io.png import parse_a1111

    text = ("masterpiece, a cat on a roof\nat night\nNegative prompt: blurry, ugly\nlow quality\n"
            'Steps: 30, Sampler: DPM++ 2M Karras, CFG scale: 7.5, Seed: 3141592653, Size: 512x768, '
            'Model hash: 6ce0161689, Model: v1-5-pruned, Lora hashes: "add_detail: 7c6bad76eb54, x: 1", '
            "Version: v1.6.0\n")
    got = parse_a1111(text)
    assert got["prompt"] == "masterpiece, a cat on a roof\nat night"
    assert got["negative"] == "blurry, ugly\nlow quality"
    assert (got["steps"], got["sampler"], got["cfg"], got["seed"]) == (30, "dpmpp_2m", 7.5, 3141592653)
    assert (got["width"], got["height"], got["model"]) == (512, 768, "v1-5-pruned")
    assert got["extra"] == {"Model hash": "6ce0161689", "Lora hashes": "add_detail: 7c6bad76eb54, x: 1",
                            "Version": "v1.6.0"}


@pytest.mark.parametrize("theirs, ours", [("Euler a", "euler_ancestral"), ("Euler", "euler"), ("Heun", "heun"),
                                          ("DPM++ 2M", "dpmpp_2m"), ("DPM++ 2M Karras", "dpmpp_2m"),
                                          ("DPM++ SDE Karras", "dpmpp_2m_sde"), ("DPM++ 2M SDE", "dpmpp_2m_sde"),
                                          ("DDIM", "ddim"), ("dpmpp_2m", "dpmpp_2m"), ("langevin", "langevin")])
def test_parse_a1111_maps_sampler_names(theirs, ours):
    from noisebrush.io.png import parse_a1111

    got = parse_a1111(f"p\nSteps: 4, Sampler: {theirs}, Seed: 1")
    assert got["sampler"] == ours and "sampler_name" not in got


def test_parse_a1111_sampler_names_are_ours():
    from noisebrush.diffusion.samplers import SAMPLERS
    from noisebrush.io import png

    assert set(png._SAMPLER_NAMES.values()) <= set(SAMPLERS)
    assert set(png._OUR_SAMPLERS) == set(SAMPLERS)
    assert all(png._our_sampler(s) == s for s in SAMPLERS)  # what a1111_parameters writes reads back


def test_parse_a1111_keeps_unknown_samplers_and_never_raises():
    from noisebrush.io.png import parse_a1111

    got = parse_a1111("a fox\nSteps: x, Sampler: LMS, CFG scale: high, Seed: -, Size: big, Clip skip: 2")
    assert got["sampler_name"] == "LMS" and "sampler" not in got
    assert not {"steps", "cfg", "seed", "size", "width"} & set(got)
    assert got["extra"] == {"Steps": "x", "CFG scale": "high", "Seed": "-", "Size": "big", "Clip skip": "2"}
    for text in ["", "\n\n", "just words: with a colon, and commas", 'a\nSteps: "unclosed, Seed: 1',
                 "Negative prompt:", "a\r\nSteps: 4, Seed: 2, Size: 8x8\r\n", ":" * 1000, "x" * 100_000]:
        got = parse_a1111(text)
        assert isinstance(got["prompt"], str) and isinstance(got["extra"], dict)
    assert parse_a1111("just words: with a colon, and commas")["prompt"] == "just words: with a colon, and commas"
    assert parse_a1111("a\r\nSteps: 4, Seed: 2, Size: 8x8\r\n") == {"prompt": "a", "negative": "", "extra": {},
                                                                    "steps": 4, "seed": 2, "size": 8}
    assert parse_a1111(None) == {"prompt": "", "negative": "", "extra": {}}


def test_read_parameters_from_a_recipe_round_trips(tmp_path):
    from noisebrush.io.png import read_parameters

    rec = {**RECIPE, "negative": "blue", "width": 24}
    got = read_parameters(save_png(_picture(), tmp_path / "r.png", rec))
    assert {k: got[k] for k in ("prompt", "negative", "steps", "sampler", "cfg", "seed", "model", "n")} == {
        "prompt": rec["prompt"], "negative": "blue", "steps": 20, "sampler": "dpmpp_2m", "cfg": 3.0, "seed": 7,
        "model": "mymodel", "n": 1}
    assert (got["width"], got["height"], got["recipe"]) == (24, 16, rec)
    assert read_parameters(save_png(_picture(), tmp_path / "s.png", RECIPE))["size"] == 16


def test_read_parameters_from_a1111_or_one_line(tmp_path):
    from noisebrush.io.png import read_parameters

    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", "a cat\nSteps: 20, Sampler: Euler a, Seed: 1")
    p = tmp_path / "a1111.png"
    _picture().save(p, pnginfo=info)
    got = read_parameters(p)
    assert (got["prompt"], got["steps"], got["sampler"], got["seed"]) == ("a cat", 20, "euler_ancestral", 1)
    info = PngImagePlugin.PngInfo()  # a damaged recipe: the A1111 chunk is used
    info.add_text(RECIPE_KEY, "{not json")
    info.add_text("parameters", "a dog\nSteps: 3, Seed: 2, Size: 8x8")
    _picture().save(tmp_path / "d.png", pnginfo=info)
    assert read_parameters(tmp_path / "d.png")["prompt"] == "a dog"
    _picture().save(tmp_path / "plain.png")
    with pytest.raises(UserError, match=r"plain.png: carries no painting parameters \(neither a noisebrush recipe "
                                        r"nor A1111-style parameters\)"):
        read_parameters(tmp_path / "plain.png")
    (tmp_path / "junk.png").write_text("not a picture")
    with pytest.raises(UserError, match="junk.png: not a readable image"):
        read_parameters(tmp_path / "junk.png")
