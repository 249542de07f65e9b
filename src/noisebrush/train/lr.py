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
"""
from __future__ import annotations

import math
import warnings

import torch
from torch.optim.lr_scheduler import ConstantLR, CosineAnnealingLR, ExponentialLR, LinearLR, SequentialLR

from noisebrush.errors import BadParameter

__all__ = ["LR_SCHEDULES", "make_scheduler", "expected_lr"]

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
