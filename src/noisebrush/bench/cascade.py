"""The super-resolution cascade, measured: does painting at 32 px and upscaling beat plain bicubic, and what does it
cost per picture?

    python -m noisebrush.bench cascade --n 100 --json outputs/bench-cascade.json
    python -m noisebrush.bench cascade --n 100 --sr-steps 8,12,20 --sr-aug 0,0.1,0.2 --json outputs/sweep.json

On ``--n`` held-out prompts (the captions of items 0..n-1 of ``ProceduralArt(seed=777)``, a data seed no model
trained on) the base model (``--base``) paints picture i with seed i (``--cfg``, ``--steps``: default the model's),
and the stages (``--stages``; default the built-in chain from the base's size to ``--size``, 128) upscale it,
picture by picture through the library (:meth:`Pipeline.generate <noisebrush.paint.pipeline.Pipeline.generate>`,
:func:`~noisebrush.paint.upscale.upscale`: the path users get), each stage timed on its own. The same base paintings
go through every row:

* ``bicubic`` — the base paintings upsampled bicubically (clamped to [-1, 1]): the baseline;
* ``cascade (steps S, aug A)`` — the stages at their own defaults, and every combination of ``--sr-steps`` and
  ``--sr-aug`` (all stages take that S and σ_aug A) to choose the defaults;
* with ``--other-projection``, the defaults with the consistency projection
  (:class:`~noisebrush.paint.upscale.Consistent`) toggled (a cascade's stages do not project by default);
* ``upscaled renders`` — the stages (at their defaults) on the real renders box-averaged to the base size: the pure
  super-resolution quality, with PSNR against the real renders;
* ``bicubic of renders`` — the same box-averaged renders upsampled bicubically (``--no-renders`` keeps this row
  and leaves out the one above, which paints): what the metrics say about a picture
  whose composition is right but whose detail is missing (a judge that scores it close to the renders cannot see
  detail);
* with ``--single MODEL[,MODEL]``, ``one model: NAME`` — text models that paint at the final size directly (picture
  i of prompt i with seed i, ``--cfg``, their own steps): the cascade against one big model (and a progressively
  trained one), e.g. at equal training time (``configs/equal-cpu``).

With ``--data DIR`` the real pictures are a folder's (the first ``--n`` in name order, centre-cropped to the final
size) and the prompts their captions: a user's own pictures, with their own base and stages (there are no attributes
to judge adherence by, so those columns are empty). ``--save DIR`` writes every row's pictures (and the base
paintings) as uint8 safetensors, to judge again later without painting.

Each row is compared with the real renders at the final size (``ProceduralArt(resolution=final, seed=777)``, the
same captions): Laplacian SWD (the mean over the pyramid's levels, and the finest level alone, which measures detail
with no network in between), fd_art / KID / precision / recall in the 128 px feature net's space
(``--featnet128``), prompt adherence judged at the base size by the shipped 32 px net (the result box-averaged down)
and at full size by the 128 px net, and for pictures upscaled from a base painting the consistency PSNR (the result
box-averaged back to the base size against the base painting; mean and minimum). The goals, at the stages'
defaults: SWD and fd_art at most half the bicubic baseline's, adherence within 0.02 of the base's own (its paintings
judged at 32 px), consistency ≥ 30 dB, and ≤ 10 s per picture in all.
"""
from __future__ import annotations

import json
import math
import shlex
import sys
import time
from pathlib import Path

import torch
from rich.console import Console
from safetensors import safe_open
from safetensors.torch import save as safetensors_bytes
from rich.table import Table

from noisebrush.bench import common
from noisebrush.bench.common import BenchParser, cell, check_report_path, comma_separated, finish, table_console
from noisebrush.checks import number, whole
from noisebrush.data.folder import ImageFolder
from noisebrush.data.procedural import ProceduralArt
from noisebrush.data.superres import consistency_psnr, downsample, psnr, upsample
from noisebrush.devices import hardware_name
from noisebrush.errors import BadParameter, UserError
from noisebrush.eval.evaluation import adherence_scores, small_n_note
from noisebrush.eval.features import FEATNET128_DIR, FEATNET_DIR, load_feature_net
from noisebrush.eval.metrics import frechet_distance, kid, precision_recall, swd_laplacian
from noisebrush.eval.train_features import attribute_table
from noisebrush.io.atomic import atomic_write_bytes, check_writable
from noisebrush.io.model_folder import BUILTIN_MODELS
from noisebrush.paint.cascade import BUILTIN_STAGES, Cascade, cascade, load_stage, stage_names
from noisebrush.paint.pipeline import load
from noisebrush.paint.upscale import MAX_AUG, upscale

DATA_SEED = 777       # held out: the models train on seed 0, the feature nets validate on 12345
DEFAULT_N, MIN_N, MAX_N = 100, 8, 2000
DEFAULT_SIZE = 128
EVERY = 10            # a progress line per this many pictures
TRAIN_128 = "python -m noisebrush.eval.train_features --resolution 128 --n 40000 --epochs 4 --blur-max 0.5"
GOALS = {"swd_ratio": 0.5, "fd_ratio": 0.5, "adherence_delta": -0.02, "consistency_psnr": 30.0, "seconds": 10.0}


# -- options -------------------------------------------------------------------------------------------------------
def feature_net_128(path: str | None):
    """The 128 px feature net (``path``, default the shipped folder) and its config.json; one UserError line saying
    how to train it when it is not there."""
    p = Path(path) if path else FEATNET128_DIR
    if not (p / "model.safetensors").is_file():
        if path:
            raise UserError(f"--featnet128 {p}: no feature network here (train one: {TRAIN_128} --out {p})")
        raise UserError(f"{p}: the 128 px feature network is not trained yet; train it with `{TRAIN_128}` (or name "
                        f"another folder with --featnet128)")
    net = load_feature_net(str(p))
    try:
        conf = json.loads((p / "config.json").read_text())
    except (OSError, json.JSONDecodeError):
        conf = {}
    return net, p, conf


def stage_settings(casc: Cascade, steps, aug) -> tuple[list[int], list[float]]:
    """Per stage, the steps and σ_aug a row paints with (None: the stage's own, as its model folder records)."""
    return ([int(steps) if steps is not None else s.pipe.schedule.steps for s in casc.stages],
            [float(aug) if aug is not None else float(s.pipe.superres.get("sampling_aug", 0.0)) for s in casc.stages])


def _same(values) -> str:
    vals = [f"{v:g}" for v in values]
    return vals[0] if len(set(vals)) == 1 else "/".join(vals)


def row_name(steps: list[int], aug: list[float], default: bool) -> str:
    return f"cascade (steps {_same(steps)}, aug {_same(aug)}{'; defaults' if default else ''})"


# -- painting ------------------------------------------------------------------------------------------------------
class Progress:
    """A line on stderr every :data:`EVERY` pictures (and at the end), so a long run shows it is alive."""

    def __init__(self, what: str, total: int, log):
        self.what, self.total, self.log, self.t0 = what, total, log, time.perf_counter()

    def tick(self, done: int) -> None:
        if done % EVERY == 0 or done == self.total:
            el = time.perf_counter() - self.t0
            left = el / done * (self.total - done)
            self.log(f"{self.what}: {done}/{self.total} pictures ({el:.0f} s, ~{left:.0f} s left)")


def paint_base(pipe, prompts: list[str], *, steps, cfg: float, log, what: str = "base") \
        -> tuple[torch.Tensor, list[float]]:
    """Picture i of prompt i with seed i, one call per picture (what ``noisebrush paint`` does) → (N×3×h×w, the
    seconds each took)."""
    out, secs = [], []
    prog = Progress(what, len(prompts), log)
    for i, p in enumerate(prompts):
        t = time.perf_counter()
        x, _ = pipe.generate(p, seed=i, n=1, steps=steps, cfg=cfg)
        secs.append(time.perf_counter() - t)
        out.append(x)
        prog.tick(i + 1)
    return torch.cat(out), secs


def run_stages(casc: Cascade, low: torch.Tensor, prompts: list[str], what: str, log) \
        -> tuple[torch.Tensor, list[list[float]]]:
    """Each picture through every stage (picture i with seed i, as :meth:`Cascade.finish`) → (the results, per
    stage the seconds each picture took)."""
    outs, secs = [], [[] for _ in casc.stages]
    prog = Progress(what, len(prompts), log)
    for i, (x, p) in enumerate(zip(low.split(1), prompts)):
        for k, s in enumerate(casc.stages):
            t = time.perf_counter()
            x, _ = upscale(s.pipe, x, p, seed=i, aug=s.aug, steps=s.steps, sampler=s.sampler, cfg=s.cfg,
                           project=s.project)
            secs[k].append(time.perf_counter() - t)
        outs.append(x)
        prog.tick(i + 1)
    return torch.cat(outs), secs


# -- measuring -----------------------------------------------------------------------------------------------------
class Judge:
    """The metrics of a set of final-size pictures against the real renders."""

    def __init__(self, real: torch.Tensor, fnet128, fnet32, table: torch.Tensor, base_res: int):
        self.real, self.fnet128, self.fnet32, self.table = real, fnet128, fnet32, table
        self.factor = real.shape[-1] // base_res
        self.real_f = fnet128.features(real)

    def adherence32(self, small: torch.Tensor) -> float | None:
        if self.table is None:  # a folder's pictures: no attributes to judge by
            return None
        return adherence_scores(self.fnet32.predict(small), self.table)["adherence"]

    def __call__(self, x: torch.Tensor) -> dict:
        swd = swd_laplacian(x, self.real)
        f, pred = self.fnet128.features_and_predictions(x)
        p, r = precision_recall(self.real_f, f)
        return {"swd": swd["mean"], "swd_levels": swd["levels"], "swd_sizes": swd["sizes"],
                "swd_detail": swd["levels"][swd["sizes"].index(max(swd["sizes"]))],
                "fd_art": frechet_distance(f, self.real_f), "kid": kid(f, self.real_f), "precision": p, "recall": r,
                "adherence_32": self.adherence32(downsample(x, self.factor)),
                "adherence_128": None if self.table is None else adherence_scores(pred, self.table)["adherence"]}


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in ".-" else "_" for c in name).strip("_")


class Saver:
    """``--save DIR``: each row's pictures as ``DIR/<row>.safetensors`` (one uint8 tensor ``pictures``, N×3×H×W;
    the row's name, the prompts, the data and the base's size in the metadata), written whole or not at all;
    ``--rejudge DIR`` reads them back."""

    def __init__(self, folder: str | None, prompts: list[str], data: str | None, base_res: int):
        self.folder = None if folder is None else Path(folder)
        self.meta = {"prompts": json.dumps(prompts), "data": data or "builtin", "base_resolution": str(base_res)}

    def __call__(self, name: str, x: torch.Tensor) -> None:
        if self.folder is None:
            return
        u8 = ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).contiguous()
        self.folder.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(self.folder / f"{_slug(name)}.safetensors",
                           safetensors_bytes({"pictures": u8}, metadata={"row": name, **self.meta}))


def rejudge(folder: str, *, featnet128: str | None = None, featnet: str | None = None, command: str = "",
            log=print) -> dict:
    """Judge again the pictures ``--save`` wrote into ``folder`` (e.g. with another ``--featnet128``), without
    painting: every row at the final size, against the same real pictures."""
    fnet128, f128_path, _ = feature_net_128(featnet128)
    fnet32 = load_feature_net(featnet)
    files = sorted(Path(folder).glob("*.safetensors"), key=lambda p: p.stat().st_mtime) \
        if Path(folder).is_dir() else []
    if not files:
        raise UserError(f"--rejudge {folder}: no pictures saved by --save here")
    rows = []
    for f in files:
        try:
            with safe_open(str(f), "pt") as st:
                meta, pics = st.metadata() or {}, st.get_tensor("pictures")
            prompts = json.loads(meta["prompts"])
            base_res = int(meta["base_resolution"])
        except Exception as e:  # not a file --save wrote
            raise UserError(f"{f}: not a picture file of --save ({type(e).__name__})") from None
        rows.append((meta.get("row", f.stem), pics.float() / 127.5 - 1, prompts, meta["data"], base_res))
    final = max(r[1].shape[-1] for r in rows)
    name, _, prompts, data, base_res = rows[0]
    if any(r[2] != prompts or r[3] != data for r in rows):
        raise UserError(f"--rejudge {folder}: the files come from different runs (other prompts or data)")
    real, _, table = real_pictures(None if data == "builtin" else data, len(prompts), final, base_res)
    judge = Judge(real, fnet128, fnet32, table, base_res)
    out = []
    for name, x, *_ in rows:
        if x.shape[-1] != final:  # the base paintings: judged at their own size by adherence only
            continue
        out.append({"name": name, **judge(x)})
        log(f"{name}: swd {out[-1]['swd']:.2f}, fd_art {out[-1]['fd_art']:.2f}")
    return {"benchmark": "cascade-rejudge", "folder": str(folder), "n": len(prompts), "size": final,
            "data": data, "rows": out,
            "feature_nets": {"judge_128": {"path": str(f128_path), "resolution": fnet128.resolution}},
            "command": command}


def print_rejudge(r: dict) -> None:
    t = Table(title=f"{r['folder']}: {r['n']} pictures at {r['size']} px, judged again")
    for c in ("row", "SWD", "SWD finest", "fd_art@128", "KID", "P", "R", "adherence@32", "adherence@128"):
        t.add_column(c, justify="left" if c == "row" else "right")
    for row in r["rows"]:
        t.add_row(row["name"], _f(row["swd"], ".4g"), _f(row["swd_detail"], ".4g"), _f(row["fd_art"], ".4g"),
                  _f(row["kid"], ".3g"), _f(row["precision"]), _f(row["recall"]), _f(row["adherence_32"], ".3f"),
                  _f(row["adherence_128"], ".3f"))
    Console(width=170).print(t)


def real_pictures(data: str | None, n: int, size: int, base_res: int):
    """The real pictures at the final size, their prompts and their attribute table (None for a folder)."""
    if data is None:
        held = ProceduralArt(resolution=base_res, size=n, seed=DATA_SEED)
        real = ProceduralArt(resolution=size, size=n, seed=DATA_SEED).cache_uint8(n).float() / 127.5 - 1
        return real, [held.caption(i) for i in range(n)], attribute_table(held, n)
    folder = ImageFolder(Path(data), resolution=size, crop="center", flip=False, seed=0)
    if len(folder) < n:
        raise UserError(f"--data {data}: {len(folder)} pictures, fewer than --n {n}")
    items = [folder[i] for i in range(n)]
    return torch.stack([it["image"] for it in items]), [it["caption"] for it in items], None


def _psnrs(a: torch.Tensor, b: torch.Tensor, fn) -> dict:
    vals = [fn(a[i:i + 1], b[i:i + 1]) for i in range(a.shape[0])]
    return {"mean": sum(vals) / len(vals), "min": min(vals)}


def _timing(base_secs: list[float] | None, stage_secs: list[list[float]], sizes: list[int]) -> dict:
    n = len(stage_secs[0]) if stage_secs else len(base_secs)
    base = sum(base_secs) / n if base_secs is not None else 0.0
    stages = [sum(s) / n for s in stage_secs]
    total = base + sum(stages)
    return {"seconds_per_picture": total, "base_seconds_per_picture": base if base_secs is not None else None,
            "stage_seconds_per_picture": stages,
            "stage_share": [s / total if total > 0 else float("nan") for s in stages],
            "stage_sizes": sizes}


# -- the benchmark -------------------------------------------------------------------------------------------------
def run(*, n: int = DEFAULT_N, base: str = "builtin", stages: list[str] | None = None, size: int | None = None,
        steps: int | None = None, cfg: float = 3.0, sr_steps: list | None = None, sr_aug: list | None = None,
        other_projection: bool = False, single: list[str] | None = None, data: str | None = None,
        save: str | None = None, renders: bool = True,
        featnet128: str | None = None, featnet: str | None = None, command: str = "", log=print) -> dict:
    fnet128, f128_path, f128_conf = feature_net_128(featnet128)  # first: fail before any painting
    fnet32 = load_feature_net(featnet)
    if data is not None and not Path(data).is_dir():
        raise UserError(f"--data {data}: no such folder of pictures")
    if save is not None:
        check_writable(save, what="--save", folder=True)
    base_pipe = load(base)
    _text_model("--base", base, base_pipe)
    if stages is None:
        size = DEFAULT_SIZE if size is None else size
        stages = stage_names(base_pipe.resolution, size)
    for s in stages:  # a built-in stage not shipped yet: say how to make it
        if s in BUILTIN_STAGES.values() and not (BUILTIN_MODELS[s] / "model.safetensors").is_file():
            cfg_name = s.removeprefix("builtin-")
            raise UserError(f"{s}: the built-in stage is not shipped yet; train it (`noisebrush train --config "
                            f"configs/{cfg_name}.toml --out runs/{cfg_name}`, then `python -m noisebrush.models.ship "
                            f"runs/{cfg_name}/model --name {s}`) or name stage folders with --stages")
    pipes = [load_stage(s) for s in stages]
    casc = cascade(base_pipe, size=size if size is not None else
                   base_pipe.resolution * math.prod(p.scale for p in pipes), stages=pipes)
    final, factor = casc.resolution, casc.resolution // base_pipe.resolution
    sizes = casc.sizes()
    singles = [load(m) for m in single or []]
    for m, sp in zip(single or [], singles):
        _text_model("--single", m, sp)
        if sp.resolution != final:
            raise UserError(f"--single {m}: paints {sp.resolution} px pictures, not {final} px as the cascade does")

    # the rows: the stages' defaults first, then the sweep (a combination that is the defaults again is skipped)
    combos = [(None, None)] + [(s, a) for s in (sr_steps or [None]) for a in (sr_aug or [None])]
    variants, seen = [], set()
    for s, a in combos:
        st, au = stage_settings(casc, s, a)
        if (tuple(st), tuple(au)) in seen:
            continue
        seen.add((tuple(st), tuple(au)))
        v = casc.with_options(steps=st[0] if s is not None else None, aug=au[0] if a is not None else None)
        variants.append((v, st, au, not variants))
    if other_projection:  # what the consistency projection does: the defaults with it toggled
        flip = not variants[0][0].stages[0].project
        variants.append((variants[0][0].with_options(project=flip), variants[0][1], variants[0][2], False))
    t0 = time.perf_counter()
    real, prompts, table = real_pictures(data, n, final, base_pipe.resolution)
    for v, *_ in variants:  # every option checked before an hour of painting
        v.check(prompts[0], steps=steps, cfg=cfg)
    base_steps = base_pipe.check(prompts[0], steps=steps, cfg=cfg).steps
    for sp in singles:
        sp.check(prompts[0], cfg=cfg)
    keep = Saver(save, prompts, data, base_pipe.resolution)

    log(f"cascade bench: {n} prompts, {base_pipe.name} ({base_pipe.resolution} px) → "
        f"{' → '.join(f'{p.name} ({r} px)' for p, r in zip(pipes, sizes))}; {len(variants)} cascade row(s)"
        + (f", {len(singles)} single model(s)" if singles else ""))
    judge = Judge(real, fnet128, fnet32, table, base_pipe.resolution)
    log(f"{'read' if data else 'rendered'} {n} real {final} px pictures ({time.perf_counter() - t0:.0f} s)")

    base_imgs, base_secs = paint_base(base_pipe, prompts, steps=steps, cfg=cfg, log=log)
    keep("base", base_imgs)
    base_adherence = judge.adherence32(base_imgs)
    rows = []

    t = time.perf_counter()
    bic = upsample(base_imgs, factor).clamp(-1, 1)
    bic_secs = (time.perf_counter() - t) / n
    rows.append({"name": "bicubic", "kind": "bicubic", **judge(bic),
                 "consistency_psnr": _psnrs(bic, base_imgs, consistency_psnr),
                 "seconds_per_picture": sum(base_secs) / n + bic_secs,
                 "base_seconds_per_picture": sum(base_secs) / n})
    keep("bicubic", bic)
    del bic
    log(f"bicubic: swd {rows[-1]['swd']:.2f}, fd_art {rows[-1]['fd_art']:.2f}")

    for v, st, au, default in variants:
        name = row_name(st, au, default) + (" with projection" if v.stages[0].project else "")
        out, secs = run_stages(v, base_imgs, prompts, name, log)
        rows.append({"name": name, "kind": "cascade", "default": default, "steps": st, "aug": au,
                     "project": v.stages[0].project,
                     "samplers": [s.sampler or s.pipe.schedule.sampler for s in v.stages], **judge(out),
                     "consistency_psnr": _psnrs(out, base_imgs, consistency_psnr), **_timing(base_secs, secs, sizes)})
        r = rows[-1]
        log(f"{name}: swd {r['swd']:.2f}, fd_art {r['fd_art']:.2f}, PSNR back {r['consistency_psnr']['mean']:.1f} dB, "
            f"{r['seconds_per_picture']:.2f} s/picture")
        keep(name, out)
        del out

    for sp in singles:
        out, secs = paint_base(sp, prompts, steps=None, cfg=cfg, log=log, what=sp.name)
        rows.append({"name": f"one model: {sp.name}", "kind": "single", "model": sp.name, "model_hash": sp.hash,
                     "steps": sp.schedule.steps, "sampler": sp.schedule.sampler, **judge(out),
                     "seconds_per_picture": sum(secs) / n})
        keep(rows[-1]["name"], out)
        log(f"{rows[-1]['name']}: swd {rows[-1]['swd']:.2f}, fd_art {rows[-1]['fd_art']:.2f}")
        del out

    low = downsample(real, factor)
    bic = upsample(low, factor).clamp(-1, 1)
    bicubic_renders_psnr = _psnrs(bic, real, psnr)
    if renders:
        out, secs = run_stages(variants[0][0], low, prompts, "upscaled renders", log)
        rows.append({"name": "upscaled renders", "kind": "upscaled_renders", "steps": variants[0][1],
                     "aug": variants[0][2], **judge(out), "psnr": _psnrs(out, real, psnr),
                     "consistency_psnr": _psnrs(out, low, consistency_psnr), **_timing(None, secs, sizes)})
        keep("upscaled renders", out)
        del out
        log(f"upscaled renders: PSNR {rows[-1]['psnr']['mean']:.2f} dB "
            f"(bicubic {bicubic_renders_psnr['mean']:.2f} dB)")
    rows.append({"name": "bicubic of renders", "kind": "bicubic_renders", **judge(bic), "psnr": bicubic_renders_psnr,
                 "seconds_per_picture": None})
    keep("bicubic of renders", bic)

    bicubic, cas = rows[0], rows[1]
    report = {
        "benchmark": "cascade",
        "settings": {"n": n, "data": data or "builtin", "data_seed": None if data else DATA_SEED, "items": [0, n - 1], "base_seeds": "picture i: seed i",
                     "stage_seeds": "picture i: seed i (each stage mixes in its tag and size)", "size": final,
                     "base_resolution": base_pipe.resolution, "cfg": cfg, "base_steps": base_steps,
                     "base_sampler": base_pipe.schedule.sampler, "sr_steps": sr_steps, "sr_aug": sr_aug,
                     "default_stage_steps": variants[0][1], "default_stage_aug": variants[0][2],
                     "kid_seed": 0, "swd_seed": 0},
        "models": {"base": {"model": base_pipe.name, "model_hash": base_pipe.hash,
                            "resolution": base_pipe.resolution},
                   "stages": [{"model": p.name, "model_hash": p.hash, "scale": p.scale, "size": r,
                               "steps": p.schedule.steps, "sampler": p.schedule.sampler,
                               "aug": float(p.superres.get("sampling_aug", 0.0)), "conditional": p.conditional}
                              for p, r in zip(pipes, sizes)],
                   "single": [{"model": sp.name, "model_hash": sp.hash, "resolution": sp.resolution}
                              for sp in singles]},
        "feature_nets": {
            "judge_128": {"path": str(f128_path), "resolution": fnet128.resolution,
                          "held_out_accuracy": ((f128_conf.get("provenance") or {}).get("held_out") or {})
                          .get("accuracy"),
                          "command": (f128_conf.get("provenance") or {}).get("command")},
            "judge_32": {"path": str(Path(featnet) if featnet else FEATNET_DIR), "resolution": fnet32.resolution}},
        "base": {"adherence_32": base_adherence, "seconds_per_picture": sum(base_secs) / n},
        "rows": rows,
        "bicubic_renders_psnr": bicubic_renders_psnr,
        "goals": goals(bicubic, cas, base_adherence),
        "single_fd_ratio": {r["name"]: cas["fd_art"] / max(r["fd_art"], 1e-12) for r in rows if r["kind"] == "single"},
        "suggested": suggest(rows, bicubic, base_adherence),
        "hardware": hardware_name(base_pipe.device),
        "threads": torch.get_num_threads(),
        "command": command,
        "seconds": time.perf_counter() - t0,
        "notes": [n_ for n_ in (small_n_note(n, fnet128.dim),) if n_] + [
            "goals are measured at the stages' defaults (the first cascade row)",
            "upscaled renders: the stages at their defaults on the real renders box-averaged to the base size; "
            "psnr is against the real renders, bicubic_renders_psnr the bicubic baseline of the same",
            "adherence_32: pictures box-averaged to the base size, read by the shipped 32 px feature net; "
            "adherence_128: read at full size by the 128 px net"]
        + (["single_fd_ratio: the cascade's fd_art over each single model's (< 1: the cascade is better)"]
           if singles else [])
        + ([f"--data {data}: the real pictures are the folder's first {n} (name order), the prompts their "
            "captions; no attributes, so no adherence"] if data else [])
        + ([f"the 128 px feature net reads {fnet128.resolution} px pictures; these ({final} px) are resized to it"]
           if fnet128.resolution != final else []),
    }
    return report


def _text_model(option: str, name: str, pipe) -> None:
    if pipe.condition != "text":
        raise UserError(f"{option} {name}: the benchmark paints captions; this model takes "
                        f"{'no prompt' if pipe.condition == 'none' else pipe.condition + 's'}")


def goals(bicubic: dict, cas: dict, base_adherence: float | None) -> dict:
    def g(value, goal, higher: bool):
        if value is None:  # not measurable here (adherence of a folder's pictures)
            return {"value": None, "goal": goal, "met": None}
        return {"value": value, "goal": goal, "met": bool(value >= goal if higher else value <= goal)}

    return {"swd_ratio": g(cas["swd"] / max(bicubic["swd"], 1e-12), GOALS["swd_ratio"], False),
            "fd_ratio": g(cas["fd_art"] / max(bicubic["fd_art"], 1e-12), GOALS["fd_ratio"], False),
            "adherence_delta": g(None, GOALS["adherence_delta"], True) if base_adherence is None else
            g(cas["adherence_32"] - base_adherence, GOALS["adherence_delta"], True),
            "consistency_psnr": g(cas["consistency_psnr"]["mean"], GOALS["consistency_psnr"], True),
            "seconds_per_picture": g(cas["seconds_per_picture"], GOALS["seconds"], False)}


def suggest(rows: list[dict], bicubic: dict, base_adherence: float) -> dict | None:
    """Of the cascade rows that meet the adherence, consistency and time goals, the one with the lowest fd_art."""
    ok = [r for r in rows if r["kind"] == "cascade"
          and all(v["met"] is not False for k, v in goals(bicubic, r, base_adherence).items()
                  if k not in ("swd_ratio", "fd_ratio"))]
    if not ok:
        return None
    best = min(ok, key=lambda r: r["fd_art"])
    return {"name": best["name"], "steps": best["steps"], "aug": best["aug"], "fd_art": best["fd_art"]}


# -- showing -------------------------------------------------------------------------------------------------------
def _f(v, fmt=".2f") -> str:
    return cell(v, fmt)  # this table's numbers have two decimals


def print_table(r: dict) -> None:
    s = r["settings"]
    con = table_console(170)
    t = Table(title=f"cascade {s['base_resolution']} → {s['size']} px ({s['n']} held-out prompts, data seed "
                    f"{s['data_seed']}; base {s['base_steps']} steps, cfg {s['cfg']:g}) against the real renders")
    for c in ("row", "SWD", "SWD finest", "fd_art@128", "KID", "P", "R", "adherence@32", "adherence@128", "PSNR back (mean/min)",
              "PSNR vs real", "s/picture"):
        t.add_column(c, justify="left" if c == "row" else "right")
    for row in r["rows"]:
        pb = row.get("consistency_psnr")
        t.add_row(row["name"], _f(row["swd"], ".4g"), _f(row["swd_detail"], ".4g"), _f(row["fd_art"], ".4g"), _f(row["kid"], ".3g"),
                  _f(row["precision"]),
                  _f(row["recall"]), _f(row["adherence_32"], ".3f"), _f(row["adherence_128"], ".3f"),
                  f"{pb['mean']:.1f} / {pb['min']:.1f}" if pb else "—",
                  f"{row['psnr']['mean']:.2f} (bicubic {r['bicubic_renders_psnr']['mean']:.2f})"
                  if row["kind"] == "upscaled_renders" else f"{row['psnr']['mean']:.2f}" if "psnr" in row else "—",
                  _f(row["seconds_per_picture"]))
    con.print(t)

    sizes = r["rows"][1]["stage_sizes"]
    tt = Table(title="seconds per picture, per stage (share of the total)")
    tt.add_column("row")
    tt.add_column("base", justify="right")
    for z in sizes:
        tt.add_column(f"→ {z} px", justify="right")
    tt.add_column("total", justify="right")
    for row in r["rows"]:
        if "stage_seconds_per_picture" not in row:
            continue
        tt.add_row(row["name"], _f(row["base_seconds_per_picture"]),
                   *[f"{a:.2f} ({100 * b:.0f}%)" for a, b in zip(row["stage_seconds_per_picture"], row["stage_share"])],
                   _f(row["seconds_per_picture"]))
    con.print(tt)

    g = r["goals"]
    gt = Table(title=f"goals (cascade at the stages' defaults; base adherence@32 {_f(r['base']['adherence_32'], '.3f')})")
    for c in ("goal", "value", "target", "result"):
        gt.add_column(c, justify="left" if c == "goal" else "right")
    labels = {"swd_ratio": ("SWD cascade / bicubic", "≤ {:g}", ".3f"),
              "fd_ratio": ("fd_art cascade / bicubic", "≤ {:g}", ".3f"),
              "adherence_delta": ("adherence@32 cascade − base", "≥ {:g}", "+.3f"),
              "consistency_psnr": ("consistency PSNR (mean, dB)", "≥ {:g}", ".1f"),
              "seconds_per_picture": ("seconds per picture", "≤ {:g}", ".2f")}
    for k, (label, target, fmt) in labels.items():
        met = g[k]["met"]
        gt.add_row(label, _f(g[k]["value"], fmt), target.format(g[k]["goal"]),
                   "—" if met is None else "met" if met else "not met")
    con.print(gt)
    if r.get("suggested"):
        con.print(f"best row meeting the adherence, consistency and time goals: {r['suggested']['name']}")
    for note in r["notes"]:
        if note.startswith("--n"):
            con.print(f"note: {note}")


def _aug(text: str) -> float:
    v = float(text)
    if not (math.isfinite(v) and 0 <= v <= MAX_AUG):
        raise ValueError(text)
    return v


def _steps(text: str) -> int:
    v = int(text)
    if not 1 <= v <= 10_000:
        raise ValueError(text)
    return v


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    ap = BenchParser(prog="python -m noisebrush.bench cascade", description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=DEFAULT_N, help=f"held-out prompts ({MIN_N}..{MAX_N})")
    ap.add_argument("--base", default="builtin", help="the base model (a text model folder or builtin)")
    ap.add_argument("--stages", default=None, help="comma-separated stage folders or built-in names (default: the "
                    "built-in chain to --size)")
    ap.add_argument("--size", type=int, default=None, help=f"final side in px (default {DEFAULT_SIZE}, or what "
                    "--stages reach)")
    ap.add_argument("--steps", type=int, default=None, help="base sampler steps (default: the model's)")
    ap.add_argument("--cfg", type=float, default=3.0, help="the base's guidance scale")
    ap.add_argument("--sr-steps", default=None, help="comma-separated stage steps to sweep (default: the stages' own)")
    ap.add_argument("--sr-aug", default=None, help="comma-separated σ_aug to sweep (default: the stages' own)")
    ap.add_argument("--other-projection", action="store_true", help="also a row of the defaults with the "
                    "consistency projection toggled (what it does)")
    ap.add_argument("--single", default=None, help="comma-separated text models that paint at the final size "
                    "directly: rows to compare the cascade with")
    ap.add_argument("--data", default=None, metavar="DIR", help="a folder of pictures to compare with (its first --n, "
                    "with their captions as prompts) instead of held-out ProceduralArt renders")
    ap.add_argument("--save", default=None, metavar="DIR", help="write each row's pictures there (uint8 safetensors)")
    ap.add_argument("--no-renders", action="store_true", help="leave out the stages on the real pictures (the "
                    "'upscaled renders' row: as long to paint as a cascade row)")
    ap.add_argument("--rejudge", default=None, metavar="DIR", help="only judge again the pictures --save wrote there "
                    "(with --featnet128, --featnet, --json); nothing is painted")
    ap.add_argument("--featnet128", default=None, help=f"the 128 px feature net folder (default {FEATNET128_DIR})")
    ap.add_argument("--featnet", default=None, help="the 32 px judge of adherence (default: the shipped one)")
    ap.add_argument("--json", default=None, metavar="FILE")
    a = ap.parse_args(argv)
    whole("--n", a.n, MIN_N, MAX_N)
    if a.size is not None:
        whole("--size", a.size, 8, 4096)
    if a.steps is not None:
        whole("--steps", a.steps, 1, 10_000)
    number("--cfg", a.cfg, 0.0, 100.0)
    sr_steps = sr_aug = stages = None
    if a.sr_steps is not None:
        sr_steps = comma_separated(a.sr_steps, "--sr-steps", _steps, "whole numbers 1..10000, comma-separated")
        if not sr_steps:
            raise BadParameter("--sr-steps: at least one value")
    if a.sr_aug is not None:
        sr_aug = comma_separated(a.sr_aug, "--sr-aug", _aug, f"numbers 0..{MAX_AUG:g}, comma-separated")
        if not sr_aug:
            raise BadParameter("--sr-aug: at least one value")
    if a.stages is not None:
        stages = [s.strip() for s in a.stages.split(",") if s.strip()]
        if not stages:
            raise BadParameter("--stages: at least one stage")
    if a.rejudge is not None:
        if a.json:
            check_report_path(a.json)
        report = rejudge(a.rejudge, featnet128=a.featnet128, featnet=a.featnet,
                         command=f"{common.PROG[0]} cascade {shlex.join(argv)}".strip(),
                         log=lambda s: print(s, file=sys.stderr, flush=True))
        return finish(report, print_rejudge, a.json, note="report → {path}")
    single = None
    if a.single is not None:
        single = [s.strip() for s in a.single.split(",") if s.strip()]
        if not single:
            raise BadParameter("--single: at least one model")
    if a.json:
        check_report_path(a.json)
    command = f"{common.PROG[0]} cascade {shlex.join(argv)}".strip()
    report = run(n=a.n, base=a.base, stages=stages, size=a.size, steps=a.steps, cfg=a.cfg, sr_steps=sr_steps,
                 sr_aug=sr_aug, other_projection=a.other_projection, single=single, data=a.data, save=a.save,
                 renders=not a.no_renders,
                 featnet128=a.featnet128, featnet=a.featnet, command=command,
                 log=lambda s: print(s, file=sys.stderr, flush=True))
    return finish(report, print_table, a.json, note="report → {path}")


if __name__ == "__main__":
    sys.exit(main())
