"""The diffusion-GAN race: diffusion, DDGAN (T = 4 and 2), Diffusion-GAN and a plain conditional GAN, each trained
for the same CPU minutes on the same data with the same generator, then measured side by side.

    python -m noisebrush.bench gan --minutes 10 --json docs/bench/gan-cpu.json
    python -m noisebrush.bench gan --minutes 1 --n 64 --quick          # a quick look (minutes of work)
    python -m noisebrush.bench gan --out RUNS --reuse --picture gan.png  # evaluate an earlier race's models again
    python -m noisebrush.bench gan --fast runs/fast/model                # a DDGAN against the model it started from

Every method trains ProceduralArt at 32 px, text-conditional (the built-in set's captions), through the one trainer
(:mod:`noisebrush.train.gan` for the GANs), with the same UNet as generator or denoiser (:data:`RACE_NET`, smaller
than the built-in model's so that minutes buy hundreds of steps) and the same discriminator for every GAN. The
trainers live side by side in this process and take turns in slices of ``--slice`` seconds until each has had
``--minutes`` of training time, so a machine that slows down in the middle slows every method alike. Each then
exports its model folder (``--out``, default a temporary folder) and is evaluated by :func:`noisebrush.eval.evaluate`
on ``--n`` prompts of the built-in set (fd_art, KID, precision, recall, prompt adherence, seconds per picture,
batched):

| method | NFE |
| --- | --- |
| diffusion (dpmpp_2m, cfg 3, the painting default) | 4, 10, 35 |
| DDGAN, T = 4 / T = 2 | 4 / 2 |
| Diffusion-GAN | 1 |
| plain GAN (DDGAN's T = 1) | 1 |

Goals (issue 18): DDGAN at 4 NFE has fd_art ≤ 0.5× diffusion's at 4 NFE and ≤ 1.5× diffusion's at 35, with recall
≥ 0.8× diffusion's (at 35); Diffusion-GAN beats the plain GAN on fd_art and on recall. The JSON records the
settings, each method's training (steps, seconds, precision) and the CPU's features.

**The fine-tuned race** (``--fast MODEL``): a DDGAN trained from a diffusion model (``noisebrush train --method ddgan
--set init=BASE``; BASE is read from the DDGAN's provenance, or ``--base``) against that model, on the same
prompts: BASE with dpmpp_2m and guidance at 4, 10 and 35 steps, and BASE with ddpm's posterior steps on the DDGAN's
own 4-step ladder (the chain the DDGAN's generator starts as), with and without guidance; the DDGAN at its steps.
"Diffusion at 4 steps" in the goals is the best of BASE's 4-step rows (lowest fd_art). The table counts network
evaluations per picture too: a step with guidance is two.
"""
from __future__ import annotations

import dataclasses
import json
import shlex
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch
from rich.table import Table

from PIL import Image, ImageDraw

from noisebrush.bench import common
from noisebrush.bench.common import (BenchParser, cell, check_report_path, finish, table_console,
                                    training_of)
from noisebrush.checks import number, whole
from noisebrush.data.procedural import ProceduralArt
from noisebrush.devices import cpu_bf16_fast, hardware_name, use_all_cores
from noisebrush.errors import UserError
from noisebrush.eval.evaluation import evaluate
from noisebrush.io.atomic import atomic_path, atomic_write_text
from noisebrush.io.images import make_grid, to_pil
from noisebrush.paint.pipeline import load
from noisebrush.train import Trainer, TrainConfig

__all__ = ["RACE_NET", "RACE_DISC", "METHODS", "run", "main", "print_table"]

# the generator / denoiser every method trains: 32-64-64 channels, one block per level, attention at 8×8
RACE_NET = dict(channels=32, channel_mult=[1, 2, 2], blocks=1, attn_resolutions=[8], cross_attn_resolutions=[8])
RACE_DISC = dict(channels=32, channel_mult=[1, 2, 4, 4])
# name → (training settings, evaluations as (NFE, steps, sampler, cfg))
METHODS = {
    "diffusion": ({"method": "diffusion"}, [(4, 4, "dpmpp_2m", 3.0), (10, 10, "dpmpp_2m", 3.0),
                                            (35, 35, "dpmpp_2m", 3.0)]),
    "ddgan": ({"method": "ddgan", "gan_steps": 4}, [(4, 4, "gan", 1.0)]),
    "ddgan-2": ({"method": "ddgan", "gan_steps": 2}, [(2, 2, "gan", 1.0)]),
    "diffusion-gan": ({"method": "diffusion-gan"}, [(1, 1, "gan", 1.0)]),
    "gan": ({"method": "gan"}, [(1, 1, "gan", 1.0)]),
}


def _config(name: str, out: Path, minutes: float, seed: int, batch: int) -> TrainConfig:
    settings = METHODS[name][0]
    return TrainConfig(data="builtin", resolution=32, condition="text", model=dict(RACE_NET), disc=dict(RACE_DISC),
                       steps=10 ** 6, batch_size=batch, lr_schedule="constant", warmup=20, ema_decay=0.995,
                       mixed_precision="auto", seed=seed, out_dir=str(out / name), log_every=25, sample_every=0,
                       checkpoint_every=0, **settings)


def train_all(names, out: Path, *, minutes: float, slice_s: float, seed: int, batch: int, log) -> dict:
    """Train every method for ``minutes`` of its own training time, in turns of ``slice_s`` seconds; returns
    name → (model folder, steps, seconds)."""
    trainers = {}
    for n in names:  # the captions are encoded once, for the first run: the others read its cache file
        if trainers:
            first = out / names[0] / "text-cache.safetensors"
            if first.is_file():
                (out / n).mkdir(parents=True, exist_ok=True)
                shutil.copyfile(first, out / n / "text-cache.safetensors")
        trainers[n] = Trainer(_config(n, out, minutes, seed, batch))
    budget = minutes * 60
    for t in trainers.values():  # the run folders' config.json, as a run started by `noisebrush train` has
        atomic_write_text(t.out / "config.json", json.dumps({"train": t.cfg.to_dict(), **t.objective.run_info()}))
    while any(t.train_seconds < budget for t in trainers.values()):
        for n, t in trainers.items():
            end = min(budget, t.train_seconds + slice_s)
            while t.train_seconds < end:
                t.train_step()
                if t.step % t.cfg.log_every == 0:
                    t.flush_log()  # each run's log.csv (GANs: D and G losses, D's accuracy, R1)
            log(f"{n}: {t.step} steps, {t.train_seconds:.0f} s")
    done = {}
    for n, t in trainers.items():
        (out / n).mkdir(parents=True, exist_ok=True)
        done[n] = {"model": str(t.export()), "steps": t.step, "train_seconds": round(t.train_seconds, 1),
                   "precision": t.precision}
    return done


def trained_before(names, out: Path) -> dict:
    """name → the model folder an earlier race exported into ``out`` and its training (steps, seconds, precision …
    from its provenance, :func:`training_of`); a missing one is one UserError line."""
    done = {}
    for n in names:
        path = out / n / "model"
        if not (path / "config.json").is_file():
            raise UserError(f"{path}: no model here from an earlier race (run without --reuse to train it)")
        done[n] = {"model": str(path), **training_of(str(path))}
    return done


# the side-by-side picture: held-out captions (data seed 1; the races train on seed 0), one seed per column
PICTURE_ITEMS, PICTURE_SEED = range(6), 1


def side_by_side(models: dict, path, *, zoom: int = 3, schedules: dict | None = None) -> Path:
    """One row per method (``models``: label → (model folder, NFE)), one column per held-out caption, the same seed
    in a column; each row labelled with its method and NFE. ``schedules``: label → (schedule kind, sampler, cfg)
    for a diffusion row painted otherwise than at the model's defaults (dpmpp_2m, cfg 3). Written atomically."""
    ds = ProceduralArt(resolution=32, size=60_000, seed=PICTURE_SEED)
    prompts = [ds.caption(i) for i in PICTURE_ITEMS]
    rows = []
    for label, (model, nfe) in models.items():
        pipe = load(model)
        kind, sampler, cfg = (schedules or {}).get(label, (None, None, 3.0))
        if kind and kind != pipe.schedule.kind:
            pipe.schedule = dataclasses.replace(pipe.schedule, kind=kind)
        pics = []
        for j, prompt in enumerate(prompts):
            x, _ = pipe.generate(prompt, seed=j, steps=None if pipe.is_gan else nfe, sampler=sampler, cfg=cfg)
            pics.append(to_pil(x[0]).resize((32 * zoom, 32 * zoom), resample=Image.NEAREST))
        rows.append((label, make_grid(pics, cols=len(pics))))
    width = max(g.width for _, g in rows) + 150
    sheet = Image.new("RGB", (width, sum(g.height for _, g in rows)), "white")
    draw, y = ImageDraw.Draw(sheet), 0
    for label, grid in rows:
        draw.text((6, y + grid.height // 2 - 6), label, fill="black")
        sheet.paste(grid, (150, y))
        y += grid.height
    with atomic_path(path) as tmp:
        sheet.save(tmp, format="PNG")
    return Path(path)


def painting_speed(models: dict, *, pictures: int = 8) -> dict:
    """Seconds per picture through ``Pipeline.generate`` at each model's defaults, one picture per call (as
    ``noisebrush paint`` paints): diffusion's default is 20 dpmpp_2m steps with guidance (two network evaluations
    a step), a GAN's its own steps without. ``models``: name → model folder."""
    out = {}
    for name, model in models.items():
        pipe = load(model)
        prompt = ProceduralArt(resolution=32, size=60_000, seed=PICTURE_SEED).caption(0)
        pipe.generate(prompt, seed=0)  # warm-up
        t = time.perf_counter()
        for k in range(pictures):
            pipe.generate(prompt, seed=k + 1)
        out[name] = {"seconds_per_picture": (time.perf_counter() - t) / pictures, "steps": pipe.schedule.steps,
                     "sampler": pipe.schedule.sampler}
    return out


def run(*, minutes: float = 10.0, n: int = 500, slice_s: float = 60.0, seed: int = 0, batch: int = 32,
        methods=tuple(METHODS), out: str | None = None, reuse: bool = False, picture: str | None = None,
        command: str = "", log=print) -> dict:
    use_all_cores()
    folder = Path(out) if out else Path(tempfile.mkdtemp(prefix="noisebrush-gan-race-"))
    if reuse:
        trained = trained_before(list(methods), folder)
        log(f"evaluating the models of an earlier race in {folder}")
    else:
        log(f"training {', '.join(methods)} for {minutes:g} min each in {folder}")
        trained = train_all(list(methods), folder, minutes=minutes, slice_s=slice_s, seed=seed, batch=batch,
                            log=log)
    rows = []
    for name in methods:
        for nfe, steps, sampler, cfg in METHODS[name][1]:
            log(f"evaluating {name} at {nfe} NFE")
            r = evaluate(trained[name]["model"], n=n, steps=steps, sampler=sampler, cfg=cfg, seed=seed,
                         memorization=False)
            rows.append({"method": name, "nfe": nfe, "sampler": sampler, "cfg": cfg,
                         **{k: r.get(k) for k in ("fd_art", "kid", "precision", "recall", "adherence",
                                                  "seconds_per_image")}})
    log("painting speed at each model's defaults")
    speed = painting_speed({name: trained[name]["model"] for name in methods})
    if picture:
        top = {name: max(e[0] for e in METHODS[name][1]) for name in methods}  # diffusion at its most steps
        side_by_side({f"{name} ({top[name]} NFE)": (trained[name]["model"], top[name]) for name in methods}, picture)
        log(f"side by side → {picture}")
    return {"bench": "gan", "command": command, "hardware": hardware_name(torch.device("cpu")),
            "cpu_bf16_native": cpu_bf16_fast(),
            "settings": {"minutes": minutes, "n": n, "slice_s": slice_s, "seed": seed, "batch": batch,
                         "net": RACE_NET, "disc": RACE_DISC, "out": str(folder), "reused": reuse},
            "training": trained, "rows": rows, "painting": speed, "summary": summarize(rows, speed)}


# the fine-tuned race's rows for the diffusion model: (steps, sampler, schedule kind or None for the model's, cfg)
BASE_ROWS = [(4, "dpmpp_2m", None, 3.0), (10, "dpmpp_2m", None, 3.0), (35, "dpmpp_2m", None, 3.0),
             (4, "ddpm", "ddgan", 1.0), (4, "ddpm", "ddgan", 3.0)]


def _measure(pipe, method: str, steps: int, sampler: str, cfg: float, *, n: int, seed: int, kind=None) -> dict:
    r = evaluate(pipe=pipe, n=n, steps=steps, sampler=sampler, cfg=cfg, seed=seed, memorization=False)
    used = r.get("cfg", cfg)  # a GAN paints at cfg 1 whatever is asked
    return {"method": method, "nfe": steps, "sampler": sampler, "cfg": used,
            "schedule": kind or pipe.schedule.kind, "evaluations": steps * (1 if used == 1 else 2),
            **{k: r.get(k) for k in ("fd_art", "kid", "precision", "recall", "adherence", "seconds_per_image")}}


def race_fast(fast: str, base: str | None = None, *, n: int = 500, seed: int = 0, picture: str | None = None,
              command: str = "", log=print) -> dict:
    """The fine-tuned race (see the module docstring): the DDGAN folder ``fast`` against the diffusion model it was
    trained from (``base``, default its provenance's ``init``)."""
    use_all_cores()
    fpipe = load(fast)
    if fpipe.method != "ddgan":
        raise UserError(f"--fast: {fast} is a {fpipe.method} model; the fine-tuned race takes a DDGAN")
    prov = fpipe.config.get("provenance") or {}
    base = base or prov.get("init")
    if not base:
        raise UserError(f"--fast: {fast} records no model it started from; name it with --base")
    bpipe = load(base)
    if bpipe.is_gan:
        raise UserError(f"--base: {base} is a {bpipe.method} model; the race needs the diffusion model")
    training = {"diffusion": {"model": str(base), **training_of(base)},
                "ddgan": {"model": str(fast), **training_of(fast)}}
    rows = []
    own = bpipe.schedule
    for steps, sampler, kind, cfg in BASE_ROWS:
        log(f"evaluating {base} with {sampler} at {steps} steps (cfg {cfg:g}{', ' + kind + ' ladder' if kind else ''})")
        bpipe.schedule = dataclasses.replace(own, kind=kind) if kind else own
        rows.append(_measure(bpipe, "diffusion", steps, sampler, cfg, n=n, seed=seed, kind=kind))
    bpipe.schedule = own
    log(f"evaluating {fast} at its {fpipe.schedule.steps} steps")
    rows.append(_measure(fpipe, "ddgan", fpipe.schedule.steps, "gan", 1.0, n=n, seed=seed))
    log("painting speed at each model's defaults")
    speed = painting_speed({"diffusion": base, "ddgan": fast})
    if picture:
        best4 = _row(rows, "diffusion", 4)
        side_by_side({"diffusion (35 steps)": (base, 35), f"diffusion (4, {best4['sampler']})": (base, 4),
                      f"DDGAN ({fpipe.schedule.steps} steps)": (fast, fpipe.schedule.steps)}, picture,
                     schedules={f"diffusion (4, {best4['sampler']})": (best4["schedule"], best4["sampler"],
                                                                        best4["cfg"])})
        log(f"side by side → {picture}")
    return {"bench": "gan", "mode": "fast", "command": command, "hardware": hardware_name(torch.device("cpu")),
            "cpu_bf16_native": cpu_bf16_fast(),
            "settings": {"n": n, "seed": seed, "fast": str(fast), "base": str(base)},
            "training": training, "rows": rows, "painting": speed, "summary": summarize(rows, speed)}


def _row(rows, method: str, nfe: int) -> dict | None:
    """The row of ``method`` at ``nfe``; of several (samplers), the one with the lowest fd_art."""
    found = [r for r in rows if r["method"] == method and r["nfe"] == nfe]
    return min(found, key=lambda r: r["fd_art"]) if found else None


def summarize(rows, speed: dict | None = None) -> dict:
    """The goals' ratios (None where a row is missing); with ``speed`` (:func:`painting_speed`), how many times
    faster each GAN paints than diffusion's default."""
    d4, d35, g4 = _row(rows, "diffusion", 4), _row(rows, "diffusion", 35), _row(rows, "ddgan", 4)
    dg, plain = _row(rows, "diffusion-gan", 1), _row(rows, "gan", 1)
    out = {}
    if g4 and d4:
        out["ddgan_vs_diffusion4_fd"] = g4["fd_art"] / d4["fd_art"]
    if g4 and d35:
        out["ddgan_vs_diffusion35_fd"] = g4["fd_art"] / d35["fd_art"]
        out["ddgan_vs_diffusion35_recall"] = g4["recall"] / d35["recall"] if d35["recall"] else None
        out["ddgan_speedup_vs_diffusion35"] = d35["seconds_per_image"] / g4["seconds_per_image"]
    if dg and plain:
        out["diffusion_gan_beats_gan"] = {"fd_art": dg["fd_art"] < plain["fd_art"],
                                          "recall": dg["recall"] > plain["recall"]}
    if speed and "diffusion" in speed:
        base = speed["diffusion"]["seconds_per_picture"]
        out["painting_speedup_vs_diffusion_default"] = {n: base / v["seconds_per_picture"] for n, v in speed.items()
                                                        if n != "diffusion"}
    goals = {}
    if "ddgan_vs_diffusion4_fd" in out and "ddgan_vs_diffusion35_fd" in out:
        rec = out.get("ddgan_vs_diffusion35_recall")
        goals["ddgan"] = out["ddgan_vs_diffusion4_fd"] <= 0.5 and out["ddgan_vs_diffusion35_fd"] <= 1.5 and \
            rec is not None and rec >= 0.8
    if "diffusion_gan_beats_gan" in out:
        goals["diffusion_gan"] = all(out["diffusion_gan_beats_gan"].values())
    out["goals_met"] = goals
    return out


def print_table(r: dict) -> None:
    s = r["settings"]
    con = table_console()
    if r.get("mode") == "fast":
        title = (f"fine-tuned gan race: {s['fast']} against {s['base']}, {s['n']} prompts of the built-in set "
                 f"({r['hardware']})")
    else:
        title = (f"gan race: {s['minutes']:g} CPU min each, {s['n']} prompts of the built-in set, batch "
                 f"{s['batch']} ({r['hardware']})")
    t = Table(title=title)
    for c in ("method", "steps", "sampler", "cfg", "evals", "train steps", "fd_art", "KID", "precision", "recall",
              "adherence", "s/picture"):
        t.add_column(c, justify="left" if c in ("method", "sampler") else "right")
    for row in r["rows"]:
        tr = r["training"][row["method"]]
        sampler = row["sampler"] + (f" ({row['schedule']})" if row.get("schedule") == "ddgan" and
                                    row["method"] == "diffusion" else "")
        evals = row.get("evaluations") or row["nfe"] * (1 if row["cfg"] == 1 else 2)
        t.add_row(row["method"], str(row["nfe"]), sampler, f"{row['cfg']:g}", str(evals), str(tr.get("steps")),
                  cell(row["fd_art"], ".1f"), cell(row["kid"]), cell(row["precision"]), cell(row["recall"]),
                  cell(row["adherence"]), cell(row["seconds_per_image"], ".4f"))
    con.print(t)
    for name, v in (r.get("painting") or {}).items():
        con.print(f"painting at its defaults, one picture per call: {name} {v['seconds_per_picture']:.3f} s "
                  f"({v['steps']} steps, {v['sampler']})")
    sm = r["summary"]
    for k, v in sm.items():
        con.print(f"{k}: {v if not isinstance(v, float) else round(v, 3)}")


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    ap = BenchParser(prog="python -m noisebrush.bench gan", description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=10.0, help="training time per method (0.2..600)")
    ap.add_argument("--n", type=int, default=500, help="pictures per evaluation (16..10000)")
    ap.add_argument("--slice", type=float, default=60.0, help="seconds per turn (5..3600)")
    ap.add_argument("--batch", type=int, default=32, help="training batch (4..256)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--methods", default=",".join(METHODS), help="comma-separated: " + ", ".join(METHODS))
    ap.add_argument("--out", default=None, help="folder for the runs (default: a temporary one)")
    ap.add_argument("--reuse", action="store_true", help="evaluate the models an earlier race left in --out "
                                                             "instead of training")
    ap.add_argument("--picture", default=None, metavar="PNG", help="also write the methods side by side on the same "
                                                                   "held-out prompts")
    ap.add_argument("--quick", action="store_true", help="diffusion, ddgan and the plain GAN only")
    ap.add_argument("--fast", default=None, metavar="MODEL", help="the fine-tuned race: this DDGAN folder against "
                                                                  "the diffusion model it was trained from")
    ap.add_argument("--base", default=None, metavar="MODEL", help="with --fast: the diffusion model to race "
                                                                  "(default: the DDGAN's provenance init)")
    ap.add_argument("--json", default=None, metavar="FILE")
    a = ap.parse_args(argv)
    number("--minutes", a.minutes, 0.2, 600.0)
    whole("--n", a.n, 16, 10000)
    number("--slice", a.slice, 5.0, 3600.0)
    whole("--batch", a.batch, 4, 256)
    whole("--seed", a.seed, 0)
    methods = ["diffusion", "ddgan", "gan"] if a.quick else common.comma_choices(a.methods, "--methods", METHODS)
    if a.reuse and not a.out:
        ap.error("--reuse: name the earlier race's folder with --out")
    if a.json:
        check_report_path(a.json)
    if a.picture:
        check_report_path(a.picture, "--picture")
    if a.base and not a.fast:
        ap.error("--base: only with --fast MODEL")
    if a.fast and (a.reuse or a.quick or a.out):
        ap.error("--fast: races a trained DDGAN; --reuse, --quick and --out belong to the race from scratch")
    t0 = time.perf_counter()
    prog = f"{common.PROG[0]} gan {shlex.join(argv)}".strip()
    log = lambda s: print(s, file=sys.stderr, flush=True)  # noqa: E731
    if a.fast:
        report = race_fast(a.fast, a.base, n=a.n, seed=a.seed, picture=a.picture, command=prog, log=log)
        report["seconds"] = round(time.perf_counter() - t0, 1)
        return finish(report, print_table, a.json, note="report → {path}")
    report = run(minutes=a.minutes, n=a.n, slice_s=a.slice, seed=a.seed, batch=a.batch, methods=methods, out=a.out,
                 reuse=a.reuse, picture=a.picture, command=prog, log=log)
    report["seconds"] = round(time.perf_counter() - t0, 1)
    return finish(report, print_table, a.json, note="report → {path}")


if __name__ == "__main__":
    sys.exit(main())
