"""The ``noisebrush`` command line: a thin typer app over the Python API.

    noisebrush paint "a red sun over purple mountains" -n 4 --seed 7
    noisebrush train --config configs/builtin.toml --out runs/mine
    noisebrush info outputs/a-red-sun-s7.png
    noisebrush reproduce outputs/a-red-sun-s7.png
    noisebrush samplers
    noisebrush bench train --quick
    noisebrush eval builtin --n 500 --json report.json
    noisebrush explain "a red sun over purple mountains" --seed 7
    noisebrush plot-log runs/mine
    noisebrush experiment steps
    noisebrush vary outputs/a-red-sun-s7.png --strength 0.5
    noisebrush inpaint picture.png "a yellow moon" --mask mask.png
    noisebrush outpaint picture.png --extend 16,0,16,0
    noisebrush morph "a red flower" --to "a blue flower" --seed 1 --to-seed 2
    noisebrush paint "a landscape" --palette "#aa3300,#002255" --lora mystyle.safetensors:0.8
    noisebrush finetune --base builtin --data ~/my-style --lora --token "<mystyle>"     (cli_finetune.py)
    noisebrush rate outputs/a-flower-s3.png up; noisebrush paint "a flower" --best-of 4 --prefer 1   (cli_prefs.py)

Every user error prints one line (``error: …``) and exits with status 2; Ctrl-C exits with 130.
"""
from __future__ import annotations

import re
import shlex
import signal
import sys
import time
from pathlib import Path
from typing import List, Optional

import typer

try:  # typer ≥ 0.20 carries its own copy of click
    from typer._click import exceptions as _cx
except ImportError:  # pragma: no cover
    from click import exceptions as _cx

from noisebrush.errors import BadParameter, UserError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  rich_markup_mode=None, help="Make art with diffusion models: paint, vary, inpaint, morph, fine-tune on your "
                       "pictures, teach it your taste, train, reproduce.")


def _console():
    from rich.console import Console

    return Console(stderr=True)


def _slug(text: str, limit: int = 40) -> str:
    s = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return (s[:limit].rstrip("-") or "image")


def _free(path: Path) -> Path:
    """``path``, or ``name-2.png``, ``name-3.png`` … if it exists (never overwrite a picture)."""
    if not path.exists():
        return path
    k = 2
    while True:
        p = path.with_name(f"{path.stem}-{k}{path.suffix}")
        if not p.exists():
            return p
        k += 1


def _progress(total: int, label: str):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
                    TimeRemainingColumn(), console=_console(), transient=False)


def _paint_and_save(pipe, prompts: list[str], *, steps: int, seed: int, n: int, sampler: str, cfg: float,
                    out: Path, label=None, grid: bool = True, zoom: int = 2, rerank=None, **gen) -> list[Path]:
    """Paint n images per prompt, write one PNG each (with its recipe) and a contact sheet: a row per prompt.
    ``rerank = (N, preference model)`` paints N candidates per picture and keeps the best-liked."""
    from noisebrush.diffusion import get_sampler
    from noisebrush.io.images import to_pil
    from noisebrush.io.png import save_png

    get_sampler(sampler)  # fail before any work
    for prompt in prompts:
        pipe.check(prompt, steps=steps, seed=seed, n=n, sampler=sampler, cfg=cfg, label=label,
                   **{k: v for k, v in gen.items() if k != "guidance"})
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: exists and is not a folder (--out)")
    written, sheet, sheet_recipes = [], [], []
    out.mkdir(parents=True, exist_ok=True)
    with _progress(steps * len(prompts), "painting") as bar:
        task = bar.add_task("paint", total=steps * len(prompts), info="")
        for k, prompt in enumerate(prompts):
            def cb(info, k=k, prompt=prompt):
                bar.update(task, completed=k * steps + info.step + 1, info=f"{prompt[:30]}  σ={info.sigma:.3g}")

            if rerank is None:
                images, recipes = pipe.generate(prompt, steps=steps, seed=seed, n=n, sampler=sampler, cfg=cfg,
                                                label=label, callback=cb, **gen)
            else:
                from noisebrush.workflows.preference import best_of

                bar.update(task, info=f"{prompt[:30]}  best of {rerank[0]}")
                images, recipes = best_of(pipe, prompt, n=n, best_of=rerank[0], seed=seed, model=rerank[1],
                                          steps=steps, sampler=sampler, cfg=cfg, label=label, **gen)
                bar.update(task, completed=(k + 1) * steps)
            pics = to_pil(images)
            base = _slug(prompt or str(label or "image"))
            for pic, rec in zip(pics, recipes):
                written.append(save_png(pic, _free(out / f"{base}-s{rec['seed']}.png"), rec))
            sheet += pics
            sheet_recipes += recipes
        bar.update(task, completed=steps * len(prompts))
    if grid and len(sheet) > 1:
        name = _slug(prompts[0]) + ("-and-more" if len(prompts) > 1 else "")
        g = _free(out / f"{name}-grid-s{seed}.png")
        layout = {"cols": n if len(prompts) > 1 else min(n, 4), "zoom": zoom}
        save_png(_sheet(sheet, layout), g, {**sheet_recipes[0], "sheet": layout, "images": sheet_recipes})
        written.append(g)
    return written


def _sheet(pics, layout: dict):
    """The contact sheet: pictures enlarged by pixel repetition, in a grid (the layout is stored in its recipe)."""
    from noisebrush.io.images import make_grid

    z = int(layout["zoom"])
    return make_grid([p.resize((p.width * z, p.height * z), resample=0) for p in pics], cols=int(layout["cols"]))


_LORA_HELP = "a LoRA file from `noisebrush finetune --lora`, optionally with a weight: FILE or FILE:0.7 (repeatable)"
_PALETTE_HELP = "steer the colours toward these, e.g. '#aa3300,#002255,#e0c080'"


def _guides(palette: Optional[str], palette_scale: float, prefer: float = 0.0, preference=None) -> list:
    """The guides the painting flags ask for (palette; learned preference, with its fitted model)."""
    guides = []
    if palette is not None:
        from noisebrush.paint.palette import PaletteGuide

        try:
            guides.append(PaletteGuide(palette, scale=palette_scale))
        except BadParameter as e:
            raise BadParameter(f"--{e}") from None
    elif palette_scale != PALETTE_SCALE:
        raise BadParameter("--palette-scale: give --palette too")
    if prefer:
        from noisebrush.workflows.preference import PreferenceGuide

        guides.append(PreferenceGuide(preference, scale=prefer))
    return guides


PALETTE_SCALE = 0.15  # PaletteGuide's default (see `python -m noisebrush.bench palette`)


@app.command()
def paint(prompts: List[str] = typer.Argument(..., metavar="PROMPT",
                                             help="what to paint, e.g. 'a red sun over purple mountains'; "
                                                  "several prompts give a row each in the contact sheet"),
          model: str = typer.Option("builtin", "--model", "-m", help="'builtin' or a model folder"),
          sampler: str = typer.Option("dpmpp_2m", "--sampler", help="see `noisebrush samplers`"),
          steps: int = typer.Option(20, "--steps", help="sampler steps"),
          cfg: float = typer.Option(3.0, "--cfg", help="classifier-free guidance scale (1 = none)"),
          seed: int = typer.Option(0, "--seed", help="image i gets seed+i"),
          n: int = typer.Option(4, "-n", help="images per prompt"),
          out: Path = typer.Option(Path("outputs"), "--out", "-o", help="folder for the PNGs"),
          size: Optional[int] = typer.Option(None, "--size", help="picture size in pixels (default: the model's)"),
          zoom: int = typer.Option(2, "--zoom", help="pixel-repeat factor for the contact sheet"),
          palette: Optional[str] = typer.Option(None, "--palette", help=_PALETTE_HELP),
          palette_scale: float = typer.Option(PALETTE_SCALE, "--palette-scale",
                                              help="0–1: how far each step pulls a pixel toward its palette colour"),
          lora: List[str] = typer.Option([], "--lora", help=_LORA_HELP),
          best_of: int = typer.Option(1, "--best-of", help="paint N candidates per picture and keep the one your "
                                                           "ratings (`noisebrush rate`) like best"),
          prefer: float = typer.Option(0.0, "--prefer", help="steer toward what your ratings like (guidance scale, "
                                                             "e.g. 0.5; 0 = off)"),
          db: Optional[Path] = typer.Option(None, "--db", help="ratings database (default: "
                                                               "~/.noisebrush/ratings.sqlite)"),
          device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or mps")):
    """Paint PROMPT: n PNGs per prompt (each carrying its recipe) plus a contact sheet."""
    import noisebrush

    if zoom < 1 or zoom > 32:
        raise BadParameter(f"--zoom: 1 to 32, got {zoom}")
    if best_of < 1:
        raise BadParameter(f"--best-of: a whole number ≥ 1, got {best_of}")
    if prefer < 0:
        raise BadParameter(f"--prefer: a guidance scale ≥ 0, got {prefer}")
    preference = None
    if best_of > 1 or prefer > 0:
        from noisebrush.workflows.preference import load_preference

        preference = load_preference(db)  # fitted on every rating (a second or two), saved by its hash
    guides = _guides(palette, palette_scale, prefer, preference)
    rerank = (best_of, preference) if best_of > 1 else None
    t = time.perf_counter()
    pipe = noisebrush.load(model, device=device, lora=lora or None)
    paths = _paint_and_save(pipe, prompts, steps=steps, seed=seed, n=n, sampler=sampler, cfg=cfg, out=out,
                            zoom=zoom, size=size, guidance=guides or None, rerank=rerank)
    total = n * len(prompts)
    typer.echo(f"painted {total} image{'s' * (total != 1)} in {time.perf_counter() - t:.1f}s → {out}/")
    for p in paths:
        typer.echo(f"  {p}")


# options the painting-from-a-picture commands share
_MODEL = typer.Option("builtin", "--model", "-m", help="'builtin' or a model folder")
_CFG = typer.Option(3.0, "--cfg", help="classifier-free guidance scale (1 = none)")
_PALETTE = typer.Option(None, "--palette", help=_PALETTE_HELP)
_PALETTE_SCALE = typer.Option(PALETTE_SCALE, "--palette-scale", help="0–1: how far each step pulls a pixel toward "
                                                                    "its palette colour")
_LORA = typer.Option([], "--lora", help=_LORA_HELP)
_OUT = typer.Option(Path("outputs"), "--out", "-o", help="folder for the results")
_DEVICE = typer.Option("auto", "--device", help="auto, cpu, cuda or mps")
_JUMP_LENGTH = typer.Option(4, "--jump-length", help="RePaint: levels to climb back per jump")
_JUMPS = typer.Option(3, "--jumps", help="RePaint: passes over each stretch (1 = no resampling)")


def _prompt_of(image: Path, prompt: Optional[str]) -> str:
    """The prompt to use: the one given, else the one the picture's own recipe names, else ""."""
    if prompt is not None:
        return prompt
    try:
        from noisebrush.io.png import read_recipe

        rec = read_recipe(image)
        return str(rec.get("prompt", "")) if "sheet" not in rec else ""
    except UserError:
        return ""


def _save_set(images, recipes, out: Path, base: str, *, zoom: int, sheet: bool = True, first=None) -> list[Path]:
    """One PNG per picture (with its recipe) and, for several, a contact sheet (``first``: the input, shown first)."""
    from noisebrush.io.images import to_pil
    from noisebrush.io.png import save_png

    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: exists and is not a folder (--out)")
    out.mkdir(parents=True, exist_ok=True)
    pics = to_pil(images)
    written = [save_png(p, _free(out / f"{base}-s{r['seed']}.png"), r) for p, r in zip(pics, recipes)]
    if sheet and len(pics) > 1:
        layout = {"cols": min(len(pics), 4), "zoom": zoom}
        g = _free(out / f"{base}-grid-s{recipes[0]['seed']}.png")
        written.append(save_png(_sheet(pics, layout), g, {**recipes[0], "sheet": layout, "images": recipes}))
    return written


class _LazyBar:
    """A progress bar that appears at the first step, so an error found before any work prints only its line."""

    def __init__(self, total: int, label: str):
        self.total, self.label, self.bar, self.task = total, label, None, None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.stop()

    def __call__(self, info):
        if self.bar is None:
            self.bar = _progress(self.total, self.label)
            self.task = self.bar.add_task(self.label, total=info.steps, info="")
            self.bar.start()
        self.bar.update(self.task, completed=min(info.step + 1, info.steps), total=info.steps,
                        info=f"σ={info.sigma:.3g}")


def _edit_progress(steps_total: int, label: str):
    bar = _LazyBar(steps_total, label)
    return bar, bar


@app.command()
def vary(image: Path = typer.Argument(..., help="the picture to vary (any format Pillow reads)"),
         prompt: Optional[str] = typer.Argument(None, help="what it shows (default: the prompt in its recipe)"),
         strength: float = typer.Option(0.6, "--strength", "-s", help="0 = the picture itself, 1 = ignore it"),
         model: str = _MODEL,
         sampler: str = typer.Option("dpmpp_2m", "--sampler"),
         steps: int = typer.Option(20, "--steps", help="steps of the full schedule (strength × steps are run)"),
         cfg: float = _CFG,
         seed: int = typer.Option(0, "--seed", help="variation i gets seed+i"),
         n: int = typer.Option(4, "-n", help="how many variations"),
         size: Optional[int] = typer.Option(None, "--size", help="short side to paint at (default: the picture's "
                                                                 "when the model can, else the model's)"),
         palette: Optional[str] = _PALETTE,
         palette_scale: float = _PALETTE_SCALE,
         lora: List[str] = _LORA,
         out: Path = _OUT,
         zoom: int = typer.Option(2, "--zoom"),
         device: str = _DEVICE):
    """Variations of IMAGE (SDEdit): noise it to the level STRENGTH picks, then paint it back."""
    import noisebrush

    guides = _guides(palette, palette_scale)
    pipe = noisebrush.load(model, device=device, lora=lora or None)
    t = time.perf_counter()
    bar, cb = _edit_progress(steps, "varying")
    with bar:
        images, recipes = pipe.vary(image, _prompt_of(image, prompt), strength=strength, steps=steps, seed=seed, n=n,
                                    sampler=sampler, cfg=cfg, size=size, guidance=guides or None, callback=cb)
    paths = _save_set(images, recipes, out, f"{_slug(image.stem)}-vary", zoom=zoom)
    typer.echo(f"{n} variation{'s' * (n != 1)} of {image} (strength {strength}) in {time.perf_counter() - t:.1f}s")
    for p in paths:
        typer.echo(f"  {p}")


def _repaint_cmd(kind: str, image: Path, prompt, *, model, mask=None, extend=None, steps, jump_length, jumps, cfg,
                 seed, n, size, palette, palette_scale, lora, out, zoom, device):
    import noisebrush

    guides = _guides(palette, palette_scale)
    pipe = noisebrush.load(model, device=device, lora=lora or None)
    t = time.perf_counter()
    bar, cb = _edit_progress(steps, "inpainting" if kind == "inpaint" else "outpainting")
    kw = dict(steps=steps, jump_length=jump_length, jumps=jumps, seed=seed, n=n, cfg=cfg, size=size,
              guidance=guides or None, callback=cb)
    with bar:
        if kind == "inpaint":
            images, recipes = pipe.inpaint(image, mask, _prompt_of(image, prompt), **kw)
        else:
            images, recipes = pipe.outpaint(image, extend, _prompt_of(image, prompt), **kw)
    paths = _save_set(images, recipes, out, f"{_slug(image.stem)}-{kind}", zoom=zoom)
    typer.echo(f"{kind}ed {n} picture{'s' * (n != 1)} from {image} in {time.perf_counter() - t:.1f}s")
    for p in paths:
        typer.echo(f"  {p}")


@app.command()
def inpaint(image: Path = typer.Argument(..., help="the picture"),
            prompt: Optional[str] = typer.Argument(None, help="what to paint (default: the prompt in its recipe)"),
            mask: Path = typer.Option(..., "--mask", help="same size as IMAGE; white = repaint, black = keep"),
            model: str = _MODEL,
            steps: int = typer.Option(20, "--steps"),
            jump_length: int = _JUMP_LENGTH,
            jumps: int = _JUMPS,
            cfg: float = _CFG,
            seed: int = typer.Option(0, "--seed"),
            n: int = typer.Option(4, "-n"),
            size: Optional[int] = typer.Option(None, "--size"),
            palette: Optional[str] = _PALETTE,
            palette_scale: float = _PALETTE_SCALE,
            lora: List[str] = _LORA,
            out: Path = _OUT,
            zoom: int = typer.Option(2, "--zoom"),
            device: str = _DEVICE):
    """Repaint the white part of MASK in IMAGE (RePaint); every other pixel comes out exactly as it was."""
    _repaint_cmd("inpaint", image, prompt, model=model, mask=mask, steps=steps, jump_length=jump_length, jumps=jumps,
                 cfg=cfg, seed=seed, n=n, size=size, palette=palette, palette_scale=palette_scale, lora=lora,
                 out=out, zoom=zoom, device=device)


@app.command()
def outpaint(image: Path = typer.Argument(..., help="the picture"),
             prompt: Optional[str] = typer.Argument(None, help="what to paint (default: the prompt in its recipe)"),
             extend: str = typer.Option(..., "--extend", help="pixels to add: L,T,R,B (or one number for all)"),
             model: str = _MODEL,
             steps: int = typer.Option(20, "--steps"),
             jump_length: int = _JUMP_LENGTH,
             jumps: int = _JUMPS,
             cfg: float = _CFG,
             seed: int = typer.Option(0, "--seed"),
             n: int = typer.Option(4, "-n"),
             size: Optional[int] = typer.Option(None, "--size"),
             palette: Optional[str] = _PALETTE,
             palette_scale: float = _PALETTE_SCALE,
             lora: List[str] = _LORA,
             out: Path = _OUT,
             zoom: int = typer.Option(2, "--zoom"),
             device: str = _DEVICE):
    """Paint beyond IMAGE's edges; the picture itself is kept exactly."""
    from noisebrush.paint.edit import parse_extend

    try:
        ext = parse_extend(extend)
    except BadParameter as e:
        raise BadParameter(f"--{e}") from None
    _repaint_cmd("outpaint", image, prompt, model=model, extend=ext, steps=steps, jump_length=jump_length,
                 jumps=jumps, cfg=cfg, seed=seed, n=n, size=size, palette=palette, palette_scale=palette_scale,
                 lora=lora, out=out, zoom=zoom, device=device)


@app.command()
def morph(prompt: str = typer.Argument(..., metavar="PROMPT", help="where the morph starts"),
          to: Optional[str] = typer.Option(None, "--to", help="the prompt it ends on (default: PROMPT)"),
          seed: int = typer.Option(0, "--seed"),
          to_seed: Optional[int] = typer.Option(None, "--to-seed", help="the seed it ends on (default: SEED)"),
          frames: int = typer.Option(16, "--frames", help="pictures from start to end, both included"),
          fps: float = typer.Option(12.0, "--fps"),
          bounce: bool = typer.Option(False, "--bounce", help="play forward then back, so the loop has no jump"),
          model: str = _MODEL,
          sampler: str = typer.Option("dpmpp_2m", "--sampler", help="a deterministic one"),
          steps: int = typer.Option(20, "--steps"),
          cfg: float = _CFG,
          size: Optional[int] = typer.Option(None, "--size"),
          palette: Optional[str] = _PALETTE,
          palette_scale: float = _PALETTE_SCALE,
          lora: List[str] = _LORA,
          out: Path = _OUT,
          zoom: int = typer.Option(8, "--zoom", help="pixel-repeat factor of the GIF and MP4 frames"),
          device: str = _DEVICE):
    """Morph between two seeds and/or two prompts: writes a GIF, an MP4 and a PNG strip of the frames."""
    import noisebrush
    from noisebrush.io.animation import frames_uint8, save_gif, save_mp4
    from noisebrush.io.png import save_png

    if to is None and to_seed is None:
        raise BadParameter("--to / --to-seed: give another prompt and/or another seed to morph towards")
    if not 1 <= zoom <= 32:
        raise BadParameter(f"--zoom: 1 to 32, got {zoom}")
    if isinstance(fps, bool) or not 0.1 <= fps <= 60:
        raise BadParameter(f"--fps: a number from 0.1 to 60, got {fps}")
    guides = _guides(palette, palette_scale)
    pipe = noisebrush.load(model, device=device, lora=lora or None)
    t = time.perf_counter()
    bar, cb = _edit_progress(frames * steps, "morphing")
    with bar:
        pics, recipe = pipe.morph(prompt, to_prompt=to, seed=seed, to_seed=to_seed, frames=frames, steps=steps,
                                  sampler=sampler, cfg=cfg, size=size, guidance=guides or None, callback=cb)
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: exists and is not a folder (--out)")
    out.mkdir(parents=True, exist_ok=True)
    seq = _bounce(pics) if bounce else pics
    name = f"morph-{_slug(prompt, 24)}" + (f"-to-{_slug(to, 24)}" if to is not None and to != prompt else "") + \
        f"-s{seed}" + (f"-{to_seed}" if to_seed is not None else "")
    base = _free(out / f"{name}.gif")
    gif = save_gif(seq, base, fps=fps, zoom=zoom)
    mp4 = save_mp4(seq, _free(base.with_suffix(".mp4")), fps=fps, zoom=zoom)
    from PIL import Image

    strip = Image.fromarray(frames_uint8(pics, 1).transpose(1, 0, 2, 3).reshape(pics.shape[2], -1, 3))
    zs = max(1, zoom // 4)
    png = save_png(strip.resize((strip.width * zs, strip.height * zs), resample=0),
                   _free(base.with_name(base.stem + "-strip.png")), {**recipe, "bounce": bounce, "fps": fps})
    typer.echo(f"morphed {frames} frames in {time.perf_counter() - t:.1f}s")
    for p in (gif, mp4, png):
        typer.echo(f"  {p}")


def _bounce(frames):
    """Frames forward then back (without repeating the two ends)."""
    import torch

    return torch.cat([frames, frames.flip(0)[1:-1]]) if frames.shape[0] > 2 else frames


@app.command()
def info(image: Path = typer.Argument(..., help="a PNG written by noisebrush")):
    """Show the parameters a noisebrush PNG carries."""
    from noisebrush.io.png import read_recipe

    recipe = read_recipe(image)
    if "images" in recipe and "sheet" in recipe:  # a contact sheet: one recipe per picture
        recipe = {k: v for k, v in recipe.items() if k != "images"} | {
            f"image {i + 1}": f"{r.get('prompt', '')!r} seed {r.get('seed')}" for i, r in enumerate(recipe["images"])}
    width = max(len(k) for k in recipe)
    for k, v in recipe.items():
        typer.echo(f"{k:<{width}}  {v}")


@app.command()
def reproduce(image: Path = typer.Argument(..., help="a PNG written by noisebrush"),
              model: Optional[str] = typer.Option(None, "--model", "-m", help="model folder (default: the one the "
                                                                               "PNG names)"),
              out: Path = typer.Option(Path("outputs"), "--out", "-o"),
              device: str = typer.Option("cpu", "--device")):
    """Paint IMAGE again from the recipe it carries and compare the pixels."""
    import numpy as np
    from PIL import Image

    import noisebrush
    from noisebrush.io.png import read_recipe

    recipe = read_recipe(image)
    if recipe.get("mode") == "morph":
        raise UserError(f"{image}: is a morph's strip; paint it again with `noisebrush morph` and the options its "
                        f"recipe lists (`noisebrush info {image}`)")
    named = recipe.get("model", "builtin")
    if model is None and not (isinstance(named, str) and named):
        raise UserError(f"{image}: its recipe names no model; pass --model")
    parts = recipe.get("images") if "sheet" in recipe else [recipe]
    if not isinstance(parts, list) or not parts or not all(isinstance(r, dict) for r in parts):
        raise UserError(f"{image}: its contact-sheet recipe lists no pictures")
    pipe = noisebrush.load(model or named, device=device, lora=_recipe_loras(image, recipe))
    if recipe.get("model_hash") and recipe["model_hash"] != pipe.hash:
        raise UserError(f"{image}: was painted with model weights {recipe['model_hash']}, but "
                        f"{model or recipe.get('model')} has {pipe.hash}; pass --model with the original folder")
    try:
        pics = []
        for rec in parts:
            paths = _paint_recipe(pipe, rec, out, image)
            with Image.open(paths[0]) as im:
                pics.append(im.convert("RGB"))
        if "sheet" in recipe:
            from noisebrush.io.png import save_png

            paths = [save_png(_sheet(pics, recipe["sheet"]), _free(out / f"{image.stem}-again.png"), recipe)]
    except (KeyError, TypeError, ValueError) as e:
        raise UserError(f"{image}: incomplete noisebrush parameters ({e})") from None
    with Image.open(image) as a, Image.open(paths[0]) as b:
        same = np.array_equal(np.asarray(a.convert("RGB")), np.asarray(b.convert("RGB")))
    typer.echo(f"{paths[0]}: {'pixel-identical to' if same else 'DIFFERS from'} {image}")
    if not same:
        raise typer.Exit(1)


def _recipe_loras(image: Path, recipe: dict) -> list | None:
    """The LoRA files a recipe names, checked against the hashes it recorded."""
    import hashlib

    specs = []
    for d in recipe.get("lora") or []:
        f = Path(str(d.get("file", "")))
        if not f.is_file():
            raise UserError(f"{image}: was painted with the LoRA {f}, which is not there any more")
        if d.get("hash") and hashlib.sha256(f.read_bytes()).hexdigest()[:10] != d["hash"]:
            raise UserError(f"{image}: the LoRA {f} has changed since the picture was painted")
        specs.append((f, float(d.get("weight", 1.0))))
    return specs or None


def _source(image: Path, rec: dict, key: str) -> Path:
    """A file an edit recipe names (its input picture or mask), checked against the hash it recorded."""
    import hashlib

    f = Path(str(rec.get(key) or ""))
    if not rec.get(key) or not f.is_file():
        raise UserError(f"{image}: was painted from {rec.get(key) or 'a picture given in memory'}, which is not "
                        f"there; it cannot be painted again")
    sha = rec.get(f"{key}_sha256")
    if sha and hashlib.sha256(f.read_bytes()).hexdigest()[:len(sha)] != sha:
        raise UserError(f"{image}: {f} has changed since the picture was painted from it")
    return f


def _paint_recipe(pipe, rec: dict, out: Path, image: Path) -> list[Path]:
    """Paint one picture from its recipe (plain, guided, varied, inpainted or outpainted) and save it."""
    from noisebrush.paint.guides import guides_from_recipe

    guides = guides_from_recipe(rec.get("guidance")) or None
    mode = rec.get("mode")
    common = dict(steps=int(rec["steps"]), seed=int(rec["seed"]), n=1, cfg=float(rec["cfg"]), guidance=guides)
    if mode is None:
        return _paint_and_save(pipe, [rec.get("prompt", "")], sampler=rec["sampler"], out=out,
                               label=rec.get("label"), grid=False, size=rec.get("width"),
                               sigma_min=rec.get("sigma_min"), sigma_max=rec.get("sigma_max"), **common)
    src = _source(image, rec, "source")
    size = int(rec["resized_short"]) if rec.get("resized_from") else None
    if mode == "vary":
        images, recipes = pipe.vary(src, rec.get("prompt", ""), strength=float(rec["strength"]),
                                    sampler=rec["sampler"], size=size, label=rec.get("label"), **common)
    elif mode == "inpaint":
        images, recipes = pipe.inpaint(src, _source(image, rec, "mask"), rec.get("prompt", ""), size=size,
                                       jump_length=int(rec["jump_length"]), jumps=int(rec["jumps"]),
                                       label=rec.get("label"), **common)
    elif mode == "outpaint":
        images, recipes = pipe.outpaint(src, rec["extend"], rec.get("prompt", ""), size=size,
                                        jump_length=int(rec["jump_length"]), jumps=int(rec["jumps"]),
                                        label=rec.get("label"), **common)
    else:
        raise UserError(f"{image}: unknown painting mode {mode!r} in its recipe")
    return _save_set(images, recipes, out, f"{_slug(image.stem)}-again", zoom=2, sheet=False)


@app.command()
def samplers():
    """List the samplers."""
    from noisebrush.diffusion import SAMPLERS

    width = max(len(k) for k in SAMPLERS)
    for name, s in SAMPLERS.items():
        typer.echo(f"{name:<{width}}  {s.summary}")


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []})
def bench(ctx: typer.Context):
    """Run a benchmark: `noisebrush bench NAME [options]` (samplers, train, quality, palette, inpaint, finetune,
    preference; NAME --help for its options)."""
    from noisebrush.bench.__main__ import main as bench_main

    code = bench_main(list(ctx.args))
    raise typer.Exit(code)


@app.command(name="eval")
def eval_(model: str = typer.Argument("builtin", help="'builtin' or a model folder"),
          data: Optional[str] = typer.Option(None, "--data", help="'builtin' or a folder of pictures (default: what "
                                                                   "the model was trained on)"),
          n: int = typer.Option(500, "--n", help="pictures to paint (and real ones to compare with)"),
          steps: int = typer.Option(20, "--steps", help="sampler steps"),
          sampler: Optional[str] = typer.Option(None, "--sampler", help="default: the model's"),
          cfg: float = typer.Option(3.0, "--cfg", help="classifier-free guidance scale"),
          seed: int = typer.Option(0, "--seed"),
          batch: int = typer.Option(64, "--batch", help="pictures per network batch"),
          json_out: Optional[Path] = typer.Option(None, "--json", help="write the report here as JSON"),
          no_memorization: bool = typer.Option(False, "--no-memorization", help="skip the near-copy check"),
          device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or mps")):
    """Measure a model: fd_art, KID, precision/recall, prompt adherence, SWD and the memorization check."""
    import json

    import noisebrush
    from noisebrush.eval import evaluate
    from noisebrush.eval.evaluation import check_options
    from noisebrush.io.atomic import atomic_write_text

    if json_out is not None and json_out.is_dir():
        raise UserError(f"{json_out}: is a folder (--json wants a file name)")
    pipe = noisebrush.load(model, device=device)
    check_options(pipe, data=data, n=n, steps=steps, sampler=sampler, cfg=cfg, seed=seed, batch=batch)
    with _progress(n, "evaluating") as bar:
        task = bar.add_task("eval", total=n, info="")

        def progress(stage, done, total):
            if stage == "painting":
                bar.update(task, completed=done, info="painting")
            else:
                bar.update(task, info=stage)

        report = evaluate(model, pipe=pipe, data=data, n=n, steps=steps, sampler=sampler, cfg=cfg, seed=seed,
                          batch=batch, memorization=not no_memorization, progress=progress)
    _print_report(report)
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(json_out, json.dumps(report, indent=2))
        typer.echo(f"report → {json_out}")


def _print_report(report: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"{report['model']} against {report['data']} ({report['n']} pictures, {report['sampler']}, "
                    f"{report['steps']} steps, cfg {report['cfg']})")
    t.add_column("metric")
    t.add_column("value", justify="right")
    t.add_column("meaning")
    rows = [("fd_art", "Fréchet distance in the domain feature space (lower is better)"),
            ("kid", "kernel distance, unbiased (lower is better)"),
            ("precision", "share of paintings inside the real pictures' manifold"),
            ("recall", "share of real pictures inside the paintings' manifold"),
            ("adherence", "paintings whose content matches the prompt (family, colours, shape/sky/ground)"),
            ("adherence_layout", "… whose position, size and count match"),
            ("adherence_real", "the same check on real pictures: the feature net's ceiling"),
            ("swd", "sliced Wasserstein ×10³ on Laplacian patches (no network)"),
            ("near_copy_fraction", "paintings that are near-copies of a training picture"),
            ("seconds_per_image", "painting time")]
    for key, meaning in rows:
        if report.get(key) is not None:
            v = report[key]
            t.add_row(key, f"{v:.4g}" if isinstance(v, float) else str(v), meaning)
    Console().print(t)


@app.command()
def experiment(name: str = typer.Argument(..., help="steps, noise, lr-schedule, regularization or samplers"),
               out: Path = typer.Option(Path("outputs/experiments"), "--out", "-o", help="folder for .md/.csv/.png"),
               model: str = typer.Option("builtin", "--model", "-m", help="steps, noise, samplers: the model"),
               n: Optional[int] = typer.Option(None, "--n", help="pictures per cell (default: the experiment's)"),
               samplers_: Optional[str] = typer.Option(None, "--samplers", help="steps, samplers: comma-separated"),
               nfe: Optional[str] = typer.Option(None, "--nfe", help="steps, samplers: comma-separated NFEs"),
               train_steps: Optional[int] = typer.Option(None, "--train-steps",
                                                         help="lr-schedule, regularization: steps per run"),
               data_size: Optional[int] = typer.Option(None, "--data-size",
                                                       help="regularization: training pictures"),
               cfg: float = typer.Option(3.0, "--cfg", help="guidance scale (text models)"),
               seed: int = typer.Option(0, "--seed")):
    """Run one of the brief's experiments; writes a markdown table, a CSV and a figure."""
    from noisebrush.workflows.experiments import EXPERIMENTS, run_experiment

    if name not in EXPERIMENTS:
        raise BadParameter(f"experiment: unknown {name!r}; choose one of {', '.join(EXPERIMENTS)}")
    kw: dict = {"seed": seed}
    if n is not None:
        kw["n"] = n
    sampling = name in ("steps", "noise", "samplers")
    training = name in ("lr-schedule", "regularization")
    given = {"--samplers": samplers_, "--nfe": nfe, "--train-steps": train_steps, "--data-size": data_size}
    allowed = {"steps": {"--samplers", "--nfe"}, "samplers": {"--samplers", "--nfe"}, "noise": set(),
               "lr-schedule": {"--train-steps"}, "regularization": {"--train-steps", "--data-size"}}[name]
    for flag, v in given.items():
        if v is not None and flag not in allowed:
            raise BadParameter(f"{flag}: not an option of the {name} experiment")
    if sampling:
        kw.update(model=model, cfg=cfg)
    if samplers_ is not None:
        kw["samplers"] = [s.strip() for s in samplers_.split(",") if s.strip()]
    if nfe is not None:
        try:
            kw["nfes"] = [int(v) for v in nfe.split(",")]
        except ValueError:
            raise BadParameter(f"--nfe: comma-separated whole numbers, got {nfe!r}") from None
    if train_steps is not None:
        kw["steps"] = train_steps
    if data_size is not None:
        kw["data_size"] = data_size
    if training and model != "builtin":
        raise BadParameter("--model: the training experiments train their own small models")
    t = time.perf_counter()
    result = run_experiment(name, out, log=lambda s: typer.echo(s, err=True), **kw)
    typer.echo(result["markdown"].read_text())
    typer.echo(f"{name} done in {time.perf_counter() - t:.0f}s → {result['markdown']}, {result['csv']}, "
               f"{result['figure']}")


@app.command()
def train(config: Optional[Path] = typer.Option(None, "--config", "-c", help="TOML file (see configs/)"),
          data: Optional[str] = typer.Option(None, "--data", help="'builtin' or a folder of pictures"),
          out: Optional[str] = typer.Option(None, "--out", "-o", help="run folder"),
          steps: Optional[int] = typer.Option(None, "--steps"),
          batch_size: Optional[int] = typer.Option(None, "--batch-size"),
          lr: Optional[float] = typer.Option(None, "--lr"),
          lr_schedule: Optional[str] = typer.Option(None, "--lr-schedule", help="constant, linear, exponential, "
                                                                                 "cosine"),
          precision: Optional[str] = typer.Option(None, "--precision", help="auto, bf16, fp16, no"),
          seed: Optional[int] = typer.Option(None, "--seed"),
          resume: bool = typer.Option(False, "--resume", help="continue the latest checkpoint in the run folder"),
          set_: List[str] = typer.Option([], "--set", help="any option as KEY=VALUE (VALUE in TOML syntax); "
                                                           "model.KEY for the network")):
    """Train a model on the built-in set or a folder; writes RUN/model at the end. Ctrl-C checkpoints and exits."""
    from noisebrush.train import Trainer, TrainConfig

    over = {"data": data, "out_dir": out, "steps": steps, "batch_size": batch_size, "lr": lr,
            "lr_schedule": lr_schedule, "mixed_precision": precision, "seed": seed}
    extra = _parse_sets(set_)
    if config is not None:
        cfg = TrainConfig.from_toml(config, **over)
        if extra:
            d = cfg.to_dict()
            d["model"] = {**d["model"], **extra.pop("model", {})}
            cfg = TrainConfig.from_dict({**d, **extra})
    else:
        model = extra.pop("model", {})
        cfg = TrainConfig.from_dict({**extra, "model": model}, **over)
    trainer = Trainer(cfg, resume=resume)
    trainer.command = "noisebrush " + " ".join(shlex.quote(a) for a in _ARGV)
    start = trainer.step
    bar = _progress(cfg.steps, "training")
    task = bar.add_task("train", total=cfg.steps, completed=start, info="")
    t0 = time.perf_counter()

    # Ctrl-C only raises a flag; the loop stops at the end of the step. A KeyboardInterrupt raised at an arbitrary
    # point can land inside the progress bar's lock and leave it held, and the bar's shutdown then waits forever
    # (seen once under heavy load). A second Ctrl-C still stops at once.
    stop = []

    def on_sigint(signum, frame):
        if stop:
            raise KeyboardInterrupt
        stop.append(True)

    def progress(step, row):
        rate = (step - start) * cfg.batch_size / max(time.perf_counter() - t0, 1e-9)
        bar.update(task, completed=step, info=f"loss {row['loss']:.4f}  {rate:.1f} img/s  lr {row['lr']:.2e}")
        if stop:
            raise KeyboardInterrupt

    old_handler = signal.signal(signal.SIGINT, on_sigint)
    try:
        with bar:
            path = trainer.fit(progress)
    except KeyboardInterrupt:
        signal.signal(signal.SIGINT, old_handler)
        trainer.close()
        typer.echo(f"interrupted at step {trainer.step}: checkpoint written to {cfg.out_dir}/checkpoints; "
                   f"continue with --resume", err=True)
        _leave(trainer, 130)
        raise typer.Exit(130)
    finally:
        signal.signal(signal.SIGINT, old_handler)
    trainer.close()
    typer.echo(f"trained {trainer.step} steps ({trainer.skipped} skipped) → model in {path}")
    _leave(trainer, 0)


@app.command("explain")
def explain_cmd(prompt: str = typer.Argument(..., metavar="PROMPT", help="what to paint (for a class model: a class "
                                                                          "name)"),
                model: str = typer.Option("builtin", "--model", "-m", help="'builtin' or a model folder"),
                seed: int = typer.Option(0, "--seed"),
                sampler: str = typer.Option("dpmpp_2m", "--sampler", help="see `noisebrush samplers`; langevin and "
                                                                           "adaptive also get correctors.png"),
                steps: int = typer.Option(20, "--steps", help="sampler steps"),
                cfg: float = typer.Option(3.0, "--cfg", help="classifier-free guidance scale (1 = none)"),
                at: Optional[str] = typer.Option(None, "--at", help="the steps the strip shows, e.g. '0,5,10,19' "
                                                                    "(default: about 6 evenly spaced)"),
                out: Optional[Path] = typer.Option(None, "--out", "-o", help="folder for the files (default: "
                                                                             "outputs/explain-PROMPT-sSEED)"),
                fps: float = typer.Option(8.0, "--fps", help="frames per second of process.gif"),
                size: Optional[int] = typer.Option(None, "--size", help="picture size (default: the model's)"),
                device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or mps")):
    """Paint one picture and show how it came about: strip.png (x_t and predicted x_0 at chosen steps),
    process.gif (every step), schedule.png (σ, SNR, step sizes), correctors.png (langevin/adaptive)."""
    import noisebrush
    from noisebrush.diffusion import get_sampler
    from noisebrush.paint.explain import check_fps, explain, parse_at

    get_sampler(sampler)  # fail before loading anything
    check_fps(fps, name="--fps")
    t = time.perf_counter()
    pipe = noisebrush.load(model, device=device)
    steps = pipe.check(prompt, steps=steps, seed=seed, n=1, sampler=sampler, cfg=cfg, size=size)[0]
    picks = None if at is None else parse_at(at, steps, name="--at")
    folder = out if out is not None else _free(Path("outputs") / f"explain-{_slug(prompt)}-s{seed}")
    if folder.exists() and not folder.is_dir():
        raise UserError(f"{folder}: exists and is not a folder (--out)")
    with _progress(steps, "painting") as bar:
        task = bar.add_task("paint", total=steps, info="")

        def cb(info):
            bar.update(task, completed=min(info.step + 1, steps), info=f"σ={info.sigma:.3g}")

        files = explain(pipe, prompt, seed=seed, steps=steps, sampler=sampler, cfg=cfg, at=picks, out_dir=folder,
                        fps=fps, size=size, callback=cb)
        bar.update(task, completed=steps)
    typer.echo(f"explained {prompt!r} ({sampler}, {steps} steps, seed {seed}) in {time.perf_counter() - t:.1f}s "
               f"→ {folder}/")
    for p in files.values():
        typer.echo(f"  {p}")


@app.command("plot-log")
def plot_log_cmd(run_dir: Path = typer.Argument(..., metavar="RUN_DIR", help="a training run folder (holds log.csv)"),
                 out: Optional[Path] = typer.Option(None, "--out", "-o", help="the PNG to write (default: "
                                                                              "RUN_DIR/log.png)")):
    """Plot a training run's log.csv: loss, loss per noise level (σ bucket) and learning rate."""
    from noisebrush.train.plots import plot_log

    typer.echo(f"wrote {plot_log(run_dir, out)}")


def _leave(trainer, code: int) -> None:
    """A worker of a multi-process run exits without torch's teardown (see ``noisebrush.train.leave_worker``)."""
    if trainer.acc.num_processes > 1:
        from noisebrush.train import leave_worker

        leave_worker(code)


def _parse_sets(items: list[str]) -> dict:
    import tomllib

    out: dict = {}
    for item in items:
        if "=" not in item:
            raise BadParameter(f"--set: expected KEY=VALUE, got {item!r}")
        key, value = item.split("=", 1)
        try:
            parsed = tomllib.loads(f"v = {value}")["v"]
        except tomllib.TOMLDecodeError:
            parsed = value  # a bare word: a string
        if key.startswith("model."):
            out.setdefault("model", {})[key[6:]] = parsed
        else:
            out[key] = parsed
    return out


_ARGV: list[str] = []  # the command line main() was given (recorded in a trained model's provenance)
_NO_ARGS = getattr(_cx, "NoArgsIsHelpError", None) or getattr(_cx, "NoArgsIsHelp")


def main(argv: list[str] | None = None) -> int:
    """Entry point: runs the app, turning every user error into one line and exit status 2."""
    import logging

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    _ARGV[:] = list(sys.argv[1:] if argv is None else argv)
    try:
        rv = app(args=argv, standalone_mode=False, prog_name="noisebrush")
        return rv if isinstance(rv, int) else 0  # without standalone mode, click returns an Exit's code
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except _NO_ARGS as e:
        print(e.ctx.get_help() if getattr(e, "ctx", None) else "see noisebrush --help")
        return 0
    except _cx.UsageError as e:
        msg = e.format_message().replace("\n", " ")
        where = f"noisebrush {e.ctx.info_name} --help" if getattr(e, "ctx", None) and e.ctx.parent else \
            "noisebrush --help"
        print(f"error: {msg} (see {where})", file=sys.stderr)
        return 2
    except _cx.ClickException as e:
        print(f"error: {e.format_message()}", file=sys.stderr)
        return 2
    except typer.Exit as e:
        return e.exit_code
    except typer.Abort:
        print("interrupted", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


# commands that live in their own modules register themselves on `app`
from noisebrush.apps.cli import finetune as _finetune, prefs as _prefs  # noqa: E402,F401

if __name__ == "__main__":
    sys.exit(main())
