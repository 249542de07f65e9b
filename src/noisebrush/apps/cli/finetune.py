"""``noisebrush finetune``: fine-tune a model on a folder of pictures — the whole network, or a LoRA file.

    noisebrush finetune --data my-pictures --token "<mystyle>"                        # → outputs/finetune/NAME/
    noisebrush finetune --data my-pictures --token "<mystyle>" --lora --rank 8 --prior-preservation

Registered on the typer app of :mod:`noisebrush.apps.cli.app` (the package imports this module). The work is
:func:`noisebrush.workflows.finetune.finetune`; this is only its flags, a progress bar and the report. Ctrl-C
stops at the end of a step (the flag of :func:`noisebrush.apps.cli.common.stop_at_step_end`, as ``train``), the
workflow writes what was trained so far, and one line says where (exit status 130).

Imports: the help texts need only the defaults (noisebrush.workflows.finetune_defaults, no torch); the work itself
is imported inside the command, because torch at the top of any command module would make `noisebrush --help` take
3.5 s instead of 0.3 s.
"""
from __future__ import annotations

import shlex
import time
from pathlib import Path
from typing import Optional

import typer

from noisebrush.apps.cli.app import app
from noisebrush.apps.cli.common import command_line, progress as progress_bar, stop_at_step_end
from noisebrush.errors import BadParameter
from noisebrush.workflows.finetune_defaults import DEFAULTS

__all__ = ["finetune_cmd"]

PRECISION_WORDS = {"no": "fp32", "bf16": "bf16 autocast", "fp16": "fp16 autocast"}  # the report's precision


@app.command("finetune")
def finetune_cmd(
        base: str = typer.Option("builtin", "--base", help="the model to start from: 'builtin' or a model folder"),
        data: Path = typer.Option(..., "--data", help="folder of your pictures (NAME.txt next to NAME.png is its "
                                                      "caption)"),
        out: Optional[Path] = typer.Option(None, "--out", "-o", help="where to write: a model folder, or with "
                                                                     "--lora a NAME.safetensors file (default: "
                                                                     "outputs/finetune/DATA-NAME…)"),
        lora: bool = typer.Option(False, "--lora", help="train LoRA adapters (a small file) instead of every weight"),
        rank: Optional[int] = typer.Option(None, "--rank", help="with --lora: the adapters' rank (default 8; 8 "
                                                                "keeps the built-in model's LoRA at 1.2 MB)"),
        token: Optional[str] = typer.Option(None, "--token", help="a new word for your pictures, e.g. '<mystyle>': "
                                                                  "captions become 'TOKEN CAPTION' (or 'a picture "
                                                                  "in TOKEN style')"),
        prior_preservation: bool = typer.Option(False, "--prior-preservation",
                                                help="DreamBooth: also train on pictures the base model paints for "
                                                     "the captions without the token, so it keeps what it knew"),
        class_prompt: Optional[str] = typer.Option(None, "--class-prompt", help="with --prior-preservation: the "
                                                                                "prompt of the class pictures "
                                                                                "(default: each caption without "
                                                                                "the token; with a base trained "
                                                                                "on the built-in set, half of "
                                                                                "them its captions)"),
        prior_weight: Optional[float] = typer.Option(None, "--prior-weight", help="with --prior-preservation: "
                                                                                  "weight λ of the class pictures' "
                                                                                  "loss (default 1)"),
        steps: Optional[int] = typer.Option(None, "--steps", help=f"optimizer steps (default: "
                                                                  f"{DEFAULTS['full']['steps']})"),
        lr: Optional[float] = typer.Option(None, "--lr", help=f"learning rate (default: {DEFAULTS['full']['lr']:g} "
                                                              f"full, {DEFAULTS['lora']['lr']:g} LoRA)"),
        batch_size: int = typer.Option(8, "--batch-size", help="pictures per step (and as many class pictures)"),
        seed: int = typer.Option(0, "--seed"),
        device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or mps")):
    """Fine-tune a model on your pictures: the whole network (a model folder) or LoRA adapters (one small file).
    At the end it paints a few pictures from your captions and reports whether any copies a training picture.
    Ctrl-C stops at the end of a step and writes what was trained so far."""
    from noisebrush.workflows.finetune import Interrupted, finetune  # lazy: torch (see the module docstring)

    if rank is not None and not lora:
        raise BadParameter("--rank: only with --lora")
    bar = progress_bar(1, "fine-tuning")
    tasks: dict[str, int] = {}
    t = time.perf_counter()
    try:
        with stop_at_step_end() as check:  # Ctrl-C: stop at the end of the step, keep the work (as train does)
            def progress(stage, done, total, info):
                if stage not in tasks:
                    tasks[stage] = bar.add_task(stage, total=total, info="")
                bar.update(tasks[stage], completed=done, total=total, info=f"{stage}  {info}".strip())
                check()

            with bar:
                report = finetune(base, data, out, lora=lora, rank=8 if rank is None else rank, token=token,
                                  prior_preservation=prior_preservation, class_prompt=class_prompt,
                                  prior_weight=prior_weight, steps=steps, lr=lr, batch_size=batch_size, seed=seed,
                                  device=device, progress=progress,
                                  command=command_line())
    except Interrupted as e:
        typer.echo(_interrupted_line(e), err=True)
        raise typer.Exit(130) from None
    _print_report(report, time.perf_counter() - t)


def _interrupted_line(e) -> str:
    """The one line a Ctrl-C leaves: where it stopped and what was kept."""
    kind = "LoRA" if e.mode == "lora" else "model"
    if e.out is None:
        where = "before training" if e.stage == "class pictures" else f"at step {e.step} of {e.steps}"
        return f"interrupted {where}: nothing trained, nothing written"
    if e.stage == "memorization":
        return f"interrupted during the memorization check: the fine-tuned {kind} of all {_n(e.steps, 'step')} " \
               f"is written to {e.out}"
    return f"interrupted at step {e.step} of {e.steps}: {kind} of the steps done written to {e.out}"


def _n(k: int, word: str) -> str:
    """``1 step``, ``2 steps``: a count with its word."""
    return f"{k:,} {word}{'' if k == 1 else 's'}"


def _print_report(r: dict, seconds: float) -> None:
    kind = "LoRA file" if r["mode"] == "lora" else "model folder"
    size = r["bytes"] / 1e6
    typer.echo(f"fine-tuned {r['base']} on {_n(r['pictures'], 'picture')} ({r['mode']}, {_n(r['steps'], 'step')}, "
               f"{_n(r['params_trained'], 'weight')} trained) in {seconds:.0f}s")
    typer.echo(f"  {kind}: {r['out']}  ({size:.2f} MB)")
    precision = PRECISION_WORDS.get(r["precision"], r["precision"])
    typer.echo(f"  CPU time: {r['cpu_seconds']:.0f}s in all, {r['train_cpu_seconds']:.0f}s training "
               f"({_n(r['threads'], 'thread')}, {precision})")
    typer.echo(f"  loss on your pictures (fixed noise): {r['loss_before']:.4f} before → {r['loss_after']:.4f} after")
    if r["prior_preservation"]:
        p = r["prior_preservation"]
        typer.echo(f"  prior preservation: {_n(p['pictures'], 'class picture')} painted by the base, "
                   f"weight {p['weight']:g}")
    m = r["memorization"]
    if m is None:
        typer.echo("  memorization check: skipped (it needs at least 2 training pictures)")
    else:
        verdict = "no near-copies" if m["near_copy_fraction"] == 0 else \
            f"{m['near_copy_fraction']:.0%} are near-copies of a training picture"
        typer.echo(f"  memorization check: {_n(m['pictures_painted'], 'painting')} of your captions, {verdict} "
                   f"(near-copy: nearest/second-nearest training-picture distance < {m['threshold']:.2f}; "
                   f"median {m['nearest_ratio_median']:.2f})")
    example = r["caption_example"] or "your caption"
    prompt = shlex.quote(example)
    if r["mode"] == "lora":
        base = "" if r["base"] == "builtin" else f" --model {shlex.quote(r['base'])}"
        typer.echo(f"paint with it:  noisebrush paint {prompt}{base} --lora {shlex.quote(r['out'])}   "
                   f"(FILE:0.5 for half strength; --lora can be given several times)")
    else:
        typer.echo(f"paint with it:  noisebrush paint {prompt} --model {shlex.quote(r['out'])}")
