"""Plots of a training run: ``noisebrush plot-log RUN_DIR`` and :func:`plot_log`.

    from noisebrush.train.plots import plot_log, read_log
    plot_log("runs/mine")            # → runs/mine/log.png (log-2.png if that exists; force=True replaces it)
    cols = read_log("runs/mine/log.csv")
    cols["step"], cols["loss"], cols["loss_s0"]

The trainer appends a row to ``RUN_DIR/log.csv`` every ``log_every`` steps (columns ``step, loss, loss_s0 … loss_s5,
lr, grad_norm, img_s, skipped, time``; ``loss_s<i>`` is the mean loss of the samples whose σ fell in bucket i of
``noisebrush.train.loop.SIGMA_BUCKETS``, empty when none did). A run may be writing while it is read: a last line
without its newline that does not parse is a row being appended, and is left out.
"""
from __future__ import annotations

import csv
import math
import re
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from noisebrush.errors import BadParameter, UserError
from noisebrush.io.atomic import atomic_path
from noisebrush.io.outputs import check_output_file
from noisebrush.train.loop import SIGMA_BUCKETS

__all__ = ["plot_log", "read_log", "bucket_labels"]

_REQUIRED = ("step", "loss")
_BUCKET = re.compile(r"loss_s(\d+)$")


def bucket_labels(count: int) -> list[str]:
    """Legend text for the ``count`` σ buckets of the log ("σ ≤ 0.1", "0.1 < σ ≤ 0.3", …, "σ > 10")."""
    edges = [f"{e:g}" for e in SIGMA_BUCKETS]
    if count != len(edges) + 1:  # a log written with other buckets: name them by number
        return [f"bucket {i}" for i in range(count)]
    if count == 1:
        return ["all σ"]
    return ([f"σ ≤ {edges[0]}"] + [f"{edges[i - 1]} < σ ≤ {edges[i]}" for i in range(1, len(edges))]
            + [f"σ > {edges[-1]}"])


def _number(text: str) -> float:
    text = text.strip()
    return math.nan if text == "" else float(text)


def read_log(path) -> dict[str, np.ndarray]:
    """``log.csv`` → {column: float64 array}; empty cells are NaN. A UserError naming the file and line for a
    missing, empty or malformed log (a partial last line being appended is dropped silently)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file (has the run logged a step yet?)")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise UserError(f"{path}: not a text file, so not a training log") from None
    except OSError as e:
        raise UserError(f"{path}: unreadable ({e.strerror or e})") from None
    lines = text.splitlines()
    partial = bool(text) and not text.endswith(("\n", "\r"))
    if not lines or not lines[0].strip() or (partial and len(lines) == 1):
        raise UserError(f"{path}: empty (the run has not logged a step yet)")
    try:
        header = next(csv.reader([lines[0]]))
    except csv.Error as e:
        raise UserError(f"{path}: line 1: not CSV ({e})") from None
    header = [h.strip() for h in header]
    missing = [c for c in _REQUIRED if c not in header]
    if missing:
        raise UserError(f"{path}: not a noisebrush training log (line 1 has no {missing[0]!r} column)")
    if len(set(header)) != len(header):
        raise UserError(f"{path}: line 1 names a column twice")
    rows: list[list[float]] = []
    for n, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        last = n == len(lines)
        try:
            fields = next(csv.reader([line]))
            if len(fields) != len(header):
                raise ValueError(f"{len(fields)} fields where the header has {len(header)}")
            values = []
            for name, v in zip(header, fields):
                try:
                    values.append(_number(v))
                except ValueError:
                    raise ValueError(f"{name} is {v!r}, not a number") from None
            if not math.isfinite(values[header.index("step")]):
                raise ValueError("step is not a finite number")
        except (ValueError, csv.Error) as e:
            if last and partial:  # the trainer is appending this row right now
                break
            raise UserError(f"{path}: line {n}: {e}") from None
        rows.append(values)
    if not rows:
        raise UserError(f"{path}: no rows yet (the run has not logged a step yet)")
    table = np.array(rows, dtype=np.float64)
    return {name: table[:, j] for j, name in enumerate(header)}


def _draw(ax, x, y, **kw):
    """A line, with markers when there are few points (a single logged row is still visible)."""
    if len(x) <= 30:
        kw.setdefault("marker", "o")
        kw.setdefault("ms", 3)
    ax.plot(x, y, **kw)


def _log_scale_if_positive(ax, *ys) -> None:
    vals = np.concatenate([np.asarray(y, dtype=np.float64) for y in ys]) if ys else np.array([])
    vals = vals[np.isfinite(vals)]
    if len(vals) and (vals > 0).all():
        ax.set_yscale("log")


def plot_log(run_dir, out=None, *, force: bool = False) -> Path:
    """Plot ``RUN_DIR/log.csv``: loss (log scale), loss per σ bucket and learning rate against the step. Writes
    a PNG atomically to ``out`` (default ``RUN_DIR/log.png``) and returns its path. An existing file is never
    replaced unless ``force``: the plot goes to a free name (``log-2.png`` …), which is the path returned. The place
    is checked (writable) before the log is read."""
    run = Path(run_dir)
    if not run.exists():
        raise UserError(f"{run}: no such run folder")
    if not run.is_dir():
        raise UserError(f"{run}: not a folder (expected a run folder holding log.csv)")
    target = run / "log.png" if out is None else Path(out)
    if target.suffix.lower() != ".png":
        raise BadParameter(f"out: a file name ending in .png, got {str(target)!r}")
    if target.is_dir():
        raise BadParameter(f"out: {target} is a folder; give a file name ending in .png")
    target = check_output_file(target, what="out", force=force)
    cols = read_log(run / "log.csv")
    step = cols["step"]
    buckets = sorted((int(m.group(1)), name) for name in cols if (m := _BUCKET.match(name)))

    fig = Figure(figsize=(8.0, 9.0), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    a1, a2, a3 = fig.subplots(3, 1, sharex=True)
    last = cols["loss"][-1]
    fig.suptitle(f"{run.resolve().name}: {len(step)} log rows, step {int(step[-1])}, loss {last:.4g}", fontsize=10)

    _draw(a1, step, cols["loss"], color="tab:blue")
    _log_scale_if_positive(a1, cols["loss"])
    a1.set_ylabel("loss")
    a1.set_title("training loss (mean over the steps since the previous row)", fontsize=9)

    if buckets:
        labels = bucket_labels(len(buckets))
        colors = [f"C{i}" for i in range(len(buckets))]
        for (i, name), label, color in zip(buckets, labels, colors):
            _draw(a2, step, cols[name], label=label, color=color)
        _log_scale_if_positive(a2, *[cols[name] for _, name in buckets])
        a2.legend(fontsize=8, title="noise level", title_fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
        a2.set_title("loss per σ bucket (gaps: no sample in that bucket)", fontsize=9)
    else:
        a2.text(0.5, 0.5, "this log has no per-σ loss columns", ha="center", va="center", transform=a2.transAxes)
    a2.set_ylabel("loss")

    if "lr" in cols:
        _draw(a3, step, cols["lr"], color="tab:green")
        a3.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
    else:
        a3.text(0.5, 0.5, "this log has no lr column", ha="center", va="center", transform=a3.transAxes)
    a3.set_ylabel("learning rate")
    a3.set_xlabel("step")
    a3.set_title("learning rate", fontsize=9)
    for a in (a1, a2, a3):
        a.grid(True, alpha=0.3)
    with atomic_path(target, suffix=".png") as tmp:
        fig.savefig(tmp, format="png")
    return target
