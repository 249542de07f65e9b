"""Video benchmark: does the animation model move things the way its prompts say, smoothly, with good frames?

    python -m noisebrush.bench video --json outputs/bench-video.json            # 48 held-out clips (~25 min)
    python -m noisebrush.bench video --n 8 --steps 8 --quick                    # a quick look

Held-out prompts are the canonical captions of ProceduralClips items of data seed 1 (the model trained on seed 0),
each with the attributes it states (picture: family, colours, shape, size, count, position …; motion: kind,
direction, speed). The real clips of those items are the reference. Rows, each judged the same way:

* **real clips** — the judges on the real thing (the clip feature net's accuracy; real-vs-real distances of two
  disjoint sets: the floor);
* **video model** — text → clip with the animation model;
* **picture → clip** — the same prompts with the real clip's first frame given (it must come back bit for bit:
  ``first_frame_identical`` is the share that does);
* **independent frames** — baseline (a): every frame painted on its own by the picture model from the same prompt
  (frame f of clip i with seed 1000·i + f);
* **morph of two seeds** — baseline (b): the picture model painting the prompt from starting noise that moves along
  the great circle between two seeds' noise (a morph, :func:`noisebrush.paint.edit.slerp`).

Numbers per row (:mod:`noisebrush.eval.clips`): **motion adherence** (the share of clips whose predicted attributes
— picture and motion — all match the prompt's; goal ≥ 0.8) and per-attribute accuracy; **temporal consistency**:
the mean absolute change between consecutive frames, the feature jitter (mean ‖f(t+1) − f(t)‖ of the picture judge's
features) and its second difference (‖f(t+1) − 2f(t) + f(t−1)‖: large for flicker, small for smooth motion), each
next to the real clips'; the **clip Fréchet distance** (FVD's idea on the clip feature net); the **per-frame fd_art**
of all frames against the real frames, and its ratio to the picture model's (the independent-frames row; goal
≤ 1.5). The video model must beat both baselines on adherence and on temporal consistency (second difference
closer to the real clips'). Timing: seconds per clip here (batched, bf16 where the CPU runs it natively) and
through ``noisebrush animate``'s path at the model's defaults; the training time its provenance records.
"""
from __future__ import annotations

import math
import shlex
import sys
import time

import torch
from rich.table import Table

from noisebrush.bench import common
from noisebrush.bench.common import BenchParser, cell, check_report_path, finish, table_console, training_of
from noisebrush.checks import number, whole
from noisebrush.data.clips import MOTION_ATTRIBUTES, ProceduralClips
from noisebrush.data.procedural import ATTRIBUTES
from noisebrush.devices import fast_dtype, hardware_name, use_all_cores
from noisebrush.diffusion import SampleNoise
from noisebrush.diffusion.sample import sample
from noisebrush.errors import UserError
from noisebrush.eval.clips import clip_frechet, frame_fd, motion_adherence, temporal_consistency
from noisebrush.eval.sampling import batch_denoiser, sample_batch
from noisebrush.paint.edit import slerp
from noisebrush.paint.pipeline import load

__all__ = ["run", "main", "held_out", "print_table"]

DATA_SEED = 1   # held-out items (the model trains on seed 0)
OTHER_SEED = 2  # a second real set: the real-vs-real floor of the distances
MIN_N, MAX_N = 2, 2000


def held_out(n: int, frames: int, resolution: int = 32, seed: int = DATA_SEED) -> tuple[list[str], list[dict],
                                                                                         torch.Tensor]:
    """(captions, the attributes each states, the real clips N×3×T×H×W) of the first ``n`` items of ``seed``."""
    ds = ProceduralClips(resolution=resolution, frames=frames, size=n, seed=seed)
    captions, wanted = [], []
    for i in range(n):
        c = ds.clip(i)
        captions.append(c.caption)
        w = {k: v for k, v in c.attributes.items() if k in ATTRIBUTES}
        w |= {k: v for k, v in c.motion.items() if k in MOTION_ATTRIBUTES}
        wanted.append(w)
    real = ds.cache_uint8(n).float().div_(127.5).sub_(1.0)
    return captions, wanted, real


def _batches(n: int, batch: int):
    for i in range(0, n, batch):
        yield i, min(n, i + batch)


def paint_clips(pipe, prompts, seeds, *, steps, cfg, batch, given=None, given_mask=None, log=None) -> torch.Tensor:
    """Clips from a clip model, ``batch`` at a time (eval's batched sampling)."""
    out = []
    for i, j in _batches(len(prompts), batch):
        out.append(sample_batch(pipe, prompts=prompts[i:j], seeds=seeds[i:j], steps=steps, cfg=cfg,
                                given=None if given is None else given[i:j],
                                given_mask=None if given_mask is None else given_mask[i:j]))
        if log:
            log(f"  {j}/{len(prompts)} clips")
    return torch.cat(out)


def independent_frames(picture, prompts, frames: int, *, steps, cfg, batch, log=None) -> torch.Tensor:
    """Baseline (a): frame f of clip i painted on its own (seed 1000·i + f) by the picture model."""
    flat_prompts = [p for p in prompts for _ in range(frames)]
    seeds = [1000 * i + f for i in range(len(prompts)) for f in range(frames)]
    out = []
    for i, j in _batches(len(flat_prompts), batch * frames):
        out.append(sample_batch(picture, prompts=flat_prompts[i:j], seeds=seeds[i:j], steps=steps, cfg=cfg))
        if log:
            log(f"  {j // frames}/{len(prompts)} clips")
    x = torch.cat(out)
    return x.reshape(len(prompts), frames, *x.shape[1:]).transpose(1, 2)


@torch.no_grad()
def morph_clips(picture, prompts, frames: int, *, steps, cfg, batch, log=None) -> torch.Tensor:
    """Baseline (b): clip i is the picture model painting its prompt from noise that moves along the great circle
    from seed 2i's noise to seed 2i+1's (a morph of two seeds), all frames of a clip in one batch."""
    o = picture.check("", steps=steps, cfg=cfg)
    sigmas = o.sigmas()
    shape = picture.modality.shape(o.size)
    clips = []
    for i, p in enumerate(prompts):
        a, b = SampleNoise.from_seeds([2 * i]).randn(shape), SampleNoise.from_seeds([2 * i + 1]).randn(shape)
        eps = torch.cat([slerp(a, b, t) for t in torch.linspace(0, 1, frames).tolist()])
        x = eps * float(sigmas[0])
        tok, mask = picture.text_encoder.encode([p] * frames)
        den = batch_denoiser(picture, {"text": tok, "text_mask": mask}, cfg)
        clips.append(sample(den, x, sigmas, SampleNoise.from_seeds([2 * i] * frames), sampler=o.sampler)
                     .clamp(-1, 1).transpose(0, 1))
        if log and (i + 1) % batch == 0:
            log(f"  {i + 1}/{len(prompts)} clips")
    return torch.stack(clips)


def _u8(x: torch.Tensor) -> torch.Tensor:
    return ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def judge(name: str, kind: str, clips: torch.Tensor, wanted, real, *, seconds=None) -> dict:
    adh = motion_adherence(clips, wanted)
    moving = motion_adherence(clips, [{k: v for k, v in w.items() if k in MOTION_ATTRIBUTES} for w in wanted])
    adh["motion_only"] = moving["adherence"]
    row = {"name": name, "kind": kind, "n": int(clips.shape[0]), "adherence": adh,
           "temporal": temporal_consistency(clips), "clip_fd": clip_frechet(clips, real),
           "frame_fd": frame_fd(clips, real)}
    if seconds is not None:
        row["seconds_per_clip"] = seconds
    return row


def run(*, model: str = "builtin-video", picture_model: str = "builtin", n: int = 48, steps: int = 20,
        cfg: float = 3.0, batch: int = 8, cli_clip: bool = True, command: str = "", log=None) -> dict:
    """The whole benchmark (see the module docstring) as a report dict."""
    log = log or (lambda s: None)
    use_all_cores()
    video = load(model)
    picture = load(picture_model)
    if video.modality.kind != "clip":
        raise UserError(f"--model: {model} paints {video.modality.kind}s, not clips")
    frames, res = video.modality.default[0], video.resolution
    prompts, wanted, real = held_out(n, frames, res)
    _, _, other = held_out(n, frames, res, seed=OTHER_SEED)
    seeds = list(range(n))
    rows = []
    log("real clips")
    floor = judge("real clips", "real", real, wanted, other)
    floor["frame_fd"] = frame_fd(other, real)
    rows.append(floor)

    mask = torch.zeros(n, frames, dtype=torch.bool)
    mask[:, 0] = True
    painters = [
        ("video model: text → clip", f"video model ({model})", "video",
         lambda: paint_clips(video, prompts, seeds, steps=steps, cfg=cfg, batch=batch, log=log)),
        ("video model: picture → clip", "picture → clip", "picture_to_clip",
         lambda: paint_clips(video, prompts, seeds, steps=steps, cfg=cfg, batch=batch, given=real, given_mask=mask,
                             log=log)),
        ("baseline (a): independent frames", f"independent frames ({picture_model})", "independent",
         lambda: independent_frames(picture, prompts, frames, steps=steps, cfg=cfg, batch=batch, log=log)),
        ("baseline (b): morph of two seeds", f"morph of two seeds ({picture_model})", "morph",
         lambda: morph_clips(picture, prompts, frames, steps=steps, cfg=cfg, batch=batch, log=log)),
    ]
    for what, name, kind, paint in painters:
        log(what)
        t = time.perf_counter()
        clips = paint()
        row = judge(name, kind, clips, wanted, real, seconds=(time.perf_counter() - t) / n)
        if kind == "picture_to_clip":
            same = (_u8(clips[:, :, 0]) == _u8(real[:, :, 0])).flatten(1).all(1)
            row["first_frame_identical"] = float(same.float().mean())
        rows.append(row)

    cli = None
    if cli_clip:
        log("one clip through noisebrush animate's path (the model's defaults)")
        t = time.perf_counter()
        video.animate(prompts[0], seed=0)
        cli = time.perf_counter() - t
    vid, ind_row = rows[1], rows[3]
    real_t = floor["temporal"]
    summary = {
        "motion_adherence": vid["adherence"]["adherence"], "motion_only": vid["adherence"]["motion_only"],
        "goal_adherence": 0.8,
        "frame_fd_ratio": vid["frame_fd"] / ind_row["frame_fd"] if ind_row["frame_fd"] > 0 else math.inf,
        "goal_frame_fd_ratio": 1.5,
        "beats_baselines_on_adherence": all(vid["adherence"]["adherence"] > r["adherence"]["adherence"]
                                            for r in rows[3:]),
        "beats_baselines_on_consistency": all(
            abs(vid["temporal"]["jitter2"] - real_t["jitter2"]) < abs(r["temporal"]["jitter2"] - real_t["jitter2"])
            for r in rows[3:]),
        "first_frame_identical": rows[2]["first_frame_identical"],
    }
    return {"bench": "video", "command": command, "hardware": hardware_name(video.device),
            "settings": {"model": model, "picture_model": picture_model, "n": n, "frames": frames, "steps": steps,
                         "cfg": cfg, "data_seed": DATA_SEED, "batch": batch,
                         "dtype": str(fast_dtype(video.device) or torch.float32).replace("torch.", "")},
            "rows": rows, "summary": summary, "cli_seconds_per_clip": cli, "training": training_of(model)}



def print_table(r: dict) -> None:
    s = r["settings"]
    con = table_console()
    t = Table(title=f"video: {s['n']} held-out prompts (data seed {s['data_seed']}), {s['frames']} frames, "
                    f"{s['steps']} steps, cfg {s['cfg']:g}, {s['dtype']}")
    for c in ("row", "adherence", "motion only", "kind", "direction", "speed", "Δframe", "jitter", "jitter²",
              "clip FD", "frame fd_art", "s/clip"):
        t.add_column(c, justify="left" if c == "row" else "right")
    for row in r["rows"]:
        a, tc = row["adherence"], row["temporal"]
        per = a.get("per_attribute", {})
        t.add_row(row["name"], cell(a["adherence"]), cell(a["motion_only"]), cell(per.get("motion")),
                  cell(per.get("direction")), cell(per.get("speed")),
                  cell(tc["mad"], ".4f"), cell(tc["jitter"]), cell(tc["jitter2"]), cell(row["clip_fd"], ".4g"),
                  cell(row["frame_fd"], ".4g"), cell(row.get("seconds_per_clip"), ".2f"))
    con.print(t)
    sm = r["summary"]
    con.print(f"adherence {sm['motion_adherence']:.3f} (goal ≥ {sm['goal_adherence']}; motion alone "
              f"{sm['motion_only']:.3f}); per-frame fd_art "
              f"{sm['frame_fd_ratio']:.2f}× the picture model's (goal ≤ {sm['goal_frame_fd_ratio']}); beats both "
              f"baselines on adherence: {sm['beats_baselines_on_adherence']}, on temporal consistency: "
              f"{sm['beats_baselines_on_consistency']}; picture → clip first frame identical: "
              f"{sm['first_frame_identical']:.0%}")
    if r.get("cli_seconds_per_clip") is not None:
        con.print(f"one clip through `noisebrush animate` at the model's defaults: {r['cli_seconds_per_clip']:.1f} s")
    tr = r.get("training") or {}
    if tr.get("train_seconds"):
        con.print(f"training: {tr.get('steps')} steps in {tr['train_seconds'] / 3600:.2f} h on {tr.get('hardware')}")


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    ap = BenchParser(prog="python -m noisebrush.bench video", description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="builtin-video", help="the clip model (default: the built-in one)")
    ap.add_argument("--picture-model", default="builtin", help="the picture model of the baselines")
    ap.add_argument("--n", type=int, default=48, help=f"held-out prompts ({MIN_N}..{MAX_N})")
    ap.add_argument("--steps", type=int, default=20, help="sampler steps")
    ap.add_argument("--cfg", type=float, default=3.0, help="guidance scale")
    ap.add_argument("--batch", type=int, default=8, help="clips painted at once")
    ap.add_argument("--quick", action="store_true", help="leave out the clip through `noisebrush animate`'s path")
    ap.add_argument("--json", default=None, metavar="FILE")
    a = ap.parse_args(argv)
    whole("--n", a.n, MIN_N, MAX_N)
    whole("--steps", a.steps, 1, 1000)
    whole("--batch", a.batch, 1, 256)
    number("--cfg", a.cfg, 0.0, 100.0)
    if a.json:
        check_report_path(a.json)
    report = run(model=a.model, picture_model=a.picture_model, n=a.n, steps=a.steps, cfg=a.cfg, batch=a.batch,
                 cli_clip=not a.quick, command=f"{common.PROG[0]} video {shlex.join(argv)}".strip(),
                 log=lambda s: print(s, file=sys.stderr, flush=True))
    return finish(report, print_table, a.json, note="report → {path}")


if __name__ == "__main__":
    sys.exit(main())
