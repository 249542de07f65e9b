"""``noisebrush info``, ``reproduce``, ``samplers`` and ``bench``: what a PNG carries, painting it again, what
there is to choose from, and the benchmarks.

    noisebrush info outputs/a-red-sun-s7.png
    noisebrush reproduce outputs/a-red-sun-s7.png
    noisebrush samplers
    noisebrush bench train --quick

Lazy imports: noisebrush.io, the pipeline, the samplers and the benches import torch, so they are imported inside
the commands: `noisebrush --help` takes 0.3 s without torch and 3.5 s with it at the top of any command module.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from PIL import Image

from noisebrush.apps.cli.app import app
from noisebrush.apps.cli.common import LazyBar
from noisebrush.errors import UserError

__all__ = ["info", "reproduce", "samplers", "bench"]


@app.command()
def info(image: Path = typer.Argument(..., help="a PNG written by noisebrush")):
    """Show the parameters a noisebrush PNG carries."""
    from noisebrush.io.png import read_recipe  # lazy: torch (see the module docstring)

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
    from noisebrush.io.outputs import contact_sheet, free_path, output_folder  # lazy: torch
    from noisebrush.io.png import read_recipe, save_png
    from noisebrush.paint import recipe as recipes  # lazy: torch
    from noisebrush.workflows import preference  # noqa: F401  lazy: torch; registers the preference guide for replays

    recipe = read_recipe(image)
    parts = recipes.pictures(recipe, where=str(image))
    pipe = recipes.load_pipeline(recipe, model=model, device=device, where=str(image))
    output_folder(out)
    try:
        paths, pics = [], []
        for rec in parts:
            path = _replay_one(pipe, rec, out, image)
            paths.append(path)
            with Image.open(path) as im:
                pics.append(im.convert("RGB"))
        if "sheet" in recipe:
            paths = [save_png(contact_sheet(pics, recipe["sheet"]), free_path(out / f"{image.stem}-again.png"),
                              recipe)]
    except (KeyError, TypeError, ValueError) as e:  # ValueError includes BadParameter
        raise UserError(f"{image}: incomplete noisebrush parameters ({e})") from None
    with Image.open(image) as a, Image.open(paths[0]) as b:
        same = a.size == b.size and a.convert("RGB").tobytes() == b.convert("RGB").tobytes()
    typer.echo(f"{paths[0]}: {'pixel-identical to' if same else 'DIFFERS from'} {image}")
    if not same:
        raise typer.Exit(1)


def _replay_one(pipe, rec: dict, out: Path, image: Path) -> Path:
    """Paint one picture of IMAGE's recipe again (:func:`noisebrush.paint.recipe.replay`) under a progress bar and
    save it with its recipe: a plain painting as PROMPT-sSEED.png, an edit as IMAGE-again-sSEED.png."""
    from noisebrush.io.outputs import save_pictures, slug  # lazy: torch
    from noisebrush.paint.recipe import replay  # lazy: torch

    with LazyBar("painting") as cb:
        images, again = replay(pipe, rec, where=str(image), callback=cb)
    if rec.get("mode"):
        base = f"{slug(image.stem)}-again"
    else:
        base = slug(rec.get("prompt", "") or str(rec.get("label") or "image"))
    return save_pictures(pipe.modality.preview(images), again, out, base)[0]


@app.command()
def samplers():
    """List the samplers."""
    from noisebrush.diffusion import SAMPLERS  # lazy: torch

    width = max(len(k) for k in SAMPLERS)
    for name, s in SAMPLERS.items():
        typer.echo(f"{name:<{width}}  {s.summary}")


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []})
def bench(ctx: typer.Context):
    """Run a benchmark: `noisebrush bench NAME [options]` (samplers, train, quality, palette, inpaint, finetune,
    preference; NAME --help for its options)."""
    from noisebrush.bench.__main__ import main as bench_main  # lazy: torch

    code = bench_main(list(ctx.args))
    raise typer.Exit(code)
