"""``noisebrush info``, ``reproduce``, ``samplers`` and ``bench``: what a PNG carries, painting it again, what
there is to choose from, and the benchmarks.

    noisebrush info outputs/a-red-sun-s7.png
    noisebrush reproduce outputs/a-red-sun-s7.png
    noisebrush samplers
    noisebrush bench train --quick

``reproduce`` names every file after the picture it paints again: ``STEM-again.png`` (the picture, or a contact
sheet) and, for a sheet, ``STEM-again-sSEED.png`` for each picture on it (free variants, never overwriting); it
checks ``--out`` before loading the model.

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
    stages = recipe.get("stages")
    if isinstance(stages, list) and all(isinstance(s, dict) for s in stages):  # super-resolution stages: a line each
        recipe = {k: v for k, v in recipe.items() if k != "stages"} | {
            f"stage {i + 1}": f"{s.get('model')} ({s.get('model_hash')}) → {s.get('width')}×{s.get('height')}, "
                              f"{s.get('sampler')} {s.get('steps')} steps, cfg {s.get('cfg')}, sr_aug "
                              f"{s.get('sr_aug')}, seed {s.get('seed')}" for i, s in enumerate(stages)}
    width = max(len(k) for k in recipe)
    for k, v in recipe.items():
        typer.echo(f"{k:<{width}}  {v}")


@app.command()
def reproduce(image: Path = typer.Argument(..., help="a PNG written by noisebrush"),
              model: Optional[str] = typer.Option(None, "--model", "-m", help="model folder (default: the one the "
                                                                               "PNG names)"),
              out: Path = typer.Option(Path("outputs"), "--out", "-o", help="folder for the pictures painted again"),
              source: Optional[Path] = typer.Option(None, "--source", help="vary, inpaint, outpaint: the picture it "
                                                                           "was painted from (default: found by name "
                                                                           "next to IMAGE or in this folder)"),
              mask: Optional[Path] = typer.Option(None, "--mask", help="inpaint: its mask (default: found by name "
                                                                       "like --source)"),
              device: str = typer.Option("cpu", "--device", help="cpu (the default), auto, cuda or mps")):
    """Paint IMAGE again from the recipe it carries and compare the pixels. Every file is named after IMAGE:
    STEM-again.png (the picture, or the contact sheet) and, for a sheet, STEM-again-sSEED.png per picture."""
    from noisebrush.io.outputs import Keeper, check_folder, contact_sheet  # lazy: torch
    from noisebrush.io.png import read_recipe, save_png
    from noisebrush.paint import recipe as recipes  # lazy: torch
    from noisebrush.workflows import preference  # noqa: F401  lazy: torch; registers the preference guide for replays

    check_folder(out, what="--out")  # before any work
    recipe = read_recipe(image)
    parts = recipes.pictures(recipe, where=str(image))
    sheet = "sheet" in recipe
    pipe = recipes.load_pipeline(recipe, model=model, device=device, where=str(image))
    keep = Keeper(out)
    if recipe.get("mode") == "sculpt" and not sheet:
        return _reproduce_shape(pipe, recipe, image, keep, source)
    try:
        pics, agains = [], []
        for rec in parts:
            pic, again = _replay_one(pipe, rec, image, files={"source": source, "mask": mask})
            pics.append(pic)
            agains.append(again)
        stem = f"{image.stem}-again"
        for pic, rec in zip(pics, agains) if sheet else ():
            keep.save(lambda p, pic=pic, rec=rec: save_png(pic, p, rec), f"{stem}-s{rec.get('seed')}.png")
        if sheet:
            main = keep.save(lambda p: save_png(contact_sheet(pics, recipe["sheet"]), p, recipe), f"{stem}.png")
        else:
            main = keep.save(lambda p: save_png(pics[0], p, agains[0]), f"{stem}.png")
    except (KeyError, TypeError, ValueError) as e:  # ValueError includes BadParameter
        raise UserError(f"{image}: incomplete noisebrush parameters ({e})") from None
    paths = keep.done()
    with Image.open(image) as a, Image.open(main) as b:
        same = a.size == b.size and a.convert("RGB").tobytes() == b.convert("RGB").tobytes()
    typer.echo(f"{main}: {'pixel-identical to' if same else 'DIFFERS from'} {image}")
    for p in paths:
        if p != main:
            typer.echo(f"  {p}")
    if not same:
        raise typer.Exit(1)


def _reproduce_shape(pipe, recipe: dict, image: Path, keep, source: Optional[Path]) -> None:
    """A shape's view (``noisebrush sculpt``): sculpted again, its mesh written as ``STEM-again.FMT`` beside
    ``STEM-again.png``, and both compared — the view pixel for pixel, the mesh byte for byte with the file the recipe
    names next to IMAGE."""
    from noisebrush.io.atomic import atomic_write_bytes  # lazy: torch
    from noisebrush.io.mesh import MESH_FORMATS, mesh_bytes  # lazy: numpy, trimesh
    from noisebrush.io.png import save_png  # lazy: torch
    from noisebrush.paint.sculpt import preview, to_mesh  # lazy: torch

    fmt = recipe.get("format", "obj")
    if fmt not in MESH_FORMATS:
        raise UserError(f"{image}: unknown mesh format {fmt!r} in its recipe")
    rec = {k: v for k, v in recipe.items() if k not in ("format", "mesh")}
    grids, again = _replay(pipe, rec, image, {"source": source, "mask": None})
    with Image.open(image) as shown:
        side = shown.width
    view = preview(pipe, grids[0], size=side)
    data = mesh_bytes(to_mesh(grids[0], again[0]["resolution"]), fmt)
    stem = f"{image.stem}-again"
    mesh_path = keep.save(lambda p: atomic_write_bytes(p, data), f"{stem}.{fmt}")
    main = keep.save(lambda p: save_png(view, p, {**again[0], "format": fmt, "mesh": mesh_path.name}), f"{stem}.png")
    keep.done()
    with Image.open(image) as a, Image.open(main) as b:
        same = a.size == b.size and a.convert("RGB").tobytes() == b.convert("RGB").tobytes()
    typer.echo(f"{main}: {'pixel-identical to' if same else 'DIFFERS from'} {image}")
    original = image.parent / str(recipe.get("mesh", ""))
    if recipe.get("mesh") and original.is_file():
        same_mesh = original.read_bytes() == data
        typer.echo(f"{mesh_path}: {'byte-identical to' if same_mesh else 'DIFFERS from'} {original}")
        same = same and same_mesh
    else:
        typer.echo(f"{mesh_path}: written (the mesh {recipe.get('mesh')!r} is not next to {image}; not compared)")
    if not same:
        raise typer.Exit(1)


def _replay(pipe, rec: dict, image: Path, files: dict):
    """:func:`noisebrush.paint.recipe.replay` of one recipe under a progress bar, with an incomplete recipe as one
    line."""
    from noisebrush.paint.recipe import replay  # lazy: torch

    try:
        with LazyBar("painting") as cb:
            return replay(pipe, rec, where=str(image), callback=cb, files=files)
    except (KeyError, TypeError, ValueError) as e:  # ValueError includes BadParameter
        raise UserError(f"{image}: incomplete noisebrush parameters ({e})") from None


def _replay_one(pipe, rec: dict, image: Path, files: dict):
    """Paint one picture of IMAGE's recipe again (:func:`_replay`): (the picture, a preview for clips and volumes;
    the recipe the painting returned)."""
    images, again = _replay(pipe, rec, image, files)
    return pipe.modality.preview(images)[0], again[0]


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
    preference, cascade, studio, video, shapes, gan, runtime, gpu; NAME --help for its options)."""
    from noisebrush.bench.__main__ import main as bench_main  # lazy: torch

    code = bench_main(list(ctx.args))
    raise typer.Exit(code)
