"""``noisebrush paint``: paint prompts into PNGs that carry their recipes, plus a contact sheet.

    noisebrush paint "a red sun over purple mountains" -n 4 --seed 7
    noisebrush paint "a landscape" --palette "#aa3300,#002255" --lora mystyle.safetensors:0.8
    noisebrush paint "a flower" --best-of 4 --prefer 1
    noisebrush paint "a (red:1.4) circle on a blue background" --negative "murky, dark"
    noisebrush paint "a red sun" --runtime onnx                       # ONNX Runtime (see `noisebrush export`)

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
from noisebrush.apps.cli.app import (CASCADE, DB_HELP, LORA_HELP, NEGATIVE, PALETTE_HELP, PALETTE_SCALE, SR_AUG,
                                     SR_CFG, SR_SAMPLER, SR_STEPS, STAGES, app)
from noisebrush.apps.cli.common import echo_paths, flags, guides_from_flags, progress, report_interrupt
from noisebrush.checks import limited, number, whole
from noisebrush.errors import BadParameter

__all__ = ["paint", "paint_and_save", "cascade_for"]


def cascade_for(pipe, size, *, cascade: bool = True, stages: str | None = None, device="auto", steps=None,
                sampler=None, cfg: float = 1.0, aug=None):
    """``pipe``, or — for a picture model asked for a size above its own with ``cascade`` — the
    :class:`~noisebrush.paint.cascade.Cascade` from it to ``size`` through ``stages`` (comma-separated; default:
    the built-in stages). The stages' options are checked before anything is painted."""
    from noisebrush.paint.cascade import cascade as make_cascade  # lazy: torch (see the module docstring)

    if not cascade or size is None or size <= pipe.resolution or pipe.modality.kind != "image":
        if stages is not None or aug is not None or steps is not None or sampler is not None or cfg != 1.0:
            raise BadParameter("--stages, --sr-aug, --sr-steps, --sr-sampler, --sr-cfg: only when painting above "
                               f"the model's size ({pipe.resolution} px) through the cascade")
        return pipe
    names = [s.strip() for s in stages.split(",") if s.strip()] if stages is not None else None
    return make_cascade(pipe, size=size, stages=names, device=device, steps=steps, sampler=sampler, cfg=cfg, aug=aug)



@app.command()
def paint(prompts: List[str] = typer.Argument(..., metavar="PROMPT",
                                             help="what to paint, e.g. 'a red sun over purple mountains'; "
                                                  "several prompts give a row each in the contact sheet"),
          model: str = typer.Option("builtin", "--model", "-m", help="'builtin' or a model folder"),
          sampler: Optional[str] = typer.Option(None, "--sampler", help="see `noisebrush samplers` (default: the "
                                                                        "model's; dpmpp_2m for the built-in)"),
          steps: Optional[int] = typer.Option(None, "--steps", help="sampler steps (default: the model's; 10 for the "
                                                                    "built-in, on its learned levels)"),
          cfg: float = typer.Option(3.0, "--cfg", help="classifier-free guidance scale (1 = none)"),
          negative: str = NEGATIVE,
          seed: Optional[int] = typer.Option(None, "--seed", help="image i gets seed+i (default: a random seed, "
                                                                  "printed and recorded in each PNG)"),
          n: int = typer.Option(4, "-n", help="images per prompt"),
          out: Path = typer.Option(Path("outputs"), "--out", "-o", help="folder for the PNGs"),
          size: Optional[int] = typer.Option(None, "--size", help="picture size in pixels (default: the model's); "
                                                                  "above it, painted through super-resolution "
                                                                  "stages: 64 or 128 for the built-in model"),
          cascade: bool = CASCADE,
          stages: Optional[str] = STAGES,
          sr_aug: Optional[float] = SR_AUG,
          sr_steps: Optional[int] = SR_STEPS,
          sr_sampler: Optional[str] = SR_SAMPLER,
          sr_cfg: float = SR_CFG,
          show_stages: bool = typer.Option(False, "--show-stages", help="through the cascade: also write each "
                                                                        "picture after the base and after each "
                                                                        "stage, side by side (NAME-stages-sSEED.png)"),
          zoom: Optional[int] = typer.Option(None, "--zoom", help="pixel-repeat factor for the contact sheet "
                                                                   "(default: 2 up to 32 px pictures, else 1)"),
          palette: Optional[str] = typer.Option(None, "--palette", help=PALETTE_HELP),
          palette_scale: float = typer.Option(PALETTE_SCALE, "--palette-scale",
                                              help="0–1: how far each step pulls a pixel toward its palette colour"),
          lora: List[str] = typer.Option([], "--lora", help=LORA_HELP),
          best_of: int = typer.Option(1, "--best-of", help="paint N candidates per picture and keep the one your "
                                                           "ratings (`noisebrush rate`) like best"),
          prefer: float = typer.Option(0.0, "--prefer", help="steer toward what your ratings like (guidance scale, "
                                                             "e.g. 0.5; 0 = off)"),
          db: Optional[Path] = typer.Option(None, "--db", help=DB_HELP),
          device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or mps"),
          runtime: str = typer.Option("torch", "--runtime", help="torch, or onnx: the network in ONNX Runtime on the "
                                                                 "CPU (this model's graph is exported once into "
                                                                 "$NOISEBRUSH_CACHE/onnx, default ~/.cache/noisebrush)"),
          onnx: Optional[Path] = typer.Option(None, "--onnx", help="with --runtime onnx: a graph from `noisebrush "
                                                                   "export` (an int8 one, say) instead of the "
                                                                   "cached fp32 one")):
    """Paint PROMPT: n PNGs per prompt (each carrying its recipe) plus a contact sheet."""
    from noisebrush.io.outputs import Keeper, check_folder  # lazy: torch (see the module docstring)
    from noisebrush.seeding import pick_seed

    zoom = (2 if (size or 0) <= 32 else 1) if zoom is None else whole("--zoom", zoom, 1, 32)
    if runtime not in ("torch", "onnx"):
        raise BadParameter(f"--runtime: torch or onnx, got {runtime!r}")
    if onnx is not None and runtime != "onnx":
        raise BadParameter("--onnx: a graph is run with --runtime onnx")
    if runtime == "onnx" and device not in ("auto", "cpu"):
        raise BadParameter(f"--device: --runtime onnx paints on the CPU, got {device!r}")
    if onnx is not None and not onnx.is_file():
        raise BadParameter(f"--onnx: {onnx}: no such file")
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
        pipe = noisebrush.load(model, device=device if runtime == "torch" else "cpu", lora=lora or None,
                               runtime=runtime, onnx=onnx)
        pipe = cascade_for(pipe, size, cascade=cascade, stages=stages, device=device, steps=sr_steps,
                           sampler=sr_sampler, cfg=sr_cfg, aug=sr_aug)
        if show_stages and not hasattr(pipe, "stages"):
            raise BadParameter(f"--show-stages: only when painting through the cascade (--size above the model's "
                               f"{pipe.resolution} px)")
        if show_stages and rerank is not None:
            raise BadParameter("--show-stages: not with --best-of")
        paths = paint_and_save(pipe, prompts, steps=steps, seed=seed, n=n, sampler=sampler, cfg=cfg, out=out,
                               zoom=zoom, size=size, guidance=guides or None, rerank=rerank, keep=keep,
                               negative=negative or None, show_stages=show_stages)
    total = n * len(prompts)
    typer.echo(f"painted {total} image{'s' * (total != 1)} (seed {seed}) in {time.perf_counter() - t:.1f}s "
               f"→ {out}/")
    echo_paths(paths)


def paint_and_save(pipe, prompts: list[str], *, steps: int | None, seed: int, n: int, sampler: str | None, cfg: float,
                   out: Path, label=None, grid: bool = True, zoom: int = 2, rerank=None, keep=None,
                   show_stages: bool = False, **gen) -> list[Path]:
    """Paint n images per prompt under a progress bar, write one PNG each (with its recipe) as soon as a prompt is
    painted, and a contact sheet: a row per prompt. ``rerank = (N, preference model)`` paints N candidates per
    picture and keeps the best-liked. ``keep``: the :class:`~noisebrush.io.outputs.Keeper` the files go through (its
    ``written`` is what a Ctrl-C reports); if ``out`` stops being writable, every picture is kept in a rescue folder
    and one UserError names it."""
    from noisebrush.diffusion import get_sampler  # lazy: torch
    from noisebrush.io import outputs  # lazy: torch
    from noisebrush.io.images import to_pil  # lazy: torch

    if sampler is not None:
        get_sampler(sampler)  # fail before any work
    for prompt in prompts:
        opts = pipe.check(prompt, steps=steps, seed=seed, n=n, sampler=sampler, cfg=cfg, label=label,
                          **{k: v for k, v in gen.items() if k != "guidance"})
    steps, sampler = opts.steps, opts.sampler  # None → the model folder's own
    per = pipe.total_steps(steps, opts.n) if hasattr(pipe, "total_steps") else steps  # a cascade: base + stages
    outputs.output_folder(out)
    keep = keep if keep is not None else outputs.Keeper(out)
    sheet, sheet_recipes = [], []
    with progress(per * len(prompts), "painting") as bar:
        task = bar.add_task("paint", total=per * len(prompts), info="")
        for k, prompt in enumerate(prompts):
            def cb(info, k=k, prompt=prompt):
                bar.update(task, completed=k * per + (info.step + 1) * per // info.steps,
                           info=f"{prompt[:30]}  σ={info.sigma:.3g}")

            if rerank is None:
                ways = [] if show_stages else None  # a cascade's pictures after each stage
                more = {"stages_out": ways} if show_stages else {}
                images, recipes = pipe.generate(prompt, steps=steps, seed=seed, n=n, sampler=sampler, cfg=cfg,
                                                label=label, callback=cb, **gen, **more)
                if ways:
                    from noisebrush.paint.cascade import stages_strip  # lazy: torch

                    strips = [to_pil(stages_strip(w)) for w in ways]
                    outputs.save_pictures(strips, [{**r, "figure": "stages"} for r in recipes], out,
                                          outputs.slug(prompt or "image") + "-stages", keep=keep)
            else:
                from noisebrush.workflows.preference import best_of  # lazy: torch

                bar.update(task, info=f"{prompt[:30]}  best of {rerank[0]}")
                base = getattr(pipe, "base", pipe)  # a cascade picks the best of its base paintings, then upscales
                base_gen = {k: v for k, v in gen.items() if k != "size"} if base is not pipe else gen
                images, recipes = best_of(base, prompt, n=n, best_of=rerank[0], seed=seed, model=rerank[1],
                                          steps=steps, sampler=sampler, cfg=cfg, label=label, **base_gen)
                if base is not pipe:
                    images, recipes = pipe.finish(images, recipes, prompt, negative=gen.get("negative"))
                bar.update(task, completed=(k + 1) * per)
            pics = pipe.modality.preview(images)  # images as they are; a clip as a film strip, a volume as slices
            outputs.save_pictures(pics, recipes, out, outputs.slug(prompt or str(label or "image")), keep=keep)
            sheet += pics
            sheet_recipes += recipes
        bar.update(task, completed=per * len(prompts))
    if grid and len(sheet) > 1:
        name = outputs.slug(prompts[0]) + ("-and-more" if len(prompts) > 1 else "")
        outputs.save_sheet(sheet, sheet_recipes, out / f"{name}-grid-s{seed}.png",
                           cols=n if len(prompts) > 1 else min(n, 4), zoom=zoom, keep=keep)
    return keep.done()
