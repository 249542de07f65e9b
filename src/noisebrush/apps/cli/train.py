"""``noisebrush train``, ``noisebrush experiment``: train a model (a progress bar, Ctrl-C checkpoints), or run one of
the brief's experiments.

    noisebrush train --config configs/builtin.toml --out runs/mine
    noisebrush train --data ~/pictures --steps 2000 --set model.channels=64
    noisebrush experiment steps

Lazy imports: the trainer and the experiments import torch (and accelerate), so they are imported inside the
commands: `noisebrush --help` takes 0.3 s without torch and 3.5 s with it at the top of any command module.
"""
from __future__ import annotations

import signal
import time
import tomllib
from pathlib import Path
from typing import List, Optional

import typer

from noisebrush.apps.cli.app import app
from noisebrush.apps.cli.common import command_line, progress as progress_bar
from noisebrush.errors import BadParameter

__all__ = ["train", "experiment", "parse_sets"]


@app.command()
def experiment(name: str = typer.Argument(..., help="steps, noise, lr-schedule, regularization or samplers"),
               out: Path = typer.Option(Path("outputs/experiments"), "--out", "-o", help="folder for .md/.csv/.png"),
               model: str = typer.Option("builtin", "--model", "-m", help="steps, noise, samplers: the model"),
               n: Optional[int] = typer.Option(None, "--n", help="pictures per cell (default: the experiment's)"),
               samplers_: Optional[str] = typer.Option(None, "--samplers", help="steps, samplers: comma-separated"),
               nfe: Optional[str] = typer.Option(None, "--nfe", help="steps, samplers: comma-separated NFEs"),
               train_steps: Optional[int] = typer.Option(None, "--train-steps",
                                                         help="lr-schedule, regularization: steps per run"),
               data_size: Optional[int] = typer.Option(None, "--data-size",
                                                       help="regularization: training pictures"),
               cfg: float = typer.Option(3.0, "--cfg", help="guidance scale (text models)"),
               seed: int = typer.Option(0, "--seed")):
    """Run one of the brief's experiments; writes a markdown table, a CSV and a figure."""
    from noisebrush.workflows.experiments import EXPERIMENTS, run_experiment  # lazy: torch

    if name not in EXPERIMENTS:
        raise BadParameter(f"experiment: unknown {name!r}; choose one of {', '.join(EXPERIMENTS)}")
    given = {"--samplers": samplers_, "--nfe": nfe, "--train-steps": train_steps, "--data-size": data_size}
    kw = _experiment_options(name, given, model=model, n=n, cfg=cfg, seed=seed)
    t = time.perf_counter()
    result = run_experiment(name, out, log=lambda s: typer.echo(s, err=True), **kw)
    typer.echo(result["markdown"].read_text())
    typer.echo(f"{name} done in {time.perf_counter() - t:.0f}s → {result['markdown']}, {result['csv']}, "
               f"{result['figure']}")


def _experiment_options(name: str, given: dict, *, model: str, n, cfg: float, seed: int) -> dict:
    """run_experiment's keyword arguments from the flags; a flag the experiment does not take is a BadParameter."""
    kw: dict = {"seed": seed}
    if n is not None:
        kw["n"] = n
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
            kw["nfes"] = [int(v) for v in given["--nfe"].split(",")]
        except ValueError:
            raise BadParameter(f"--nfe: comma-separated whole numbers, got {given['--nfe']!r}") from None
    if given["--train-steps"] is not None:
        kw["steps"] = given["--train-steps"]
    if given["--data-size"] is not None:
        kw["data_size"] = given["--data-size"]
    if name in ("lr-schedule", "regularization") and model != "builtin":
        raise BadParameter("--model: the training experiments train their own small models")
    return kw


@app.command()
def train(config: Optional[Path] = typer.Option(None, "--config", "-c", help="TOML file (see configs/)"),
          data: Optional[str] = typer.Option(None, "--data", help="'builtin' or a folder of pictures"),
          out: Optional[str] = typer.Option(None, "--out", "-o", help="run folder"),
          steps: Optional[int] = typer.Option(None, "--steps"),
          batch_size: Optional[int] = typer.Option(None, "--batch-size"),
          lr: Optional[float] = typer.Option(None, "--lr"),
          lr_schedule: Optional[str] = typer.Option(None, "--lr-schedule", help="constant, linear, exponential, "
                                                                                 "cosine"),
          precision: Optional[str] = typer.Option(None, "--precision", help="auto, bf16, fp16, no"),
          seed: Optional[int] = typer.Option(None, "--seed"),
          resume: bool = typer.Option(False, "--resume", help="continue the latest checkpoint in the run folder"),
          set_: List[str] = typer.Option([], "--set", help="any option as KEY=VALUE (VALUE in TOML syntax); "
                                                           "model.KEY for the network")):
    """Train a model on the built-in set or a folder; writes RUN/model at the end. Ctrl-C checkpoints and exits."""
    from noisebrush.train import Trainer  # lazy: torch (see the module docstring)

    over = {"data": data, "out_dir": out, "steps": steps, "batch_size": batch_size, "lr": lr,
            "lr_schedule": lr_schedule, "mixed_precision": precision, "seed": seed}
    cfg = _train_config(config, over, parse_sets(set_))
    trainer = Trainer(cfg, resume=resume)
    trainer.command = command_line()
    _fit(trainer, cfg)


def _train_config(config: Optional[Path], over: dict, extra: dict):
    """The TrainConfig: the TOML file (or the defaults), the flags, then the --set values."""
    from noisebrush.train import TrainConfig  # lazy: torch

    if config is None:
        model = extra.pop("model", {})
        return TrainConfig.from_dict({**extra, "model": model}, **over)
    cfg = TrainConfig.from_toml(config, **over)
    if extra:
        d = cfg.to_dict()
        d["model"] = {**d["model"], **extra.pop("model", {})}
        cfg = TrainConfig.from_dict({**d, **extra})
    return cfg


def _fit(trainer, cfg) -> None:
    """Run the trainer under a progress bar; Ctrl-C writes a checkpoint and exits with 130."""
    start = trainer.step
    bar = progress_bar(cfg.steps, "training")
    task = bar.add_task("train", total=cfg.steps, completed=start, info="")
    t0 = time.perf_counter()

    # Ctrl-C only raises a flag; the loop stops at the end of the step. A KeyboardInterrupt raised at an arbitrary
    # point can land inside the progress bar's lock and leave it held, and the bar's shutdown then waits forever
    # (seen once under heavy load). A second Ctrl-C still stops at once.
    stop = []

    def on_sigint(signum, frame):
        if stop:
            raise KeyboardInterrupt
        stop.append(True)

    def progress(step, row):
        rate = (step - start) * cfg.batch_size / max(time.perf_counter() - t0, 1e-9)
        bar.update(task, completed=step, info=f"loss {row['loss']:.4f}  {rate:.1f} img/s  lr {row['lr']:.2e}")
        if stop:
            raise KeyboardInterrupt

    old_handler = signal.signal(signal.SIGINT, on_sigint)
    try:
        with bar:
            path = trainer.fit(progress)
    except KeyboardInterrupt:
        signal.signal(signal.SIGINT, old_handler)
        trainer.close()
        typer.echo(f"interrupted at step {trainer.step}: checkpoint written to {cfg.out_dir}/checkpoints; "
                   f"continue with --resume", err=True)
        _leave(trainer, 130)
        raise typer.Exit(130)
    finally:
        signal.signal(signal.SIGINT, old_handler)
    trainer.close()
    typer.echo(f"trained {trainer.step} steps ({trainer.skipped} skipped) → model in {path}")
    _leave(trainer, 0)


def _leave(trainer, code: int) -> None:
    """A worker of a multi-process run exits without torch's teardown (see ``noisebrush.train.leave_worker``)."""
    if trainer.acc.num_processes > 1:
        from noisebrush.train import leave_worker  # lazy: torch

        leave_worker(code)


def parse_sets(items: list[str]) -> dict:
    """``--set KEY=VALUE`` items as a dict (VALUE in TOML syntax, else a bare string; ``model.KEY`` nests)."""
    out: dict = {}
    for item in items:
        if "=" not in item:
            raise BadParameter(f"--set: expected KEY=VALUE, got {item!r}")
        key, value = item.split("=", 1)
        try:
            parsed = tomllib.loads(f"v = {value}")["v"]
        except tomllib.TOMLDecodeError:
            parsed = value  # a bare word: a string
        if key.startswith("model."):
            out.setdefault("model", {})[key[6:]] = parsed
        else:
            out[key] = parsed
    return out
