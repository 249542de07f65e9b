"""``noisebrush eval``: measure a model (see :func:`noisebrush.eval.evaluate`) and print the report as a table.

    noisebrush eval builtin --n 500 --json report.json

``--json`` is checked before any work (a file name in a place that can be written); an existing file is kept and
the report goes to a free name (``report-2.json``), printed, unless ``--force``. The seed stays 0 unless given, so a
measurement repeats exactly.

Lazy imports: the pipeline and noisebrush.eval import torch, so they are imported inside the command:
`noisebrush --help` takes 0.3 s without torch and 3.5 s with it at the top of any command module.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

import noisebrush
from noisebrush.apps.cli.app import app
from noisebrush.apps.cli.common import progress as progress_bar

__all__ = ["eval_", "print_report"]

_ROWS = [("fd_art", "Fréchet distance in the domain feature space (lower is better)"),
         ("kid", "kernel distance, unbiased (lower is better)"),
         ("precision", "share of paintings inside the real pictures' manifold"),
         ("recall", "share of real pictures inside the paintings' manifold"),
         ("adherence", "paintings whose content matches the prompt (family, colours, shape/sky/ground)"),
         ("adherence_layout", "… whose position, size and count match"),
         ("adherence_real", "the same check on real pictures: the feature net's ceiling"),
         ("swd", "sliced Wasserstein ×10³ on Laplacian patches (no network)"),
         ("near_copy_fraction", "paintings that are near-copies of a training picture"),
         ("seconds_per_image", "painting time")]


@app.command(name="eval")
def eval_(model: str = typer.Argument("builtin", help="'builtin' or a model folder"),
          data: Optional[str] = typer.Option(None, "--data", help="'builtin' or a folder of pictures (default: what "
                                                                   "the model was trained on)"),
          n: int = typer.Option(500, "--n", help="pictures to paint (and real ones to compare with)"),
          steps: int = typer.Option(20, "--steps", help="sampler steps"),
          sampler: Optional[str] = typer.Option(None, "--sampler", help="default: the model's"),
          cfg: float = typer.Option(3.0, "--cfg", help="classifier-free guidance scale"),
          seed: int = typer.Option(0, "--seed", help="fixed at 0 by default (unlike paint's random seed): the "
                                                     "same command measures the same pictures"),
          batch: int = typer.Option(64, "--batch", help="pictures per network batch"),
          json_out: Optional[Path] = typer.Option(None, "--json", help="write the report here as JSON (an existing "
                                                                       "file is kept and a free name used, unless "
                                                                       "--force)"),
          force: bool = typer.Option(False, "--force", help="replace the file --json names if it exists"),
          no_memorization: bool = typer.Option(False, "--no-memorization", help="skip the near-copy check"),
          device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or mps")):
    """Measure a model: fd_art, KID, precision/recall, prompt adherence, SWD and the memorization check."""
    from noisebrush.eval import evaluate  # lazy: torch (see the module docstring)
    from noisebrush.eval.evaluation import check_options
    from noisebrush.io.atomic import atomic_write_text  # lazy: torch
    from noisebrush.io.outputs import check_output_file

    if json_out is not None:  # before any work: a folder, an unwritable place; an existing file gets a free name
        json_out = check_output_file(json_out, what="--json", force=force)
    pipe = noisebrush.load(model, device=device)
    check_options(pipe, data=data, n=n, steps=steps, sampler=sampler, cfg=cfg, seed=seed, batch=batch)
    with progress_bar(n, "evaluating", unit="pictures") as bar:
        task = bar.add_task("eval", total=n, info="")

        def progress(stage, done, total):
            if stage == "painting":
                bar.update(task, completed=done, info="painting")
            else:
                bar.update(task, info=stage)

        report = evaluate(model, pipe=pipe, data=data, n=n, steps=steps, sampler=sampler, cfg=cfg, seed=seed,
                          batch=batch, memorization=not no_memorization, progress=progress)
    print_report(report)
    if json_out is not None:
        atomic_write_text(json_out, json.dumps(report, indent=2))
        typer.echo(f"report → {json_out}")


def print_report(report: dict) -> None:
    """The evaluation report as a table on stdout: each metric the report has, its value and what it means."""
    t = Table(title=f"{report['model']} against {report['data']} ({report['n']} pictures, {report['sampler']}, "
                    f"{report['steps']} steps, cfg {report['cfg']})")
    t.add_column("metric")
    t.add_column("value", justify="right")
    t.add_column("meaning")
    for key, meaning in _ROWS:
        if report.get(key) is not None:
            v = report[key]
            t.add_row(key, f"{v:.4g}" if isinstance(v, float) else str(v), meaning)
    Console().print(t)
