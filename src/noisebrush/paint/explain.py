"""Watch noise turn into a picture: ``noisebrush explain`` and :func:`explain`.

    import noisebrush
    from noisebrush.paint.explain import explain
    pipe = noisebrush.load("builtin")
    files = explain(pipe, "a red sun over purple mountains", seed=7, steps=20, out_dir="outputs/why")
    files["strip"], files["gif"], files["schedule"]

One picture is painted (exactly the picture ``noisebrush paint`` paints with the same options) while every step's
noisy state x_t and the network's prediction x̂_0 are recorded. Written into ``out_dir``:

* ``strip.png`` — two rows, x_t above x̂_0, at the chosen steps (``at``; default about six evenly spaced steps, the
  first and the last among them), each column labelled with its step and σ. Pixels are enlarged by repetition
  (nearest neighbour), so a tile is an exact copy of the tensor it shows.
* ``process.gif`` — the whole reverse process, one frame per step, x_t beside x̂_0.
* ``schedule.png`` — the σ levels the sampler stepped through, SNR = 1/σ² and the step sizes Δσ and Δln σ.
* ``correctors.png`` — only for ``langevin`` (corrector steps per noise level) and ``adaptive`` (accepted and
  rejected steps per level, and the step sizes it chose).
* ``final.png`` — the picture itself, carrying its recipe like every PNG ``noisebrush paint`` writes.
* ``explain.json`` — the recipe, the sampler's statistics, the strip's layout and the list of files (written last).

**Nothing is overwritten.** If ``out_dir`` already holds an explanation (any of the files above), the files go to a
new folder beside it, ``out_dir-2`` (``-3`` …), whose path the returned paths carry; ``force=True`` writes into
``out_dir`` itself, replacing those files (and removing the ones the earlier explanation wrote that this one does
not). ``out_dir`` is checked (a folder that can be written) before painting.

**How x_t is shown.** x_t = x_0 + σ·ε has a standard deviation of about √(σ_data² + σ²), far outside [-1, 1] at
high noise. Clamping it would show saturated speckle; dividing by √(σ_data² + σ²) alone would double the contrast
of the nearly clean pictures at the end. The strip and the animation show

    x_t · σ_data / √(σ_data² + σ²)

(then clamped to [-1, 1]): the variance-preserving view of the same state. Its overall contrast stays that of a
picture at every step, the signal visibly fades into noise as σ grows, and at small σ it is x_t itself, so the
last columns look like the finished picture. Only the noise's tails beyond ±2σ_data are clipped (about one pixel
value in twenty at high noise; none once the picture has formed).

**Steps.** For the fixed-step samplers a step is one entry of the σ schedule and the callback sees x_t at its
start. ``adaptive`` chooses its own steps, so its frames are its attempts (accepted or rejected; each frame shows
the state after the attempt), and a step number in ``at`` (still 0…steps-1) picks the frame whose σ lies nearest,
in ln σ, to that step's σ on the planned Karras grid; the labels then read "try k".
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from noisebrush.errors import BadParameter
from noisebrush.io.atomic import atomic_path, atomic_write_text
from noisebrush.io.images import save_image, to_pil, to_uint8
from noisebrush.io.outputs import check_folder, free_path
from noisebrush.io.png import save_png

__all__ = ["explain", "explanation_folder", "parse_at", "default_at", "check_fps", "display_xt", "FILES"]

#: every file an explanation may write (``explain.json`` lists the ones a run wrote)
FILES = ("strip.png", "process.gif", "schedule.png", "correctors.png", "final.png", "explain.json")

_PAD = 4
_BG = (255, 255, 255)
_INK = (20, 20, 20)
_MUTED = (110, 110, 110)
_DISPLAY = "x_t * sigma_data / sqrt(sigma_data^2 + sigma^2), clamped to [-1, 1]"


# -- options ----------------------------------------------------------------------------------------------------------

def default_at(steps: int, count: int = 6) -> list[int]:
    """About ``count`` evenly spaced step indices in 0…steps-1, the first and the last among them."""
    if steps <= count:
        return list(range(steps))
    return sorted({round(i * (steps - 1) / (count - 1)) for i in range(count)})


def parse_at(at, steps: int, *, name: str = "at") -> list[int]:
    """``at`` as text ("0,5,10,19") or a list of whole numbers → sorted distinct step indices in [0, steps-1];
    ``None`` → :func:`default_at`. A BadParameter naming ``name`` otherwise."""
    if at is None:
        return default_at(steps)
    need = f"whole numbers from 0 to {steps - 1} separated by commas"
    if isinstance(at, str):
        parts = [p.strip() for p in at.split(",")]
        if not at.strip() or any(not p for p in parts):
            raise BadParameter(f"{name}: {need}, e.g. '0,{steps // 2},{steps - 1}'; got {at!r}")
        values = []
        for p in parts:
            try:
                values.append(int(p, 10))
            except ValueError:
                raise BadParameter(f"{name}: {need}; {p!r} is not a whole number") from None
    else:
        try:
            values = list(at)
        except TypeError:
            raise BadParameter(f"{name}: {need}; got {at!r}") from None
        if not values:
            raise BadParameter(f"{name}: {need}; got an empty list")
        for v in values:
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
                raise BadParameter(f"{name}: {need}; {v!r} is not a whole number")
        values = [int(v) for v in values]
    bad = [v for v in values if not 0 <= v < steps]
    if bad:
        raise BadParameter(f"{name}: step {bad[0]} is outside 0…{steps - 1} (this run has {steps} "
                           f"step{'s' * (steps != 1)})")
    return sorted(set(values))


def check_fps(fps, *, name: str = "fps") -> float:
    """Frames per second of the animation: more than 0 and at most 50 (GIF delays are whole hundredths)."""
    if isinstance(fps, bool) or not isinstance(fps, (int, float)) or not 0 < fps <= 50:
        raise BadParameter(f"{name}: frames per second, more than 0 and at most 50 (GIF timing), got {fps!r}")
    return float(fps)


def display_xt(x: torch.Tensor, sigma: float, sigma_data: float) -> torch.Tensor:
    """The noisy state as shown: x_t·σ_data/√(σ_data²+σ²), clamped to [-1, 1] (see the module docstring)."""
    return (x.to(torch.float32) * (sigma_data / math.sqrt(sigma_data**2 + sigma**2))).clamp(-1, 1)


# -- drawing ----------------------------------------------------------------------------------------------------------

def _font(size: int = 11):
    """DejaVu Sans (shipped with matplotlib: it has σ and x̂); Pillow's own font otherwise."""
    try:
        import matplotlib  # lazy: ~1 s to import (see _figure); also optional here, Pillow's font is the fallback

        return ImageFont.truetype(os.path.join(matplotlib.get_data_path(), "fonts", "ttf", "DejaVuSans.ttf"), size)
    except (ImportError, OSError):
        return ImageFont.load_default()


def _text_size(font, text: str) -> tuple[int, int]:
    left, top, right, bottom = font.getbbox(text)
    return right - left, bottom - top


def _tile(t: torch.Tensor, zoom: int) -> Image.Image:
    """C×H×W in [-1, 1] → RGB, each pixel a zoom×zoom block."""
    a = to_uint8(t).permute(1, 2, 0).numpy()
    a = np.repeat(a, 3, axis=2) if a.shape[2] == 1 else a[:, :, :3]
    a = np.repeat(np.repeat(a, zoom, axis=0), zoom, axis=1)
    return Image.fromarray(np.ascontiguousarray(a), "RGB")


def _fmt_sigma(s: float) -> str:
    return f"{s:.3g}" if s >= 0.01 else f"{s:.2g}"


def _draw_strip(columns, *, zoom: int, sigma_data: float, title: str, step_word: str):
    """columns: list of (label step, frame index, σ, x_t, x̂_0). Returns (image, layout)."""
    font, small = _font(11), _font(10)
    h, w = columns[0][3].shape[-2] * zoom, columns[0][3].shape[-1] * zoom
    rows = ("x_t", "x\u0302_0")
    label_w = max(_text_size(font, r)[0] for r in rows) + 2 * _PAD
    line = _text_size(font, "Aσ0")[1] + 3
    top = _PAD + line + _PAD + 2 * line + 2  # title, then two lines per column: step and σ
    col_w = max(w, max(_text_size(small, f"{step_word} {c[0]}")[0] for c in columns) + 2)
    col_w = max(col_w, max(_text_size(small, f"σ={_fmt_sigma(c[2])}")[0] for c in columns) + 2)
    foot = "x_t shown as x_t·σ_data/√(σ_data²+σ²), clamped to [-1, 1]"
    width = max(label_w + len(columns) * (col_w + _PAD) + _PAD, _text_size(small, foot)[0] + 2 * _PAD,
                _text_size(font, title)[0] + 2 * _PAD)
    height = top + 2 * h + 3 * _PAD + line + _PAD
    img = Image.new("RGB", (width, height), _BG)
    d = ImageDraw.Draw(img)
    d.text((_PAD, _PAD), title, fill=_INK, font=font)
    tiles = []
    for k, (step, frame, sigma, xt, x0) in enumerate(columns):
        left = label_w + k * (col_w + _PAD) + (col_w - w) // 2
        cx = label_w + k * (col_w + _PAD) + col_w // 2
        for j, text in enumerate((f"{step_word} {step}", f"σ={_fmt_sigma(sigma)}")):
            tw = _text_size(small, text)[0]
            d.text((cx - tw // 2, _PAD + line + _PAD + j * line), text, fill=_INK, font=small)
        y_xt, y_x0 = top + _PAD, top + 2 * _PAD + h
        img.paste(_tile(display_xt(xt, sigma, sigma_data), zoom), (left, y_xt))
        img.paste(_tile(x0.clamp(-1, 1), zoom), (left, y_x0))
        tiles.append({"step": step, "frame": frame, "sigma": sigma, "x_t": [left, y_xt], "x0": [left, y_x0]})
    for j, r in enumerate(rows):
        th = _text_size(font, r)[1]
        d.text((_PAD, top + _PAD + j * (h + _PAD) + (h - th) // 2), r, fill=_INK, font=font)
    d.text((_PAD, top + 2 * h + 3 * _PAD), foot, fill=_MUTED, font=small)
    return img, {"zoom": zoom, "tile": [w, h], "tiles": tiles}


def _gif_frame(step_label: str, sigma: float, xt, x0, *, zoom: int, sigma_data: float, font) -> np.ndarray:
    h, w = xt.shape[-2] * zoom, xt.shape[-1] * zoom
    line = _text_size(font, "Aσ0")[1] + 4
    img = Image.new("RGB", (2 * w + 3 * _PAD, line + _PAD + h + 2 * _PAD + line + _PAD), _BG)
    d = ImageDraw.Draw(img)
    d.text((_PAD, _PAD // 2), f"{step_label}   σ={_fmt_sigma(sigma)}", fill=_INK, font=font)
    img.paste(_tile(display_xt(xt, sigma, sigma_data), zoom), (_PAD, line + _PAD))
    img.paste(_tile(x0.clamp(-1, 1), zoom), (2 * _PAD + w, line + _PAD))
    for k, text in enumerate(("x_t", "x\u0302_0")):
        tw = _text_size(font, text)[0]
        d.text((_PAD + k * (w + _PAD) + (w - tw) // 2, line + 2 * _PAD + h), text, fill=_MUTED, font=font)
    return np.asarray(img)


def _write_gif(path: Path, frames: list[np.ndarray], fps: float) -> None:
    import imageio.v3 as iio  # lazy: ~0.5 s to import, which only the GIF needs

    ms = max(20, round(1000 / fps))
    durations = [ms] * len(frames)
    durations[-1] = max(ms, 1500)  # rest on the finished picture before the loop starts again
    with atomic_path(path, suffix=".gif") as tmp:
        iio.imwrite(tmp, np.stack(frames), extension=".gif", plugin="pillow", loop=0,
                    duration=durations if len(frames) > 1 else durations[0])  # Pillow wants a number for one frame


def _figure(rows: int, height: float):
    # lazy: matplotlib's figure machinery costs ~2.5 s to import; only the plots need it
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure  # lazy: see above

    fig = Figure(figsize=(7.5, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)  # the Agg canvas: no GUI, no pyplot state
    return fig, fig.subplots(rows, 1)


def _save_figure(fig, path: Path) -> None:
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png")


def _plot_schedule(path: Path, levels: list[float], planned: list[float], *, sampler: str, title: str) -> None:
    """levels: the σ the sampler stepped through (without the final 0); planned: the Karras grid."""
    fig, (a1, a2, a3) = _figure(3, 8.0)
    fig.suptitle(title, fontsize=10)
    idx = np.arange(len(levels))
    sig = np.array(levels, dtype=np.float64)
    adaptive = sampler == "adaptive"
    if adaptive:
        a1.plot(np.arange(len(planned)), planned, ":", color="0.6", label="planned Karras grid (sets the first step)")
    a1.plot(idx, sig, "o-", ms=3, label="σ at each step" + (" (accepted levels)" if adaptive else ""))
    a1.set_yscale("log")
    a1.set_ylabel("σ")
    a1.set_title(f"noise level: {len(levels)} steps from σ={sig[0]:.3g} to σ={sig[-1]:.3g}, then onto σ = 0",
                 fontsize=9)
    a1.legend(fontsize=8)
    a2.plot(idx, 1.0 / sig**2, "o-", ms=3, color="tab:green")
    a2.set_yscale("log")
    a2.set_ylabel("SNR = 1/σ²")
    a2.set_title("signal-to-noise ratio (x_t = x_0 + σ·ε)", fontsize=9)
    dsig = np.append(sig[:-1] - sig[1:], sig[-1])  # the last step lands on σ = 0
    a3.plot(np.arange(len(dsig)), dsig, "o-", ms=3, color="tab:blue", label="Δσ")
    a3.set_yscale("log")
    a3.set_ylabel("Δσ", color="tab:blue")
    a3.set_xlabel("step")
    if len(sig) > 1:
        b = a3.twinx()
        b.plot(np.arange(len(sig) - 1), np.log(sig[:-1] / sig[1:]), "s--", ms=3, color="tab:orange",
               label="Δ ln σ")
        b.set_ylabel("Δ ln σ", color="tab:orange")
        b.set_ylim(bottom=0)
    a3.set_title("step sizes (Δ ln σ of the last step onto σ = 0 is infinite: not drawn)", fontsize=9)
    for a in (a1, a2, a3):
        a.grid(True, alpha=0.3)
    _save_figure(fig, path)


def _adaptive_attempts(frames, sigma_start: float, levels: list[float]) -> list[int]:
    """Rejected attempts at each accepted level, read off the frames (an accepted attempt lowers σ)."""
    rejected = [0] * max(len(levels), 1)
    prev, level = sigma_start, 0
    for f in frames:
        if f["sigma"] < prev * (1 - 1e-9):
            level += 1
            prev = f["sigma"]
        else:
            rejected[min(level, len(rejected) - 1)] += 1
    return rejected


def _plot_langevin(path: Path, stats: dict, *, title: str) -> None:
    from matplotlib.ticker import MaxNLocator  # lazy: matplotlib (see _figure)

    per_level = [int(lv[0]) for lv in stats.get("corrector_steps", [])]
    levels = [float(s) for s in stats.get("levels", [])]
    fig, axes = _figure(2, 6.0)
    a1, a2 = axes
    fig.suptitle(title, fontsize=10)
    idx = np.arange(len(per_level))
    a1.bar(idx, per_level, color="tab:purple")
    a1.set_ylabel("corrector steps")
    a1.set_ylim(bottom=0, top=max(per_level, default=0) + 1)
    a1.yaxis.set_major_locator(MaxNLocator(integer=True))
    a1.set_title(f"Langevin corrector steps per noise level (each level runs until steady state); "
                 f"{sum(per_level)} in all", fontsize=9)
    a1.set_xticks(idx, [_fmt_sigma(s) for s in levels], rotation=60, fontsize=7)
    a1.set_xlabel("σ of the corrected level")
    # network evaluations so far: 1 at the start, then per level 1 for the predictor's landing and the correctors
    spent = np.cumsum([1] + [1 + k for k in per_level])
    a2.plot(np.arange(len(spent)), spent, "o-", ms=3, color="tab:purple", label="langevin (predictor + corrector)")
    a2.plot(np.arange(len(spent)), np.arange(1, len(spent) + 1), ":", color="0.5", label="one evaluation per step")
    a2.set_xlabel("levels done")
    a2.set_ylabel("network evaluations")
    a2.yaxis.set_major_locator(MaxNLocator(integer=True))
    a2.set_title(f"where the cost goes: {stats.get('nfe', ['?'])[0]} network evaluations in all", fontsize=9)
    a2.legend(fontsize=8)
    for a in axes:
        a.grid(True, alpha=0.3)
    _save_figure(fig, path)


def _plot_adaptive(path: Path, stats: dict, frames, *, title: str) -> None:
    from matplotlib.ticker import MaxNLocator  # lazy: matplotlib (see _figure)

    levels = [float(s) for s in stats.get("sigmas", [[]])[0]]
    rejected = _adaptive_attempts(frames, levels[0] if levels else frames[0]["sigma"], levels)
    steps = len(levels) - 1  # accepted steps: level i → level i+1
    fig, axes = _figure(2, 6.0)
    a1, a2 = axes
    fig.suptitle(title, fontsize=10)
    idx = np.arange(len(levels))
    accepted = [1] * steps + [0]
    a1.bar(idx, accepted, color="tab:green", label="accepted")
    a1.bar(idx, rejected[:len(levels)], bottom=accepted, color="tab:red", label="rejected")
    a1.set_xticks(idx, [_fmt_sigma(s) for s in levels], rotation=60, fontsize=7)
    a1.set_xlabel("σ the attempt started from")
    a1.set_ylabel("attempts")
    a1.yaxis.set_major_locator(MaxNLocator(integer=True))
    a1.set_title(f"adaptive steps per level: {stats.get('accepted', ['?'])[0]} accepted, "
                 f"{stats.get('rejected', ['?'])[0]} rejected, {stats.get('nfe', ['?'])[0]} network evaluations",
                 fontsize=9)
    a1.legend(fontsize=8)
    if steps > 0:
        sig = np.array(levels)
        h = np.log(sig[:-1] / sig[1:])
        a2.plot(np.arange(steps), h, "o-", ms=3, color="tab:orange")
        a2.set_xticks(np.arange(steps), [_fmt_sigma(s) for s in levels[:-1]], rotation=60, fontsize=7)
    a2.set_ylabel("Δ ln σ chosen")
    a2.set_xlabel("σ the accepted step started from")
    a2.set_title("the step sizes it chose (error control grows them where the prediction is smooth)", fontsize=9)
    for a in axes:
        a.grid(True, alpha=0.3)
    _save_figure(fig, path)


# -- the explanation --------------------------------------------------------------------------------------------------

def _nearest_frame(frames, sigma: float) -> int:
    target = math.log(sigma)
    best = min(abs(math.log(f["sigma"]) - target) for f in frames)
    return max(i for i, f in enumerate(frames) if abs(math.log(f["sigma"]) - target) <= best + 1e-12)


def _remove_stale(out: Path, written: set[str]) -> None:
    """Files a previous explanation in this folder wrote that this one does not (e.g. its correctors.png)."""
    try:
        old = json.loads((out / "explain.json").read_text()).get("files", [])
    except (OSError, ValueError, AttributeError):
        return
    for name in old:
        if isinstance(name, str) and name in FILES and name not in written:
            (out / name).unlink(missing_ok=True)


def explanation_folder(out_dir, *, force: bool = False) -> Path:
    """Where an explanation asked for ``out_dir`` goes: ``out_dir`` itself when it holds none of :data:`FILES` (or
    with ``force``), else the first free ``out_dir-2``, ``-3`` … A UserError if it is a file or cannot be written."""
    out = Path(out_dir)
    check_folder(out, what="out_dir")
    if not force and out.is_dir() and any((out / name).exists() for name in FILES):
        out = free_path(out)  # a name nothing has yet
    return out


def explain(pipe, prompt: str = "", *, seed: int = 0, steps: int | None = None, sampler: str | None = None,
            cfg: float = 3.0,
            at=None, out_dir, fps: float = 8.0, size: int | None = None, label=None,
            callback=None, force: bool = False, negative: str | None = None) -> dict[str, Path]:
    """Paint one picture with ``pipe`` and write the files that show how it came about (see the module docstring).

    ``at``: the steps the strip shows (text like "0,5,19" or a list of whole numbers in 0…steps-1; default about
    six evenly spaced). ``fps``: frames per second of ``process.gif``. ``callback(StepInfo)`` sees every step (for
    a progress bar). An ``out_dir`` that holds an earlier explanation is left alone (a free ``out_dir-2`` … is used)
    unless ``force``. ``negative``: a negative prompt (as ``Pipeline.generate``). Returns {"strip", "gif",
    "schedule", ["correctors"], "picture", "json"} → paths.
    """
    opts = pipe.check(prompt, steps=steps, seed=seed, n=1, sampler=sampler, cfg=cfg, size=size, label=label,
                      negative=negative)
    steps, seed, cfg, size, sampler = opts.steps, opts.seed, opts.cfg, opts.size, opts.sampler
    at = parse_at(at, steps)
    fps = check_fps(fps)
    out = explanation_folder(out_dir, force=force)

    frames: list[dict] = []

    def record(info):
        frames.append({"step": info.step, "sigma": info.sigma, "x": info.x[0].detach().to("cpu", torch.float32).clone(),
                       "x0": info.x0[0].detach().to("cpu", torch.float32).clone()})
        if callback is not None:
            callback(info)

    stats: dict = {}
    images, recipes = pipe.generate(prompt, steps=steps, seed=seed, n=1, sampler=sampler, cfg=cfg, size=size,
                                    label=label, callback=record, stats=stats, negative=negative)
    if not frames:  # pragma: no cover - every sampler calls back at least once
        raise RuntimeError(f"{sampler}: the sampler reported no steps")
    planned = [float(s) for s in opts.sigmas()[:-1]]
    sigma_data = float(pipe.config["sigma_data"])
    adaptive = sampler == "adaptive" or len(frames) != steps
    step_word = "try" if adaptive else "step"
    if adaptive:
        picks = list(dict.fromkeys(_nearest_frame(frames, planned[i]) for i in at))
        columns = [(frames[k]["step"], k, frames[k]["sigma"], frames[k]["x"], frames[k]["x0"]) for k in picks]
    else:
        columns = [(i, i, frames[i]["sigma"], frames[i]["x"], frames[i]["x0"]) for i in at]

    what = repr(prompt) if prompt else repr(str(label))
    title = f"{what}  ·  {sampler}, {steps} steps, cfg {cfg:g}, seed {seed}" + (f"  ·  not {negative!r}" if negative
                                                                                 else "")
    zoom = max(1, math.ceil(96 / max(images.shape[-2:])))
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}

    strip, layout = _draw_strip(columns, zoom=zoom, sigma_data=sigma_data, title=title, step_word=step_word)
    files["strip"] = out / "strip.png"
    save_image(strip, files["strip"])

    font = _font(11)
    n = len(frames)
    gif = [_gif_frame(f"{step_word} {f['step']}" + ("" if adaptive else f"/{n - 1}"), f["sigma"], f["x"], f["x0"],
                      zoom=zoom, sigma_data=sigma_data, font=font) for f in frames]
    files["gif"] = out / "process.gif"
    _write_gif(files["gif"], gif, fps)

    levels = [float(s) for s in stats["sigmas"][0]] if sampler == "adaptive" and stats.get("sigmas") else \
        [f["sigma"] for f in frames]
    files["schedule"] = out / "schedule.png"
    _plot_schedule(files["schedule"], levels, planned, sampler=sampler, title=title)

    if sampler == "langevin" and stats:
        files["correctors"] = out / "correctors.png"
        _plot_langevin(files["correctors"], stats, title=title)
    elif sampler == "adaptive" and stats:
        files["correctors"] = out / "correctors.png"
        _plot_adaptive(files["correctors"], stats, frames, title=title)

    files["picture"] = save_png(to_pil(images[0]), out / "final.png", recipes[0])

    files["json"] = out / "explain.json"
    written = {p.name for p in files.values()}
    _remove_stale(out, written)
    doc = {"recipe": recipes[0], "recipes": recipes, "at": at, "frames": n,
           "frame_sigmas": [f["sigma"] for f in frames], "schedule": levels, "planned_schedule": planned, "x_t_display": _DISPLAY, "strip": layout,
           "sampler_stats": stats, "files": sorted(written)}
    atomic_write_text(files["json"], json.dumps(doc, indent=2) + "\n")
    return files
