"""``noisebrush vary``, ``inpaint``, ``outpaint`` and ``morph``: painting from a picture, or between two paintings.

    noisebrush vary outputs/a-red-sun-s7.png --strength 0.5
    noisebrush inpaint picture.png "a yellow moon" --mask mask.png
    noisebrush outpaint picture.png --extend 16,0,16,0
    noisebrush morph "a red flower" --to "a blue flower" --seed 1 --to-seed 2
    noisebrush vary outputs/a-red-sun-s7.png --negative "murky, dark"     # every command here takes --negative

Without ``--seed`` a random seed is drawn, printed and recorded in every recipe. ``--out`` is checked (a folder
that can be written) before the model is loaded, so a bad one costs no painting; Ctrl-C exits with status 130 and one
line saying what was written (nothing, before the files are saved).

The work is the Pipeline's (:mod:`noisebrush.paint.edit`); the files are :mod:`noisebrush.io.outputs`'.
Lazy imports: noisebrush.io and noisebrush.paint import torch, so they are imported inside the commands:
`noisebrush --help` takes 0.3 s without torch and 3.5 s with it at the top of any command module.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import List, Optional

import typer

import noisebrush
from noisebrush.apps.cli.app import (CASCADE, CFG, DEVICE, JUMP_LENGTH, JUMPS, LORA, MODEL, NEGATIVE, OUT, PALETTE,
                                     PALETTE_SCALE_OPT, SR_AUG, SR_CFG, SR_SAMPLER, SR_STEPS, STAGES, app)
from noisebrush.apps.cli.common import LazyBar, echo_paths, guides_from_flags, prompt_of, report_interrupt
from noisebrush.apps.cli.paint import cascade_for
from noisebrush.checks import number, whole
from noisebrush.errors import BadParameter

__all__ = ["vary", "inpaint", "outpaint", "morph"]

SEED_HELP = "picture i gets seed+i (default: a random seed, printed and recorded in each PNG)"
N_HELP = "how many pictures"
SIZE_HELP = "short side to paint at (default: the picture's when the model can, else the model's)"
ZOOM_HELP = "pixel-repeat factor for the contact sheet"


def _prepare(out: Path, seed):
    """Before any work: ``--out`` must be a folder that can be written; the seed (a random one when not given)."""
    from noisebrush.io.outputs import check_folder  # lazy: torch (see the module docstring)
    from noisebrush.seeding import pick_seed

    check_folder(out, what="--out")
    return pick_seed(seed)


def _sr(cascade, stages, aug, steps, sampler, cfg) -> dict:
    """The super-resolution flags of an edit command, as :func:`_picture_cascade` takes them."""
    return dict(cascade=cascade, stages=stages, aug=aug, steps=steps, sampler=sampler, cfg=cfg)


def _picture_cascade(pipe, image: Path, size, sr: dict):
    """The cascade an edit of ``image`` goes through (None: the model paints it itself): with ``--cascade`` (the
    default) and no ``--size``, a picture whose short side is the model's resolution times 2, 4, … is edited at the
    model's size and upscaled back (:mod:`noisebrush.paint.cascade`)."""
    from PIL import Image, UnidentifiedImageError  # lazy: only to read a picture's size

    given = any(v is not None for k, v in sr.items() if k not in ("cascade", "cfg", "device")) or sr["cfg"] != 1.0
    short = None
    if sr["cascade"] and size is None and pipe.modality.kind == "image":
        try:
            with Image.open(image) as im:
                short = min(im.size)
        except (OSError, UnidentifiedImageError, ValueError):  # the edit itself says what is wrong with the file
            short = None
    ratio = short // pipe.resolution if short and short % pipe.resolution == 0 else 0
    if ratio < 2 or ratio & (ratio - 1):
        if given:
            raise BadParameter(f"--stages, --sr-aug, --sr-steps, --sr-sampler, --sr-cfg: only for a picture larger "
                               f"than the model's {pipe.resolution} px by 2, 4, … (edited through the cascade)")
        return None
    opts = {k: v for k, v in sr.items() if k != "cascade"}
    return cascade_for(pipe, short, **opts)


@app.command()
def vary(image: Path = typer.Argument(..., help="the picture to vary (any format Pillow reads)"),
         prompt: Optional[str] = typer.Argument(None, help="what it shows (default: the prompt in its recipe)"),
         strength: float = typer.Option(0.6, "--strength", "-s", help="0 = the picture itself, 1 = ignore it"),
         model: str = MODEL,
         sampler: Optional[str] = typer.Option(None, "--sampler", help="default: the model's (dpmpp_2m for the "
                                                                       "built-in)"),
         steps: Optional[int] = typer.Option(None, "--steps", help="steps of the full schedule (strength × steps are "
                                                                   "run; default: the model's, 10 for the built-in)"),
         cfg: float = CFG,
         negative: str = NEGATIVE,
         seed: Optional[int] = typer.Option(None, "--seed", help=SEED_HELP),
         n: int = typer.Option(4, "-n", help="how many variations"),
         size: Optional[int] = typer.Option(None, "--size", help=SIZE_HELP),
         palette: Optional[str] = PALETTE,
         palette_scale: float = PALETTE_SCALE_OPT,
         lora: List[str] = LORA,
         out: Path = OUT,
         zoom: int = typer.Option(2, "--zoom", help=ZOOM_HELP),
         cascade: bool = CASCADE,
         stages: Optional[str] = STAGES,
         sr_aug: Optional[float] = SR_AUG,
         sr_steps: Optional[int] = SR_STEPS,
         sr_sampler: Optional[str] = SR_SAMPLER,
         sr_cfg: float = SR_CFG,
         device: str = DEVICE):
    """Variations of IMAGE (SDEdit): noise it to the level STRENGTH picks, then paint it back."""
    from noisebrush.io.outputs import save_set, slug  # lazy: torch (see the module docstring)

    whole("--zoom", zoom, 1, 32)
    seed = _prepare(out, seed)
    guides = guides_from_flags(palette, palette_scale)
    with report_interrupt([]):
        pipe = noisebrush.load(model, device=device, lora=lora or None)
        casc = _picture_cascade(pipe, image, size, {**_sr(cascade, stages, sr_aug, sr_steps, sr_sampler, sr_cfg),
                                                    "device": device})
        t = time.perf_counter()
        with LazyBar("varying") as cb:
            if casc is not None:
                pipe = casc
                size = None
            images, recipes = pipe.vary(image, prompt_of(image, prompt), strength=strength, steps=steps, seed=seed,
                                        n=n, sampler=sampler, cfg=cfg, size=size, guidance=guides or None,
                                        callback=cb, negative=negative or None)
    paths = save_set(images, recipes, out, f"{slug(image.stem)}-vary", zoom=zoom)
    typer.echo(f"{n} variation{'s' * (n != 1)} of {image} (strength {strength}, seed {seed}) in "
               f"{time.perf_counter() - t:.1f}s")
    echo_paths(paths)


def _repaint(kind: str, image: Path, prompt, *, model, mask=None, extend=None, steps, jump_length, jumps, cfg,
             seed, n, size, palette, palette_scale, lora, out, zoom, device, negative="", sr=None):
    """inpaint or outpaint (RePaint): paint, save the set, report."""
    from noisebrush.io.outputs import save_set, slug  # lazy: torch

    whole("--zoom", zoom, 1, 32)
    seed = _prepare(out, seed)
    guides = guides_from_flags(palette, palette_scale)
    with report_interrupt([]):
        pipe = noisebrush.load(model, device=device, lora=lora or None)
        casc = _picture_cascade(pipe, image, size, {**(sr or {}), "device": device})
        t = time.perf_counter()
        kw = dict(steps=steps, jump_length=jump_length, jumps=jumps, seed=seed, n=n, cfg=cfg, size=size,
                  guidance=guides or None, negative=negative or None)
        if casc is not None:  # edited at the model's size, then upscaled back through the stages
            pipe = casc
            kw.pop("size")
        with LazyBar("inpainting" if kind == "inpaint" else "outpainting") as cb:
            if kind == "inpaint":
                images, recipes = pipe.inpaint(image, mask, prompt_of(image, prompt), callback=cb, **kw)
            else:
                images, recipes = pipe.outpaint(image, extend, prompt_of(image, prompt), callback=cb, **kw)
    paths = save_set(images, recipes, out, f"{slug(image.stem)}-{kind}", zoom=zoom)
    typer.echo(f"{kind}ed {n} picture{'s' * (n != 1)} from {image} (seed {seed}) in {time.perf_counter() - t:.1f}s")
    echo_paths(paths)


# options inpaint and outpaint share
_REPAINT_STEPS = typer.Option(None, "--steps", help="default: the model's (20 for the built-in, whose 10 "
                                                               "learned steps are its sampler's)")
_REPAINT_SEED = typer.Option(None, "--seed", help=SEED_HELP)
_REPAINT_N = typer.Option(4, "-n", help=N_HELP)
_REPAINT_SIZE = typer.Option(None, "--size", help=SIZE_HELP)
_REPAINT_ZOOM = typer.Option(2, "--zoom", help=ZOOM_HELP)


@app.command()
def inpaint(image: Path = typer.Argument(..., help="the picture"),
            prompt: Optional[str] = typer.Argument(None, help="what to paint (default: the prompt in its recipe)"),
            mask: Path = typer.Option(..., "--mask", help="same size as IMAGE; white = repaint, black = keep"),
            model: str = MODEL,
            steps: Optional[int] = _REPAINT_STEPS,
            jump_length: Optional[int] = JUMP_LENGTH,
            jumps: int = JUMPS,
            cfg: float = CFG,
            negative: str = NEGATIVE,
            seed: Optional[int] = _REPAINT_SEED,
            n: int = _REPAINT_N,
            size: Optional[int] = _REPAINT_SIZE,
            palette: Optional[str] = PALETTE,
            palette_scale: float = PALETTE_SCALE_OPT,
            lora: List[str] = LORA,
            out: Path = OUT,
            zoom: int = _REPAINT_ZOOM,
            cascade: bool = CASCADE,
            stages: Optional[str] = STAGES,
            sr_aug: Optional[float] = SR_AUG,
            sr_steps: Optional[int] = SR_STEPS,
            sr_sampler: Optional[str] = SR_SAMPLER,
            sr_cfg: float = SR_CFG,
            device: str = DEVICE):
    """Repaint the white part of MASK in IMAGE (RePaint); every other pixel comes out exactly as it was."""
    _repaint("inpaint", image, prompt, model=model, mask=mask, steps=steps, jump_length=jump_length, jumps=jumps,
             cfg=cfg, seed=seed, n=n, size=size, palette=palette, palette_scale=palette_scale, lora=lora,
             out=out, zoom=zoom, device=device, negative=negative,
             sr=_sr(cascade, stages, sr_aug, sr_steps, sr_sampler, sr_cfg))


@app.command()
def outpaint(image: Path = typer.Argument(..., help="the picture"),
             prompt: Optional[str] = typer.Argument(None, help="what to paint (default: the prompt in its recipe)"),
             extend: str = typer.Option(..., "--extend", help="pixels to add: L,T,R,B (or one number for all)"),
             model: str = MODEL,
             steps: Optional[int] = _REPAINT_STEPS,
             jump_length: Optional[int] = JUMP_LENGTH,
             jumps: int = JUMPS,
             cfg: float = CFG,
             negative: str = NEGATIVE,
             seed: Optional[int] = _REPAINT_SEED,
             n: int = _REPAINT_N,
             size: Optional[int] = _REPAINT_SIZE,
             palette: Optional[str] = PALETTE,
             palette_scale: float = PALETTE_SCALE_OPT,
             lora: List[str] = LORA,
             out: Path = OUT,
             zoom: int = _REPAINT_ZOOM,
             cascade: bool = CASCADE,
             stages: Optional[str] = STAGES,
             sr_aug: Optional[float] = SR_AUG,
             sr_steps: Optional[int] = SR_STEPS,
             sr_sampler: Optional[str] = SR_SAMPLER,
             sr_cfg: float = SR_CFG,
             device: str = DEVICE):
    """Paint beyond IMAGE's edges; the picture itself is kept exactly."""
    from noisebrush.paint.edit import parse_extend  # lazy: torch

    try:
        ext = parse_extend(extend)
    except BadParameter as e:
        raise BadParameter(f"--{e}") from None
    _repaint("outpaint", image, prompt, model=model, extend=ext, steps=steps, jump_length=jump_length,
             jumps=jumps, cfg=cfg, seed=seed, n=n, size=size, palette=palette, palette_scale=palette_scale,
             lora=lora, out=out, zoom=zoom, device=device, negative=negative,
             sr=_sr(cascade, stages, sr_aug, sr_steps, sr_sampler, sr_cfg))


@app.command()
def morph(prompt: str = typer.Argument(..., metavar="PROMPT", help="where the morph starts"),
          to: Optional[str] = typer.Option(None, "--to", help="the prompt it ends on (default: PROMPT)"),
          seed: Optional[int] = typer.Option(None, "--seed", help="the seed it starts on (default: a random seed, "
                                                                  "printed and recorded)"),
          to_seed: Optional[int] = typer.Option(None, "--to-seed", help="the seed it ends on (default: SEED)"),
          frames: int = typer.Option(16, "--frames", help="pictures from start to end, both included"),
          fps: float = typer.Option(12.0, "--fps", help="frames per second of the GIF and MP4"),
          bounce: bool = typer.Option(False, "--bounce", help="play forward then back, so the loop has no jump"),
          model: str = MODEL,
          sampler: Optional[str] = typer.Option(None, "--sampler", help="a deterministic one (default: the model's; "
                                                                        "dpmpp_2m for the built-in)"),
          steps: Optional[int] = typer.Option(None, "--steps", help="default: the model's (10 for the built-in)"),
          cfg: float = CFG,
          negative: str = NEGATIVE,
          size: Optional[int] = typer.Option(None, "--size", help="picture size in pixels (default: the model's)"),
          palette: Optional[str] = PALETTE,
          palette_scale: float = PALETTE_SCALE_OPT,
          lora: List[str] = LORA,
          out: Path = OUT,
          zoom: int = typer.Option(8, "--zoom", help="pixel-repeat factor of the GIF and MP4 frames"),
          cascade: bool = CASCADE,
          stages: Optional[str] = STAGES,
          sr_aug: Optional[float] = SR_AUG,
          sr_steps: Optional[int] = SR_STEPS,
          sr_sampler: Optional[str] = SR_SAMPLER,
          sr_cfg: float = SR_CFG,
          device: str = DEVICE):
    """Morph between two seeds and/or two prompts: writes a GIF, an MP4 and a PNG strip of the frames."""
    from noisebrush.io.outputs import morph_name, save_animation  # lazy: torch

    if to is None and to_seed is None:
        raise BadParameter("--to / --to-seed: give another prompt and/or another seed to morph towards")
    whole("--zoom", zoom, 1, 32)
    number("--fps", fps, 0.1, 60)
    seed = _prepare(out, seed)
    guides = guides_from_flags(palette, palette_scale)
    with report_interrupt([]):
        pipe = noisebrush.load(model, device=device, lora=lora or None)
        casc = cascade_for(pipe, size, cascade=cascade, stages=stages, device=device, steps=sr_steps,
                           sampler=sr_sampler, cfg=sr_cfg, aug=sr_aug)
        if casc is not pipe:  # frames painted at the model's size, each upscaled through the stages
            pipe, size = casc, None
        t = time.perf_counter()
        with LazyBar("morphing") as cb:
            pics, recipe = pipe.morph(prompt, to_prompt=to, seed=seed, to_seed=to_seed, frames=frames, steps=steps,
                                      sampler=sampler, cfg=cfg, size=size, guidance=guides or None, callback=cb,
                                      negative=negative or None)
    files = save_animation(pics, recipe, out, morph_name(prompt, to, seed, to_seed), fps=fps, zoom=zoom, bounce=bounce)
    typer.echo(f"morphed {frames} frames (seed {seed}" + (f" to {to_seed}" if to_seed is not None else "")
               + f") in {time.perf_counter() - t:.1f}s")
    echo_paths(files)
