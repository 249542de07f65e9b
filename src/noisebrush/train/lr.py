"""Learning-rate schedules, built from torch's own schedulers (nothing hand-rolled).

Every schedule is "warmup, then decay": a linear warmup over ``warmup`` optimizer steps, lr(s) = base·(s+1)/warmup,
followed by one of

* ``constant``     lr = base
* ``linear``       base → base·final, linearly over the remaining steps
* ``exponential``  lr = base·γ^k with γ = final^(1/remaining), so it also reaches base·final at the last step
* ``cosine``       base → base·final along half a cosine (CosineAnnealingLR)

``s`` counts optimizer steps taken (``scheduler.step()`` is called once after each). Past ``total_steps`` (a resumed
run told to go on longer) the trainer stops stepping the scheduler, so the LR holds its final value; the closed
form :func:`expected_lr` says the same.

    sched = make_scheduler(opt, "cosine", total_steps=10_000, warmup=200, final=0.05)

A run with a time budget does not know its total up front: :class:`ProgressPlan` lays the same shapes over the
run's *progress*, which a re-plan bends without a jump, and :class:`PlannedLR` is the scheduler that reads it
(:mod:`noisebrush.train.budget`).
"""
from __future__ import annotations

import math
import warnings

import torch
from torch.optim.lr_scheduler import ConstantLR, CosineAnnealingLR, ExponentialLR, LinearLR, SequentialLR

from noisebrush.errors import BadParameter

__all__ = ["LR_SCHEDULES", "make_scheduler", "expected_lr", "shape_at", "ProgressPlan", "PlannedLR"]

LR_SCHEDULES = ("constant", "linear", "exponential", "cosine")


def _check(kind: str, total_steps: int, warmup: int, final: float) -> None:
    if kind not in LR_SCHEDULES:
        raise BadParameter(f"lr_schedule: one of {', '.join(LR_SCHEDULES)}; got {kind!r}")
    if total_steps < 1:
        raise BadParameter(f"steps: must be ≥ 1, got {total_steps}")
    if not 0 <= warmup < total_steps:
        raise BadParameter(f"warmup: must be in [0, steps), got {warmup} with steps={total_steps}")
    if not 0 <= final <= 1 or (kind == "exponential" and final <= 0):
        raise BadParameter(f"lr_final: a fraction of the base LR in {'(0' if kind == 'exponential' else '[0'}, 1], "
                           f"got {final}")


def make_scheduler(optimizer: torch.optim.Optimizer, kind: str, total_steps: int, *, warmup: int = 0,
                   final: float = 0.0):
    _check(kind, total_steps, warmup, final)
    main_steps = total_steps - warmup
    if kind == "constant":
        main = ConstantLR(optimizer, factor=1.0, total_iters=0)
    elif kind == "linear":
        main = LinearLR(optimizer, start_factor=1.0, end_factor=final, total_iters=main_steps)
    elif kind == "exponential":
        main = ExponentialLR(optimizer, gamma=final ** (1.0 / main_steps))
    else:
        base = optimizer.param_groups[0]["lr"]
        main = CosineAnnealingLR(optimizer, T_max=main_steps, eta_min=base * final)
    if warmup == 0:
        return main
    if warmup == 1:
        ramp = ConstantLR(optimizer, factor=1.0, total_iters=0)
    else:
        ramp = LinearLR(optimizer, start_factor=1.0 / warmup, end_factor=1.0, total_iters=warmup - 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch warns about step order while constructing chained schedulers
        return SequentialLR(optimizer, [ramp, main], milestones=[warmup])


def expected_lr(kind: str, step: int, total_steps: int, *, base: float, warmup: int = 0, final: float = 0.0) -> float:
    """The closed form of the schedule at optimizer step ``step`` (for tests and plots)."""
    _check(kind, total_steps, warmup, final)
    if step < warmup:
        return base * (step + 1) / warmup
    k = step - warmup
    m = total_steps - warmup
    if kind == "constant":
        return base
    if kind == "linear":
        return base * (1 + (final - 1) * min(k, m) / m)
    if kind == "exponential":
        return base * final ** (min(k, m) / m)
    k = min(k, m)
    return base * final + (base - base * final) * (1 + math.cos(math.pi * k / m)) / 2


# -- a plan made and re-made as the run goes (noisebrush train --minutes) -------------------------------------------

def shape_at(kind: str, k: float, final: float) -> float:
    """The decay part of a schedule as a multiple of the base LR at fraction ``k`` ∈ [0, 1] of the decay."""
    k = min(max(k, 0.0), 1.0)
    if kind == "constant":
        return 1.0
    if kind == "linear":
        return 1 + (final - 1) * k
    if kind == "exponential":
        return final ** k
    return final + (1 - final) * (1 + math.cos(math.pi * k)) / 2


class ProgressPlan:
    """An LR schedule over a number of steps that is planned and re-planned while the run goes (a time budget).

    The schedule is a function of the run's *progress* u ∈ [0, 1]: warmup over u ∈ [0, ``warmup``] (a fraction of
    the run), then the decay of ``kind`` to ``final`` over the rest, the same shapes as :func:`expected_lr`. A plan
    made at step s says "the run ends at step T": from s on, u grows linearly from u(s) to 1 at T. A re-plan at a
    later step only changes that slope from there on, so u — and with it the LR — has no jump: the step after a
    re-plan in the decay gets exactly the LR the old plan gave it, and the curve then bends towards the new end.
    Held as ``segments``, ``[start step, progress there, planned end]``, so the LR of any step is a closed form
    and the plan travels in a checkpoint as a few numbers (JSON; floats round-trip exactly).

    With one plan made at step s0 and never changed, step s0 + j gets :func:`expected_lr` of step j in a run of
    T − s0 steps with ``warmup`` × (T − s0) warmup steps. Before the first plan (a time budget's throughput probe)
    the LR is 0; past the last planned end it holds its final value.
    """

    def __init__(self, kind: str, *, final: float):
        _check(kind, 2, 0, final)
        self.kind, self.final = kind, float(final)
        self.warmup = 0.0            # fraction of the run
        self.segments: list[list] = []

    # -- planning --------------------------------------------------------------------------------------------------
    def start(self, step: int, end: int, warmup_steps: int) -> None:
        """The first plan: from ``step`` to ``end`` with ``warmup_steps`` of warmup (< end − step)."""
        if self.segments:
            raise ValueError("the plan has started already")
        span = int(end) - int(step)
        if span < 1 or not 0 <= warmup_steps < span:
            raise BadParameter(f"warmup: must be in [0, {span}) steps for a plan of {span} steps, got {warmup_steps}")
        self.warmup = warmup_steps / span
        self.segments = [[int(step), 0.0, int(end)]]

    def replan(self, step: int, end: int) -> bool:
        """From ``step`` on the run ends at ``end`` (≤ step: it ends now); True when that changed the plan."""
        step, end = int(step), max(int(end), int(step))
        if not self.segments or step < self.segments[-1][0]:
            raise ValueError("replan: start the plan first, and re-plan forwards")
        if end == self.end:
            return False
        u = self.progress(step)
        if self.segments[-1][0] == step:
            self.segments[-1] = [step, self.segments[-1][1], end]
        else:
            self.segments.append([step, u, end])
        return True

    @property
    def started(self) -> bool:
        return bool(self.segments)

    @property
    def end(self) -> int | None:
        """The step the plan ends at (None before the first plan)."""
        return self.segments[-1][2] if self.segments else None

    # -- reading ---------------------------------------------------------------------------------------------------
    def progress(self, step: int) -> float:
        """u before optimizer step ``step`` (0 before the plan starts, 1 from its end on)."""
        if not self.segments or step <= self.segments[0][0]:
            return 0.0
        for s0, u0, end in reversed(self.segments):
            if step >= s0:
                if end <= s0 or step >= end:
                    return 1.0
                return u0 + ((step - s0) * (1.0 - u0)) / (end - s0)
        return 0.0  # pragma: no cover - step < the first segment's start is handled above

    def factor(self, step: int) -> float:
        """The LR of optimizer step ``step`` as a multiple of the base LR."""
        if not self.segments or step < self.segments[0][0]:
            return 0.0  # the probe, before the first plan
        w = self.warmup
        after = self.progress(step + 1)
        if w > 0 and after <= w:
            return after / w
        return shape_at(self.kind, (self.progress(step) - w) / (1 - w), self.final)

    def state_dict(self) -> dict:
        return {"kind": self.kind, "final": self.final, "warmup": self.warmup,
                "segments": [list(s) for s in self.segments]}

    def load_state_dict(self, state: dict) -> None:
        self.kind, self.final, self.warmup = state["kind"], float(state["final"]), float(state["warmup"])
        self.segments = [[int(s), float(u), int(e)] for s, u, e in state["segments"]]


class PlannedLR:
    """An LR scheduler driven by a :class:`ProgressPlan`: before optimizer step s every parameter group's LR is its
    base LR × ``plan.factor(s)``. ``step()`` is called once after each optimizer step, as a torch scheduler's;
    :meth:`apply` sets the LR again after a re-plan. Its state is the step count (the plan is saved by its owner)."""

    def __init__(self, optimizer: torch.optim.Optimizer, plan: ProgressPlan, count: int = 0):
        self.optimizer, self.plan, self.count = optimizer, plan, int(count)
        self.base_lrs = [float(g.get("initial_lr", g["lr"])) for g in optimizer.param_groups]
        self.apply()

    def apply(self) -> None:
        f = self.plan.factor(self.count)
        for g, base in zip(self.optimizer.param_groups, self.base_lrs):
            g["lr"] = base * f

    def step(self) -> None:
        self.count += 1
        self.apply()

    def get_last_lr(self) -> list[float]:
        return [g["lr"] for g in self.optimizer.param_groups]

    def state_dict(self) -> dict:
        return {"count": self.count, "base_lrs": list(self.base_lrs)}

    def load_state_dict(self, state: dict) -> None:
        self.count = int(state["count"])
        self.base_lrs = [float(b) for b in state.get("base_lrs", self.base_lrs)]
        self.apply()
