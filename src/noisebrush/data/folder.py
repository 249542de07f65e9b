"""A user's folder of pictures as a ``torch.utils.data.Dataset`` (Pillow + numpy + torch; no network).

    from noisebrush.data.folder import ImageFolder

    ds = ImageFolder("~/Pictures/cats", resolution=64, crop="random", flip=True, seed=0)
    print(len(ds), ds.classes, len(ds.skipped))     # readable images, class names, (path, reason) of bad files
    for epoch in range(10):
        ds.set_epoch(epoch)                         # random crop/flip = pure function of (seed, epoch, index)
        for item in torch.utils.data.DataLoader(ds, batch_size=16, shuffle=True):
            item["image"]                           # float32 B×3×64×64 in [-1, 1]
            item["caption"], item["label"], item["index"], item["path"]

What it reads. Every file below ``root`` (recursively, in sorted order, following folder links once) whose
extension is png, jpg, jpeg, webp, bmp, gif (first frame), tif or tiff, in any letter case. Names that start with a
dot (files or folders) are skipped silently; so are files with other extensions (``.txt`` captions among them).

Decoding. EXIF orientation is applied; transparency (RGBA, LA, PA, P or L with a transparent colour) is
composited over white; 1-bit, grayscale, CMYK and YCbCr become RGB; 16-bit grayscale (``I;16``, and ``I`` when its
values fit in 0…65535) is scaled to 8 bits by v/257, other ``I`` and ``F`` images are stretched to their own
range (``F`` already in [0, 1] is scaled by 255). Embedded ICC profiles are not applied.

Bad files. Every candidate is decoded once when the dataset is built, so ``len(ds)`` counts only readable
pictures (``ds.found`` counts the candidates). Empty, truncated, corrupt and non-image files are left out, each with
exactly one warning on the ``noisebrush.data`` logger, and listed in ``ds.skipped`` as ``(path, reason)``. A
picture above Pillow's decompression-bomb limit (``Image.MAX_IMAGE_PIXELS``) but below twice it is used, with one
:func:`noisebrush.errors.warn` line naming it (Pillow's own two-line warning is silenced); above twice the limit it
is skipped as too large. A subfolder that cannot be read (no permission) is skipped with one ``warn`` line naming
it. A missing or unreadable folder, a file given as the folder, or a folder with nothing readable raises
:class:`noisebrush.errors.UserError`.

Captions and classes. ``cat.png`` takes its caption from ``cat.txt`` next to it (stripped; "" when there is
none). The class of a picture is the first-level subfolder it lives under; pictures directly in ``root`` have
the class ``"."``. ``ds.classes`` is the sorted list of classes that hold at least one readable picture (just
``["."]`` for a flat folder) and ``item["label"]`` indexes it.

Preprocessing. The short side is resized to ``resolution`` (JPEGs are DCT-downscaled while decoding with
``Image.draft`` and big pictures are reduced by whole factors before Lanczos, so 4000-px photos are quick), then
a ``resolution``×``resolution`` square is cut from the centre or at random, then the picture is mirrored with
probability 1/2 when ``flip=True``. With ``cache=True`` the resized uint8 pictures (before crop and flip) are
kept in memory — about 3·resolution²·aspect bytes each — so later epochs never decode again.

Exact resume. The crop offsets and the flip come from a CPU ``torch.Generator`` seeded by a 64-bit mix of
(seed, epoch, index), never from a global RNG. ``set_epoch`` sets the epoch used by ``ds[i]``; ``ds.get(i,
epoch)`` is the same without state. With ``DataLoader(persistent_workers=True)`` the workers keep their own copy
of the dataset, so call ``set_epoch`` before each epoch only with non-persistent workers (the default), or
use ``get``.
"""
from __future__ import annotations

import logging
import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torch.utils.data import Dataset

from noisebrush.errors import BadParameter, UserError, warn
from noisebrush.seeding import mix

__all__ = ["ImageFolder", "IMAGE_EXTENSIONS"]

log = logging.getLogger("noisebrush.data")

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff"})
MIN_RESOLUTION, MAX_RESOLUTION = 8, 4096
ROOT_CLASS = "."

_ALPHA_MODES = frozenset({"RGBA", "LA", "PA", "La", "RGBa"})
_SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16B", "I;16L", "I;16N"})


class ImageFolder(Dataset):
    """Pictures under ``root`` as dicts ``{"image", "caption", "label", "index", "path"}``; see the module doc."""

    def __init__(
        self,
        root: str | os.PathLike,
        resolution: int = 32,
        crop: str = "center",
        flip: bool = False,
        seed: int = 0,
        cache: bool = True,
    ):
        if isinstance(resolution, bool) or not isinstance(resolution, (int, np.integer)):
            raise BadParameter(
                f"resolution: need an integer from {MIN_RESOLUTION} to {MAX_RESOLUTION}, got {resolution!r}"
            )
        if not MIN_RESOLUTION <= resolution <= MAX_RESOLUTION:
            raise BadParameter(f"resolution: need {MIN_RESOLUTION} to {MAX_RESOLUTION} pixels, got {resolution}")
        if crop not in ("center", "random"):
            raise BadParameter(f"crop: need 'center' or 'random', got {crop!r}")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise BadParameter(f"seed: need an integer, got {seed!r}")

        self.root = Path(os.path.expanduser(os.fspath(root)))
        self.resolution = int(resolution)
        self.crop = crop
        self.flip = bool(flip)
        self.seed = int(seed)
        self.cache = bool(cache)
        self.epoch = 0

        shown = os.path.abspath(self.root)
        if not self.root.exists():
            raise UserError(f"image folder not found: {shown}")
        if not self.root.is_dir():
            raise UserError(f"not a folder: {shown} (give the folder that holds the pictures)")

        candidates, unreadable = _scan(self.root)
        for folder, why in unreadable:
            if os.path.realpath(folder) == os.path.realpath(self.root):
                raise UserError(f"cannot read the image folder {shown} ({why})")
            warn(f"{folder}: cannot read this folder ({why}); its pictures are skipped")
        self.found = len(candidates)
        if not candidates:
            exts = ", ".join(sorted(e[1:] for e in IMAGE_EXTENSIONS))
            raise UserError(f"no images in {shown} (looked for {exts})")

        res = self.resolution
        workers = max(1, min(8, os.cpu_count() or 1, len(candidates)))
        # Pillow's DecompressionBombWarning is two raw lines without the file's name: silence it while decoding
        # (the filter is process-wide, so the decoding threads see it too) and say it once per file, below.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            if workers == 1:
                results = [_load(p, res) for p in candidates]
            else:  # Pillow releases the GIL while decoding; results keep the sorted order
                with ThreadPoolExecutor(max_workers=workers) as pool:
                    results = list(pool.map(lambda p: _load(p, res), candidates))

        self.skipped: list[tuple[str, str]] = []
        self.paths: list[str] = []
        self._arrays: list[np.ndarray] | None = [] if self.cache else None
        groups: list[str] = []
        for path, (array, reason) in zip(candidates, results):
            if array is None:
                log.warning("skipping %s: %s", path, reason)
                self.skipped.append((str(path), reason))
                continue
            if reason:  # used, with a note (a very large picture)
                warn(f"{path}: {reason}; used")
            self.paths.append(str(path))
            parts = path.relative_to(self.root).parts
            groups.append(parts[0] if len(parts) > 1 else ROOT_CLASS)
            if self._arrays is not None:
                self._arrays.append(array)

        if not self.paths:
            n = len(self.skipped)
            shown_bad = "; ".join(f"{os.path.relpath(p, self.root)}: {r}" for p, r in self.skipped[:3])
            more = f"; and {n - 3} more" if n > 3 else ""
            raise UserError(
                f"no readable images in {shown} ({n} file{'s' if n != 1 else ''} skipped: {shown_bad}{more})"
            )

        self.classes: list[str] = sorted(set(groups))
        index_of = {c: k for k, c in enumerate(self.classes)}
        self.labels: list[int] = [index_of[g] for g in groups]
        self.captions: list[str] = [_caption(Path(p)) for p in self.paths]
        log.info(
            "%s: %d images in %d classes, %d skipped", shown, len(self.paths), len(self.classes), len(self.skipped)
        )

    # ----------------------------------------------------------------------------------------------------------

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def __len__(self) -> int:
        return len(self.paths)

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose random crops and flips ``ds[i]`` returns."""
        if isinstance(epoch, bool) or not isinstance(epoch, (int, np.integer)) or epoch < 0:
            raise BadParameter(f"epoch: need an integer ≥ 0, got {epoch!r}")
        self.epoch = int(epoch)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.get(index, self.epoch)

    def get(self, index: int, epoch: int) -> dict[str, Any]:
        """Item ``index`` as it is in ``epoch``: a pure function of (seed, epoch, index) and the files."""
        n = len(self.paths)
        index = int(index)
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError(f"index {index} out of range for {n} images")

        if self._arrays is not None:
            array = self._arrays[index]
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # said when the folder was read
                array, reason = _load(Path(self.paths[index]), self.resolution)
            if array is None:  # the file changed on disk after the scan
                raise UserError(f"cannot read {self.paths[index]} any more: {reason}")

        g = torch.Generator().manual_seed(mix(self.seed, int(epoch), index))
        h, w = array.shape[:2]
        r = self.resolution
        # The draws are always made in the same order, so crop mode never changes the flip decisions.
        top_rand = int(torch.randint(0, h - r + 1, (1,), generator=g))
        left_rand = int(torch.randint(0, w - r + 1, (1,), generator=g))
        flip = bool(torch.rand((), generator=g) < 0.5)
        if self.crop == "random":
            top, left = top_rand, left_rand
        else:
            top, left = (h - r) // 2, (w - r) // 2
        patch = array[top : top + r, left : left + r]
        if self.flip and flip:
            patch = patch[:, ::-1]
        image = torch.from_numpy(np.array(patch.transpose(2, 0, 1), dtype=np.float32, order="C"))  # a copy
        image = image / 127.5 - 1.0
        return {
            "image": image,
            "caption": self.captions[index],
            "label": self.labels[index],
            "index": index,
            "path": self.paths[index],
        }

    def __repr__(self) -> str:
        return (
            f"ImageFolder({os.fspath(self.root)!r}, resolution={self.resolution}, crop={self.crop!r}, "
            f"flip={self.flip}, seed={self.seed}, cache={self.cache}): {len(self)} images, "
            f"{self.num_classes} classes, {len(self.skipped)} skipped"
        )


# --------------------------------------------------------------------------------------------------------------
# Scanning, decoding, captions


def _scan(root: Path) -> tuple[list[Path], list[tuple[str, str]]]:
    """Image-extension files below ``root`` in sorted order (hidden names skipped, folder links followed once), and
    the folders that could not be read as ``(folder, reason)``."""
    found: list[Path] = []
    seen_dirs: set[str] = set()
    unreadable: list[tuple[str, str]] = []

    def on_error(e: OSError) -> None:
        unreadable.append((str(e.filename or root), e.strerror or str(e)))

    for dirpath, dirnames, filenames in os.walk(root, followlinks=True, onerror=on_error):
        real = os.path.realpath(dirpath)
        if real in seen_dirs:  # a link back up the tree
            dirnames[:] = []
            continue
        seen_dirs.add(real)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in filenames:
            if name.startswith("."):
                continue
            if os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS:
                found.append(Path(dirpath) / name)
    found.sort(key=lambda p: p.relative_to(root).parts)
    return found, sorted(unreadable)


def _load(path: Path, resolution: int) -> tuple[np.ndarray | None, str]:
    """``(_decode(path, resolution), note)`` (note: "" or why the picture is unusual but used), or
    ``(None, reason)`` when the file cannot be used."""
    try:
        if not path.is_file():
            return None, "not a regular file (a broken link?)"
        if path.stat().st_size == 0:
            return None, "empty file (0 bytes)"
        note: list[str] = []
        return _decode(path, resolution, note), "; ".join(note)
    except UnidentifiedImageError:
        return None, "not an image Pillow can read (unknown or damaged header)"
    except PermissionError:
        return None, "permission denied"
    except Image.DecompressionBombError as e:
        return None, _one_line(f"too large: {e}")
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        text = str(e)
        if "truncated" in text.lower():
            return None, _one_line(f"truncated file ({text})")
        return None, _one_line(f"corrupt image ({type(e).__name__}: {text})")
    except Exception as e:  # a decoder bug must not stop the scan of thousands of files
        return None, _one_line(f"cannot decode ({type(e).__name__}: {e})")


def _decode(path: Path, resolution: int, note: list | None = None) -> np.ndarray:
    """Decode ``path`` to RGB uint8 H×W×3 whose short side is ``resolution``. Raises on a bad file; appends to
    ``note`` why a picture is unusual (above Pillow's decompression-bomb limit)."""
    # ImageFile.LOAD_TRUNCATED_IMAGES stays False (Pillow's default), so a truncated file raises in load().
    with Image.open(path) as img:
        limit = Image.MAX_IMAGE_PIXELS
        if note is not None and limit and img.size[0] * img.size[1] > limit:
            note.append(f"a very large picture ({img.size[0]}×{img.size[1]} = {img.size[0] * img.size[1]:,} "
                        f"pixels, above Pillow's decompression-bomb limit of {int(limit):,})")
        # JPEG: let libjpeg downscale by 1/2, 1/4 or 1/8 while decoding (a no-op for other formats). Twice the
        # target leaves the last factor ≥ 2 to Lanczos, as Image.thumbnail does.
        img.draft(None, (2 * resolution, 2 * resolution))
        img.load()
        img = ImageOps.exif_transpose(img)
        img = _to_rgb(img)
        w, h = img.size
        if w < 1 or h < 1:
            raise ValueError(f"image has size {w}×{h}")
        scale = resolution / min(w, h)
        size = (max(resolution, round(w * scale)), max(resolution, round(h * scale)))
        if size != (w, h):
            img = img.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
        array = np.asarray(img, dtype=np.uint8)
    if array.shape != (size[1], size[0], 3):
        raise ValueError(f"decoded to unexpected shape {array.shape}")
    array = np.array(array, dtype=np.uint8)  # own, contiguous memory (not Pillow's buffer)
    array.setflags(write=False)  # cached arrays are shared by every epoch
    return array


def _to_rgb(img: Image.Image) -> Image.Image:
    """Any Pillow mode → RGB: wide grayscale scaled to 8 bits, transparency over white."""
    mode = img.mode
    if mode in _SIXTEEN_BIT_MODES or mode in ("I", "F"):
        return Image.fromarray(_gray_to_uint8(np.asarray(img), mode), "L").convert("RGB")
    if mode in _ALPHA_MODES or _has_transparency(img):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    if mode != "RGB":
        return img.convert("RGB")  # 1, L, P, CMYK, YCbCr, HSV; anything else raises and the file is skipped
    return img


to_rgb = _to_rgb  # public: the studio's upload reader converts exactly as training does


def _has_transparency(img: Image.Image) -> bool:
    has = getattr(img, "has_transparency_data", None)
    if has is not None:
        return bool(has)
    return "transparency" in img.info  # Pillow < 10.1


def _gray_to_uint8(a: np.ndarray, mode: str) -> np.ndarray:
    a = a.astype(np.float64)
    if a.size and not np.isfinite(a).all():
        a = np.nan_to_num(a, nan=0.0, posinf=0.0, neginf=0.0)
    lo, hi = (float(a.min()), float(a.max())) if a.size else (0.0, 0.0)
    if mode in _SIXTEEN_BIT_MODES or (mode == "I" and lo >= 0 and hi <= 65535):
        a = a / 257.0  # 65535 → 255 exactly; this is what an 8-bit export of the same picture holds
    elif mode == "F" and lo >= 0 and hi <= 1:
        a = a * 255.0
    else:  # other 32-bit integer or float data: stretch its own range
        a = (a - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(a)
    return np.clip(np.rint(a), 0, 255).astype(np.uint8)


def _caption(image_path: Path) -> str:
    sidecar = image_path.with_suffix(".txt")
    try:
        if sidecar.is_file():
            return sidecar.read_text(encoding="utf-8-sig", errors="replace").strip()
    except OSError as e:
        log.warning("cannot read caption %s: %s", sidecar, _one_line(str(e)))
    return ""


def _one_line(text: str) -> str:
    return " ".join(text.split())


