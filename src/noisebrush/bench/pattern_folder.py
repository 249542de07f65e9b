"""A folder of captioned pattern pictures: a stand-in for "a folder of your own pictures" unlike ProceduralArt.

    python -m noisebrush.bench.pattern_folder OUT --n 2000 --size 128 --seed 0

Each picture is a fine two-colour pattern (stripes at an angle, checks, dots or waves, 4 to 9 px a period at 128 px)
with a soft-edged disc or square of a third colour on it, and ``name.txt`` says so ("red and white stripes with a
blue disc"). The patterns are finer than a 32 px picture can hold, so a base model trained at 32 px paints the
composition and the colours, and only a super-resolution stage can put the pattern back: the built-in stages never
saw one, stages fine-tuned on the folder have. Pictures are drawn at twice the size and box-averaged (anti-aliased),
and every draw comes from ``--seed`` (picture i uses its own generator), so the folder is the same on every machine.
Files are written whole (temporary file, then rename).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from noisebrush.checks import whole
from noisebrush.errors import UserError
from noisebrush.io.atomic import atomic_path, atomic_write_text, check_writable

COLOURS = {"red": (215, 48, 39), "orange": (244, 140, 30), "yellow": (250, 215, 60), "green": (60, 160, 70),
           "blue": (50, 100, 200), "purple": (130, 70, 170), "white": (245, 245, 240), "black": (25, 25, 30)}
PATTERNS = ("stripes", "checks", "dots", "waves")
SHAPES = ("disc", "square")
MAX_N, MAX_SIZE = 100_000, 1024

__all__ = ["pattern_picture", "write_pattern_folder", "COLOURS", "PATTERNS", "SHAPES"]


def pattern_picture(index: int, size: int = 128, seed: int = 0) -> tuple[Image.Image, str]:
    """Picture ``index`` of the set ``seed`` at ``size`` px, and its caption."""
    rng = np.random.default_rng([seed, index])
    names = list(COLOURS)
    c1, c2, c3 = (names[i] for i in rng.choice(len(names), 3, replace=False))
    pattern = PATTERNS[rng.integers(len(PATTERNS))]
    shape = SHAPES[rng.integers(len(SHAPES))]
    big = 2 * size
    scale = big / 128  # periods and sizes are stated at 128 px
    y, x = np.mgrid[0:big, 0:big].astype(np.float64) / scale
    period = rng.uniform(4.0, 9.0)
    angle = rng.uniform(0, np.pi)
    u = x * np.cos(angle) + y * np.sin(angle)
    v = -x * np.sin(angle) + y * np.cos(angle)
    if pattern == "stripes":
        on = np.sin(2 * np.pi * u / period) > 0
    elif pattern == "checks":
        on = (np.sin(2 * np.pi * u / period) > 0) ^ (np.sin(2 * np.pi * v / period) > 0)
    elif pattern == "dots":
        du, dv = (u / period) % 1 - 0.5, (v / period) % 1 - 0.5
        on = du * du + dv * dv < 0.09
    else:  # waves: stripes that bend
        amp, wl = rng.uniform(3, 8), rng.uniform(25, 50)
        on = np.sin(2 * np.pi * (u + amp * np.sin(2 * np.pi * v / wl)) / period) > 0
    img = np.where(on[..., None], np.array(COLOURS[c1], float), np.array(COLOURS[c2], float))
    cx, cy = rng.uniform(35, 93, 2)
    r = rng.uniform(18, 32)
    if shape == "disc":
        d = np.hypot(x - cx, y - cy) - r
    else:
        d = np.maximum(np.abs(x - cx), np.abs(y - cy)) - r
    alpha = np.clip(0.5 - d / 1.5, 0, 1)[..., None]  # a soft edge, 1.5 px at 128 px
    img = img * (1 - alpha) + np.array(COLOURS[c3], float) * alpha
    img = img.reshape(size, 2, size, 2, 3).mean(axis=(1, 3))
    pic = Image.fromarray(np.clip(np.round(img), 0, 255).astype(np.uint8), "RGB")
    article = "an" if c3[0] in "aeiou" else "a"
    return pic, f"{c1} and {c2} {pattern} with {article} {c3} {shape}"


def write_pattern_folder(out, n: int, size: int = 128, seed: int = 0) -> Path:
    """Write pictures 0..n-1 (``00000.png`` with ``00000.txt``) into ``out``; returns the folder."""
    whole("n", n, 1, MAX_N)
    whole("size", size, 8, MAX_SIZE)
    out = check_writable(out, what="the pattern folder", folder=True)
    out.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        pic, caption = pattern_picture(i, size, seed)
        with atomic_path(out / f"{i:05d}.png") as tmp:
            pic.save(tmp, format="PNG")
        atomic_write_text(out / f"{i:05d}.txt", caption + "\n")
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m noisebrush.bench.pattern_folder", description=__doc__.splitlines()[0])
    ap.add_argument("out", help="the folder to write (made if missing; files of the same names are replaced)")
    ap.add_argument("--n", type=int, default=2000, help=f"pictures (1..{MAX_N})")
    ap.add_argument("--size", type=int, default=128, help=f"side in px (8..{MAX_SIZE})")
    ap.add_argument("--seed", type=int, default=0, help="which set (another seed: other pictures, e.g. held out)")
    a = ap.parse_args(argv)
    try:
        whole("--seed", a.seed, 0, 2**31 - 1)
        path = write_pattern_folder(a.out, a.n, a.size, a.seed)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"{a.n} pictures → {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
