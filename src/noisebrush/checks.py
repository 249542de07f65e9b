"""Shared validators for user-facing parameters: each returns the value normalised or raises
:class:`noisebrush.errors.BadParameter` with one line that names the parameter.

    steps = whole("steps", steps, 1, 10_000)
    cfg = number("cfg", cfg, 0.0, 100.0)
    strength = number("strength", strength, 0.0, 1.0)

Bounds are inclusive; ``above=True`` makes the lower bound exclusive, ``below=True`` the upper one.
"""
from __future__ import annotations

import math

from noisebrush.errors import BadParameter

__all__ = ["whole", "number", "whole_list", "text"]


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
