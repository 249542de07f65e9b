"""``noisebrush tune``: learn a model's step schedule, so it paints as well in fewer steps.

    noisebrush tune builtin --nfe 10                  # → the model folder's schedules/dpmpp_2m-nfe10.json
    noisebrush tune runs/mine/model --nfe 10 --default  # … and make 10 steps the folder's default
    noisebrush paint "a red sun" --steps 10           # painted on the learned schedule (recorded in the recipe)

The work is :func:`noisebrush.workflows.tune.tune`; this is only its flags and the report. Nothing is written until
the schedule is learned, so Ctrl-C leaves the folder as it was.

Lazy imports: the workflow imports torch, so it is imported inside the command: `noisebrush --help` takes 0.3 s
without torch and 3.5 s with it at the top of any command module.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from noisebrush.apps.cli.app import app
from noisebrush.apps.cli.common import flags
from noisebrush.errors import UserError

__all__ = ["tune_cmd"]

# the workflow's defaults, repeated for the help text only (checked equal by tests/workflows/test_tune.py): the
# workflow imports torch, which the help must not wait for
HELP_DEFAULTS = dict(nfe=10, cfg=3.0, samples=64, valid=32, teacher_steps=50, iters=60, batch=8)


@app.command("tune")
def tune_cmd(model: str = typer.Argument("builtin", help="'builtin' or a model folder"),
             nfe: int = typer.Option(HELP_DEFAULTS["nfe"], "--nfe", help="network evaluations to learn the schedule "
                                                                         "for (2-50; dpmpp_2m: one per step)"),
             sampler: Optional[str] = typer.Option(None, "--sampler", help="dpmpp_2m or dpmpp_3m (default: the "
                                                                           "model's)"),
             cfg: float = typer.Option(HELP_DEFAULTS["cfg"], "--cfg", help="the guidance scale to learn it at"),
             samples: int = typer.Option(HELP_DEFAULTS["samples"], "--samples", help="training noises (4-1024)"),
             valid: int = typer.Option(HELP_DEFAULTS["valid"], "--valid", help="held-out noises it is judged on "
                                                                              "(4-1024)"),
             teacher_steps: int = typer.Option(HELP_DEFAULTS["teacher_steps"], "--teacher-steps",
                                               help="steps of the teacher solve the few steps learn to match"),
             iters: int = typer.Option(HELP_DEFAULTS["iters"], "--iters", help="gradient steps (1-5000)"),
             batch: int = typer.Option(HELP_DEFAULTS["batch"], "--batch", help="noises per gradient step"),
             prompts: Optional[Path] = typer.Option(None, "--prompts", help="a text file of prompts, one per line "
                                                                           "(default: captions of the built-in "
                                                                           "set)"),
             out: Optional[Path] = typer.Option(None, "--out", help="write the schedule here instead of into the "
                                                                    "model folder (paint then does not use it)"),
             default: bool = typer.Option(False, "--default", help="also make these steps the folder's default "
                                                                   "(config.json's schedule)")):
    """Learn a model's σ schedule for few-step painting (gradient descent through the sampler against a
    many-step solve); `paint` uses it whenever it paints with that sampler at those steps."""
    texts = None
    if prompts is not None:
        try:
            texts = [line.strip() for line in prompts.read_text(encoding="utf-8").splitlines() if line.strip()]
        except (OSError, UnicodeDecodeError) as e:
            raise UserError(f"{prompts}: cannot read the prompts ({e.__class__.__name__}: {e})") from None
        if not texts:
            raise UserError(f"{prompts}: no prompts in it (one per line)")
    if default and out is not None:
        raise UserError("--default: makes the model folder's own schedule the default; it cannot go with --out")
    from noisebrush.workflows.tune import tune  # lazy: torch (see the module docstring)

    with flags():
        r = tune(model, nfe=nfe, sampler=sampler, cfg=cfg, samples=samples, valid=valid, teacher_steps=teacher_steps,
                 iters=iters, batch=batch, prompts=texts, out=out, set_default=default,
                 log=lambda m: typer.echo(m, err=True))
    levels = ", ".join(f"{v:.4g}" for v in r["sigmas"])
    typer.echo(f"learned {r['sampler']} at {r['nfe']} evaluations ({r['steps']} steps) in {r['seconds']:.0f} s → "
               f"{r['file']}")
    typer.echo(f"held-out distance to the teacher, per picture: median {r['median_before']:.4f} → "
               f"{r['median_after']:.4f}, 90th percentile {r['p90_before']:.4f} → {r['p90_after']:.4f}")
    typer.echo(f"σ levels: {levels}" + ("; now the folder's default steps" if r["default"] else ""))
