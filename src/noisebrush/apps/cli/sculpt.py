"""``noisebrush sculpt``: shapes from a shape model — from a prompt, as variations of a mesh (``--from``), or
completing part of one (``--from … --keep bottom:0.4``) — each as a mesh file (OBJ, PLY, STL or GLB), a turntable
GIF and a PNG view that carries the recipe (``noisebrush reproduce`` sculpts it again and compares the mesh's
bytes).

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

__all__ = ["sculpt", "SHAPE_MODEL"]

SHAPE_MODEL = "builtin-shape"


@app.command()
def sculpt(prompt: str = typer.Argument("", metavar="PROMPT", help="the object, e.g. 'a tall round table with three "
                                                                   "legs'"),
           fmt: str = typer.Option("obj", "--format", "-f", help="mesh file: obj, ply, stl or glb"),
           seed: Optional[int] = typer.Option(None, "--seed", help="shape i gets seed+i (default: a random seed, "
                                                                   "printed and recorded)"),
           n: int = typer.Option(1, "-n", help="shapes to sculpt"),
           resolution: Optional[int] = typer.Option(None, "--resolution", help="marching cubes on the model's grid "
                                                                               "(32 for the built-in) or on it "
                                                                               "interpolated to twice that (64: "
                                                                               "smoother, no new detail)"),
           source: Optional[Path] = typer.Option(None, "--from", help="a mesh (obj, ply, stl, glb, gltf, off): "
                                                                      "variations of it, or with --keep its "
                                                                      "completion"),
           strength: Optional[float] = typer.Option(None, "--strength", help="with --from: how far a variation "
                                                                             "goes, 0-1 (default 0.6)"),
           keep: Optional[str] = typer.Option(None, "--keep", help="with --from: the part kept exactly, SIDE[:SHARE] "
                                                                   "(bottom, top, left, right, back, front; share "
                                                                   "of the grid, default 0.5); the rest is "
                                                                   "sculpted to fit it"),
           jumps: int = typer.Option(3, "--jumps", help="with --keep: RePaint passes over each stretch of the "
                                                         "schedule (as inpaint)"),
           jump_length: Optional[int] = typer.Option(None, "--jump-length", help="with --keep: levels climbed back "
                                                                                 "per jump (default 4)"),
           model: str = typer.Option(SHAPE_MODEL, "--model", "-m", help="a shape model folder (default: the "
                                                                        "built-in shape model)"),
           steps: Optional[int] = typer.Option(None, "--steps", help="default: the model's"),
           sampler: Optional[str] = typer.Option(None, "--sampler", help="default: the model's"),
           cfg: float = CFG,
           negative: str = NEGATIVE,
           frames: int = typer.Option(24, "--frames", help="views in the turntable GIF"),
           size: int = typer.Option(192, "--size", help="side of the turntable and the PNG view, pixels"),
           fps: float = typer.Option(12.0, "--fps", help="frames per second of the GIF"),
           out: Path = OUT,
           device: str = DEVICE):
    """Sculpt shapes: writes a mesh, a turntable GIF and a PNG view (with the recipe) per shape."""
    from noisebrush.io.mesh import MESH_FORMATS  # lazy: numpy
    from noisebrush.io.outputs import check_folder, save_shape, slug  # lazy: torch
    from noisebrush.paint.sculpt import parse_keep, preview, to_mesh, views  # lazy: torch
    from noisebrush.seeding import pick_seed  # lazy: as the others

    fmt = fmt.lower().lstrip(".")
    if fmt not in MESH_FORMATS:
        raise BadParameter(f"--format: one of {', '.join(MESH_FORMATS)}, got {fmt!r}")
    frames = whole("--frames", frames, 1, 360)
    size = whole("--size", size, 32, 1024)
    number("--fps", fps, 0.1, 60)
    if source is None and (strength is not None or keep is not None):
        raise BadParameter(f"{'--keep' if keep is not None else '--strength'}: needs --from (the mesh to vary or "
                           f"complete)")
    if source is not None and not source.is_file():
        raise UserError(f"--from {source}: no such file")
    if keep is None and (jumps != 3 or jump_length is not None):
        raise BadParameter(f"{'--jumps' if jumps != 3 else '--jump-length'}: only with --keep (a completion)")
    if strength is not None:
        number("--strength", strength, 0.0, 1.0)
    if keep is not None:
        if strength is not None:
            raise BadParameter("--keep: a completion keeps part of --from exactly; --strength is for variations — "
                               "give one of them")
        parse_keep(keep)
    check_folder(out, what="--out")
    seed = pick_seed(seed)
    files = []
    with report_interrupt(files):
        pipe = noisebrush.load(model, device=device)
        t = time.perf_counter()
        with LazyBar("sculpting") as cb:
            grids, recipes = pipe.sculpt(prompt, seed=seed, n=n, steps=steps, sampler=sampler, cfg=cfg,
                                         negative=negative or None, resolution=resolution, source=source,
                                         strength=strength, keep=keep, jumps=jumps, jump_length=jump_length,
                                         callback=cb)
        sculpted = time.perf_counter() - t
        made = 0
        for grid, rec in zip(grids, recipes):
            mesh = to_mesh(grid, rec["resolution"])
            if len(mesh.faces) == 0:
                typer.echo(f"seed {rec['seed']}: the field has no surface (nothing to mesh); skipped", err=True)
                continue
            name = f"{slug(prompt or 'shape')}-s{rec['seed']}"
            files += save_shape(mesh, fmt, views(pipe, grid, frames=frames, size=size), preview(pipe, grid, size=size),
                                rec, out, name, fps=fps)
            made += 1
    typer.echo(f"sculpted {made} shape{'s' if made != 1 else ''} (seed {seed}) in {sculpted:.1f}s")
    echo_paths(files)
    if made == 0:
        raise typer.Exit(1)
