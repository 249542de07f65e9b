"""``noisebrush eval``: measure a model (see :func:`noisebrush.eval.evaluate`) and print the report as a table.

    noisebrush eval builtin --n 500 --json report.json
    noisebrush eval builtin --prompts my-prompts.tsv --per-prompt 2     # adherence to a prompt set only

``--prompts`` (a TSV file, :mod:`noisebrush.eval.prompts`) is read and checked before the model loads; with it the
report has adherence only, and ``--n`` and ``--data`` are refused (``--per-prompt`` sets the pictures).

``--json`` is checked before any work (a file name in a place that can be written); an existing file is kept and
the report goes to a free name (``report-2.json``), printed, unless ``--force``. The seed stays 0 unless given, so a
measurement repeats exactly.

Lazy imports: the pipeline and noisebrush.eval import torch, so they are imported inside the command:
`noisebrush --help` takes 0.3 s without torch and 3.5 s with it at the top of any command module.
"""
from __future__ import annotations

import contextlib
import json
import re
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

import noisebrush
from noisebrush.apps.cli.app import app
from noisebrush.apps.cli.common import progress as progress_bar
from noisebrush.errors import BadParameter, warn

__all__ = ["eval_", "print_report"]

# the library's parameter names → this command's flags (eval spells --n and --batch its own way)
_FLAGS = {"n": "--n", "per_prompt": "--per-prompt", "prompts": "--prompts", "data": "--data", "batch": "--batch",
          "seed": "--seed", "steps": "--steps", "cfg": "--cfg", "sampler": "--sampler"}


@contextlib.contextmanager
def _eval_flags():
    """Re-raise a BadParameter whose message starts with a library name (``per_prompt: …``) with the flag."""
    try:
        yield
    except BadParameter as e:
        m = re.match(r"([a-z_]+)(?=[:\s(]|$)", str(e))
        if not m or m.group(1) not in _FLAGS:
            raise
        raise BadParameter(_FLAGS[m.group(1)] + str(e)[m.end():]) from None

_ROWS = [("fd_art", "Fréchet distance in the domain feature space (lower is better)"),
         ("kid", "kernel distance, unbiased (lower is better)"),
         ("precision", "share of paintings inside the real pictures' manifold"),
         ("recall", "share of real pictures inside the paintings' manifold"),
         ("adherence", "paintings whose content matches the prompt (family, colours, shape/sky/ground)"),
         ("adherence_layout", "… whose position, size and count match"),
         ("adherence_all", "… whose every attribute matches"),
         ("adherence_real", "the same check on real pictures: the feature net's ceiling"),
         ("swd", "sliced Wasserstein ×10³ on Laplacian patches (no network)"),
         ("near_copy_fraction", "paintings that are near-copies of a training picture"),
         ("seconds_per_image", "painting time")]


@app.command(name="eval")
def eval_(model: str = typer.Argument("builtin", help="'builtin' or a model folder"),
          data: Optional[str] = typer.Option(None, "--data", help="'builtin' or a folder of pictures (default: what "
                                                                   "the model was trained on)"),
          n: Optional[int] = typer.Option(None, "--n", help="pictures to paint (and real ones to compare with); "
                                                            "default 500"),
          prompts: Optional[Path] = typer.Option(None, "--prompts", help="score adherence to a prompt set: a TSV "
                                                                         "file 'prompt<TAB>attributes' (see the "
                                                                         "README); adherence only"),
          per_prompt: Optional[int] = typer.Option(None, "--per-prompt", help="with --prompts: pictures (seeds) per "
                                                                              "prompt; default 1"),
          steps: Optional[int] = typer.Option(None, "--steps", help="sampler steps (default: the model's; 10 for "
                                                                     "the built-in, on its learned levels)"),
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
    """Measure a model: fd_art, KID, precision/recall, prompt adherence, SWD and the memorization check; with
    --prompts, the adherence to a prompt set of your own."""
    from noisebrush.eval import evaluate  # lazy: torch (see the module docstring)
    from noisebrush.eval.evaluation import DEFAULT_N, check_options
    from noisebrush.eval.prompts import read_prompts  # lazy: torch (through data.procedural)
    from noisebrush.io.atomic import atomic_write_text  # lazy: torch
    from noisebrush.io.outputs import check_output_file

    if json_out is not None:  # before any work: a folder, an unwritable place; an existing file gets a free name
        json_out = check_output_file(json_out, what="--json", force=force)
    items = None if prompts is None else read_prompts(prompts)  # a bad file is one line before the model loads
    if items is not None and no_memorization:
        warn("--no-memorization: nothing to skip, --prompts reports adherence only")
    pipe = noisebrush.load(model, device=device)
    with _eval_flags():
        check_options(pipe, data=data, n=n, steps=steps, sampler=sampler, cfg=cfg, seed=seed, batch=batch,
                      prompts=items, per_prompt=per_prompt)
    total = (DEFAULT_N if n is None else n) if items is None else len(items) * (per_prompt or 1)
    with progress_bar(total, "evaluating", unit="pictures") as bar:
        task = bar.add_task("eval", total=total, info="")

        def progress(stage, done, total):
            if stage == "painting":
                bar.update(task, completed=done, info="painting")
            else:
                bar.update(task, info=stage)

        with _eval_flags():
            report = evaluate(model, pipe=pipe, data=data, n=n, steps=steps, sampler=sampler, cfg=cfg, seed=seed,
                              batch=batch, memorization=not no_memorization, progress=progress, prompts=prompts,
                              per_prompt=per_prompt)
    print_report(report)
    if json_out is not None:
        atomic_write_text(json_out, json.dumps(report, indent=2))
        typer.echo(f"report → {json_out}")


def print_report(report: dict) -> None:
    """The evaluation report as a table on stdout: each metric the report has, its value and what it means; for a
    prompt set also the accuracy per attribute and family, and the prompts adhered to least."""
    how = f"{report['sampler']}, {report['steps']} steps, cfg {report['cfg']}"
    if "prompts" in report:
        title = (f"{report['model']} on {report['prompts']} ({report['prompt_count']} prompts × {report['per_prompt']} "
                 f"= {report['n']} pictures, {how})")
    else:
        title = f"{report['model']} against {report['data']} ({report['n']} pictures, {how})"
    t = Table(title=title, caption="; ".join(report.get("notes", [])) if "prompts" in report else None)
    t.add_column("metric")
    t.add_column("value", justify="right")
    t.add_column("meaning")

    def row(key, v, meaning):
        t.add_row(key, f"{v:.4g}" if isinstance(v, float) else str(v), meaning)

    for key, meaning in _ROWS:
        if report.get(key) is not None:
            row(key, report[key], meaning)
    if "prompts" in report:
        for name, v in report.get("adherence_per_attribute", {}).items():
            if v is not None:
                row(f"  {name}", v, f"share of pictures whose {name} matches, of those whose prompt names one")
        for name, v in report.get("adherence_per_family", {}).items():
            row(f"  {name} prompts", v, f"adherence of the {name} prompts")
    Console().print(t)
    worst = report.get("worst") or []
    if worst:
        typer.echo("adhered to least:")
        for w in worst[:5]:
            where = f"line {w['line']}: " if "line" in w else ""
            read = ", ".join(f"{k} read as {v}" for k, v in w["read_instead"].items())
            typer.echo(f"  {where}{w['prompt']!r} — {read}")
