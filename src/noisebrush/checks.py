"""Shared validators for user-facing parameters: each returns the value normalised or raises
:class:`noisebrush.errors.BadParameter` with one line that names the parameter.

    steps = whole("steps", steps, 1, 10_000)
    cfg = number("cfg", cfg, 0.0, 100.0)
    strength = number("strength", strength, 0.0, 1.0)

Bounds are inclusive; ``above=True`` makes the lower bound exclusive, ``below=True`` the upper one.

Budgets (steps, pictures, frames, jumps, training steps …) share one table, :data:`LIMITS`: each has a hard maximum
(refused) and a soft one (the usual range; beyond it the work runs, and the front end warns with a measured ETA).
The README's "Limits" table is this table (``tests/test_checks.py`` compares them).

    steps = limited("--steps", steps, "steps")           # BadParameter above LIMITS["steps"].hard

**Notices.** A value beyond the soft limit is *unusual*: a Python caller gets one :func:`noisebrush.errors.warn`
line at once ("steps 100000 is far beyond the usual 200"). A front end that can say more installs a notice store
(:func:`use_notice_store`; the CLI keeps one per command run): unusual values then collect there and the front end's
progress display reports them once it has measured the rate, with an ETA (:func:`take_unusual`). :func:`warn_once`
gives a warning that a front end shows once per run however often the same check runs (a size the model was not
trained at, checked by every ``Pipeline.check``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional

from noisebrush.errors import BadParameter, warn

__all__ = ["whole", "number", "whole_list", "text", "Limit", "LIMITS", "limited", "Unusual", "use_notice_store",
           "take_unusual", "warn_once"]


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
    "frames": Limit(2, 120, 2_000, "frames of a morph or a clip"),
    "jumps": Limit(1, 10, 100, "RePaint passes over each stretch"),
    "jump_length": Limit(1, 10, 1_000, "RePaint levels climbed back per jump"),
    "best_of": Limit(1, 16, 256, "candidates per picture"),
    "train_steps": Limit(1, 100_000, 10_000_000, "training steps"),
    "finetune_steps": Limit(1, 5_000, 1_000_000, "fine-tuning steps"),
    "batch_size": Limit(1, 512, 4_096, "pictures per training step"),
}


@dataclass(frozen=True)
class Unusual:
    """A value beyond its soft limit: ``name`` (as the caller named it), the value, the usual maximum."""
    name: str
    value: float
    soft: float

    def __str__(self) -> str:
        return f"{self.name} {_num(self.value)} is far beyond the usual {_num(self.soft)}"


# The front end's notice store: a function returning a dict for the current run (or None outside one). The CLI's
# is the running command's click context (noisebrush.apps.cli.common); None: plain library use.
_notice_store: Optional[Callable[[], Optional[dict]]] = None


def use_notice_store(store: Optional[Callable[[], Optional[dict]]]) -> None:
    """Install ``store()`` → a dict kept for one run of the front end (or None when no run is going on); ``None``
    uninstalls. See the module docstring."""
    global _notice_store
    _notice_store = store


def _store() -> Optional[dict]:
    return _notice_store() if _notice_store is not None else None


def take_unusual() -> list[Unusual]:
    """The unusual values noted in this run and not yet reported (and forget them)."""
    st = _store()
    if st is None:
        return []
    found = list(st.get("unusual", {}).values())
    st["unusual"] = {}
    return found


def warn_once(key: str, message: str) -> None:
    """:func:`noisebrush.errors.warn` ``message``, once per run of a front end (every time for library callers,
    where Python's warning filters decide). A store's ``"rename"`` function, when it has one, rewrites the message
    first (the CLI names its flags)."""
    st = _store()
    if st is not None:
        said = st.setdefault("said", set())
        if key in said:
            return
        said.add(key)
        message = st.get("rename", str)(message)  # the front end's names for parameters (the CLI's flags)
    warn(message)


def limited(name: str, v, key: str):
    """``v`` checked against ``LIMITS[key]`` (type, ``lo`` and ``hard``); the error names ``name`` (the flag).
    Above the soft limit the value is returned but noted as unusual (see the module docstring)."""
    lim = LIMITS[key]
    if lim.integer:
        v = whole(name, v, int(lim.lo), int(lim.hard))
    else:
        v = number(name, v, lim.lo, lim.hard)
    if v > lim.soft:
        note = Unusual(name, v, lim.soft)
        st = _store()
        if st is None:
            warn(f"{note}; it may take long (Ctrl-C stops)")
        else:
            st.setdefault("unusual", {})[name] = note
    return v


def _num(x) -> str:
    """A bound for a message: whole numbers in full (10000000, not 1e+07), others as %g."""
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e18 else f"{x:g}"


def _range(lo, hi, *, above: bool = False, below: bool = False) -> str:
    if lo is not None and hi is not None and not above and not below:
        return f"from {_num(lo)} to {_num(hi)}"
    parts = []
    if lo is not None:
        parts.append(f"{'>' if above else '≥'} {_num(lo)}")
    if hi is not None:
        parts.append(f"{'<' if below else '≤'} {_num(hi)}")
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
