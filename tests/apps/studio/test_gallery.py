"""The studio's gallery index: scanning, search and filters, ratings shared with ``noisebrush rate``, paths that
cannot leave the folder, the trash, damaged files and foreign index files. Real files in tmp_path throughout."""
from __future__ import annotations

import json
import os
import sqlite3
import time

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from noisebrush.apps.studio import gallery as gallery_module
from noisebrush.apps.studio.gallery import Gallery
from noisebrush.errors import BadParameter, UserError
from noisebrush.io.atomic import atomic_path
from noisebrush.io.png import save_png
from noisebrush.workflows.preference import RatingStore, as_pixels, pixel_hash

BASE = {"prompt": "a red sun over purple mountains", "label": None, "sampler": "dpmpp_2m", "steps": 20, "cfg": 3.0,
        "seed": 7, "width": 8, "height": 8, "sigma_min": 0.002, "sigma_max": 80.0, "model": "builtin",
        "model_hash": "0123456789", "noisebrush": "0.1.0"}


def picture(k: int = 0, side: int = 8) -> Image.Image:
    return Image.fromarray(np.random.default_rng(k).integers(0, 256, (side, side, 3), dtype=np.uint8), "RGB")


def write(folder, name, recipe=None, *, k=0, mtime=None, side=8):
    """A PNG (with ``recipe`` when given) at folder/name; ``mtime`` (seconds) fixes the newest-first order."""
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if recipe is None:
        picture(k, side).save(path)
    else:
        save_png(picture(k, side), path, recipe)
    if mtime is not None:
        os.utime(path, ns=(int(mtime * 1e9), int(mtime * 1e9)))
    return path


@pytest.fixture
def store(tmp_path):
    return RatingStore(tmp_path / "ratings.sqlite")


@pytest.fixture
def gal(tmp_path, store):
    return Gallery(tmp_path / "gallery", ratings=store)


def paths(entries):
    return [e["path"] for e in entries]


def test_scan_add_reindex_and_removal(gal, tmp_path):
    root = gal.root
    assert root == (tmp_path / "gallery").resolve() and root.is_dir()
    assert (root / ".noisebrush" / "gallery.sqlite").is_file()
    write(root, "sun.png", BASE, mtime=1000)
    write(root, "sub/deeper/moon.png", {**BASE, "prompt": "a pale moon", "seed": 3, "model": "/m/night"}, k=1,
          mtime=1001)
    assert gal.scan() == 2
    new, old = gal.query()
    assert paths([new, old]) == ["sub/deeper/moon.png", "sun.png"]
    assert new["kind"] == "paint" and new["model"] == "night" and new["seed"] == 3
    assert (new["width"], new["height"], new["mtime"]) == (8, 8, 1001.0)
    assert new["recipe"]["prompt"] == "a pale moon" and new["rating"] == 0
    assert new["parameters"].startswith("a pale moon\nSteps: 20, Sampler: dpmpp_2m")
    assert new["pixel_sha256"] == pixel_hash(as_pixels(picture(1))[0])
    # changed file: read again (same id); removed file: forgotten
    write(root, "sun.png", {**BASE, "prompt": "a green sun", "seed": 9}, k=2, mtime=1002)
    (root / "sub" / "deeper" / "moon.png").unlink()
    assert gal.scan() == 1
    [entry] = gal.query()
    assert (entry["id"], entry["prompt"], entry["seed"]) == (old["id"], "a green sun", 9)
    # add(): absolute, relative to the gallery, relative to the current folder
    a = write(root, "a.png", BASE, k=3, mtime=1003)
    assert gal.add(a)["path"] == "a.png"
    b = write(root, "x/b.png", BASE, k=4, mtime=1004)
    assert gal.add("x/b.png")["path"] == "x/b.png"
    c = write(root, "c.png", BASE, k=5, mtime=1005)
    here = os.getcwd()
    os.chdir(tmp_path)
    try:
        assert gal.add(os.path.join("gallery", "c.png"))["path"] == "c.png"
    finally:
        os.chdir(here)
    assert paths(gal.query()) == ["c.png", "x/b.png", "a.png", "sun.png"]
    assert b.exists() and c.exists()
    with pytest.raises(UserError, match="nope.png: no such file in the gallery"):
        gal.add("nope.png")
    with pytest.raises(UserError, match="is outside the gallery"):
        gal.add(tmp_path / "ratings.sqlite")


def test_scan_skips_hidden_temp_and_outside_files(gal, tmp_path):
    root = gal.root
    write(root, "ok.png", BASE)
    write(root, ".hidden.png", BASE)
    write(root, ".secret/in.png", BASE)
    (root / "notes.txt").write_text("not a picture")
    with atomic_path(root / "half.png", suffix=".png") as tmp:  # a write in progress: a hidden temp name
        picture().save(tmp, format="PNG")
        assert os.path.basename(tmp).startswith(".") and tmp.endswith(".png")
        assert gal.scan() == 1
    assert gal.scan() == 2
    outside = write(tmp_path, "outside.png", BASE)
    (root / "link-out.png").symlink_to(outside)
    (root / "link-index.png").symlink_to(root / ".noisebrush" / "gallery.sqlite")
    (root / "link-in.png").symlink_to(root / "ok.png")
    (root / "loop").symlink_to(root, target_is_directory=True)  # links to folders are not followed
    assert gal.scan() == 3
    assert sorted(paths(gal.query())) == ["half.png", "link-in.png", "ok.png"]


def test_unchanged_scan_reads_nothing_and_is_fast(gal, monkeypatch):
    root = gal.root
    blank = picture()
    for i in range(300):
        blank.save(root / f"p{i:03}.png")
    t = time.perf_counter()
    assert gal.scan() == 300
    first = time.perf_counter() - t
    reads = []
    real = Gallery._read
    monkeypatch.setattr(Gallery, "_read", lambda self, *a: reads.append(a) or real(self, *a))
    t = time.perf_counter()
    assert gal.scan() == 300
    again = time.perf_counter() - t
    assert reads == [] and again < 1.0, (first, again)
    os.utime(root / "p007.png", ns=(1, 1))
    assert gal.scan() == 300 and [r[0] for r in reads] == ["p007.png"]


def test_kinds(gal, tmp_path):
    root = gal.root
    write(root, "vary.png", {**BASE, "mode": "vary", "strength": 0.5, "source": "a.png"}, mtime=1)
    sheet = {**BASE, "sheet": {"cols": 2, "zoom": 2}, "images": [BASE, {**BASE, "prompt": "a blue whale"}]}
    write(root, "grid.png", sheet, mtime=2)
    write(root, "up.png", {"mode": "upscale", "prompt": "a sun", "width": 8, "height": 8,
                           "stages": [{"model": "/m/builtin-sr64", "seed": 4}]}, mtime=3)
    write(root, "stages.png", {**BASE, "figure": "stages"}, mtime=4)
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", "a cat in a hat\nSteps: 20, Sampler: Euler a, Seed: 11, Model: sd15")
    picture().save(root / "a1111.png", pnginfo=info)
    write(root, "plain.png")
    morph = {**BASE, "mode": "morph", "to_prompt": "a blue moon", "bounce": True, "fps": 12}
    write(root, "morph-x-strip.png", morph)
    frames = [picture(i) for i in range(3)]
    frames[0].save(root / "morph-x.gif", save_all=True, append_images=frames[1:])
    (root / "morph-x.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 not decoded here")
    frames[0].save(root / "other.gif", save_all=True, append_images=frames[1:])
    write(root, "why/final.png", BASE)
    write(root, "why/strip.png")
    (root / "why" / "explain.json").write_text(json.dumps({"recipe": BASE, "files": ["final.png", "strip.png"]}))
    gal.scan()
    by = {e["path"]: e for e in gal.query()}
    kinds = {p: e["kind"] for p, e in by.items()}
    assert kinds == {"vary.png": "vary", "grid.png": "sheet", "up.png": "upscale", "stages.png": "figure",
                     "a1111.png": "picture", "plain.png": "picture", "morph-x-strip.png": "morph",
                     "morph-x.gif": "morph", "morph-x.mp4": "morph", "other.gif": "animation",
                     "why/final.png": "explain", "why/strip.png": "explain"}
    assert (by["up.png"]["model"], by["up.png"]["seed"]) == ("builtin-sr64", 4)
    assert (by["a1111.png"]["prompt"], by["a1111.png"]["model"], by["a1111.png"]["seed"]) == ("a cat in a hat",
                                                                                              "sd15", 11)
    assert by["a1111.png"]["parameters"].startswith("a cat in a hat\n") and by["a1111.png"]["recipe"] is None
    assert by["plain.png"]["recipe"] is None and by["plain.png"]["parameters"] is None
    assert by["morph-x.gif"]["pixel_sha256"] is None and by["morph-x.mp4"]["width"] is None
    assert by["plain.png"]["pixel_sha256"] is not None
    assert paths(gal.query("whale")) == ["grid.png"]  # every picture of a sheet is searchable
    assert "morph-x.gif" in paths(gal.query("BLUE moon"))
    assert paths(gal.query(kind="sheet")) == ["grid.png"]


def test_query_filters_and_ratings(gal, store):
    root = gal.root
    write(root, "a.png", {**BASE, "prompt": "A Red Sun over the Sea"}, k=1, mtime=1)
    write(root, "b.png", {**BASE, "prompt": "a red moon", "model": "/x/other"}, k=2, mtime=2)
    write(root, "c.png", {**BASE, "prompt": "Über die Berge"}, k=3, mtime=3)
    write(root, "d.png", {**BASE, "prompt": "sunny red sea"}, k=4, mtime=4)
    gal.scan()
    assert paths(gal.query("red")) == ["d.png", "b.png", "a.png"]
    assert paths(gal.query("  sea   RED ")) == ["d.png", "a.png"]
    assert paths(gal.query("über")) == ["c.png"]
    assert paths(gal.query("red", model="other")) == ["b.png"]
    assert gal.models() == ["builtin", "other"]
    assert paths(gal.query(limit=2)) == ["d.png", "c.png"] and paths(gal.query(limit=2, offset=2)) == ["b.png",
                                                                                                       "a.png"]
    # a rating given directly (as `noisebrush rate` does) shows; one given here goes to the same store
    store.rate(root / "a.png", up=True)
    assert gal.rate("b.png", up=False) == -1
    [b] = gal.query("moon")
    assert gal.rate(b["id"], up=True) == 1 and gal.rate(b["id"], up=False) == -1
    assert {r["sha256"]: r["rating"] for r in store.ratings()} == {gal.query("sun over")[0]["pixel_sha256"]: 1,
                                                                    b["pixel_sha256"]: -1}
    assert paths(gal.query(rating="up")) == ["a.png"]
    assert paths(gal.query(rating="down")) == ["b.png"]
    assert paths(gal.query(rating="rated")) == ["b.png", "a.png"]
    assert paths(gal.query(rating="unrated")) == ["d.png", "c.png"]
    assert {e["path"]: e["rating"] for e in gal.query()} == {"a.png": 1, "b.png": -1, "c.png": 0, "d.png": 0}
    assert paths(gal.query("red", rating="rated", limit=1)) == ["b.png"]
    with pytest.raises(BadParameter, match="rating: one of up, down, unrated, rated"):
        gal.query(rating="liked")
    for bad in (0, 1001, 2.5):
        with pytest.raises(BadParameter, match="limit"):
            gal.query(limit=bad)
    with pytest.raises(BadParameter, match="offset"):
        gal.query(offset=-1)
    with pytest.raises(UserError, match="gallery entry 999: not in the gallery's index"):
        gal.rate(999, up=True)


def test_resolve_refuses_everything_outside(gal, tmp_path):
    root = gal.root
    write(root, "ok.png", BASE)
    (root / "sub").mkdir()
    assert gal.resolve("ok.png") == root / "ok.png"
    assert gal.resolve("sub/new.png") == root / "sub" / "new.png"
    outside = write(tmp_path, "outside.png", BASE)
    (root / "link-out.png").symlink_to(outside)
    (root / "dir-out").symlink_to(tmp_path, target_is_directory=True)
    (root / "to-index.png").symlink_to(root / ".noisebrush" / "gallery.sqlite")
    for bad in ["../outside.png", "sub/../../outside.png", "/etc/passwd", str(outside), "link-out.png",
                "dir-out/outside.png", "to-index.png", ".noisebrush/gallery.sqlite", ".trash/x.png", "a\x00b.png",
                "", ".", "~/x.png", b"ok.png", None, 3.5]:
        with pytest.raises(UserError, match="is outside the gallery") as e:
            gal.resolve(bad)
        assert "\n" not in str(e.value)
    for method in (gal.delete, lambda p: gal.rate(p, True)):
        with pytest.raises(UserError, match="is outside the gallery"):
            method("../outside.png")
    assert outside.exists()


def test_delete_trash_restore_with_clashes(gal):
    root = gal.root
    write(root, "sub/sun.png", BASE, k=1, mtime=5)
    write(root, "other/sun.png", BASE, k=2)
    gal.scan()
    first = gal.delete("sub/sun.png")
    assert first == gal.trash_dir / "sun.png" and first.exists() and not (root / "sub" / "sun.png").exists()
    second = gal.delete(gal.query()[0]["id"])
    assert second == gal.trash_dir / "sun-2.png"  # never overwrites in the trash
    assert gal.query() == [] and gal.scan() == 0  # the trash is not part of the gallery
    assert sorted(gal.trash()) == sorted([first, second])
    # the place is taken meanwhile: a free name beside it
    write(root, "sub/sun.png", BASE, k=3)
    back = gal.restore("sun.png")
    assert back == root / "sub" / "sun-2.png" and back.exists()
    assert np.array_equal(np.asarray(Image.open(back)), np.asarray(picture(1)))
    assert back.stat().st_mtime_ns == 5 * 10 ** 9  # back at its place in time, too
    assert "sub/sun-2.png" in paths(gal.query())
    assert gal.restore("sun-2.png") == root / "other" / "sun.png"
    assert gal.trash() == [] and sorted(os.listdir(gal.trash_dir)) == []
    for bad in ("sun.png", "../x.png", ".sun.png.json", "a/b.png", ""):
        with pytest.raises(UserError, match="trash"):
            gal.restore(bad)
    with pytest.raises(UserError, match="gone.png: no such file in the gallery"):
        gal.delete("gone.png")
    # a lost note: back at the top of the gallery
    moved = gal.delete("other/sun.png")
    os.unlink(gal.trash_dir / f".{moved.name}.json")
    assert gal.restore(moved.name) == root / "sun.png"


def test_damaged_files_are_unreadable_entries(gal):
    root = gal.root
    good = write(root, "good.png", BASE)
    data = good.read_bytes()
    (root / "half.png").write_bytes(data[: len(data) // 2])
    (root / "text.png").write_text("hello, I am not a picture")
    (root / "empty.jpg").write_bytes(b"")
    info = PngImagePlugin.PngInfo()
    info.add_text("noisebrush", "{not json")
    picture().save(root / "badrecipe.png", pnginfo=info)
    assert gal.scan() == 5
    kinds = {e["path"]: (e["kind"], e["pixel_sha256"] is None) for e in gal.query()}
    assert kinds == {"good.png": ("paint", False), "half.png": ("unreadable", True),
                     "text.png": ("unreadable", True), "empty.jpg": ("unreadable", True),
                     "badrecipe.png": ("picture", False)}
    with pytest.raises(UserError) as e:
        gal.rate("text.png", up=True)
    assert "\n" not in str(e.value)


def test_foreign_or_damaged_index(tmp_path, store):
    folder = tmp_path / "g"
    (folder / ".noisebrush").mkdir(parents=True)
    con = sqlite3.connect(folder / ".noisebrush" / "gallery.sqlite")
    con.execute("CREATE TABLE recipes (x TEXT)")
    con.commit()
    con.close()
    with pytest.raises(UserError, match=r"gallery.sqlite: a SQLite database of something else \(tables "
                                        r"\['recipes'\]\)") as e:
        Gallery(folder, ratings=store)
    assert "\n" not in str(e.value)
    (folder / ".noisebrush" / "gallery.sqlite").write_bytes(b"not a database at all" * 100)
    with pytest.raises(UserError, match="gallery.sqlite: not a readable gallery index"):
        Gallery(folder, ratings=store)
    newer = tmp_path / "n"
    Gallery(newer, ratings=store)
    con = sqlite3.connect(newer / ".noisebrush" / "gallery.sqlite")
    con.execute("PRAGMA user_version = 99")
    con.commit()
    con.close()
    with pytest.raises(UserError, match="newer noisebrush"):
        Gallery(newer, ratings=store)
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match="file: is not a folder"):
        Gallery(tmp_path / "file", ratings=store)
    with pytest.raises(UserError, match="cannot make the gallery folder"):
        Gallery(tmp_path / "file" / "below", ratings=store)


def test_index_is_wal_and_versioned(gal):
    con = sqlite3.connect(gal.index)
    try:
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert con.execute("PRAGMA user_version").fetchone()[0] == gallery_module.GALLERY_FORMAT
    finally:
        con.close()
