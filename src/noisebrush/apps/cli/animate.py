"""``noisebrush animate``: clips from a clip model — from a prompt, from a picture (``--from``), between two pictures
(``--to``), longer than the model's clips (``--frames``), looping (``--loop``) — as a GIF, an MP4 and a PNG film
strip that carries the recipe (``noisebrush reproduce`` paints it again frame for frame).

Lazy imports: noisebrush.io and noisebrush.paint import torch, so they are imported inside the command.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import typer

import noisebrush
from noisebrush.apps.cli.app import CFG, DEVICE, NEGATIVE, OUT, app
from noisebrush.apps.cli.common import LazyBar, echo_paths, report_interrupt
from noisebrush.checks import number, whole
from noisebrush.errors import BadParameter, UserError

__all__ = ["animate", "VIDEO_MODEL"]

VIDEO_MODEL = "builtin-video"


@app.command()
def animate(prompt: str = typer.Argument("", metavar="PROMPT", help="what moves and how, e.g. 'a red circle "
                                                                     "sliding left slowly on a blue background'"),
            frames: Optional[int] = typer.Option(None, "--frames", help="frames of the clip (default: the model's, "
                                                                        "16 for the built-in); more are painted in "
                                                                        "windows that continue it"),
            fps: float = typer.Option(8.0, "--fps", help="frames per second of the GIF and MP4"),
            seed: Optional[int] = typer.Option(None, "--seed", help="clip i gets seed+i (default: a random seed, "
                                                                    "printed and recorded)"),
            n: int = typer.Option(1, "-n", help="clips to paint"),
            first: Optional[Path] = typer.Option(None, "--from", help="a picture the clip starts on (kept exactly; "
                                                                      "another size is cropped and resized)"),
            last: Optional[Path] = typer.Option(None, "--to", help="with --from: the picture it ends on "
                                                                   "(interpolation)"),
            loop: bool = typer.Option(False, "--loop", help="add frames that lead back to the first, so the clip "
                                                            "plays round without a jump"),
            model: str = typer.Option(VIDEO_MODEL, "--model", "-m", help="a clip model folder (default: the "
                                                                         "built-in animation model)"),
            steps: Optional[int] = typer.Option(None, "--steps", help="default: the model's"),
            sampler: Optional[str] = typer.Option(None, "--sampler", help="default: the model's"),
            cfg: float = CFG,
            negative: str = NEGATIVE,
            upscale: Optional[int] = typer.Option(None, "--upscale", help="2 or 4: the GIF and MP4 frames through "
                                                                         "the super-resolution stages (64 or 128 px "
                                                                         "from 32); the strip keeps the clip"),
            zoom: Optional[int] = typer.Option(None, "--zoom", help="pixel-repeat factor of the GIF and MP4 "
                                                                    "(default: 8, or 2 with --upscale)"),
            out: Path = OUT,
            device: str = DEVICE):
    """Paint clips: writes a GIF, an MP4 and a PNG strip of the frames (with the recipe) per clip."""
    from noisebrush.io.outputs import check_folder, save_animation, slug  # lazy: torch
    from noisebrush.seeding import pick_seed

    number("--fps", fps, 0.1, 60)
    if upscale is not None and upscale not in (2, 4):
        raise BadParameter(f"--upscale: 2 or 4, got {upscale}")
    zoom = whole("--zoom", zoom, 1, 32) if zoom is not None else (2 if upscale else 8)
    for flag, path in (("--from", first), ("--to", last)):
        if path is not None and not path.is_file():
            raise UserError(f"{flag} {path}: no such file")
    check_folder(out, what="--out")
    seed = pick_seed(seed)
    files = []
    with report_interrupt(files):
        pipe = noisebrush.load(model, device=device)
        t = time.perf_counter()
        with LazyBar("animating") as cb:
            clips, recipes = pipe.animate(prompt, frames=frames, seed=seed, n=n, steps=steps, sampler=sampler,
                                          cfg=cfg, first=first, last=last, loop=loop, negative=negative or None,
                                          callback=cb)
        painted = time.perf_counter() - t
        strips = pipe.modality.preview(clips)
        for clip, rec, strip in zip(clips, recipes, strips):
            shown = clip
            if upscale:
                from noisebrush.paint.cascade import upscale_clip  # lazy: loads the stages only when asked

                with LazyBar("upscaling") as cb:
                    shown = upscale_clip(clip, scale=upscale, prompt=prompt, seed=rec["seed"], device=device,
                                         callback=cb)
            name = f"{slug(prompt or 'clip')}-s{rec['seed']}"
            files += save_animation(shown.transpose(0, 1), {**rec, **({"upscale": upscale} if upscale else {})},
                                    out, name, fps=fps, zoom=zoom, strip=strip)
    typer.echo(f"animated {len(recipes)} clip{'s' if len(recipes) > 1 else ''} of {clips.shape[2]} frames "
               f"(seed {seed}) in {painted:.1f}s")
    echo_paths(files)
