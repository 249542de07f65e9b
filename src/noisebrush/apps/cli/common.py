"""Small helpers the command modules share: progress displays, the CLI's names for the library's parameters, the
guides the painting flags ask for, the prompt of a picture, the command line as one string, and Ctrl-C handling.

    with progress(steps, "painting") as bar: ...           # a rich bar on a terminal, plain lines otherwise
    with LazyBar("varying") as cb: pipe.vary(..., callback=cb)
    with flags(): pipe.inpaint(...)                        # "jump_length: …" → "--jump-length: …"
    guides = guides_from_flags(palette, palette_scale)
    with report_interrupt(keep.written): ...               # Ctrl-C: one line naming what was kept, exit 130
    with stop_at_step_end() as check: ...                  # Ctrl-C raises at check(), between steps (train, finetune)

**Progress.** On a terminal, :func:`progress` is a rich bar on stderr. Anywhere else (output piped, logged, run
by a service) it prints plain lines instead — ``painting 40/100 steps · 2.1 it/s · ETA 28 s`` — after the first
step, then at most every :data:`EVERY` seconds or at each further tenth of the work, and a final line.

**Budgets.** While a command runs, values beyond their usual range (:data:`noisebrush.checks.LIMITS`) are kept in
the command's notice store (the click context; installed below with :func:`noisebrush.checks.use_notice_store`).
The progress display reports each once it has measured the rate of the second step:
``warning: --steps 100000 is far beyond the usual 200: about 3.9 h at the current 0.14 s a step (Ctrl-C stops)``.

**Names.** The library names parameters as its keyword arguments (``jump_length``, ``n``); :func:`flags` and
:class:`LazyBar` turn the name a :class:`~noisebrush.errors.BadParameter` message starts with into the CLI's flag
(:data:`FLAGS`).

Lazy imports: the palette and preference guides (and through them torch) are imported where a flag asks for them;
`noisebrush --help` takes 0.3 s without torch and 3.5 s once anything here imports it at the top.
"""
from __future__ import annotations

import contextlib
import re
import shlex
import signal
import sys
import time
from pathlib import Path
from typing import Callable, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

try:  # typer ≥ 0.20 carries its own copy of click (whose context stack is its own)
    from typer._click.globals import get_current_context
except ImportError:  # pragma: no cover
    from click import get_current_context

from noisebrush import checks
from noisebrush.apps.cli.app import ARGV, PALETTE_SCALE
from noisebrush.errors import BadParameter, UserError, warn

__all__ = ["console", "progress", "PlainProgress", "LazyBar", "FLAGS", "as_flags", "flags", "duration",
           "guides_from_flags", "prompt_of", "echo_paths", "command_line", "EVERY", "stop_at_step_end", "report_interrupt"]

EVERY = 5.0  # seconds between plain progress lines (at the most; a further tenth of the work also prints one)

# the library's parameter names → the CLI's flags (a name not here is the same in both, or not a flag)
FLAGS = {"steps": "--steps", "n": "-n", "seed": "--seed", "cfg": "--cfg", "size": "--size", "strength": "--strength",
         "jump_length": "--jump-length", "jumps": "--jumps", "frames": "--frames", "to_seed": "--to-seed",
         "to_prompt": "--to", "sampler": "--sampler", "best_of": "--best-of", "extend": "--extend", "mask": "--mask",
         "palette": "--palette", "palette_scale": "--palette-scale", "batch_size": "--batch-size",
         "negative": "--negative", "per_prompt": "--per-prompt", "prompts": "--prompts", "nfe": "--nfe",
         "samples": "--samples", "valid": "--valid", "teacher_steps": "--teacher-steps", "iters": "--iters",
         "batch": "--batch"}


def as_flags(message: str) -> str:
    """A message starting with a library parameter's name (``jump_length: …``, ``size 2048: …``,
    ``size (height): …``) starting with the CLI's flag instead; anything else unchanged."""
    m = re.match(r"([a-z_]+)(?=[:\s(]|$)", message)
    if m and m.group(1) in FLAGS:
        return FLAGS[m.group(1)] + message[m.end():]
    return message


@contextlib.contextmanager
def flags():
    """Re-raise a BadParameter from the library with the CLI's flag name (:func:`as_flags`)."""
    try:
        yield
    except BadParameter as e:
        renamed = as_flags(str(e))
        if renamed == str(e):
            raise
        raise BadParameter(renamed) from None


def _notices() -> Optional[dict]:
    """The running command's notice store (see the module docstring), or None outside a command."""
    ctx = get_current_context(silent=True)
    return None if ctx is None else ctx.meta.setdefault("noisebrush.notices", {"rename": as_flags})


checks.use_notice_store(_notices)


def console() -> Console:
    """A rich console on stderr (stdout stays for the results)."""
    return Console(stderr=True)


def duration(seconds: float) -> str:
    """"28 s", "12 min", "3.9 h", "4.0 days"."""
    if seconds < 90:
        return f"{seconds:.0f} s" if seconds >= 10 else f"{seconds:.1f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def _rate(seconds_per_step: float) -> str:
    if seconds_per_step <= 0:
        return "– it/s"
    return f"{1 / seconds_per_step:.1f} it/s" if seconds_per_step < 1 else f"{seconds_per_step:.1f} s/it"


class _Budget:
    """Measures the time a step takes (from the second step on, so the first one's warm-up does not count) and
    reports the run's unusual budgets with an ETA once it knows it."""

    def __init__(self, clock: Callable[[], float]):
        self.clock = clock
        self.first: dict = {}     # task → (time, completed) at its first update with progress
        self.rate: dict = {}      # task → seconds a step

    def seen(self, task, completed: float, total: Optional[float]) -> None:
        now = self.clock()
        if task not in self.first:
            self.first[task] = (now, completed)
            return
        t0, c0 = self.first[task]
        if completed > c0 and now > t0:
            self.rate[task] = (now - t0) / (completed - c0)
            unusual = checks.take_unusual()
            if unusual:
                left = max(0.0, (total or completed) - completed) * self.rate[task]
                for note in unusual:
                    per = self.rate[task]
                    per_text = f"{per:.2g}" if per < 10 else f"{per:.0f}"
                    warn(f"{as_flags(str(note))}: about {duration(left)} at the current {per_text} s a step "
                         f"(Ctrl-C stops)")

    def leftover(self) -> None:
        """Unusual budgets never reported (the work ended before a rate was known): say them plainly."""
        for note in checks.take_unusual():
            warn(as_flags(str(note)))


class _Bar(Progress):
    """rich's Progress that also reports unusual budgets with an ETA."""

    def __init__(self, *columns, clock=time.monotonic, **kwargs):
        super().__init__(*columns, **kwargs)
        self._budget = _Budget(clock)

    def update(self, task_id, **kwargs) -> None:
        super().update(task_id, **kwargs)
        task = self._tasks[task_id]
        if task.completed:
            self._budget.seen(task_id, task.completed, task.total)

    def stop(self) -> None:
        super().stop()
        self._budget.leftover()


class PlainProgress:
    """Progress as plain lines on ``file`` (default: stderr at the time of writing), for output that is not a
    terminal. The same calls as rich's Progress that the commands use: ``add_task(description, total=, completed=,
    info=)``, ``update(task, completed=, advance=, total=, info=)``, ``start()``, ``stop()``, ``with``."""

    def __init__(self, label: str, *, unit: str = "steps", file=None, clock: Callable[[], float] = time.monotonic,
                 every: float = EVERY):
        self.label, self.unit, self.file, self.clock, self.every = label, unit, file, clock, every
        self.tasks: dict[int, dict] = {}
        self._budget = _Budget(clock)
        self._stopped = False
        self._failed = False  # the work ended with an exception (Ctrl-C, an error): the last line says "stopped"

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, exc_type, exc, tb):
        self._failed = exc_type is not None
        self.stop()

    def start(self) -> None:
        self._stopped = False

    def add_task(self, description: str = "", total: Optional[float] = None, completed: float = 0, info: str = "",
                 **fields) -> int:
        task = len(self.tasks)
        now = self.clock()
        self.tasks[task] = dict(id=task, total=total, completed=completed, info=info, begun=now, start=completed,
                                printed=None, printed_at=None)
        return task

    def update(self, task_id: int, *, completed: Optional[float] = None, advance: Optional[float] = None,
               total: Optional[float] = None, info: Optional[str] = None, **fields) -> None:
        t = self.tasks[task_id]
        if total is not None:
            t["total"] = total
        if completed is not None:
            t["completed"] = completed
        if advance is not None:
            t["completed"] += advance
        if info is not None:
            t["info"] = info
        if t["completed"] == t["start"]:
            return
        self._budget.seen(task_id, t["completed"], t["total"])
        now = self.clock()
        if t["total"] and t["completed"] >= t["total"]:
            if t["printed"] != t["completed"]:
                self._line(t, now, final=True)
        elif t["printed_at"] is None or now - t["printed_at"] >= self.every or self._tenth(t) and \
                now - t["printed_at"] >= 1.0:
            self._line(t, now)

    @staticmethod
    def _tenth(t) -> bool:
        """A further tenth of the work is done since the last line."""
        total = t["total"]
        if not total or t["printed"] is None:
            return False
        return int(10 * t["completed"] / total) > int(10 * t["printed"] / total)

    def _line(self, t, now, final: bool = False) -> None:
        done, total = t["completed"], t["total"]
        rate = self._budget.rate.get(t["id"])
        counts = f"{done:g}/{total:g}" if total else f"{done:g}"
        parts = [f"{self.label} {counts} {self.unit}".rstrip()]
        if rate:
            parts.append(_rate(rate))
        if final:
            parts.append(f"stopped after {duration(now - t['begun'])}" if self._failed and
                         (not total or done < total) else f"{duration(now - t['begun'])} in all")
        elif rate and total:
            parts.append(f"ETA {duration(max(0.0, total - done) * rate)}")
        if t["info"]:
            parts.append(str(t["info"]))
        print(" · ".join(parts), file=self.file or sys.stderr, flush=True)
        t["printed"], t["printed_at"] = done, now

    def stop(self) -> None:
        """The final line of every task that made progress since its last line."""
        if self._stopped:
            return
        self._stopped = True
        now = self.clock()
        for t in self.tasks.values():
            if t["completed"] != t["start"] and t["printed"] != t["completed"]:
                self._line(t, now, final=True)
        self._budget.leftover()


class _Silent(PlainProgress):
    """:class:`PlainProgress`'s calls, printing nothing: no lines, no budget warnings."""

    def update(self, task_id: int, *, completed: Optional[float] = None, advance: Optional[float] = None,
               total: Optional[float] = None, info: Optional[str] = None, **fields) -> None:
        t = self.tasks[task_id]
        t["completed"] = completed if completed is not None else t["completed"] + (advance or 0)

    def stop(self) -> None:
        self._stopped = True


def progress(total: int, label: str, *, unit: str = "steps", file=None, shown: bool = True):
    """A progress display for ``total`` steps: on a terminal a rich bar (LABEL, the bar, done/total, a free
    ``info`` field, the time left); otherwise :class:`PlainProgress` lines. ``file``: where the lines go (default:
    stderr). Both report unusual budgets with an ETA (see the module docstring). ``shown=False``: the same calls,
    nothing printed (the other processes of a multi-process run, where only the main one reports)."""
    if not shown:
        return _Silent(label, unit=unit)
    con = Console(file=file, stderr=file is None)
    if not con.is_terminal:
        return PlainProgress(label, unit=unit, file=file)
    return _Bar(TextColumn(label), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
                TimeRemainingColumn(), console=con, transient=False)


class LazyBar:
    """A progress display that appears at the first step, so an error found before any work prints only its line.
    Use it as the painting ``callback``: ``with LazyBar("varying") as cb: pipe.vary(…, callback=cb)``. A
    BadParameter raised inside names the CLI's flag (:func:`as_flags`)."""

    def __init__(self, label: str, *, file=None):
        self.label, self.bar, self.task, self.file = label, None, None, file

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if self.bar is not None:
            self.bar.stop()
        if isinstance(exc, BadParameter):
            renamed = as_flags(str(exc))
            if renamed != str(exc):
                raise BadParameter(renamed) from None
        return False

    def __call__(self, info):
        if self.bar is None:
            self.bar = progress(info.steps, self.label, file=self.file)
            self.task = self.bar.add_task(self.label, total=info.steps, info="")
            self.bar.start()
        self.bar.update(self.task, completed=min(info.step + 1, info.steps), total=info.steps,
                        info=f"σ={info.sigma:.3g}")


def guides_from_flags(palette: Optional[str], palette_scale: float, prefer: float = 0.0, preference=None) -> list:
    """The guides the painting flags ask for (palette; learned preference, with its fitted model)."""
    guides = []
    if palette is not None:
        from noisebrush.paint.palette import PaletteGuide  # lazy: torch (see the module docstring)

        try:
            guides.append(PaletteGuide(palette, scale=palette_scale))
        except BadParameter as e:
            raise BadParameter(f"--{e}") from None
    elif palette_scale != PALETTE_SCALE:
        raise BadParameter("--palette-scale: give --palette too")
    if prefer:
        from noisebrush.workflows.preference import PreferenceGuide  # lazy: torch

        guides.append(PreferenceGuide(preference, scale=prefer))
    return guides


def prompt_of(image: Path, prompt: Optional[str]) -> str:
    """The prompt to use: the one given, else the one the picture's own recipe names, else ""."""
    if prompt is not None:
        return prompt
    from noisebrush.io.png import read_recipe  # lazy: noisebrush.io imports torch

    try:
        rec = read_recipe(image)
        return str(rec.get("prompt", "")) if "sheet" not in rec else ""
    except UserError:
        return ""


def echo_paths(paths) -> None:
    """The files written, one an indented line."""
    for p in paths:
        typer.echo(f"  {p}")


def command_line() -> str:
    """The command line this run was given, as one shell-quoted string (recorded in provenance)."""
    return "noisebrush " + " ".join(shlex.quote(a) for a in ARGV)


@contextlib.contextmanager
def stop_at_step_end():
    """Ctrl-C only raises a flag while this is active; it yields ``check()``, which raises KeyboardInterrupt once
    the flag is up: call it between steps (in a progress callback), so a long loop stops at the end of a step and
    can keep its work. A KeyboardInterrupt raised at an arbitrary point can land inside the progress bar's lock and
    leave it held, and the bar's shutdown then waits forever (seen once under heavy load). A second Ctrl-C still
    stops at once. Used by ``train`` and ``finetune``."""
    stop = []

    def on_sigint(signum, frame):
        if stop:
            raise KeyboardInterrupt
        stop.append(True)

    def check():
        if stop:
            raise KeyboardInterrupt

    old_handler = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield check
    finally:
        signal.signal(signal.SIGINT, old_handler)


@contextlib.contextmanager
def report_interrupt(written: list):
    """Ctrl-C inside: one line on stderr naming the files in ``written`` (the list is read when the key is pressed),
    or saying that nothing was written, and exit status 130."""
    try:
        yield
    except KeyboardInterrupt:
        kept = [str(p) for p in written]
        what = (f"kept the {len(kept)} file{'s' * (len(kept) != 1)} already written: {', '.join(kept)}" if kept
                else "nothing was written")
        typer.echo(f"interrupted: {what}", err=True)
        raise typer.Exit(130) from None
