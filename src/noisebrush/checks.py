"""Shared validators for user-facing parameters: each returns the value normalised or raises
:class:`noisebrush.errors.BadParameter` with one line that names the parameter.

    steps = whole("steps", steps, 1, 10_000)
    cfg = number("cfg", cfg, 0.0, 100.0)
    strength = number("strength", strength, 0.0, 1.0)

Bounds are inclusive; ``above=True`` makes the lower bound exclusive, ``below=True`` the upper one.

Budgets (steps, pictures, frames, jumps, training steps …) share one table, :data:`LIMITS`: each has a hard maximum
(refused) and a soft one (the usual range; beyond it the work runs, and the front end warns with a measured ETA).
The README's "Limits" table is this table.

    steps = limited("--steps", steps, "steps")           # BadParameter above LIMITS["steps"].hard
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from noisebrush.errors import BadParameter

__all__ = ["whole", "number", "whole_list", "text", "Limit", "LIMITS", "limited"]


@dataclass(frozen=True)
class Limit:
    """A parameter's range: ``lo`` ≤ v ≤ ``hard`` is accepted; above ``soft`` it is unusual (warned, with an ETA)."""
    lo: float
    soft: float
    hard: float
    what: str  # what the number counts, for the README table and messages
    integer: bool = True


LIMITS: dict[str, Limit] = {
    "steps": Limit(1, 200, 10_000, "sampler steps of one picture"),
    "n": Limit(1, 64, 10_000, "pictures per prompt"),
    "frames": Limit(2, 120, 2_000, "morph frames"),
    "jumps": Limit(1, 10, 100, "RePaint passes over each stretch"),
    "best_of": Limit(1, 16, 256, "candidates per picture"),
    "train_steps": Limit(1, 100_000, 10_000_000, "training steps"),
    "finetune_steps": Limit(1, 5_000, 1_000_000, "fine-tuning steps"),
    "batch_size": Limit(1, 512, 4_096, "pictures per training step"),
}


def limited(name: str, v, key: str):
    """``v`` checked against ``LIMITS[key]`` (type, ``lo`` and ``hard``); the error names ``name`` (the flag)."""
    lim = LIMITS[key]
    if lim.integer:
        return whole(name, v, int(lim.lo), int(lim.hard))
    return number(name, v, lim.lo, lim.hard)


def _range(lo, hi, *, above: bool = False, below: bool = False) -> str:
    if lo is not None and hi is not None and not above and not below:
        return f"from {lo:g} to {hi:g}"
    parts = []
    if lo is not None:
        parts.append(f"{'>' if above else '≥'} {lo:g}")
    if hi is not None:
        parts.append(f"{'<' if below else '≤'} {hi:g}")
    return " and ".join(parts)


def whole(name: str, v, lo: int | None = None, hi: int | None = None) -> int:
    """A whole number (not a bool) with lo ≤ v ≤ hi."""
    if isinstance(v, bool) or not isinstance(v, int) or (lo is not None and v < lo) or (hi is not None and v > hi):
        rng = _range(lo, hi)
        raise BadParameter(f"{name}: a whole number{' ' + rng if rng else ''}, got {v!r}")
    return v


def number(name: str, v, lo: float | None = None, hi: float | None = None, *, above: bool = False,
           below: bool = False) -> float:
    """A finite number (int or float, not a bool) inside the bounds; returned as float."""
    if isinstance(v, bool):
        raise BadParameter(f"{name}: a number, got {v!r}")
    try:
        f = float(v)
    except (TypeError, ValueError):
        raise BadParameter(f"{name}: a number, got {v!r}") from None
    if not math.isfinite(f):
        raise BadParameter(f"{name}: a finite number, got {v!r}")
    if lo is not None and (f < lo or (above and f == lo)) or hi is not None and (f > hi or (below and f == hi)):
        raise BadParameter(f"{name}: a number {_range(lo, hi, above=above, below=below)}, got {v!r}")
    return f


def whole_list(name: str, values, lo: int | None = None, hi: int | None = None) -> list[int]:
    """A non-empty list of whole numbers inside the bounds."""
    vals = list(values)
    if not vals or any(isinstance(v, bool) or not isinstance(v, int) or (lo is not None and v < lo)
                       or (hi is not None and v > hi) for v in vals):
        rng = _range(lo, hi)
        raise BadParameter(f"{name}: whole numbers{' ' + rng if rng else ''}, got {vals}")
    return vals


def text(name: str, v, *, max_len: int = 10_000, one_line: bool = False) -> str:
    """A string of at most ``max_len`` characters (on one line when asked)."""
    if not isinstance(v, str):
        raise BadParameter(f"{name}: text, got {v!r}")
    if len(v) > max_len:
        raise BadParameter(f"{name}: at most {max_len} characters, got {len(v)}")
    if one_line and ("\n" in v or "\r" in v):
        raise BadParameter(f"{name}: one line of text, got {v!r}")
    return v
