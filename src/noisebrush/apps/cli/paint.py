"""``noisebrush paint``: paint prompts into PNGs that carry their recipes, plus a contact sheet.

    noisebrush paint "a red sun over purple mountains" -n 4 --seed 7
    noisebrush paint "a landscape" --palette "#aa3300,#002255" --lora mystyle.safetensors:0.8
    noisebrush paint "a flower" --best-of 4 --prefer 1
    noisebrush paint "a (red:1.4) circle on a blue background" --negative "murky, dark"

Without ``--seed`` a random seed is drawn, printed (``seed N``) and recorded in every PNG, so ``noisebrush
reproduce`` paints the picture again. ``--out`` is checked (a folder that can be written) before the model is loaded.
Ctrl-C exits with status 130 and one line naming the pictures already written (one PNG per prompt is written as soon
as that prompt is painted), or saying that nothing was written.

Lazy imports: everything that imports torch (the pipeline, noisebrush.io, the preference workflow) is imported
inside the command: `noisebrush --help` takes 0.3 s without torch and 3.5 s with it at the top of any command module.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import List, Optional

import typer

import noisebrush
from noisebrush.apps.cli.app import DB_HELP, LORA_HELP, NEGATIVE, PALETTE_HELP, PALETTE_SCALE, app
from noisebrush.apps.cli.common import echo_paths, flags, guides_from_flags, progress, report_interrupt
from noisebrush.checks import limited, number, whole

__all__ = ["paint", "paint_and_save"]



@app.command()
def paint(prompts: List[str] = typer.Argument(..., metavar="PROMPT",
                                             help="what to paint, e.g. 'a red sun over purple mountains'; "
                                                  "several prompts give a row each in the contact sheet"),
          model: str = typer.Option("builtin", "--model", "-m", help="'builtin' or a model folder"),
          sampler: Optional[str] = typer.Option(None, "--sampler", help="see `noisebrush samplers` (default: the "
                                                                        "model's; dpmpp_2m for the built-in)"),
          steps: Optional[int] = typer.Option(None, "--steps", help="sampler steps (default: the model's; 20 for the "
                                                                    "built-in)"),
          cfg: float = typer.Option(3.0, "--cfg", help="classifier-free guidance scale (1 = none)"),
          negative: str = NEGATIVE,
          seed: Optional[int] = typer.Option(None, "--seed", help="image i gets seed+i (default: a random seed, "
                                                                  "printed and recorded in each PNG)"),
          n: int = typer.Option(4, "-n", help="images per prompt"),
          out: Path = typer.Option(Path("outputs"), "--out", "-o", help="folder for the PNGs"),
          size: Optional[int] = typer.Option(None, "--size", help="picture size in pixels (default: the model's)"),
          zoom: int = typer.Option(2, "--zoom", help="pixel-repeat factor for the contact sheet"),
          palette: Optional[str] = typer.Option(None, "--palette", help=PALETTE_HELP),
          palette_scale: float = typer.Option(PALETTE_SCALE, "--palette-scale",
                                              help="0–1: how far each step pulls a pixel toward its palette colour"),
          lora: List[str] = typer.Option([], "--lora", help=LORA_HELP),
          best_of: int = typer.Option(1, "--best-of", help="paint N candidates per picture and keep the one your "
                                                           "ratings (`noisebrush rate`) like best"),
          prefer: float = typer.Option(0.0, "--prefer", help="steer toward what your ratings like (guidance scale, "
                                                             "e.g. 0.5; 0 = off)"),
          db: Optional[Path] = typer.Option(None, "--db", help=DB_HELP),
          device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or mps")):
    """Paint PROMPT: n PNGs per prompt (each carrying its recipe) plus a contact sheet."""
    from noisebrush.io.outputs import Keeper, check_folder  # lazy: torch (see the module docstring)
    from noisebrush.seeding import pick_seed

    whole("--zoom", zoom, 1, 32)
    check_folder(out, what="--out")  # before the model is loaded: an unwritable --out is one line, no work lost
    seed = pick_seed(seed)
    limited("--best-of", best_of, "best_of")
    number("--prefer", prefer, 0)
    preference = None
    if best_of > 1 or prefer > 0:
        from noisebrush.workflows.preference import load_preference  # lazy: torch (see the module docstring)

        preference = load_preference(db)  # fitted on every rating (a second or two), saved by its hash
    guides = guides_from_flags(palette, palette_scale, prefer, preference)
    rerank = (best_of, preference) if best_of > 1 else None
    t = time.perf_counter()
    keep = Keeper(out)
    with report_interrupt(keep.written), flags():
        pipe = noisebrush.load(model, device=device, lora=lora or None)
        paths = paint_and_save(pipe, prompts, steps=steps, seed=seed, n=n, sampler=sampler, cfg=cfg, out=out,
                               zoom=zoom, size=size, guidance=guides or None, rerank=rerank, keep=keep,
                               negative=negative or None)
    total = n * len(prompts)
    typer.echo(f"painted {total} image{'s' * (total != 1)} (seed {seed}) in {time.perf_counter() - t:.1f}s "
               f"→ {out}/")
    echo_paths(paths)


def paint_and_save(pipe, prompts: list[str], *, steps: int | None, seed: int, n: int, sampler: str | None, cfg: float,
                   out: Path, label=None, grid: bool = True, zoom: int = 2, rerank=None, keep=None,
                   **gen) -> list[Path]:
    """Paint n images per prompt under a progress bar, write one PNG each (with its recipe) as soon as a prompt is
    painted, and a contact sheet: a row per prompt. ``rerank = (N, preference model)`` paints N candidates per
    picture and keeps the best-liked. ``keep``: the :class:`~noisebrush.io.outputs.Keeper` the files go through (its
    ``written`` is what a Ctrl-C reports); if ``out`` stops being writable, every picture is kept in a rescue folder
    and one UserError names it."""
    from noisebrush.diffusion import get_sampler  # lazy: torch
    from noisebrush.io import outputs  # lazy: torch

    if sampler is not None:
        get_sampler(sampler)  # fail before any work
    for prompt in prompts:
        opts = pipe.check(prompt, steps=steps, seed=seed, n=n, sampler=sampler, cfg=cfg, label=label,
                          **{k: v for k, v in gen.items() if k != "guidance"})
    steps, sampler = opts.steps, opts.sampler  # None → the model folder's own
    outputs.output_folder(out)
    keep = keep if keep is not None else outputs.Keeper(out)
    sheet, sheet_recipes = [], []
    with progress(steps * len(prompts), "painting") as bar:
        task = bar.add_task("paint", total=steps * len(prompts), info="")
        for k, prompt in enumerate(prompts):
            def cb(info, k=k, prompt=prompt):
                bar.update(task, completed=k * steps + info.step + 1, info=f"{prompt[:30]}  σ={info.sigma:.3g}")

            if rerank is None:
                images, recipes = pipe.generate(prompt, steps=steps, seed=seed, n=n, sampler=sampler, cfg=cfg,
                                                label=label, callback=cb, **gen)
            else:
                from noisebrush.workflows.preference import best_of  # lazy: torch

                bar.update(task, info=f"{prompt[:30]}  best of {rerank[0]}")
                images, recipes = best_of(pipe, prompt, n=n, best_of=rerank[0], seed=seed, model=rerank[1],
                                          steps=steps, sampler=sampler, cfg=cfg, label=label, **gen)
                bar.update(task, completed=(k + 1) * steps)
            pics = pipe.modality.preview(images)  # images as they are; a clip as a film strip, a volume as slices
            outputs.save_pictures(pics, recipes, out, outputs.slug(prompt or str(label or "image")), keep=keep)
            sheet += pics
            sheet_recipes += recipes
        bar.update(task, completed=steps * len(prompts))
    if grid and len(sheet) > 1:
        name = outputs.slug(prompts[0]) + ("-and-more" if len(prompts) > 1 else "")
        outputs.save_sheet(sheet, sheet_recipes, out / f"{name}-grid-s{seed}.png",
                           cols=n if len(prompts) > 1 else min(n, 4), zoom=zoom, keep=keep)
    return keep.done()
