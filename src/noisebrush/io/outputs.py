"""Pictures out: file names that never overwrite, one PNG per picture with its recipe, contact sheets whose recipe
lists every picture, a morph's GIF, MP4 and PNG strip, and a shape's mesh, turntable and view. The command line and (later) the studio both save here.

    folder = output_folder("outputs")                                 # made if missing; a UserError if not writable
    path = check_output_file("report.json", what="--json")            # before the work: writable, a free name
    paths = save_set(images, recipes, folder, "a-red-sun", zoom=2)    # a-red-sun-s7.png … + a-red-sun-grid-s7.png
    name = morph_name("a red flower", "a blue flower", 1, 2)          # "morph-a-red-flower-to-a-blue-flower-s1-2"
    gif, mp4, strip = save_animation(frames, recipe, folder, name, fps=12, zoom=8, bounce=True)
    mesh, gif, png = save_shape(mesh, "glb", turntable, view, recipe, folder, "a-tall-chair-s3")

Names: ``free_path`` adds ``-2``, ``-3`` … before the suffix until the name is free, so nothing is ever
overwritten (``check_output_file(…, force=True)`` is the one way to replace a file). ``slug`` keeps letters of
every script: accents are dropped from Latin letters ("über" → "uber"), other letters (Chinese, Cyrillic, Greek …)
are kept as they are. A contact sheet is the pictures enlarged by pixel repetition (``zoom``) in a grid of ``cols``
columns; its recipe is the first picture's recipe plus ``sheet`` (the layout) and ``images`` (every picture's own
recipe), so ``noisebrush reproduce`` can paint each picture again and lay the sheet out the same way.

Writability: ``check_folder``/``output_folder``/``check_output_file`` probe the place (a temporary file is made
and removed) before any work, so an unwritable ``--out`` is one line before painting. If the folder stops being
writable while painting, a :class:`Keeper` (which every saver here uses) writes that file and every later one into
a fresh folder under ``$TMPDIR/noisebrush-rescued`` and then raises one UserError naming it and how many files are
there: the work is never lost.
"""
from __future__ import annotations

import os
import re
import unicodedata
from pathlib import Path

import torch
from PIL import Image

from noisebrush.checks import whole
from noisebrush.errors import UserError
from noisebrush.io.animation import frames_uint8, save_gif, save_mp4
from noisebrush.io.atomic import atomic_write_bytes, check_writable, rescue_folder, why_not_writable
from noisebrush.io.images import make_grid, to_pil
from noisebrush.io.mesh import mesh_bytes
from noisebrush.io.png import save_png

__all__ = ["slug", "free_path", "output_folder", "contact_sheet", "save_pictures", "save_sheet", "save_set",
           "bounce_frames", "morph_name", "save_animation", "check_folder", "check_output_file", "Keeper"]


def slug(text: str, limit: int = 40) -> str:
    """``text`` as a file-name stem of at most ``limit`` characters: lower-case letters and digits of any script,
    single dashes between words. Latin letters lose their accents ("über Berge" → "uber-berge"); other letters
    (Chinese, Cyrillic, Greek …) are kept with their marks; punctuation, symbols and spaces become dashes. "image"
    when no letter or digit is left (an emoji-only or punctuation-only prompt)."""
    chars, prev = [], ""
    for c in unicodedata.normalize("NFKD", str(text).lower()):
        cat = unicodedata.category(c)
        if cat[0] in "LN":
            prev = c.lower()
            chars.append(prev)
        elif cat[0] == "M":  # a mark: dropped after an ASCII letter (é → e), kept after another script's letter
            if prev and not prev.isascii():
                chars.append(c)
        else:
            prev = ""
            chars.append("-")
    s = re.sub(r"-+", "-", unicodedata.normalize("NFC", "".join(chars))).strip("-")
    return s[:limit].rstrip("-") or "image"


def free_path(path, also: tuple[str, ...] = ()) -> Path:
    """``path``, or ``name-2.png``, ``name-3.png`` … if it exists (never overwrite a picture). ``also``: other
    suffixes that must be free under the same stem (files written together: a mesh, its GIF and its PNG)."""
    path = Path(path)

    def free(p: Path) -> bool:
        return not any(os.path.lexists(p.with_suffix(s)) for s in (p.suffix, *also))

    if free(path):
        return path
    k = 2
    while True:
        p = path.with_name(f"{path.stem}-{k}{path.suffix}")
        if free(p):
            return p
        k += 1


def output_folder(out, *, what: str = "--out") -> Path:
    """The folder ``out``, made if missing; a UserError naming ``what`` if a file of that name is in the way or
    the folder cannot be written."""
    out = Path(out)
    check_folder(out, what=what)
    out.mkdir(parents=True, exist_ok=True)
    return out


def _shown(path: Path) -> Path:
    """``path`` as the messages name it: absolute when nothing of a relative path exists yet (so a read-only
    working folder is named, not ".")."""
    return path.absolute() if not path.is_absolute() and not os.path.lexists(path.parts[0] if path.parts else ".") \
        else path


def check_folder(out, *, what: str = "--out") -> None:
    """A UserError naming ``what`` if ``out`` exists and is not a folder, or if files cannot be made there (or in
    the nearest folder that exists, when ``out`` is still to be made). Check before painting, make it after."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: exists and is not a folder ({what})")
    check_writable(_shown(out), what=what, folder=True)


def check_output_file(path, *, what: str, force: bool = False) -> Path:
    """The path a single output file should be written to, checked before any work: a UserError naming ``what``
    if it is a folder or its place cannot be written. An existing file is never replaced unless ``force``: the
    free variant ``name-2.ext`` … is returned instead (print it: it is the name actually written)."""
    path = Path(path)
    check_writable(_shown(path), what=what)
    return path if force else free_path(path)


def _cannot_write(folder: Path) -> str | None:
    """None if a file can be made in ``folder`` (made if missing), else why not."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        return e.strerror or str(e)
    return why_not_writable(folder)


class Keeper:
    """The files one run writes into ``out``, each under a free name. While ``out`` can be written they go there;
    once it cannot (it became read-only, was removed and cannot be made, the disk is full), that file and every later
    one go to a fresh folder under ``$TMPDIR/noisebrush-rescued`` and :meth:`done` raises one UserError naming it
    and how many files it holds. ``written`` lists every path written so far (for a Ctrl-C report). With
    ``force`` a file in ``out`` keeps its own name even if one of that name exists (the caller chose to replace it).

        keep = Keeper("outputs")
        keep.save(lambda path: save_png(picture, path, recipe), "sun-s7.png")
        paths = keep.done()
    """

    def __init__(self, out, *, what: str = "--out", force: bool = False):
        self.out, self.what, self.force = Path(out), what, force
        self.written: list[Path] = []
        self.rescue: Path | None = None
        self.why: str | None = None

    def place(self, name: str, also: tuple[str, ...] = ()) -> Path:
        """A free path for the file ``name``: in ``out``, or in the rescue folder once ``out`` failed. ``also``:
        suffixes of files to be written beside it under the same stem, which must be free too."""
        if self.rescue is None:
            why = _cannot_write(self.out)
            if why is None:
                return self.out / name if self.force else free_path(self.out / name, also)
            self.why = why
            self.rescue = free_path(rescue_folder() / (self.out.absolute().name or "outputs"))
            self.rescue.mkdir(parents=True, exist_ok=True)
        return free_path(self.rescue / name, also)

    def save(self, write, name: str, also: tuple[str, ...] = ()) -> Path:
        """``write(path)`` at :meth:`place` (``name``, ``also``); records and returns the path written (the one
        ``write`` returns, when it returns a path)."""
        path = self.place(name, also)
        result = write(path)
        path = Path(result) if isinstance(result, (str, os.PathLike)) else path  # a writer may move it
        self.written.append(path)
        return path

    def done(self) -> list[Path]:
        """The paths written; a UserError naming the rescue folder if ``out`` could not be written."""
        if self.rescue is None:
            return list(self.written)
        kept = sum(1 for p in self.written if p.parent == self.rescue)
        before = len(self.written) - kept
        raise UserError(f"{self.out}: cannot be written ({self.what}: {self.why}); the {kept} "
                        f"file{'s' * (kept != 1)} of this run {'are' if kept != 1 else 'is'} kept in {self.rescue}/"
                        + (f" ({before} written to {self.out} before)" if before else ""))


def contact_sheet(pics: list[Image.Image], layout: dict) -> Image.Image:
    """The contact sheet: pictures enlarged ``layout["zoom"]`` times by pixel repetition, ``layout["cols"]`` to a
    row (the layout a sheet's recipe stores)."""
    z = int(layout["zoom"])
    return make_grid([p.resize((p.width * z, p.height * z), resample=0) for p in pics], cols=int(layout["cols"]))


def save_pictures(pics: list[Image.Image], recipes: list[dict], out, base: str, *,
                  keep: Keeper | None = None) -> list[Path]:
    """One PNG per picture, ``OUT/BASE-sSEED.png`` (or a free variant), each carrying its recipe. With ``keep``
    (a :class:`Keeper` for ``out``) the files are added to it and its ``done()`` is the caller's; without, a rescue
    is reported here."""
    k = keep or Keeper(out)
    paths = [k.save(lambda path, p=p, r=r: save_png(p, path, r), f"{base}-s{r['seed']}.png")
             for p, r in zip(pics, recipes)]
    if keep is None:
        k.done()
    return paths


def save_sheet(pics: list[Image.Image], recipes: list[dict], path, *, cols: int, zoom: int,
               keep: Keeper | None = None) -> Path:
    """A contact sheet of ``pics`` at ``path`` (or a free variant); its recipe lists every picture's recipe."""
    layout = {"cols": whole("cols", cols, 1), "zoom": whole("zoom", zoom, 1, 32)}
    path = Path(path)
    k = keep or Keeper(path.parent)
    sheet = contact_sheet(pics, layout)
    written = k.save(lambda p: save_png(sheet, p, {**recipes[0], "sheet": layout, "images": recipes}), path.name)
    if keep is None:
        k.done()
    return written


def save_set(images, recipes: list[dict], out, base: str, *, zoom: int = 2, sheet: bool = True) -> list[Path]:
    """``images`` (N×C×H×W in [-1, 1]) as one PNG each with its recipe and, for several, a contact sheet of up to 4
    columns, ``BASE-grid-sSEED.png`` (SEED: the first picture's). Returns the paths written, the sheet last. If
    ``out`` cannot be written, every file is kept in a rescue folder and one UserError names it."""
    keep = Keeper(out)
    pics = to_pil(images)
    save_pictures(pics, recipes, out, base, keep=keep)
    if sheet and len(pics) > 1:
        save_sheet(pics, recipes, Path(out) / f"{base}-grid-s{recipes[0]['seed']}.png", cols=min(len(pics), 4),
                   zoom=zoom, keep=keep)
    return keep.done()


def bounce_frames(frames: torch.Tensor) -> torch.Tensor:
    """Frames forward then back (without repeating the two ends), so a looping animation has no jump."""
    return torch.cat([frames, frames.flip(0)[1:-1]]) if frames.shape[0] > 2 else frames


def morph_name(prompt: str, to: str | None, seed: int, to_seed: int | None) -> str:
    """``morph-PROMPT[-to-TO]-sSEED[-TO_SEED]``, each prompt slugged to 24 characters."""
    return f"morph-{slug(prompt, 24)}" + (f"-to-{slug(to, 24)}" if to is not None and to != prompt else "") + \
        f"-s{seed}" + (f"-{to_seed}" if to_seed is not None else "")


def save_animation(frames: torch.Tensor, recipe: dict, out, name: str, *, fps: float, zoom: int,
                   bounce: bool = False, strip=None) -> tuple[Path, Path, Path]:
    """Frames (F×C×H×W in [-1, 1]: a morph, a clip) as ``NAME.gif`` and ``NAME.mp4`` (enlarged ``zoom`` times,
    played forward then back with ``bounce``) and ``NAME-strip.png`` with the recipe plus ``bounce`` and ``fps``:
    ``strip`` when given (a PIL picture: a clip's film strip, which ``reproduce`` paints again), else the frames
    side by side at zoom/4. Free variants of the names are used; returns (gif, mp4, strip). If ``out`` cannot be
    written, all three are kept in a rescue folder and one UserError names it."""
    keep = Keeper(out)
    seq = bounce_frames(frames) if bounce else frames
    gif = keep.save(lambda p: save_gif(seq, p, fps=fps, zoom=zoom), f"{name}.gif")
    mp4 = keep.save(lambda p: save_mp4(seq, p, fps=fps, zoom=zoom), f"{gif.stem}.mp4")
    if strip is None:
        strip = Image.fromarray(frames_uint8(frames, 1).transpose(1, 0, 2, 3).reshape(frames.shape[2], -1, 3))
        zs = max(1, zoom // 4)
        strip = strip.resize((strip.width * zs, strip.height * zs), resample=0)
    png = keep.save(lambda p: save_png(strip, p, {**recipe, "bounce": bounce, "fps": fps}), f"{gif.stem}-strip.png")
    keep.done()
    return gif, mp4, png


def save_shape(mesh, fmt: str, frames: list, preview: Image.Image, recipe: dict, out, name: str, *,
               fps: float = 12.0) -> tuple[Path, Path, Path]:
    """A shape as ``NAME.FMT`` (the mesh: obj, ply, stl or glb), ``NAME.gif`` (its turntable: uint8 H×W×3 frames or
    PIL pictures) and ``NAME.png`` (one view with the recipe, plus the mesh file's ``format`` and ``mesh`` name, so
    ``reproduce`` finds and compares it). Free variants of the names; written atomically; returns (mesh, gif, png).
    If ``out`` cannot be written, all three are kept in a rescue folder and one UserError names it."""
    keep = Keeper(out)
    data = mesh_bytes(mesh, fmt)
    shown = [f if isinstance(f, Image.Image) else Image.fromarray(f) for f in frames]
    mesh_path = keep.save(lambda p: atomic_write_bytes(p, data), f"{name}.{fmt}", also=(".gif", ".png"))
    gif = keep.save(lambda p: save_gif(shown, p, fps=fps), f"{mesh_path.stem}.gif")
    png = keep.save(lambda p: save_png(preview, p, {**recipe, "format": fmt, "mesh": mesh_path.name}),
                    f"{mesh_path.stem}.png")
    keep.done()
    return mesh_path, gif, png
