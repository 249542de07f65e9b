"""Helpers the benchmark commands share: their argument parser, comma-separated flag values, and the JSON report.

    from noisebrush.bench.common import BenchParser, check_report_path, comma_separated, write_report

    ap = BenchParser(prog="python -m noisebrush.bench mine", description="…")
    ap.add_argument("--nfe", default="5,10")
    ap.add_argument("--json", metavar="FILE")
    args = ap.parse_args(argv)                       # a bad flag raises BadParameter: one line, no usage dump
    nfes = comma_separated(args.nfe, "--nfe", int, "a comma-separated list of integers")
    if args.json:
        check_report_path(args.json)                 # fail now, not after an hour's run
    ...
    return finish(result, print_table, args.json)    # show it; write it atomically, printing "wrote FILE"
"""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Callable, TypeVar

import torch
from rich.console import Console

from noisebrush.devices import cpu_features, hardware_name
from noisebrush.errors import BadParameter, UserError
from noisebrush.io import model_folder
from noisebrush.io.atomic import atomic_write_text

__all__ = ["BenchParser", "comma_separated", "comma_choices", "check_report_path", "write_report", "finish",
           "training_of", "cell", "machine", "table_console", "MODULE_PROG", "PROG"]

T = TypeVar("T")

MODULE_PROG = "python -m noisebrush.bench"
PROG = [MODULE_PROG]  # how the benchmarks were invoked (set by noisebrush.bench.__main__.main): usage lines follow it


class BenchParser(argparse.ArgumentParser):
    """argparse, but a bad flag is one line (no usage dump), raised as a user error. A ``prog`` that starts with
    ``python -m noisebrush.bench`` follows how the benchmark was started (``noisebrush bench NAME`` from the CLI)."""

    def __init__(self, *args, prog: str | None = None, **kwargs):
        if prog and prog.startswith(MODULE_PROG) and PROG[0] != MODULE_PROG:
            prog = PROG[0] + prog[len(MODULE_PROG):]
        super().__init__(*args, prog=prog, **kwargs)

    def error(self, message):
        raise BadParameter(message)


def comma_separated(text: str, name: str, parse: Callable[[str], T], what: str) -> list[T]:
    """The comma-separated values of ``text`` (blank ones skipped), each through ``parse``.

    A value ``parse`` rejects with ValueError raises BadParameter ``"{name}: {what}, got {text!r}"``.
    """
    try:
        return [parse(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise BadParameter(f"{name}: {what}, got {text!r}") from None


def comma_choices(text: str, name: str, choices) -> list[str]:
    """The comma-separated names in ``text`` (blank ones skipped, spaces trimmed), each one of ``choices``.

    An unknown name raises BadParameter ``"{name}: unknown 'x'; choose from a, b, c"``; no name at all,
    ``"{name}: choose from a, b, c, got ''"``.
    """
    names = [t.strip() for t in text.split(",") if t.strip()]
    listed = ", ".join(choices)
    for t in names:
        if t not in choices:
            raise BadParameter(f"{name}: unknown {t!r}; choose from {listed}")
    if not names:
        raise BadParameter(f"{name}: choose from {listed}, got {text!r}")
    return names


def check_report_path(path, name: str = "--json") -> Path:
    """Before a long run: ``path`` is not a folder and its folder exists (created if need be), or a one-line error."""
    out = Path(path)
    if out.is_dir():
        raise BadParameter(f"{name}: {out} is a folder")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"{name}: cannot create {out.parent} ({e.strerror})") from None
    return out


def machine() -> dict:
    """The machine a report was measured on: hardware name, the CPU's features (:func:`noisebrush.devices.
    cpu_features`: model, flags, whether bf16 is native), torch threads and version."""
    return {"hardware": hardware_name(torch.device("cpu")), "cpu": cpu_features(), "threads": torch.get_num_threads(),
            "torch": torch.__version__}


def write_report(path, report, *, indent: int = 2, note: str = "wrote {path}") -> None:
    """Write ``report`` (a dict) as JSON to ``path`` (atomically, creating its folder), with :func:`machine` under
    ``"machine"`` unless it has one, then print ``note``."""
    if isinstance(report, dict) and "machine" not in report:
        report = {**report, "machine": machine()}
    atomic_write_text(path, json.dumps(report, indent=indent))
    print(note.format(path=path))


def finish(report, show: Callable[[dict], None], path=None, *, indent: int = 2, note: str = "wrote {path}") -> int:
    """A bench's last step: ``show(report)``, then :func:`write_report` when ``path`` is given; exit status 0."""
    show(report)
    if path:
        write_report(path, report, indent=indent, note=note)
    return 0


def training_of(model: str) -> dict:
    """What the model folder's provenance says about its training (steps, seconds, hardware, processes,
    precision); {} when it records none."""
    try:
        prov = model_folder.read_config(model_folder.resolve(model)).get("provenance") or {}
    except Exception:  # noqa: BLE001 - a folder without provenance: nothing to report
        return {}
    return {k: prov.get(k) for k in ("steps", "train_seconds", "hardware", "processes", "precision") if k in prov}


def cell(v, fmt: str = ".3f") -> str:
    """A number as a table cell: ``fmt``, or "—" for None or NaN (not measured)."""
    return "—" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, fmt)


def table_console(width: int = 160) -> Console:
    """A rich console for a benchmark's tables: the terminal's, or — into a log file or a pipe — one at least
    ``width`` columns wide, so the table is not folded to 80."""
    con = Console()
    return con if con.is_terminal else Console(width=max(con.width, width))
