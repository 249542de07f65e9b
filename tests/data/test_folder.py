"""ImageFolder: every file is made here with Pillow in tmp_path."""
import logging
import os

import numpy as np
import pytest
import torch
from PIL import Image

import noisebrush.data.folder as folder_mod
from noisebrush.data.folder import ImageFolder
from noisebrush.errors import BadParameter, UserError

RED, GREEN, BLUE, WHITE = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)


def to_rgb255(image: torch.Tensor) -> np.ndarray:
    """3×H×W in [-1, 1] → H×W×3 float in [0, 255]."""
    return ((image.permute(1, 2, 0).numpy() + 1.0) * 127.5).astype(np.float64)


def mean_rgb(image: torch.Tensor) -> np.ndarray:
    return to_rgb255(image).reshape(-1, 3).mean(0)


def solid(path, colour=RED, size=(16, 16), mode="RGB", **save):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, colour).save(path, **save)
    return path


def noisy_png(path, size=(64, 64), seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    a = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(a).save(path)
    return path


def only_item(root, **kw):
    ds = ImageFolder(root, **kw)
    assert len(ds) == 1, ds.skipped
    return ds[0]


# ------------------------------------------------------------------------------------------------ bad files


def test_bad_files_are_skipped_with_one_warning_each(tmp_path, caplog):
    solid(tmp_path / "good.png")
    full = noisy_png(tmp_path / "src.bin.png").read_bytes()
    (tmp_path / "src.bin.png").unlink()
    (tmp_path / "truncated.png").write_bytes(full[: len(full) // 2])
    (tmp_path / "notes.jpg").write_text("this is not a picture\n")
    (tmp_path / "empty.jpg").write_bytes(b"")
    jpeg = tmp_path / "garbage_inside.jpg"
    solid(jpeg, size=(64, 64))
    raw = bytearray(jpeg.read_bytes())
    jpeg.write_bytes(bytes(raw[: len(raw) // 3]))  # a JPEG cut short
    (tmp_path / "readme.md").write_text("ignored: not an image extension")

    with caplog.at_level(logging.WARNING, logger="noisebrush.data"):
        ds = ImageFolder(tmp_path, resolution=16)

    assert len(ds) == 1 and ds.paths == [str(tmp_path / "good.png")]
    bad = {"truncated.png", "notes.jpg", "empty.jpg", "garbage_inside.jpg"}
    assert {os.path.basename(p) for p, _ in ds.skipped} == bad
    reasons = dict((os.path.basename(p), r) for p, r in ds.skipped)
    assert "empty" in reasons["empty.jpg"]
    assert "truncated" in reasons["truncated.png"]
    assert "not an image" in reasons["notes.jpg"]

    warnings = [r for r in caplog.records if r.name == "noisebrush.data" and r.levelno == logging.WARNING]
    assert len(warnings) == len(bad)
    for name in bad:
        hits = [r for r in warnings if str(tmp_path / name) in r.getMessage()]
        assert len(hits) == 1, name
        assert "\n" not in hits[0].getMessage()


def test_nothing_readable_is_a_user_error(tmp_path):
    (tmp_path / "a.png").write_bytes(b"")
    (tmp_path / "b.jpg").write_text("hello")
    with pytest.raises(UserError) as e:
        ImageFolder(tmp_path)
    msg = str(e.value)
    assert str(tmp_path) in msg and "no readable images" in msg and "2 files skipped" in msg
    assert "\n" not in msg


def test_empty_missing_and_file_paths_are_user_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "only_text").mkdir()
    (tmp_path / "only_text" / "a.txt").write_text("caption without picture")
    solid(tmp_path / "only_hidden" / ".secret.png")
    picture = solid(tmp_path / "pic.png")
    for path in ["empty", "only_text", "only_hidden", "missing", "pic.png"]:
        with pytest.raises(UserError) as e:
            ImageFolder(tmp_path / path)
        assert str(tmp_path / path) in str(e.value), path
        assert "\n" not in str(e.value)
    assert not isinstance(e.value, BadParameter)
    assert picture.exists()


@pytest.mark.parametrize(
    "kw, name",
    [
        (dict(resolution=4), "resolution"),
        (dict(resolution=5000), "resolution"),
        (dict(resolution="32"), "resolution"),
        (dict(resolution=32.0), "resolution"),
        (dict(crop="top"), "crop"),
        (dict(seed="a"), "seed"),
    ],
)
def test_bad_parameters(tmp_path, kw, name):
    solid(tmp_path / "a.png")
    with pytest.raises(BadParameter, match=name):
        ImageFolder(tmp_path, **kw)


def test_bad_epoch(tmp_path):
    solid(tmp_path / "a.png")
    ds = ImageFolder(tmp_path, resolution=8)
    with pytest.raises(BadParameter, match="epoch"):
        ds.set_epoch(-1)


# ------------------------------------------------------------------------------------------------ formats


def _cmyk_jpeg(p):
    solid(p, (0, 255, 255, 0), mode="CMYK", quality=95)  # cyan 0, magenta+yellow full = red


def _tiff(p):
    solid(p, BLUE)


def _webp(p):
    solid(p, GREEN, lossless=True)


def _bmp(p):
    solid(p, BLUE)


def _one_pixel(p):
    solid(p, GREEN, size=(1, 1))


def _gray(p):
    solid(p, 100, mode="L")


def _one_bit(p):
    solid(p, 1, mode="1")


def _animated_gif(p):
    frames = [Image.new("RGB", (16, 16), c) for c in (RED, BLUE, GREEN)]
    frames[0].save(p, save_all=True, append_images=frames[1:], duration=50, loop=0)


def _ycbcr_jpeg(p):
    Image.new("RGB", (16, 16), BLUE).convert("YCbCr").save(p, quality=95)


@pytest.mark.parametrize(
    "name, make, expected, tol",
    [
        ("cmyk.jpg", _cmyk_jpeg, RED, 6),
        ("ycbcr.jpeg", _ycbcr_jpeg, BLUE, 6),
        ("pic.tif", _tiff, BLUE, 0.01),
        ("pic.TIFF", _tiff, BLUE, 0.01),
        ("pic.webp", _webp, GREEN, 0.01),
        ("pic.bmp", _bmp, BLUE, 0.01),
        ("dot.png", _one_pixel, GREEN, 0.01),
        ("gray.png", _gray, (100, 100, 100), 0.01),
        ("bits.png", _one_bit, WHITE, 0.01),
        ("anim.gif", _animated_gif, RED, 0.01),
        ("UPPER.JPG", lambda p: solid(p, GREEN, quality=95), GREEN, 6),
    ],
)
def test_formats_decode_to_rgb(tmp_path, name, make, expected, tol):
    make(tmp_path / name)
    item = only_item(tmp_path, resolution=8)
    assert item["image"].shape == (3, 8, 8) and item["image"].dtype == torch.float32
    np.testing.assert_allclose(mean_rgb(item["image"]), expected, atol=tol)


def test_sixteen_bit_png_scales_instead_of_clipping(tmp_path):
    a = np.zeros((32, 32), np.uint16)
    a[:, 8:16] = 32768  # 65535 * 0.5
    a[:, 16:24] = 65535
    a[:, 24:] = 257 * 10
    Image.fromarray(a).save(tmp_path / "deep.png")
    with Image.open(tmp_path / "deep.png") as check:
        assert check.mode in ("I;16", "I")
    rgb = to_rgb255(only_item(tmp_path, resolution=32)["image"])  # 32 px: no resize, exact values
    np.testing.assert_allclose(rgb[:, :8], 0, atol=1e-3)
    np.testing.assert_allclose(rgb[:, 8:16], 128, atol=1e-3)
    np.testing.assert_allclose(rgb[:, 16:24], 255, atol=1e-3)
    np.testing.assert_allclose(rgb[:, 24:], 10, atol=1e-3)


def test_rgba_transparent_becomes_white_opaque_kept(tmp_path):
    a = np.zeros((32, 32, 4), np.uint8)  # left half: transparent black
    a[:, 16:] = (10, 200, 30, 255)  # right half: opaque green
    Image.fromarray(a, "RGBA").save(tmp_path / "alpha.png")
    rgb = to_rgb255(only_item(tmp_path, resolution=32)["image"])
    np.testing.assert_allclose(rgb[:, :16], 255, atol=1e-3)
    np.testing.assert_allclose(rgb[:, 16:], np.broadcast_to([10, 200, 30], (32, 16, 3)), atol=1e-3)


def test_palette_gif_with_transparency(tmp_path):
    p = Image.new("P", (32, 32), 0)
    p.putpalette([0, 0, 0] + list(RED) + [0] * (256 * 3 - 6))
    p.paste(1, (16, 0, 32, 32))
    p.save(tmp_path / "pal.gif", transparency=0)
    rgb = to_rgb255(only_item(tmp_path, resolution=32)["image"])
    np.testing.assert_allclose(rgb[:, :16], 255, atol=1e-3)  # index 0 is transparent, not black
    np.testing.assert_allclose(rgb[:, 16:], np.broadcast_to(RED, (32, 16, 3)), atol=1e-3)


def test_exif_orientation_is_applied(tmp_path):
    # Stored 64 wide × 32 high, left half red. Orientation 6 = "rotate 90° clockwise to view": red ends up on top.
    img = Image.new("RGB", (64, 32), BLUE)
    img.paste(RED, (0, 0, 32, 32))
    exif = Image.Exif()
    exif[0x0112] = 6
    img.save(tmp_path / "phone.jpg", exif=exif, quality=95)
    ds = ImageFolder(tmp_path, resolution=16)
    assert ds._arrays[0].shape == (32, 16, 3)  # portrait after the transpose
    rgb = to_rgb255(ds[0]["image"])  # centre 16×16 of the 16×32 portrait: top 8 rows red, bottom 8 blue
    np.testing.assert_allclose(rgb[:6].reshape(-1, 3).mean(0), RED, atol=8)
    np.testing.assert_allclose(rgb[-6:].reshape(-1, 3).mean(0), BLUE, atol=8)


def test_big_photo_resizes_short_side(tmp_path):
    img = Image.new("RGB", (4000, 3000), RED)
    img.paste(BLUE, (2000, 0, 4000, 3000))
    img.save(tmp_path / "big.jpg", quality=85)
    ds = ImageFolder(tmp_path, resolution=32)
    assert ds._arrays[0].shape == (32, 43, 3)  # 4000×3000 → short side 32, long side round(42.67)
    rgb = to_rgb255(ds[0]["image"])
    np.testing.assert_allclose(rgb[:, :10].reshape(-1, 3).mean(0), RED, atol=8)
    np.testing.assert_allclose(rgb[:, -10:].reshape(-1, 3).mean(0), BLUE, atol=8)


# ------------------------------------------------------------------------------------------------ layout


def test_captions_from_sidecars(tmp_path):
    solid(tmp_path / "cat.png")
    (tmp_path / "cat.txt").write_text("  a ginger cat, oil painting \n\n", encoding="utf-8")
    solid(tmp_path / "dog.jpg")
    solid(tmp_path / "sub" / "owl.webp")
    (tmp_path / "sub" / "owl.txt").write_bytes("\ufeffune chouette".encode("utf-8"))
    ds = ImageFolder(tmp_path, resolution=8)
    got = {os.path.basename(ds[i]["path"]): ds[i]["caption"] for i in range(len(ds))}
    assert got == {"cat.png": "a ginger cat, oil painting", "dog.jpg": "", "owl.webp": "une chouette"}


def test_class_labels_from_first_level_subfolders(tmp_path):
    solid(tmp_path / "root.png")
    solid(tmp_path / "dogs" / "d1.png")
    solid(tmp_path / "cats" / "c1.png")
    solid(tmp_path / "cats" / "deep" / "deeper" / "c2.png")
    (tmp_path / "empty").mkdir()
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "x.png").write_bytes(b"")  # a folder of nothing readable makes no class
    solid(tmp_path / ".cache" / "thumb.png")
    solid(tmp_path / "cats" / ".hidden.png")
    ds = ImageFolder(tmp_path, resolution=8)
    assert ds.classes == [".", "cats", "dogs"] and ds.num_classes == 3
    rel = [os.path.relpath(p, tmp_path) for p in ds.paths]
    assert rel == sorted(rel, key=lambda r: tuple(r.split(os.sep)))  # deterministic sorted order
    got = {r: ds.classes[ds[i]["label"]] for i, r in enumerate(rel)}
    assert got == {
        "root.png": ".",
        os.path.join("cats", "c1.png"): "cats",
        os.path.join("cats", "deep", "deeper", "c2.png"): "cats",
        os.path.join("dogs", "d1.png"): "dogs",
    }
    assert [os.path.basename(p) for p, _ in ds.skipped] == ["x.png"]  # hidden ones are not even counted


def test_flat_folder_has_one_class(tmp_path):
    solid(tmp_path / "a.png")
    solid(tmp_path / "b.png")
    ds = ImageFolder(tmp_path, resolution=8)
    assert ds.classes == ["."] and ds.num_classes == 1
    assert [ds[i]["label"] for i in range(2)] == [0, 0]


def test_item_contents_and_dataloader(tmp_path):
    solid(tmp_path / "a.png", size=(20, 12))
    solid(tmp_path / "b.png", BLUE, size=(9, 30))
    ds = ImageFolder(tmp_path, resolution=8)
    item = ds[-1]
    assert set(item) == {"image", "caption", "label", "index", "path"}
    assert item["index"] == 1 and item["path"] == str(tmp_path / "b.png")
    assert item["image"].shape == (3, 8, 8) and item["image"].dtype == torch.float32
    assert item["image"].min() >= -1 and item["image"].max() <= 1
    with pytest.raises(IndexError):
        ds[2]
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=2)))
    assert batch["image"].shape == (2, 3, 8, 8) and batch["index"].tolist() == [0, 1]


# ------------------------------------------------------------------------------------------------ randomness


def _pattern_folder(tmp_path, n=4):
    for k in range(n):
        noisy_png(tmp_path / f"{k}.png", size=(40 + 7 * k, 24), seed=k)
    return tmp_path


def test_random_crop_and_flip_are_a_function_of_seed_epoch_index(tmp_path):
    root = _pattern_folder(tmp_path)
    a = ImageFolder(root, resolution=16, crop="random", flip=True, seed=7)
    b = ImageFolder(root, resolution=16, crop="random", flip=True, seed=7, cache=False)
    for epoch in (0, 3, 11):
        b.set_epoch(epoch)
        for i in reversed(range(len(b))):  # access order does not matter
            assert torch.equal(a.get(i, epoch)["image"], b[i]["image"])
    # different epochs and seeds give different crops/flips
    per_epoch = [torch.stack([a.get(i, e)["image"] for i in range(len(a))]) for e in range(6)]
    assert sum(not torch.equal(per_epoch[0], x) for x in per_epoch[1:]) >= 4
    c = ImageFolder(root, resolution=16, crop="random", flip=True, seed=8)
    assert not all(torch.equal(a.get(i, 0)["image"], c.get(i, 0)["image"]) for i in range(len(a)))
    # the state set by set_epoch is what ds[i] uses
    a.set_epoch(5)
    assert torch.equal(a[2]["image"], a.get(2, 5)["image"])


def test_center_crop_with_flip_mirrors_the_centre_only(tmp_path):
    noisy_png(tmp_path / "a.png", size=(30, 16))
    ds = ImageFolder(tmp_path, resolution=16, crop="center", flip=True)
    plain = ImageFolder(tmp_path, resolution=16, crop="center", flip=False)
    centre = plain[0]["image"]
    seen = set()
    for epoch in range(20):
        img = ds.get(0, epoch)["image"]
        if torch.equal(img, centre):
            seen.add("plain")
        elif torch.equal(img, centre.flip(-1)):
            seen.add("flipped")
        else:
            raise AssertionError("centre crop moved")
        assert torch.equal(plain.get(0, epoch)["image"], centre)
    assert seen == {"plain", "flipped"}


# ------------------------------------------------------------------------------------------------ cache


def _spy_decode(monkeypatch):
    calls = []
    real = folder_mod._decode

    def spy(path, resolution, *more):
        calls.append(str(path))
        return real(path, resolution, *more)

    monkeypatch.setattr(folder_mod, "_decode", spy)
    return calls


def test_cache_decodes_each_file_once(tmp_path, monkeypatch):
    root = _pattern_folder(tmp_path, n=3)
    calls = _spy_decode(monkeypatch)
    ds = ImageFolder(root, resolution=16, crop="random", flip=True, cache=True)
    assert sorted(calls) == sorted(ds.paths)  # the scan decodes every file once
    first = [ds.get(i, 0)["image"] for i in range(len(ds))]
    for epoch in (1, 2):
        ds.set_epoch(epoch)
        for i in range(len(ds)):
            ds[i]
    assert len(calls) == 3  # no decoding after the scan
    assert all(torch.equal(first[i], ds.get(i, 0)["image"]) for i in range(3))


def test_no_cache_decodes_on_every_access(tmp_path, monkeypatch):
    root = _pattern_folder(tmp_path, n=3)
    calls = _spy_decode(monkeypatch)
    ds = ImageFolder(root, resolution=16, cache=False)
    assert len(calls) == 3
    for i in range(len(ds)):
        ds[i]
    ds[0]
    assert len(calls) == 7


def test_decompression_bomb_warning_is_one_line_naming_the_file(tmp_path, monkeypatch):
    """Pillow's own warning is two raw lines without the file's name; ours is one line naming it (used), and a
    picture above twice the limit is skipped as too large."""
    import warnings

    from noisebrush.errors import NoisebrushWarning

    Image.fromarray(np.full((12, 12, 3), 200, np.uint8)).save(tmp_path / "big.png")     # 144 px: above the limit
    Image.fromarray(np.full((20, 20, 3), 200, np.uint8)).save(tmp_path / "huge.png")    # 400 px: above twice it
    Image.fromarray(np.full((8, 8, 3), 200, np.uint8)).save(tmp_path / "small.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        ds = ImageFolder(tmp_path, resolution=8)
    assert sorted(os.path.basename(p) for p in ds.paths) == ["big.png", "small.png"]
    assert [os.path.basename(p) for p, _ in ds.skipped] == ["huge.png"]
    assert ds.found == 3
    assert not [w for w in seen if issubclass(w.category, Image.DecompressionBombWarning)]
    ours = [str(w.message) for w in seen if issubclass(w.category, NoisebrushWarning)]
    assert len(ours) == 1 and "big.png" in ours[0] and "used" in ours[0] and "\n" not in ours[0]
    with warnings.catch_warnings(record=True) as seen:  # reading it again later says nothing more
        warnings.simplefilter("always")
        ImageFolder(tmp_path, resolution=8, cache=False).get(0, 0)
    assert not [w for w in seen if issubclass(w.category, Image.DecompressionBombWarning)]
