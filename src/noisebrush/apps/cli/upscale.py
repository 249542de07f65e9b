"""``noisebrush upscale``: any picture twice or four times larger through the super-resolution stages.

    noisebrush upscale outputs/a-red-sun-s7.png                 # 32 → 64 px with builtin-sr64
    noisebrush upscale photo.jpg --scale 4 --prompt "a flower"   # two stages; the prompt helps text stages
    noisebrush upscale small.png --stages runs/my-sr/model --sr-aug 0.1

Each result is ``OUT/STEM-xSCALE.png`` (a free name: nothing is overwritten), carrying a recipe (``mode: "upscale"``,
the source file's name and SHA-256, and every stage) that ``noisebrush reproduce`` repaints pixel for pixel. The
prompt defaults to the one in the picture's own recipe. After each picture one line says how faithful it is: the
result box-averaged back to the input's size, against the input (PSNR in dB).

Lazy imports: the painting code imports torch, so it is imported inside the command (`noisebrush --help` stays fast).
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import List, Optional

import typer

from noisebrush import __version__
from noisebrush.apps.cli.app import DEVICE, NEGATIVE, OUT, SR_AUG, STAGES, app
from noisebrush.apps.cli.common import LazyBar, echo_paths, prompt_of, report_interrupt
from noisebrush.checks import number

__all__ = ["upscale"]


@app.command()
def upscale(images: List[Path] = typer.Argument(..., metavar="IMAGE", help="pictures to upscale (any format "
                                                                           "Pillow reads)"),
            scale: int = typer.Option(2, "--scale", help="2 or 4 (two stages)"),
            prompt: Optional[str] = typer.Option(None, "--prompt", help="what the picture shows, for text-conditioned "
                                                                        "stages (default: the prompt in its recipe)"),
            stages: Optional[str] = STAGES,
            sr_aug: Optional[float] = SR_AUG,
            steps: Optional[int] = typer.Option(None, "--steps", help="sampler steps of each stage (default: the "
                                                                      "stage's)"),
            sampler: Optional[str] = typer.Option(None, "--sampler", help="sampler of each stage (default: the "
                                                                          "stage's)"),
            cfg: float = typer.Option(1.0, "--cfg", help="guidance scale of text-conditioned stages (1 = none)"),
            negative: str = NEGATIVE,
            seed: Optional[int] = typer.Option(None, "--seed", help="default: a random seed, printed and recorded"),
            out: Path = OUT,
            device: str = DEVICE):
    """Paint IMAGE SCALE times larger with super-resolution diffusion stages (built in unless --stages)."""
    from noisebrush.data.superres import consistency_psnr  # lazy: torch (see the module docstring)
    from noisebrush.io.images import to_pil  # lazy: torch
    from noisebrush.io.outputs import Keeper, check_folder  # lazy: torch
    from noisebrush.io.png import save_png  # lazy: torch
    from noisebrush.paint.cascade import load_stage, stage_names, upscale_image  # lazy: torch
    from noisebrush.paint.upscale import as_pictures  # lazy: torch
    from noisebrush.seeding import pick_seed  # lazy: torch

    if scale not in (2, 4):
        raise typer.BadParameter(f"2 or 4, got {scale}", param_hint="--scale")
    if sr_aug is not None:
        number("--sr-aug", sr_aug, 0.0, 1.0)
    check_folder(out, what="--out")  # before any work
    seed = pick_seed(seed)
    lows = [as_pictures(im, str(im))[0] for im in images]  # every file is read before anything is painted
    keep = Keeper(out)
    loaded: dict[str, object] = {}
    t = time.perf_counter()
    with report_interrupt(keep.written):
        for im, low in zip(images, lows):
            h = low.shape[-2]
            names = [s.strip() for s in stages.split(",") if s.strip()] if stages else stage_names(h, h * scale)
            pipes = [loaded.setdefault(name, load_stage(name, device=device)) for name in names]
            with LazyBar("upscaling") as cb:
                x, rec = upscale_image(im, scale=scale, prompt=prompt_of(im, prompt), stages=pipes, seed=seed,
                                       aug=sr_aug, steps=steps, sampler=sampler, cfg=cfg, negative=negative or None,
                                       callback=cb)
            rec = {**rec, "seed": seed, "noisebrush": __version__}
            pic = to_pil(x[0])
            name = f"{im.stem}-x{x.shape[-1] // low.shape[-1]}.png"
            path = keep.save(lambda p, pic=pic, rec=rec: save_png(pic, p, rec), name)
            typer.echo(f"{im} ({low.shape[-1]}×{h}) → {path} ({x.shape[-1]}×{x.shape[-2]}); box-averaged back: "
                       f"PSNR {consistency_psnr(x, low):.1f} dB")
    paths = keep.done()
    typer.echo(f"upscaled {len(images)} picture{'s' * (len(images) != 1)} (seed {seed}) in "
               f"{time.perf_counter() - t:.1f}s → {out}/")
    echo_paths(paths)
