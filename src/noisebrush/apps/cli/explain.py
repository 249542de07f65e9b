"""``noisebrush explain`` and ``noisebrush plot-log``: pictures of how a painting comes about and of how training
went (interpretability: x_t and x̂_0 along the trajectory, the schedule, the loss per noise level).

    noisebrush explain "a red sun over purple mountains" --seed 7
    noisebrush plot-log runs/mine

Neither overwrites without ``--force``: an explanation into a folder that holds one goes to a new folder (``DIR-2``),
a plot onto an existing file to a free name (``log-2.png``); the name written is printed. Both check that the place
can be written before any work; ``explain`` draws a random seed unless ``--seed`` is given (printed and recorded).

Lazy imports: the pipeline, noisebrush.paint.explain and the log plots import torch (and matplotlib), so they are
imported inside the commands: `noisebrush --help` takes 0.3 s without torch and 3.5 s with it at the top of any
command module.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import typer

import noisebrush
from noisebrush.apps.cli.app import NEGATIVE, app
from noisebrush.apps.cli.common import echo_paths, flags, progress

__all__ = ["explain_cmd", "plot_log_cmd"]


@app.command("explain")
def explain_cmd(prompt: str = typer.Argument(..., metavar="PROMPT", help="what to paint (for a class model: a class "
                                                                          "name)"),
                model: str = typer.Option("builtin", "--model", "-m", help="'builtin' or a model folder"),
                seed: Optional[int] = typer.Option(None, "--seed", help="default: a random seed, printed and "
                                                                        "recorded"),
                sampler: Optional[str] = typer.Option(None, "--sampler", help="see `noisebrush samplers`; langevin and "
                                                                             "adaptive also get correctors.png "
                                                                             "(default: the model's)"),
                steps: Optional[int] = typer.Option(None, "--steps", help="sampler steps (default: the model's)"),
                cfg: float = typer.Option(3.0, "--cfg", help="classifier-free guidance scale (1 = none)"),
                negative: str = NEGATIVE,
                at: Optional[str] = typer.Option(None, "--at", help="the steps the strip shows, e.g. '0,5,10,19' "
                                                                    "(default: about 6 evenly spaced)"),
                out: Optional[Path] = typer.Option(None, "--out", "-o", help="folder for the files (default: "
                                                                             "outputs/explain-PROMPT-sSEED); if it "
                                                                             "holds an explanation already, a new "
                                                                             "folder OUT-2 … is used (see --force)"),
                force: bool = typer.Option(False, "--force", help="write into --out even if it holds an "
                                                                  "explanation, replacing its files"),
                fps: float = typer.Option(8.0, "--fps", help="frames per second of process.gif"),
                size: Optional[int] = typer.Option(None, "--size", help="picture size (default: the model's)"),
                device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or mps")):
    """Paint one picture and show how it came about: strip.png (x_t and predicted x_0 at chosen steps),
    process.gif (every step), schedule.png (σ, SNR, step sizes), correctors.png (langevin/adaptive)."""
    from noisebrush.diffusion import get_sampler  # lazy: torch (see the module docstring)
    from noisebrush.io.outputs import check_folder, free_path, slug
    from noisebrush.paint.explain import check_fps, explain, explanation_folder, parse_at  # lazy: torch
    from noisebrush.seeding import pick_seed

    if sampler is not None:
        get_sampler(sampler)  # fail before loading anything
    check_fps(fps, name="--fps")
    seed = pick_seed(seed)
    folder = out if out is not None else free_path(Path("outputs") / f"explain-{slug(prompt)}-s{seed}")
    check_folder(folder, what="--out")  # before loading anything: a file in the way, or a folder not writable
    folder = explanation_folder(folder, force=force)  # an earlier explanation there is kept: a new folder
    t = time.perf_counter()
    pipe = noisebrush.load(model, device=device)
    with flags():
        opts = pipe.check(prompt, steps=steps, seed=seed, n=1, sampler=sampler, cfg=cfg, size=size,
                          negative=negative or None)
    steps, sampler = opts.steps, opts.sampler  # None → the model folder's own
    picks = None if at is None else parse_at(at, steps, name="--at")
    with progress(steps, "painting") as bar, flags():
        task = bar.add_task("paint", total=steps, info="")

        def cb(info):
            bar.update(task, completed=min(info.step + 1, steps), info=f"σ={info.sigma:.3g}")

        files = explain(pipe, prompt, seed=seed, steps=steps, sampler=sampler, cfg=cfg, at=picks, out_dir=folder,
                        fps=fps, size=size, callback=cb, force=True,  # the folder chosen above
                        negative=negative or None)
        bar.update(task, completed=steps)
    typer.echo(f"explained {prompt!r} ({sampler}, {steps} steps, seed {seed}) in {time.perf_counter() - t:.1f}s "
               f"→ {files['json'].parent}/")
    echo_paths(files.values())


@app.command("plot-log")
def plot_log_cmd(run_dir: Path = typer.Argument(..., metavar="RUN_DIR", help="a training run folder (holds log.csv)"),
                 out: Optional[Path] = typer.Option(None, "--out", "-o", help="the PNG to write (default: "
                                                                              "RUN_DIR/log.png); an existing file is "
                                                                              "kept and a free name (log-2.png …) "
                                                                              "used, unless --force"),
                 force: bool = typer.Option(False, "--force", help="replace the file --out names if it exists")):
    """Plot a training run's log.csv: loss, loss per noise level (σ bucket) and learning rate."""
    from noisebrush.io.outputs import check_output_file  # lazy: torch
    from noisebrush.train.plots import plot_log  # lazy: torch and matplotlib

    if out is None and run_dir.is_dir():
        out = run_dir / "log.png"
    if out is not None and out.suffix.lower() == ".png" and not out.is_dir():
        out = check_output_file(out, what="--out", force=force)  # before reading: writable, and a free name
    typer.echo(f"wrote {plot_log(run_dir, out, force=True)}")
