"""Saving pictures with their recipes (noisebrush.io.outputs): free names, sets with a contact sheet, morph files."""
import tempfile
import unicodedata
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st
from PIL import Image

from noisebrush.errors import BadParameter, UserError
from noisebrush.io.outputs import (Keeper, bounce_frames, check_output_file, contact_sheet, free_path, morph_name,
                                   output_folder, save_animation, save_set, slug)
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


def test_save_animation(tmp_path):
    frames = _images(3, size=8)
    recipe = {"mode": "morph", "prompt": "a", "seed": 1, "frames": 3}
    gif, mp4, strip = save_animation(frames, recipe, tmp_path, "m", fps=10, zoom=8, bounce=True)
    assert (gif.name, mp4.name, strip.name) == ("m.gif", "m.mp4", "m-strip.png")
    with Image.open(gif) as im:
        assert im.n_frames == 4 and im.size == (64, 64)  # forward and back: 0 1 2 1
    assert read_recipe(strip) == {**recipe, "bounce": True, "fps": 10}
    with Image.open(strip) as im:  # frames side by side at zoom // 4
        assert im.size == (3 * 8 * 2, 8 * 2)
    again = save_animation(frames, recipe, tmp_path, "m", fps=10, zoom=4)
    assert [p.name for p in again] == ["m-2.gif", "m-2.mp4", "m-2-strip.png"]


# -- issue 12: names in every script, writability first, nothing lost -----------------------------------------------

def test_slug_keeps_letters_of_every_script():
    assert slug("über Berge") == "uber-berge"
    assert slug("Tiếng Việt, à la crème") == "tieng-viet-a-la-creme"
    assert slug("山水画") == "山水画"
    assert slug("Москва ночью") == "москва-ночью"
    assert slug("Ελλάδα") == "ελλάδα"  # Greek keeps its accents: only Latin letters lose theirs
    assert slug("한국어 그림") == "한국어-그림"
    assert slug("a_b") == "a-b"
    assert slug("🌸🌸") == slug("…!?") == slug("") == "image"
    assert len(slug("山" * 100)) == 40


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80), st.integers(1, 60))
def test_slug_is_always_a_file_name_component(text, limit):
    s = slug(text, limit)
    assert s and len(s) <= max(limit, len("image"))
    assert "/" not in s and "\\" not in s and "\0" not in s
    assert not s.startswith((".", "-")) and not s.endswith("-")
    if any(unicodedata.category(c)[0] == "L" for c in text):
        assert s != "image" or "image" in text.lower()  # a prompt with letters never loses them all


def _mkstemp_fails_in(monkeypatch, folder):
    real = tempfile.mkstemp

    def mkstemp(*a, dir=None, **k):
        if dir is not None and Path(dir).absolute() == Path(folder).absolute():
            raise PermissionError(13, "Permission denied", str(dir))
        return real(*a, dir=dir, **k)

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)


def test_output_folder_and_check_output_file_probe_writability(tmp_path, monkeypatch):
    ro = tmp_path / "ro"
    ro.mkdir()
    _mkstemp_fails_in(monkeypatch, ro)
    with pytest.raises(UserError, match=r"ro: cannot write here \(--out: Permission denied\)"):
        output_folder(ro / "sub")
    assert not (ro / "sub").exists()
    with pytest.raises(UserError, match=r"ro: cannot write here \(--json: Permission denied\)"):
        check_output_file(ro / "r.json", what="--json")


def test_check_output_file_never_overwrites_unless_forced(tmp_path):
    victim = tmp_path / "victim.png"
    assert check_output_file(victim, what="--out") == victim
    victim.write_bytes(b"x")
    assert check_output_file(victim, what="--out") == tmp_path / "victim-2.png"
    assert check_output_file(victim, what="--out", force=True) == victim
    with pytest.raises(UserError, match="is a folder"):
        check_output_file(tmp_path, what="--out")


def test_save_set_keeps_every_picture_when_the_folder_cannot_be_written(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    out = tmp_path / "o"
    out.mkdir()
    _mkstemp_fails_in(monkeypatch, out)
    with pytest.raises(UserError) as e:
        save_set(_images(), _recipes(), out, "sun")
    rescued = tmp_path / "tmp" / "noisebrush-rescued" / "o"
    assert str(e.value) == (f"{out}: cannot be written (--out: Permission denied); the 4 files of this run are kept "
                            f"in {rescued}/")
    assert sorted(p.name for p in rescued.iterdir()) == ["sun-grid-s7.png", "sun-s7.png", "sun-s8.png", "sun-s9.png"]
    assert read_recipe(rescued / "sun-s8.png") == _recipes()[1]
    assert not list(out.iterdir())


def test_keeper_records_what_it_wrote(tmp_path):
    keep = Keeper(tmp_path)
    (tmp_path / "a.txt").write_text("old")
    p = keep.save(lambda path: path.write_text("new"), "a.txt")
    assert p == tmp_path / "a-2.txt" and keep.written == [p] and keep.done() == [p]
    assert (tmp_path / "a.txt").read_text() == "old"
    assert Keeper(tmp_path, force=True).save(lambda path: path.write_text("new"), "a.txt") == tmp_path / "a.txt"
