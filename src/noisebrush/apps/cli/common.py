"""Small helpers the command modules share: progress bars, the guides the painting flags ask for, the prompt of a
picture, the command line as one string.

    with progress(steps, "painting") as bar: ...           # a rich bar on stderr
    with LazyBar("varying") as cb: pipe.vary(..., callback=cb)
    guides = guides_from_flags(palette, palette_scale)

Lazy imports: the palette and preference guides (and through them torch) are imported where a flag asks for them;
`noisebrush --help` takes 0.3 s without torch and 3.5 s once anything here imports it at the top.
"""
from __future__ import annotations

import shlex
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from noisebrush.apps.cli.app import ARGV, PALETTE_SCALE
from noisebrush.errors import BadParameter, UserError

__all__ = ["console", "progress", "LazyBar", "guides_from_flags", "prompt_of", "echo_paths", "command_line"]


def console() -> Console:
    """A rich console on stderr (stdout stays for the results)."""
    return Console(stderr=True)


def progress(total: int, label: str) -> Progress:
    """A progress bar: LABEL, the bar, done/total, a free ``info`` field, the time left."""
    return Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
                    TimeRemainingColumn(), console=console(), transient=False)


class LazyBar:
    """A progress bar that appears at the first step, so an error found before any work prints only its line.
    Use it as the painting ``callback``: ``with LazyBar("varying") as cb: pipe.vary(…, callback=cb)``."""

    def __init__(self, label: str):
        self.label, self.bar, self.task = label, None, None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.stop()

    def __call__(self, info):
        if self.bar is None:
            self.bar = progress(info.steps, self.label)
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
