"""Pictures out: file names that never overwrite, one PNG per picture with its recipe, contact sheets whose recipe
lists every picture, and a morph's GIF, MP4 and PNG strip. The command line and (later) the studio both save here.

    folder = output_folder("outputs")                                 # made if missing; a file there is a UserError
    paths = save_set(images, recipes, folder, "a-red-sun", zoom=2)    # a-red-sun-s7.png … + a-red-sun-grid-s7.png
    name = morph_name("a red flower", "a blue flower", 1, 2)          # "morph-a-red-flower-to-a-blue-flower-s1-2"
    gif, mp4, strip = save_morph(frames, recipe, folder, name, fps=12, zoom=8, bounce=True)

Names: ``free_path`` adds ``-2``, ``-3`` … before the suffix until the name is free, so nothing is ever
overwritten. A contact sheet is the pictures enlarged by pixel repetition (``zoom``) in a grid of ``cols`` columns;
its recipe is the first picture's recipe plus ``sheet`` (the layout) and ``images`` (every picture's own recipe), so
``noisebrush reproduce`` can paint each picture again and lay the sheet out the same way.
"""
from __future__ import annotations

import re
from pathlib import Path

import torch
from PIL import Image

from noisebrush.checks import whole
from noisebrush.errors import UserError
from noisebrush.io.animation import frames_uint8, save_gif, save_mp4
from noisebrush.io.images import make_grid, to_pil
from noisebrush.io.png import save_png

__all__ = ["slug", "free_path", "output_folder", "contact_sheet", "save_pictures", "save_sheet", "save_set",
           "bounce_frames", "morph_name", "save_morph", "check_folder"]


def slug(text: str, limit: int = 40) -> str:
    """``text`` as a file-name stem: lower-case letters, digits and single dashes, at most ``limit`` characters
    ("image" when nothing is left)."""
    s = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return s[:limit].rstrip("-") or "image"


def free_path(path) -> Path:
    """``path``, or ``name-2.png``, ``name-3.png`` … if it exists (never overwrite a picture)."""
    path = Path(path)
    if not path.exists():
        return path
    k = 2
    while True:
        p = path.with_name(f"{path.stem}-{k}{path.suffix}")
        if not p.exists():
            return p
        k += 1


def output_folder(out, *, what: str = "--out") -> Path:
    """The folder ``out``, made if missing; a UserError naming ``what`` if a file of that name is in the way."""
    out = Path(out)
    check_folder(out, what=what)
    out.mkdir(parents=True, exist_ok=True)
    return out


def check_folder(out, *, what: str = "--out") -> None:
    """A UserError naming ``what`` if ``out`` exists and is not a folder (check before painting, make it after)."""
    if Path(out).exists() and not Path(out).is_dir():
        raise UserError(f"{out}: exists and is not a folder ({what})")


def contact_sheet(pics: list[Image.Image], layout: dict) -> Image.Image:
    """The contact sheet: pictures enlarged ``layout["zoom"]`` times by pixel repetition, ``layout["cols"]`` to a
    row (the layout a sheet's recipe stores)."""
    z = int(layout["zoom"])
    return make_grid([p.resize((p.width * z, p.height * z), resample=0) for p in pics], cols=int(layout["cols"]))


def save_pictures(pics: list[Image.Image], recipes: list[dict], out, base: str) -> list[Path]:
    """One PNG per picture, ``OUT/BASE-sSEED.png`` (or a free variant), each carrying its recipe."""
    return [save_png(p, free_path(Path(out) / f"{base}-s{r['seed']}.png"), r) for p, r in zip(pics, recipes)]


def save_sheet(pics: list[Image.Image], recipes: list[dict], path, *, cols: int, zoom: int) -> Path:
    """A contact sheet of ``pics`` at ``path`` (or a free variant); its recipe lists every picture's recipe."""
    layout = {"cols": whole("cols", cols, 1), "zoom": whole("zoom", zoom, 1, 32)}
    return save_png(contact_sheet(pics, layout), free_path(path), {**recipes[0], "sheet": layout, "images": recipes})


def save_set(images, recipes: list[dict], out, base: str, *, zoom: int = 2, sheet: bool = True) -> list[Path]:
    """``images`` (N×C×H×W in [-1, 1]) as one PNG each with its recipe and, for several, a contact sheet of up to 4
    columns, ``BASE-grid-sSEED.png`` (SEED: the first picture's). Returns the paths written, the sheet last."""
    out = output_folder(out)
    pics = to_pil(images)
    written = save_pictures(pics, recipes, out, base)
    if sheet and len(pics) > 1:
        written.append(save_sheet(pics, recipes, out / f"{base}-grid-s{recipes[0]['seed']}.png",
                                  cols=min(len(pics), 4), zoom=zoom))
    return written


def bounce_frames(frames: torch.Tensor) -> torch.Tensor:
    """Frames forward then back (without repeating the two ends), so a looping animation has no jump."""
    return torch.cat([frames, frames.flip(0)[1:-1]]) if frames.shape[0] > 2 else frames


def morph_name(prompt: str, to: str | None, seed: int, to_seed: int | None) -> str:
    """``morph-PROMPT[-to-TO]-sSEED[-TO_SEED]``, each prompt slugged to 24 characters."""
    return f"morph-{slug(prompt, 24)}" + (f"-to-{slug(to, 24)}" if to is not None and to != prompt else "") + \
        f"-s{seed}" + (f"-{to_seed}" if to_seed is not None else "")


def save_morph(frames: torch.Tensor, recipe: dict, out, name: str, *, fps: float, zoom: int,
               bounce: bool = False) -> tuple[Path, Path, Path]:
    """A morph's frames (F×C×H×W in [-1, 1]) as ``NAME.gif`` and ``NAME.mp4`` (enlarged ``zoom`` times, played
    forward then back with ``bounce``) and ``NAME-strip.png``: the frames side by side at zoom/4, with the recipe
    plus ``bounce`` and ``fps``. Free variants of the names are used; returns (gif, mp4, strip)."""
    out = output_folder(out)
    seq = bounce_frames(frames) if bounce else frames
    base = free_path(out / f"{name}.gif")
    gif = save_gif(seq, base, fps=fps, zoom=zoom)
    mp4 = save_mp4(seq, free_path(base.with_suffix(".mp4")), fps=fps, zoom=zoom)
    strip = Image.fromarray(frames_uint8(frames, 1).transpose(1, 0, 2, 3).reshape(frames.shape[2], -1, 3))
    zs = max(1, zoom // 4)
    png = save_png(strip.resize((strip.width * zs, strip.height * zs), resample=0),
                   free_path(base.with_name(base.stem + "-strip.png")), {**recipe, "bounce": bounce, "fps": fps})
    return gif, mp4, png
