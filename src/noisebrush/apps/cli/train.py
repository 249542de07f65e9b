"""``noisebrush train``, ``noisebrush experiment``: train a model (a progress bar, Ctrl-C checkpoints), or run one of
the brief's experiments.

    noisebrush train --config configs/builtin.toml --out runs/mine
    noisebrush train --data ~/pictures --steps 2000 --set model.channels=64
    noisebrush train --out runs/mine --resume --steps 4000      # the run's own settings; --steps may change
    noisebrush train --data ~/pictures --minutes 20             # as many steps as fit in 20 minutes
    noisebrush experiment steps

``train`` checks everything before any work: every value's type (``--set`` values are TOML; a bare word is a
string, anything else that is not TOML is an error), the bounds of ``--steps``, ``--minutes`` and ``--batch-size``,
and that ``--out`` can be written. ``--minutes`` (a time budget, :mod:`noisebrush.train.budget`) and ``--steps`` are
exclusive; a flag wins over the other in a config file, and a resumed run keeps its kind: both mean the total,
where the run stops (``--resume`` alone finishes the recorded budget; ``--resume --minutes 30`` takes a 20-minute
run on to 30 minutes in all, its LR plan kept and held at its final value past its end, as with ``--steps``).
``--resume`` reads the run's config from the run folder; values given again must agree with it, except those
:data:`noisebrush.train.config.RESUME_MAY_CHANGE` names. Ctrl-C raises a flag that the run checks between steps
(:func:`noisebrush.apps.cli.common.stop_at_step_end`, which ``finetune`` shares): it stops at the end of the step
and keeps the work.

Lazy imports: the trainer and the experiments import torch (and accelerate), so they are imported inside the
commands: `noisebrush --help` takes 0.3 s without torch and 3.5 s with it at the top of any command module.
"""
from __future__ import annotations

import re
import time
import tomllib
from pathlib import Path
from typing import List, Optional

import typer

from noisebrush.apps.cli.app import app
from noisebrush.apps.cli.common import command_line, progress as progress_bar, stop_at_step_end
from noisebrush.checks import LIMITS, limited, number, whole, whole_list
from noisebrush.errors import BadParameter
from noisebrush.io.atomic import check_writable

__all__ = ["train", "experiment", "parse_sets"]


@app.command()
def experiment(name: str = typer.Argument(..., help="steps, noise, lr-schedule, regularization or samplers"),
               out: Path = typer.Option(Path("outputs/experiments"), "--out", "-o",
                                        help="folder for NAME.md/.csv/.png; existing ones are kept and the new files "
                                             "get a free name (NAME-2.md …), unless --force"),
               force: bool = typer.Option(False, "--force", help="replace NAME.md/.csv/.png in --out"),
               model: str = typer.Option("builtin", "--model", "-m", help="steps, noise, samplers: the model"),
               n: Optional[int] = typer.Option(None, "--n", help="pictures per cell (default: the experiment's)"),
               samplers_: Optional[str] = typer.Option(None, "--samplers", help="steps, samplers: comma-separated"),
               nfe: Optional[str] = typer.Option(None, "--nfe", help="steps, samplers: comma-separated NFEs"),
               train_steps: Optional[int] = typer.Option(None, "--train-steps",
                                                         help="lr-schedule, regularization: steps per run (≥ 10)"),
               data_size: Optional[int] = typer.Option(None, "--data-size",
                                                       help="regularization: training pictures (≥ 2)"),
               cfg: float = typer.Option(3.0, "--cfg", help="guidance scale (text models)"),
               seed: int = typer.Option(0, "--seed", help="fixed at 0 by default (unlike paint's random seed): the "
                                                          "same command measures the same thing")):
    """Run one of the brief's experiments; writes a markdown table, a CSV and a figure."""
    from noisebrush.io.outputs import check_folder  # lazy: torch
    from noisebrush.workflows.experiments import EXPERIMENTS, run_experiment  # lazy: torch

    if name not in EXPERIMENTS:
        raise BadParameter(f"experiment: unknown {name!r}; choose one of {', '.join(EXPERIMENTS)}")
    given = {"--samplers": samplers_, "--nfe": nfe, "--train-steps": train_steps, "--data-size": data_size}
    kw = _experiment_options(name, given, model=model, n=n, cfg=cfg, seed=seed)
    check_folder(out, what="--out")  # before any work
    t = time.perf_counter()
    result = run_experiment(name, out, log=lambda s: typer.echo(s, err=True), force=force, **kw)
    typer.echo(result["markdown"].read_text())
    typer.echo(f"{name} done in {time.perf_counter() - t:.0f}s → {result['markdown']}, {result['csv']}, "
               f"{result['figure']}")


def _experiment_options(name: str, given: dict, *, model: str, n, cfg: float, seed: int) -> dict:
    """run_experiment's keyword arguments from the flags, each checked under its flag's name (bounds from
    :data:`noisebrush.checks.LIMITS`); a flag the experiment does not take is a BadParameter."""

    kw: dict = {"seed": whole("--seed", seed, 0)}
    if n is not None:
        kw["n"] = whole("--n", n, 4, int(LIMITS["n"].hard))
    allowed = {"steps": {"--samplers", "--nfe"}, "samplers": {"--samplers", "--nfe"}, "noise": set(),
               "lr-schedule": {"--train-steps"}, "regularization": {"--train-steps", "--data-size"}}[name]
    for flag, v in given.items():
        if v is not None and flag not in allowed:
            raise BadParameter(f"{flag}: not an option of the {name} experiment")
    if name in ("steps", "noise", "samplers"):
        kw.update(model=model, cfg=cfg)
    if given["--samplers"] is not None:
        kw["samplers"] = [s.strip() for s in given["--samplers"].split(",") if s.strip()]
    if given["--nfe"] is not None:
        try:
            nfes = [int(v) for v in given["--nfe"].split(",")]
        except ValueError:
            raise BadParameter(f"--nfe: comma-separated whole numbers, got {given['--nfe']!r}") from None
        kw["nfes"] = whole_list("--nfe", nfes, 1, int(LIMITS["steps"].hard))
    if given["--train-steps"] is not None:
        kw["steps"] = whole("--train-steps", given["--train-steps"], 10, int(LIMITS["train_steps"].hard))
    if given["--data-size"] is not None:
        kw["data_size"] = whole("--data-size", given["--data-size"], 2, 60_000)
    if name in ("lr-schedule", "regularization") and model != "builtin":
        raise BadParameter("--model: the training experiments train their own small models")
    return kw


@app.command()
def train(config: Optional[Path] = typer.Option(None, "--config", "-c", help="TOML file (see configs/)"),
          data: Optional[str] = typer.Option(None, "--data", help="'builtin' or a folder of pictures"),
          out: Optional[str] = typer.Option(None, "--out", "-o", help="run folder"),
          steps: Optional[int] = typer.Option(None, "--steps", help="optimizer steps (with --resume: where to "
                                                                    "stop)"),
          minutes: Optional[float] = typer.Option(None, "--minutes", help="train for this many minutes instead of "
                                                                          "--steps: the run measures its speed and "
                                                                          "plans the steps (with --resume: the "
                                                                          "total budget)"),
          batch_size: Optional[int] = typer.Option(None, "--batch-size"),
          lr: Optional[float] = typer.Option(None, "--lr"),
          lr_schedule: Optional[str] = typer.Option(None, "--lr-schedule", help="constant, linear, exponential, "
                                                                                 "cosine"),
          precision: Optional[str] = typer.Option(None, "--precision", help="auto, bf16, fp16, no"),
          seed: Optional[int] = typer.Option(None, "--seed"),
          task: Optional[str] = typer.Option(None, "--task", help="image (default); sr: a super-resolution stage "
                                                                  "(configs/sr64.toml); video: clips "
                                                                  "(configs/video.toml); shape: 3-D shapes"),
          scale: Optional[int] = typer.Option(None, "--scale", help="sr: the upscaling factor, 2 or 4"),
          method: Optional[str] = typer.Option(None, "--method", help="diffusion (default); ddgan: a diffusion GAN "
                                                                      "that paints in 4 steps (--set gan_steps=2 or "
                                                                      "8); diffusion-gan: one step, D on diffused "
                                                                      "pictures; gan: a plain conditional GAN"),
          resume: bool = typer.Option(False, "--resume", help="continue the latest checkpoint in the run folder, "
                                                              "with the run's own settings (--steps may change)"),
          set_: List[str] = typer.Option([], "--set", help="any option as KEY=VALUE (VALUE in TOML syntax); "
                                                           "model.KEY for the network")):
    """Train a model on the built-in set or a folder; writes RUN/model at the end. Ctrl-C checkpoints and exits."""
    from noisebrush.train import Trainer  # lazy: torch (see the module docstring)

    if steps is not None and minutes is not None:
        raise BadParameter("--minutes: give --steps or --minutes, not both")
    over = {"data": data, "out_dir": out, "steps": steps, "minutes": minutes, "batch_size": batch_size, "lr": lr,
            "lr_schedule": lr_schedule, "mixed_precision": precision, "seed": seed, "task": task, "scale": scale,
            "method": method}
    flags = {"data": "--data", "out_dir": "--out", "steps": "--steps", "minutes": "--minutes",
             "batch_size": "--batch-size", "lr": "--lr",
             "lr_schedule": "--lr-schedule", "mixed_precision": "--precision", "seed": "--seed", "task": "--task",
             "scale": "--scale", "method": "--method"}
    cfg = _train_config(config, over, parse_sets(set_), resume=resume, flags=flags)
    check_writable(cfg.out_dir, what="--out", folder=True)  # before any work: one line, not a traceback at the end
    trainer = Trainer(cfg, resume=resume)
    trainer.command = command_line()
    if cfg.method != "diffusion" and cfg.sample_every:  # a GAN's recall estimate in the log and the progress bar
        from noisebrush.eval.monitor import recall_monitor  # lazy: torch

        trainer.monitor = recall_monitor(trainer.dataset)
    if trainer.acc.is_main_process:  # one process of a multi-process run says it
        if resume:
            typer.echo(f"resumed from step {trainer.step} of {cfg.out_dir}", err=True)
        _say_data(trainer)
    _fit(trainer, cfg)


def _train_config(config: Optional[Path], over: dict, extra: dict, *, resume: bool = False,
                  flags: Optional[dict] = None):
    """The TrainConfig: the TOML file (or the defaults), the flags, then the --set values — or, with ``resume``,
    the run's own config with those given again on top (see :func:`noisebrush.train.config.merge_for_resume`)."""
    from noisebrush.train.budget import MAX_MINUTES  # lazy: torch
    from noisebrush.train.config import TrainConfig, merge_for_resume, read_toml, run_config  # lazy: torch

    doc = read_toml(config) if config is not None else {}
    given: dict = {k: v for k, v in doc.items() if k != "model"}
    for key, other in (("steps", "minutes"), ("minutes", "steps")):  # a flag wins over the other in the file
        if over.get(key) is not None:
            given.pop(other, None)
    names = {k: f"{k} (in {config})" for k in given}
    given.update({k: v for k, v in over.items() if v is not None})
    names.update({k: (flags or {}).get(k, k) for k, v in over.items() if v is not None})
    model = dict(doc.get("model") or {}) if isinstance(doc.get("model", {}), dict) else doc["model"]
    if isinstance(model, dict):
        names.update({f"model.{k}": f"model.{k} (in {config})" for k in model})
    sets_model = extra.pop("model", {})
    if isinstance(given.get("disc"), dict) and "disc" in extra:  # --set disc.KEY on top of the file's [disc]
        extra["disc"] = {**given["disc"], **extra["disc"]}
    given.update(extra)
    names.update({k: f"--set {k}" for k in extra})
    names.update({f"model.{k}": f"--set model.{k}" for k in sets_model})
    if isinstance(model, dict):
        model.update(sets_model)
    for key, limit in (("steps", "train_steps"), ("batch_size", "batch_size")):  # however they were given
        if key in given:
            limited(names[key], given[key], limit)
    if given.get("minutes") is not None:
        number(names["minutes"], given["minutes"], 0, MAX_MINUTES, above=True)
    if not resume:
        try:
            return TrainConfig.from_dict({**given, "model": model})
        except BadParameter as e:
            key = str(e).split(":", 1)[0]
            if config is not None and names.get(key, "").endswith(f"(in {config})"):
                raise BadParameter(f"{config}: {e}") from None
            raise
    out = given.get("out_dir", TrainConfig.out_dir)
    run = run_config(out)
    if model:
        given["model"] = model
    kind, other = ("minutes", "steps") if run.get("minutes") is not None else ("steps", "minutes")
    if given.get(other) is not None:
        raise BadParameter(f"{names[other]}: this run was planned by {kind}; resume it with "
                           f"{flags.get(kind, kind) if flags else kind} (the total)")
    steps = given.pop("steps", None)
    cfg = TrainConfig.from_dict(merge_for_resume(run, given, names))
    if steps is not None:  # where to stop; the run's LR schedule keeps its plan (checked against the run's steps)
        cfg.steps = steps
    return cfg


def _say_data(trainer) -> None:
    """At the start of a run: how many pictures the data set has (and, for a folder, found and skipped)."""
    ds = trainer.dataset
    if hasattr(ds, "skipped") and hasattr(ds, "found"):
        typer.echo(f"pictures: {ds.found} found, {len(ds)} used, {len(ds.skipped)} skipped "
                   f"({trainer.cfg.data})", err=True)
    else:
        typer.echo(f"pictures: {len(ds)} ({trainer.cfg.data})", err=True)


def _fit(trainer, cfg) -> None:
    """Run the trainer under a progress bar; Ctrl-C writes a checkpoint and exits with 130."""
    start = trainer.step
    main = trainer.acc.is_main_process  # under torchrun only the main process reports
    bar = progress_bar(trainer.planned_steps, "training", shown=main)
    task = bar.add_task("train", total=trainer.planned_steps, completed=start, info="")
    t0 = time.perf_counter()
    interrupted = False
    shown: dict = {}  # the last measured values the bar keeps showing
    with stop_at_step_end() as check:
        def progress(step, row):
            rate = (step - start) * cfg.batch_size / max(time.perf_counter() - t0, 1e-9)
            info = f"{_losses(row, shown)}  {rate:.1f} img/s  lr {row['lr']:.2e}"
            if "left" in row:  # a time budget: the steps it plans now and its time left
                plan = "measuring speed" if row["planned"] is None else f"plan {row['planned']} steps"
                info += f"  {plan}, {_clock_time(row['left'])} left"
            bar.update(task, completed=step, total=row.get("stop") or trainer.planned_steps, info=info)
            check()

        try:
            with bar:
                path = trainer.fit(progress)
        except KeyboardInterrupt:
            interrupted = True
    if interrupted:
        trainer.close()
        if main:
            typer.echo(f"interrupted at step {trainer.step}: checkpoint written to {cfg.out_dir}/checkpoints; "
                       f"continue with --resume", err=True)
        _leave(trainer, 130)
        raise typer.Exit(130)
    trainer.close()
    if main:
        typer.echo(f"trained {trainer.step} step{'s' * (trainer.step != 1)} ({trainer.skipped} skipped) → model "
                   f"in {path}")
    _leave(trainer, 0)


def _clock_time(seconds: float) -> str:
    """Seconds as M:SS (H:MM:SS from an hour)."""
    s = int(round(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def _losses(row: dict, shown: dict) -> str:
    """The progress line's losses: the loss, or a GAN's D and G losses, D's accuracy on real and fake, R1, its
    Diffusion-GAN depth T and the last recall estimate when the run measures them."""
    stats = row.get("stats") or {}
    if "d_loss" not in stats:
        return f"loss {row['loss']:.4f}"
    text = f"D {stats['d_loss']:.3f} G {stats.get('g_loss', float('nan')):.3f}  D acc {stats.get('d_real', 0):.2f}/" \
           f"{stats.get('d_fake', 0):.2f}"
    if "r1" in stats:
        text += f"  R1 {stats['r1']:.3g}"
    if "ada_t" in stats:
        text += f"  T {stats['ada_t']:.0f}"
    if "recall" in stats:
        shown["recall"] = stats["recall"]  # measured every sample_every steps: shown until the next
    if "recall" in shown:
        text += f"  recall {shown['recall']:.2f}"
    return text


def _leave(trainer, code: int) -> None:
    """A worker of a multi-process run exits without torch's teardown (see ``noisebrush.train.leave_worker``)."""
    if trainer.acc.num_processes > 1:
        from noisebrush.train import leave_worker  # lazy: torch

        leave_worker(code)


_BARE_WORD = re.compile(r"^[A-Za-z0-9_\-./:]+$")


def parse_sets(items: list[str]) -> dict:
    """``--set KEY=VALUE`` items as a dict (VALUE in TOML syntax; ``model.KEY`` and ``disc.KEY`` nest). A value that is not TOML is
    taken as a string only when it is a bare word (letters, digits, ``_ - . / :``, e.g. a path); anything else
    (``[1,2``) is one BadParameter line naming the key."""
    out: dict = {}
    for item in items:
        if "=" not in item:
            raise BadParameter(f"--set: expected KEY=VALUE, got {item!r}")
        key, value = item.split("=", 1)
        key = key.strip()
        if not key:
            raise BadParameter(f"--set: expected KEY=VALUE, got {item!r}")
        try:
            parsed = tomllib.loads(f"v = {value}")["v"]
        except RecursionError:
            raise BadParameter(f"--set {key}: nested too deeply") from None
        except tomllib.TOMLDecodeError:
            if not _BARE_WORD.match(value.strip()):
                raise BadParameter(f"--set {key}: not a TOML value: {value}") from None
            parsed = value.strip()  # a bare word: a string
        if key.startswith(("model.", "disc.")):  # the network's settings; a GAN's discriminator's
            table, _, name = key.partition(".")
            out.setdefault(table, {})[name] = parsed
        else:
            out[key] = parsed
    return out
