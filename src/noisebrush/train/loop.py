"""The training loop: one optimizer step at a time over an objective, with Hugging Face Accelerate.

    from noisebrush.train import Trainer, TrainConfig
    Trainer(TrainConfig(steps=2000, out_dir="runs/try")).fit()                  # EDM on the config's data
    Trainer(cfg, objective=MyObjective()).fit()                                 # any other objective

*What* is learned is an objective's business (:mod:`noisebrush.train.objectives`: its networks, optimizers, data and
losses); this module does the rest, the same for every objective. :class:`Loop` is the step engine (also used on its
own by fine-tuning, :mod:`noisebrush.workflows.finetune`); :class:`Trainer` is a run on it: config, run folder,
log, checkpoints, resume, previews, export.

The same code runs on one CPU, one GPU, or many processes (``accelerate launch`` / ``torchrun``): Accelerate handles
devices, mixed precision and DDP; the loop decides *what* is computed, so results do not depend on how the work is
split:

* **A global sample stream.** Optimizer step s consumes the global samples k = s·B … s·B+B−1 (B = ``batch_size``);
  processes and accumulation steps take equal slices of that global batch, and an objective draws everything about
  sample k from (seed, k) (:mod:`noisebrush.train.stream`). With the same global batch, 1 process or 8 see the same
  samples with the same noise. Dropout masks come from torch's global RNG, seeded per micro-batch from
  (seed, step, micro-batch, process).
* **Exact resume.** All randomness is a function of (seed, step, sample), so a checkpoint only has to hold weights,
  EMA, optimizer and scheduler state and the step: resuming ends bit-identical to an uninterrupted run (CPU, same
  settings). Checkpoints are atomic (see :mod:`noisebrush.train.checkpoint`). A resumed run may stop at another
  step count: its LR schedule keeps the plan it was built for (``lr_steps``, recorded in checkpoints) and holds
  its final value past it.
* **A time budget.** ``minutes`` instead of ``steps``: the run measures its own speed and plans (and re-plans) the
  steps that fill the budget (:mod:`noisebrush.train.budget`); the LR schedule follows the planned steps without
  jumps (:class:`noisebrush.train.lr.ProgressPlan`). The plan is saved in every checkpoint and in the run's
  config.json and provenance; a resumed run continues it.
* **A guard.** A phase whose loss or gradient is not finite is skipped and the step counted as skipped; that
  part's weights, optimizer moments and EMA are left untouched (the LR schedule still advances with the step count,
  and so does the data stream).
* **Per phase**, after the micro-batches' gradients are accumulated: clip the gradient norm, guard, optimizer step,
  weight projection (``net.project_()``, EDM2's forced weight normalisation), EMA update, clear every part's
  gradients, scheduler step.
"""
from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import json
import logging
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from noisebrush import __version__
from noisebrush.devices import cpu_bf16_fast, cpu_features, hardware_name, has_accelerator
from noisebrush.errors import BadParameter, UserError, warn
from noisebrush.io import model_folder
from noisebrush.io.atomic import atomic_write_text
from noisebrush.io.images import make_grid, save_image
from noisebrush.seeding import mix
from noisebrush.train.budget import TimeBudget
from noisebrush.train.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from noisebrush.train.config import TrainConfig
from noisebrush.train.gan import GANObjective
from noisebrush.train.lr import PlannedLR, ProgressPlan
from noisebrush.train.objectives import EDMObjective, Objective, Part, Phase, build_dataset
from noisebrush.train.shape import ShapeObjective
from noisebrush.train.video import VideoObjective

__all__ = ["Loop", "Trainer", "StepResult", "SIGMA_BUCKETS", "leave_worker", "build_dataset",
           "resolve_precision"]

log = logging.getLogger("noisebrush.train")

# σ bucket edges for the per-noise-level loss in the log: (<0.1, 0.1–0.3, 0.3–1, 1–3, 3–10, >10)
SIGMA_BUCKETS = (0.1, 0.3, 1.0, 3.0, 10.0)
_LOG_FIELDS = ["step", "loss", *[f"loss_s{i}" for i in range(len(SIGMA_BUCKETS) + 1)], "lr", "grad_norm", "img_s",
               "skipped", "time"]


@dataclass
class StepResult:
    """What one optimizer step reports (loss, gradient norm and LR of its first phase)."""
    step: int
    loss: float
    grad_norm: float
    skipped: bool
    lr: float
    stats: dict | None = None  # this step's averages of the objective's log_fields (GANs: D and G losses, …)


def resolve_precision(asked: str) -> str:
    """``auto`` → bf16 where the hardware runs it fast (a GPU, or a CPU with native bf16), else no."""
    mp = asked
    if mp == "auto":
        mp = "bf16" if (has_accelerator() or cpu_bf16_fast()) else "no"
    if mp == "fp16" and not has_accelerator():
        raise BadParameter("mixed_precision: fp16 needs a GPU; use bf16 or no on the CPU")
    return mp


class Loop:
    """The step engine: ``Loop(objective, accelerator, batch_size=…)`` builds the objective's parts, prepares them
    with Accelerate, and :meth:`train_step` runs one optimizer step of every phase.

    ``dropout_seed``: seed torch's global RNG per micro-batch from (dropout_seed, step, micro-batch, process), so
    dropout masks are a function of the step (None: leave the global RNG alone). ``autocast``: a function returning
    the context an objective runs its forward pass in (default: Accelerate's, for its mixed precision)."""

    cfg = None  # a Trainer's TrainConfig (objectives that read one get it here)
    out: Path | None = None
    lr_steps: int | None = None  # the steps the LR schedules were planned for (None: step them every step)

    def __init__(self, objective: Objective, accelerator, *, batch_size: int, grad_accum: int = 1,
                 dropout_seed: int | None = None, autocast=None):
        self._attach(objective, accelerator, batch_size, grad_accum, dropout_seed, autocast)
        self.parts = objective.build(self)
        self._prepare()

    def _attach(self, objective, accelerator, batch_size, grad_accum, dropout_seed, autocast) -> None:
        self.objective, self.acc = objective, accelerator
        world = accelerator.num_processes
        if batch_size % (world * grad_accum):
            raise BadParameter(f"batch_size: {batch_size} must be divisible by processes × grad_accum = "
                               f"{world} × {grad_accum}")
        self.batch_size, self.grad_accum = batch_size, grad_accum
        self.micro = batch_size // (world * grad_accum)
        self._seed = dropout_seed
        self.autocast = autocast or accelerator.autocast
        self.step = 0
        self.skipped = 0
        self.train_seconds = 0.0

    def _prepare(self, optimizer_states: dict | None = None) -> None:
        """Move the parts to the device, hand them to Accelerate, then restore optimizer states (resume)."""
        dev = self.acc.device
        for part in self.parts.values():
            part.net.to(dev)
            if part.ema is not None:
                part.ema.model.to(dev)
        for name, part in self.parts.items():
            part.module, part.optimizer = self.acc.prepare(part.net, part.optimizer)
            if optimizer_states and optimizer_states.get(name) is not None:
                part.optimizer.load_state_dict(optimizer_states[name])
        self.objective.prepared(self)

    @property
    def main(self) -> Part:
        """The first part: the one exported and previewed."""
        return next(iter(self.parts.values()))

    def _mask_seed(self) -> int | None:
        return self._seed

    # -- one optimizer step ---------------------------------------------------------------------------------------
    def train_step(self) -> StepResult:
        t0 = time.perf_counter()
        first, skipped, stats = None, False, {}
        for p, phase in enumerate(self.objective.phases(self.step)):
            res = self._run_phase(p, phase)
            first = first or res
            skipped = skipped or res["skipped"]
            stats.update(res["stats"])
        if skipped:
            self.skipped += 1
        self.step += 1
        stats.update({k: torch.tensor([float(v)]) for k, v in self.objective.step_done(self.step).items()})
        dt = time.perf_counter() - t0
        self.train_seconds += dt
        self._record(first["logged"], first["sigma"], dt, first["gnorm"], skipped, stats)
        return StepResult(self.step, float(first["logged"].mean()), first["gnorm"], skipped, first["lr"],
                          {k: float(v.float().mean()) for k, v in stats.items()} or None)

    def _accumulate(self, p: int, phase: Phase, part: Part) -> dict:
        """Forward and backward over the phase's micro-batches (this process's slices of the global batch)."""
        acc = self.acc
        world, rank, accum, b = acc.num_processes, acc.process_index, self.grad_accum, self.micro
        per_sample, logged, sigma, stats = [], [], [], {}
        for a in range(accum):
            start = self.step * self.batch_size + (a * world + rank) * b
            batch = phase.batch(range(start, start + b))
            seed = self._mask_seed()
            if seed is not None:  # dropout masks: a function of the step
                torch.manual_seed(mix(seed, self.step, a, rank, 0xD0) if p == 0 else
                                  mix(seed, self.step, a, rank, p, 0xD0))
            sync = contextlib.nullcontext() if a == accum - 1 else acc.no_sync(part.module)
            with sync:
                loss = phase.loss(batch, a, accum)
                acc.backward(loss.value)
            per_sample.append(loss.per_sample)
            logged.append(loss.per_sample if loss.logged is None else loss.logged)
            if loss.sigma is not None:
                sigma.append(loss.sigma)
            for k, v in (loss.stats or {}).items():
                stats.setdefault(k, []).append(v.detach().float().reshape(-1).cpu())
        return {"per": torch.cat(per_sample), "logged": torch.cat(logged),
                "sigma": torch.cat(sigma) if sigma else None, "stats": {k: torch.cat(v) for k, v in stats.items()}}

    def _run_phase(self, p: int, phase: Phase) -> dict:
        acc, part = self.acc, self.parts[phase.part]
        part.module.train()
        out = self._accumulate(p, phase, part)
        max_norm = part.grad_clip if part.grad_clip else float("inf")
        gnorm = acc.clip_grad_norm_(part.module.parameters(), max_norm)
        gnorm = torch.as_tensor(gnorm, dtype=torch.float32, device=acc.device).reshape(())
        ok = torch.isfinite(gnorm) & torch.isfinite(out["per"]).all()
        ok = acc.reduce(ok.to(torch.float32).reshape(1), "sum").item() == acc.num_processes
        if ok:
            part.optimizer.step()
            if part.project and hasattr(part.net, "project_"):
                part.net.project_()  # forced weight normalisation (EDM2)
            if part.ema is not None:
                part.ema.update(part.net)
        else:
            log.warning("step %d skipped%s: loss or gradient is not finite", self.step,
                        f" ({phase.part})" if len(self.parts) > 1 else "")
        for other in self.parts.values():  # also what this phase's backward left in other parts (a generator's
            other.optimizer.zero_grad(set_to_none=True)  # loss goes through the discriminator)
        lr = part.optimizer.param_groups[0]["lr"]
        if self.lr_steps is None or self.step < self.lr_steps:  # past the schedule's plan: hold its last LR
            part.scheduler.step()
        return {**out, "gnorm": float(gnorm), "skipped": not ok, "lr": lr}

    def _record(self, per, sigma, dt, gnorm, skipped, stats=None) -> None:
        """What a step leaves for the log (a Trainer keeps a window of it)."""


class Trainer(Loop):
    """A training run: :class:`Loop` + a :class:`TrainConfig`, a run folder (log.csv, checkpoints, samples, the
    exported model), exact resume and Ctrl-C. ``objective`` defaults to :class:`EDMObjective` (for ``task =
    "video"``: :class:`~noisebrush.train.video.VideoObjective`; ``"shape"``:
    :class:`~noisebrush.train.shape.ShapeObjective`) over ``dataset``
    (default: the config's) with ``text_encoder``; ``resume``: True (the latest checkpoint) or a checkpoint
    folder; ``accelerator``: an Accelerate ``Accelerator`` (default: one for this machine and the precision)."""

    def __init__(self, config: TrainConfig, *, objective: Objective | None = None, dataset=None, resume=False,
                 text_encoder=None, accelerator=None):
        # lazy: Accelerate takes ~3 s to import (measured); `noisebrush.train` is imported where nothing trains
        from accelerate import Accelerator, DistributedDataParallelKwargs

        if objective is not None and (dataset is not None or text_encoder is not None):
            raise BadParameter("dataset, text_encoder: give them to the objective (they are EDMObjective's)")
        self.cfg = cfg = config
        self.precision = resolve_precision(cfg.mixed_precision)
        if objective is None:
            kind = {"video": VideoObjective, "shape": ShapeObjective}.get(cfg.task, EDMObjective)
            if cfg.method != "diffusion":
                kind = GANObjective
            objective = kind(dataset=dataset, text_encoder=text_encoder)
        # DDP (several processes) looks for the weights a process's backward left out only where the objective
        # says there can be some (see Objective.unused_parameters): the search costs a walk of the graph a step
        ddp = [DistributedDataParallelKwargs(find_unused_parameters=True)] if objective.unused_parameters(cfg) else []
        acc = accelerator or Accelerator(cpu=not has_accelerator(), mixed_precision=self.precision,
                                         kwargs_handlers=ddp)
        self._attach(objective, acc, cfg.batch_size, cfg.grad_accum, cfg.seed, None)
        self.out = Path(cfg.out_dir)
        if self.out.exists() and not self.out.is_dir():
            raise UserError(f"{self.out}: exists and is not a folder (out_dir)")
        if not resume and latest_checkpoint(self.out) is not None:
            raise UserError(f"{self.out} already holds checkpoints; resume it (--resume) or choose another out_dir")
        self.command: str | None = None  # how the run was started, recorded in the model's provenance
        # monitor(trainer) -> {column: value}: measured every sample_every steps into the log's objective columns
        # (a GAN's recall estimate: noisebrush.eval.monitor.recall_monitor; the train layer cannot import eval)
        self.monitor = None
        # where the weights descend from (provenance), also after a resume: the run's own config names it
        self.init_from: str | None = str(cfg.init) if cfg.init else None
        checkpoint = self._checkpoint_to_resume(resume) if resume else None
        self.budget: TimeBudget | None = None
        if cfg.minutes is None:
            # the LR schedule's plan: this run's steps, or the resumed run's (a resume may stop elsewhere; past
            # the plan the LR holds its final value)
            self.lr_steps = cfg.steps if checkpoint is None else _planned_steps(checkpoint, cfg.steps)
            self.parts = objective.build(self)
        else:
            self.parts = self._build_for_budget(objective)
        optimizer_states = None
        if resume:
            optimizer_states = self._resume(checkpoint)
        elif cfg.init:
            objective.init_weights(cfg.init)
            log.info("initialised from %s", cfg.init)
        self._prepare(optimizer_states)
        self._window = self._new_window()

    clock = staticmethod(time.perf_counter)  # what a time budget's "spent" is measured with (a test's own clock)

    def _build_for_budget(self, objective: Objective) -> dict:
        """A budget run's parts: the objective builds them as for a step-count run (its schedulers are made for
        a placeholder of one step, its config seen without the budget), then every part's scheduler becomes a
        :class:`PlannedLR` on the run's one :class:`ProgressPlan`."""
        cfg = self.cfg
        self.lr_steps = None  # the plan holds the LR past its end itself
        self.cfg = dataclasses.replace(cfg, minutes=None, steps=1, warmup=0)
        try:
            parts = objective.build(self)
        finally:
            self.cfg = cfg
            objective.cfg = cfg
        self.budget = TimeBudget(cfg.minutes * 60.0, ProgressPlan(cfg.lr_schedule, final=cfg.lr_final),
                                 warmup=cfg.warmup)
        for part in parts.values():
            part.scheduler = PlannedLR(part.optimizer, self.budget.plan)
        return parts

    @property
    def planned_steps(self) -> int | None:
        """Where the run will stop: ``steps``, or a budget run's planned end (None during its probe)."""
        return self.cfg.steps if self.budget is None else self.budget.stop_step(self.step)

    def budget_tick(self, spent: float) -> bool:
        """A budget run, after an optimizer step with ``spent`` seconds spent so far: re-plan when due (and set
        the new plan's LR for the next step). True when the run should stop now. What ``fit`` calls after every
        step with its wall time; a caller that drives :meth:`train_step` itself calls it with its own clock."""
        if self.budget.tick(self.step, spent):
            for part in self.parts.values():
                part.scheduler.apply()
        return self.budget.done(self.step, spent)

    def _spent(self, since: float, before: float) -> float:
        """A budget run's seconds spent: ``before`` (a resumed run's, from its checkpoint) plus this clock's time
        since ``since``; the same number on every process (their mean), so all stop at the same step."""
        spent = before + self.clock() - since
        if self.acc.num_processes > 1:
            spent = float(self.acc.reduce(torch.tensor([spent], dtype=torch.float64, device=self.acc.device),
                                          "mean").item())
        return spent

    def _mask_seed(self) -> int:
        return self.cfg.seed  # read at every step: the config is the run's

    # -- the main part and the EDM objective's pieces, as attributes of the run ------------------------------------
    net = property(lambda self: self.main.net, doc="the main network (plain, float32 master weights)")
    model = property(lambda self: self.main.module, doc="the main network as Accelerate prepared it")
    ema = property(lambda self: self.main.ema, doc="the main network's EMA")
    opt = property(lambda self: self.main.optimizer, doc="the main network's optimizer")

    @property
    def sched(self):
        """The main network's LR scheduler (replaceable: the loop calls its ``step()`` after every step)."""
        return self.main.scheduler

    @sched.setter
    def sched(self, value) -> None:
        self.main.scheduler = value

    # the EDM objective's data and network description, read as the run's own (as before objectives existed)
    dataset = property(lambda self: self.objective.dataset)
    condition = property(lambda self: self.objective.condition)
    text = property(lambda self: self.objective.text, doc="the text encoder (text-conditioned runs)")
    net_config = property(lambda self: self.objective.net_config)
    den = property(lambda self: self.objective.den, doc="the preconditioned (prepared) main network")

    def preview_conditions(self, n: int = 16) -> dict:
        return self.objective.preview_conditions(n)

    def batch(self, ks) -> dict:
        """The main objective's micro-batch of the global samples ``ks``."""
        return self.objective.batch(ks)

    # -- resume ---------------------------------------------------------------------------------------------------
    def _checkpoint_to_resume(self, resume) -> Path:
        path = latest_checkpoint(self.out) if resume is True else Path(resume)
        if path is None:
            raise UserError(f"nothing to resume: {self.out} has no checkpoints")
        return path

    def _resume(self, path: Path) -> dict:
        """Load the checkpoint's weights, EMA, scheduler, counters and RNG; returns the optimizer states (they are
        loaded once Accelerate has prepared the optimizers)."""
        ck = load_checkpoint(path)
        if (ck.get("budget") is None) != (self.budget is None):
            raise UserError(f"{path}: the run was planned by {'steps' if ck.get('budget') is None else 'minutes'}; "
                            f"resume it with {'steps' if ck.get('budget') is None else 'minutes'} (the total)")
        if not self.objective.same_networks(ck["net_config"]):
            raise UserError(f"{path}: the checkpoint's network differs from this config; resume with the same model")
        if self.budget is not None:  # the recorded plan; where this run stops is its own minutes
            self.budget.load_state_dict(ck["budget"])
        names = list(self.parts)
        states = {}
        for name in names:
            saved = ck if name == names[0] else (ck.get("parts") or {}).get(name)
            if saved is None:
                raise UserError(f"{path}: the checkpoint has no network {name!r}; resume with the same objective")
            part = self.parts[name]
            part.net.load_state_dict(saved["model"])
            if part.ema is not None:
                part.ema.load_state_dict(saved["ema"], saved["ema_updates"])
            states[name] = saved["optimizer"]
            part.scheduler.load_state_dict(saved["scheduler"])
        self.step = int(ck["step"])
        self.skipped = int(ck["skipped"])
        self.train_seconds = float(ck.get("train_seconds", 0.0))
        if ck.get("rng_torch") is not None:
            torch.set_rng_state(ck["rng_torch"])
        self.objective.load_state(ck.get("objective"))
        self._truncate_log()
        log.info("resumed from %s at step %d", path, self.step)
        return states

    # -- logging --------------------------------------------------------------------------------------------------
    def _new_window(self):
        nb = len(SIGMA_BUCKETS) + 1
        return {"loss": 0.0, "n": 0, "bucket_sum": torch.zeros(nb, dtype=torch.float64),
                "bucket_n": torch.zeros(nb, dtype=torch.float64), "seconds": 0.0, "images": 0, "gnorm": 0.0,
                "steps": 0, "skipped": 0, "stats": torch.zeros(2 * len(self.objective.log_fields),
                                                               dtype=torch.float64)}

    def _record(self, per, sigma, dt, gnorm, skipped, stats=None):
        w = self._window
        for i, name in enumerate(self.objective.log_fields):  # sums and counts of the objective's own columns
            v = (stats or {}).get(name)
            if v is not None and v.numel():
                v = v.to(torch.float64)[torch.isfinite(v)]
                w["stats"][2 * i] += float(v.sum())
                w["stats"][2 * i + 1] += v.numel()
        finite = torch.isfinite(per).cpu()
        per64 = per.to(torch.float64).cpu()[finite]
        w["loss"] += float(per64.sum())
        w["n"] += int(per64.numel())
        if sigma is not None:
            idx = torch.bucketize(sigma.cpu()[finite], torch.tensor(SIGMA_BUCKETS, dtype=torch.float64))
            w["bucket_sum"].index_add_(0, idx, per64)
            w["bucket_n"].index_add_(0, idx, torch.ones_like(per64))
        w["seconds"] += dt
        w["images"] += self.cfg.batch_size
        w["gnorm"] += gnorm if math.isfinite(gnorm) else 0.0
        w["steps"] += 1
        w["skipped"] += int(skipped)

    def flush_log(self) -> dict:
        """Write the log's row for the steps since the last one (what ``fit`` does every ``log_every`` steps), for a
        caller that drives :meth:`train_step` itself; returns the row ({} when no step was taken)."""
        return self._flush_log()

    def _note(self, values: dict) -> None:
        """Add measured values of the objective's log columns to the log's window (a monitor's)."""
        for i, name in enumerate(self.objective.log_fields):
            if name in values:
                self._window["stats"][2 * i] += float(values[name])
                self._window["stats"][2 * i + 1] += 1

    def _flush_log(self, tb=None) -> dict:
        w = self._window
        if not w["steps"]:
            return {}
        # all processes saw different samples: sum the window over processes
        stats = torch.cat([torch.tensor([w["loss"], w["n"]], dtype=torch.float64), w["bucket_sum"], w["bucket_n"],
                           w["stats"]])
        stats = self.acc.reduce(stats.to(self.acc.device), "sum").cpu()
        nb = len(SIGMA_BUCKETS) + 1
        own = stats[2 + 2 * nb:]
        loss = float(stats[0] / max(stats[1], 1))
        buckets = stats[2:2 + nb] / stats[2 + nb:2 + 2 * nb].clamp(min=1)
        row = {"step": self.step, "loss": loss, "lr": self.opt.param_groups[0]["lr"],
               "grad_norm": w["gnorm"] / w["steps"], "img_s": w["images"] / max(w["seconds"], 1e-9),
               "skipped": self.skipped, "time": round(self.train_seconds, 3)}
        for i in range(nb):
            row[f"loss_s{i}"] = float(buckets[i]) if stats[2 + nb + i] > 0 else ""
        for i, name in enumerate(self.objective.log_fields):
            row[name] = float(own[2 * i] / own[2 * i + 1]) if own[2 * i + 1] > 0 else ""
        if self.budget is not None:
            row["planned"] = "" if self.budget.plan.end is None else self.budget.plan.end
            row["left_s"] = round(self.budget.left(), 1)
        if self.acc.is_main_process:
            path = self.out / "log.csv"
            new = not path.exists()
            with open(path, "a", newline="") as f:
                wr = csv.DictWriter(f, fieldnames=self._log_fields())
                if new:
                    wr.writeheader()
                wr.writerow(row)
            if tb is not None:
                for k, v in row.items():
                    if k != "step" and v != "":
                        tb.add_scalar(f"train/{k}", v, self.step)
        self._window = self._new_window()
        return row

    def _log_fields(self) -> list[str]:
        return _LOG_FIELDS + list(self.objective.log_fields) + (["planned", "left_s"] if self.budget else [])

    def _truncate_log(self) -> None:
        """After a resume, drop log rows written after the checkpoint (they will be written again)."""
        path = self.out / "log.csv"
        if not path.exists() or not self.acc.is_main_process:
            return
        with open(path, newline="") as f:
            rows = [r for r in csv.DictReader(f) if int(r["step"]) <= self.step]
        buf = io.StringIO()
        wr = csv.DictWriter(buf, fieldnames=self._log_fields())
        wr.writeheader()
        wr.writerows(rows)
        atomic_write_text(path, buf.getvalue())

    # -- samples, checkpoints, the exported model -----------------------------------------------------------------
    def sample(self, n: int = 16, steps: int | None = None, seeds=None) -> torch.Tensor | None:
        """The objective's preview pictures (EMA model, N×C×H×W in [-1, 1]); None if it makes none."""
        return self.objective.sample(n, steps, seeds)

    def save_samples(self) -> Path | None:
        pictures = self.sample()
        if pictures is None:
            return None
        path = self.out / "samples" / f"step-{self.step:07d}.png"
        save_image(make_grid(pictures, cols=getattr(self.objective, "preview_cols", 0) or 4), path)
        return path

    def checkpoint(self) -> Path | None:
        self.acc.wait_for_everyone()
        path = None
        objective = self.objective.state()  # on every process: it may sum counters over them
        if self.acc.is_main_process:
            state = {"skipped": self.skipped, "train_seconds": self.train_seconds,
                     "data": {"seed": self.cfg.seed, "samples_seen": self.step * self.cfg.batch_size,
                              "size": self.objective.data_size()},
                     "net_config": self.objective.describe(), "config": self.cfg.to_dict(),
                     "lr_steps": self.lr_steps, "objective": objective}
            if self.budget is not None:
                state["budget"] = self.budget.state_dict()
            (_, main), *others = self.parts.items()
            extra = {name: {"model": p.net, "ema": p.ema, "optimizer": p.optimizer, "scheduler": p.scheduler}
                     for name, p in others}
            path = save_checkpoint(self.out, self.step, model=main.net, ema=main.ema, optimizer=main.optimizer,
                                   scheduler=main.scheduler, state=state, keep_last=self.cfg.keep_last,
                                   parts=extra or None)
        self.acc.wait_for_everyone()
        return path

    def export(self, path=None) -> Path | None:
        """Write the model folder (config.json + model.safetensors with the main part's EMA weights) through
        :func:`noisebrush.io.model_folder.write`; None when the objective exports nothing."""
        path = Path(path or self.out / "model")
        if not self.acc.is_main_process:
            return path
        conf = self.objective.model_config()
        if conf is None:
            return None
        main = self.main
        state = main.ema.state_dict() if main.ema is not None else main.net.state_dict()
        return model_folder.write(path, state, {**conf, "provenance": self._provenance()}, what="the trained model")

    def _provenance(self) -> dict:
        return {
            "noisebrush": __version__, "command": self.command or "python API", "data": self.cfg.data,
            "init": self.init_from,
            "steps": self.step, "images_seen": self.step * self.cfg.batch_size,
            "train_seconds": round(self.train_seconds, 1), "processes": self.acc.num_processes,
            "precision": self.precision, "hardware": hardware_name(self.acc.device), "cpu": cpu_features(),
            "config": self.cfg.to_dict(),
            **({"minutes": self.cfg.minutes, "plan": self.budget.summary()} if self.budget is not None else {}),
        }

    def _write_run_config(self) -> None:
        """config.json: the training config, what the objective records, and a budget run's plan so far."""
        if self.acc.is_main_process:
            self.out.mkdir(parents=True, exist_ok=True)
            doc = {"train": self.cfg.to_dict(), **self.objective.run_info()}
            if self.budget is not None:
                doc["plan"] = self.budget.summary()
            atomic_write_text(self.out / "config.json", json.dumps(doc, indent=2))

    # -- the run --------------------------------------------------------------------------------------------------
    def fit(self, progress=None) -> Path | None:
        """Train to ``cfg.steps`` (a budget run: until its planned end, or its time is spent); returns the exported
        model folder. ``progress(step, row)`` is called per step (a budget run's row also has ``planned``, the steps
        it plans, and ``left``, its seconds left).

        A KeyboardInterrupt writes a checkpoint first, then propagates.
        """
        cfg = self.cfg
        self._write_run_config()
        tb = _tensorboard(self.out) if self.acc.is_main_process else None
        budget = self.budget
        since, before = self.clock(), (budget.spent if budget is not None else 0.0)
        stop = self.step >= cfg.steps if budget is None else budget.done(self.step, before)
        try:
            while not stop:
                res = self.train_step()
                if budget is None:
                    stop = self.step >= cfg.steps
                else:
                    stop = self.budget_tick(self._spent(since, before))
                if self.monitor is not None and cfg.sample_every and self.step % cfg.sample_every == 0:
                    measured = self.monitor(self)
                    self._note(measured)
                    res.stats = {**(res.stats or {}), **measured}
                row = {}
                if cfg.log_every and self.step % cfg.log_every == 0:
                    row = self._flush_log(tb)
                if progress is not None:
                    extra = {} if budget is None else {"planned": budget.plan.end, "left": budget.left(),
                                                       "stop": budget.stop_step(self.step)}
                    progress(self.step, {"loss": res.loss, "lr": res.lr, "skipped": self.skipped, "log": row,
                                         "stats": res.stats, **extra})
                if cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0 and not stop:
                    self.checkpoint()
                    if budget is not None:
                        self._write_run_config()
                if cfg.sample_every and self.step % cfg.sample_every == 0 and self.acc.is_main_process:
                    self.save_samples()
        except KeyboardInterrupt:
            self._flush_log(tb)
            self.checkpoint()
            raise
        if budget is not None and not budget.plan.started:
            warn(f"minutes: the budget ran out while the run was measuring its speed ({self.step} step"
                 f"{'s' * (self.step != 1)} at LR 0): nothing was learned; give it more minutes")
        try:
            self._flush_log(tb)
            self.checkpoint()
            if budget is not None:
                self._write_run_config()
        except OSError as e:  # the run folder cannot be written any more: the model still goes somewhere
            path = self.export()  # (to the rescue folder, raising a UserError that names it, when it must)
            raise UserError(f"{self.out}: the last checkpoint could not be written ({e.strerror or e}); the "
                            f"trained model is in {path}") from None
        if tb is not None:
            tb.close()
        return self.export()

    def close(self) -> None:
        """End the run: waits for every process and tears down the process group (call once, at the end)."""
        self.acc.wait_for_everyone()
        self.acc.end_training()


def _planned_steps(checkpoint: Path, default: int) -> int:
    """The steps a checkpoint's LR schedule was planned for (older checkpoints: the steps of their config)."""
    try:
        doc = json.loads((Path(checkpoint) / "state.json").read_text())
        plan = doc.get("lr_steps") or (doc.get("config") or {}).get("steps")
        return int(plan) if plan else default
    except (OSError, ValueError, TypeError, AttributeError):
        return default  # load_checkpoint says what is wrong with it


def leave_worker(code: int = 0):
    """End a worker of a multi-process run: flush, then leave without the interpreter's teardown.

    With torch 2.13 on CPU, once DistributedDataParallel has checked parameter shapes across processes, the gloo
    process group outlives ``destroy_process_group`` (its worker threads keep running; measured: three threads
    named gloo_tcp_loop / pt_gloo_runloop after the destroy). They are torn down at interpreter exit, and about one
    run in 25 on a busy machine then aborts with "terminate called without an active exception" — after every
    file was written, but with a failing exit status. Call this after ``Trainer.close()`` when
    ``trainer.acc.num_processes > 1``; a single-process run can simply return.
    """
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    logging.shutdown()
    os._exit(code)


def _tensorboard(out: Path):
    try:  # lazy: tensorboard is optional; imported only here, where its absence is handled
        from torch.utils.tensorboard import SummaryWriter
    except Exception:
        return None
    return SummaryWriter(str(out / "tb"))
