"""Shape benchmark: does the shape model make shapes like the real ones, cover them, follow its prompts, and close
its meshes — next to a memorising baseline and the real-vs-real floor?

    python -m noisebrush.bench shapes --json docs/bench/shapes-cpu.json     # 20 held-out shapes per category
    python -m noisebrush.bench shapes --per-category 4 --steps 8 --quick    # a quick look

Held out are the first ``per_category`` shapes of each category among ProceduralShapes items of data seed 1 (the
model trained on seed 0); their captions are the prompts, their attributes what the judge must read back. Rows,
each measured the same way:

* **real (another draw)** — the first shapes of each category of data seed 2 against the held-out ones: the floor
  of every distance (and, for adherence, the shape judge's own accuracy on real shapes);
* **shape model** — the model painting each held-out caption (seed i for shape i; batched, bf16 where the CPU runs it
  natively);
* **retrieval** — a memoriser: for each caption, a training shape (of the first ``pool`` items of seed 0) with the
  same caption, else the one sharing the most attributes.

Numbers per row, per category and their mean over categories (the point-cloud papers report per category):
**MMD-CD, COV-CD, 1-NNA-CD** (:mod:`noisebrush.eval.pointclouds`) on 2,048 points drawn uniformly on each shape's
mesh (marching cubes at the grid's resolution); **adherence** (the share of shapes whose every attribute the caption
states — category, height, width, plan, legs, arms, handle, roof, crown, fins — the shape judge reads back) and per
attribute; **watertight** (the share of meshes that are closed; an empty field counts as not); the **near-copy
fraction**: the share of shapes nearer to a training shape (of the pool; RMS difference of the signed-distance
grids, exactly 0 for a copy — point clouds would add their sampling noise) than 95% of real held-out shapes are to
theirs (so the real held-out shapes themselves would score 5%; a memoriser scores near 100%). Goals: 1-NNA ≤ 0.65, COV ≥ 0.40,
adherence ≥ 0.85, watertight ≥ 0.95. Timing: seconds per shape batched, and one shape through ``noisebrush
sculpt``'s path at the defaults (sculpt, mesh, 24-view turntable, preview); the training time the model's
provenance records.
"""
from __future__ import annotations

import shlex
import sys
import time

import numpy as np
import torch
from rich.table import Table

from noisebrush.bench import common
from noisebrush.bench.common import BenchParser, cell, check_report_path, finish, table_console, training_of
from noisebrush.checks import number, whole
from noisebrush.data.shapes import CATEGORIES, SHAPE_ATTRIBUTES, ProceduralShapes
from noisebrush.devices import fast_dtype, hardware_name, use_all_cores
from noisebrush.errors import UserError
from noisebrush.eval.pointclouds import mmd_cov, one_nna, pairwise_chamfer
from noisebrush.eval.sampling import sample_batch
from noisebrush.eval.shape_features import load_shape_features
from noisebrush.eval.train_features import head_accuracy
from noisebrush.io.mesh import mesh_bytes, surface_points
from noisebrush.paint.pipeline import load
from noisebrush.paint.sculpt import preview, to_mesh, views

__all__ = ["run", "main", "balanced", "clouds", "set_metrics", "print_table"]

DATA_SEED, OTHER_SEED, TRAIN_SEED = 1, 2, 0
POINTS = 2048
GOALS = {"one_nna": 0.65, "cov": 0.40, "adherence": 0.85, "watertight": 0.95}
COPY_QUANTILE = 0.05


def balanced(seed: int, per_category: int, resolution: int = 32) -> tuple[ProceduralShapes, list[int]]:
    """The data set of ``seed`` and the indices of the first ``per_category`` shapes of each category, category by
    category in :data:`CATEGORIES` order."""
    ds = ProceduralShapes(resolution=resolution, size=10 ** 6, seed=seed)
    found: dict[str, list[int]] = {c: [] for c in CATEGORIES}
    i = 0
    while any(len(v) < per_category for v in found.values()):
        c = ds.shape(i).category
        if len(found[c]) < per_category:
            found[c].append(i)
        i += 1
    return ds, [i for c in CATEGORIES for i in found[c]]


def _grids(ds: ProceduralShapes, idx) -> torch.Tensor:
    return torch.stack([torch.from_numpy(ds.grid(i)) for i in idx])[:, None]


def clouds(grids: torch.Tensor, *, seed: int = 0) -> tuple[torch.Tensor, list[bool]]:
    """(n × POINTS × 3 surface points, watertight per shape): shape i meshed at its grid's resolution and sampled
    with seed ``seed + i``; an empty field gives a cloud at the origin and counts as not watertight."""
    pts, tight = [], []
    for i, g in enumerate(grids):
        mesh = to_mesh(g)
        if len(mesh.faces) == 0:
            pts.append(np.zeros((POINTS, 3), np.float32))
            tight.append(False)
            continue
        pts.append(surface_points(mesh, POINTS, seed=seed + i))
        tight.append(bool(mesh.is_watertight))
    return torch.from_numpy(np.stack(pts)), tight


def set_metrics(samples: torch.Tensor, refs: torch.Tensor, cats: list[str], cache: dict | None = None) -> dict:
    """MMD-CD, COV-CD and 1-NNA-CD per category (samples and references of the same category; ``cats`` names the
    category of each, the same for both sets) and their mean over categories. ``cache``: a dict kept between calls
    with the same ``refs``, which then computes the references' own distances once."""
    per = {}
    cats_a = np.asarray(cats)
    cache = {} if cache is None else cache
    for c in dict.fromkeys(cats):
        k = torch.from_numpy(np.flatnonzero(cats_a == c))
        s, r = samples[k], refs[k]
        d_sr = pairwise_chamfer(s, r)
        mmd, cov = mmd_cov(d_sr)
        if c not in cache:
            cache[c] = pairwise_chamfer(r, r)
        per[c] = {"mmd": mmd, "cov": cov, "one_nna": one_nna(pairwise_chamfer(s, s), d_sr, cache[c])}
    mean = {m: float(np.mean([v[m] for v in per.values()])) for m in ("mmd", "cov", "one_nna")}
    return {"per_category": per, **mean}


def adherence(judge, grids: torch.Tensor, table: torch.Tensor) -> dict:
    """Share of shapes whose every stated attribute (table ≥ 0) the judge reads back, and per attribute."""
    pred = judge.predict(grids)
    names = list(SHAPE_ATTRIBUTES)
    ok = torch.ones(len(grids), dtype=torch.bool)
    for j, name in enumerate(names):
        stated = table[:, j] >= 0
        ok &= ~stated | (pred[name] == table[:, j])
    per = head_accuracy(pred, table, SHAPE_ATTRIBUTES)
    return {"adherence": float(ok.float().mean()), "per_attribute": {k: round(float(v), 4) for k, v in per.items()}}


class Pool:
    """The first ``size`` training shapes: their captions and grids."""

    def __init__(self, size: int, resolution: int):
        self.ds = ProceduralShapes(resolution=resolution, size=size, seed=TRAIN_SEED)
        self.scenes = [self.ds.shape(i) for i in range(size)]
        self.grids = _grids(self.ds, range(size)).flatten(1)

    def retrieve(self, caption: str, attrs: tuple[int, ...], k: int) -> int:
        """A pool shape with ``caption`` (the k-th of them, round), else the one sharing the most attributes."""
        same = [i for i, s in enumerate(self.scenes) if s.caption == caption]
        if same:
            return same[k % len(same)]
        score = [sum(a == b for a, b in zip(s.attr_indices(), attrs)) for s in self.scenes]
        return int(np.argmax(score))

    def nearest(self, grids: torch.Tensor) -> np.ndarray:
        """Each shape's distance to its nearest pool shape: the RMS difference of the grids (0 for a copy)."""
        d = torch.cdist(grids.flatten(1).float(), self.grids).amin(1)
        return (d / self.grids.shape[1] ** 0.5).numpy().astype(np.float64)


def run(*, model: str = "builtin-shape", per_category: int = 20, steps: int = 20, cfg: float = 3.0, batch: int = 16,
        pool: int = 4000, cli_shape: bool = True, command: str = "", log=None) -> dict:
    """The whole benchmark (see the module docstring) as a report dict."""
    log = log or (lambda s: None)
    use_all_cores()
    pipe = load(model)
    if pipe.modality.kind != "volume":
        raise UserError(f"--model: {model} paints {pipe.modality.kind}s, not shapes")
    res = int(pipe.modality.default[-1])
    judge = load_shape_features()
    held, idx = balanced(DATA_SEED, per_category, res)
    other, oidx = balanced(OTHER_SEED, per_category, res)
    n = len(idx)
    prompts = [held.caption(i) for i in idx]
    table = torch.tensor([held.shape(i).attr_indices() for i in idx], dtype=torch.long)
    cats = [held.shape(i).category for i in idx]
    log(f"{n} held-out shapes; meshing and sampling {POINTS} points each")
    real = _grids(held, idx)
    real_pts, _ = clouds(real, seed=0)
    log(f"training pool: {pool} shapes")
    trained = Pool(pool, res)
    real_near = trained.nearest(real)
    threshold = float(np.quantile(real_near, COPY_QUANTILE))

    ref_distances: dict = {}

    def judge_row(name: str, kind: str, grids: torch.Tensor, tab: torch.Tensor, seconds=None) -> dict:
        pts, tight = clouds(grids, seed=0)
        near = trained.nearest(grids)
        row = {"name": name, "kind": kind, "n": n, **set_metrics(pts, real_pts, cats, ref_distances),
               "adherence": adherence(judge, grids, tab), "watertight": float(np.mean(tight)),
               "near_copy": float(np.mean(near < threshold)), "nearest_train_median": float(np.median(near))}
        if seconds is not None:
            row["seconds_per_shape"] = seconds
        return row

    rows = []
    log("real (another draw): the floor")
    floor_grids = _grids(other, oidx)
    floor_table = torch.tensor([other.shape(i).attr_indices() for i in oidx], dtype=torch.long)
    rows.append(judge_row("real (another draw)", "real", floor_grids, floor_table))
    log(f"shape model ({model})")
    t = time.perf_counter()
    made = []
    for i in range(0, n, batch):
        made.append(sample_batch(pipe, prompts=prompts[i:i + batch], seeds=list(range(i, min(n, i + batch))),
                                 steps=steps, cfg=cfg))
        log(f"  {min(n, i + batch)}/{n} shapes")
    seconds = (time.perf_counter() - t) / n
    rows.append(judge_row(f"shape model ({model})", "model", torch.cat(made), table, seconds))
    log("retrieval baseline")
    picks = [trained.retrieve(p, tuple(table[k].tolist()), k) for k, p in enumerate(prompts)]
    rows.append(judge_row("retrieval (training shape by caption)", "retrieval", _grids(trained.ds, picks), table))

    cli = None
    if cli_shape:
        log("one shape through noisebrush sculpt's path (the model's defaults)")
        t = time.perf_counter()
        grids, recipes = pipe.sculpt(prompts[0], seed=0)
        mesh_bytes(to_mesh(grids[0], recipes[0]["resolution"]), "obj")
        views(pipe, grids[0], frames=24, size=192)
        preview(pipe, grids[0], size=192)
        cli = time.perf_counter() - t
    m = rows[1]
    summary = {"one_nna": m["one_nna"], "cov": m["cov"], "mmd": m["mmd"], "adherence": m["adherence"]["adherence"],
               "watertight": m["watertight"], "near_copy": m["near_copy"], "goals": GOALS,
               "met": {"one_nna": m["one_nna"] <= GOALS["one_nna"], "cov": m["cov"] >= GOALS["cov"],
                       "adherence": m["adherence"]["adherence"] >= GOALS["adherence"],
                       "watertight": m["watertight"] >= GOALS["watertight"]},
               "judge_accuracy_on_real": rows[0]["adherence"]}
    return {"bench": "shapes", "command": command, "hardware": hardware_name(pipe.device),
            "settings": {"model": model, "per_category": per_category, "n": n, "steps": steps, "cfg": cfg,
                         "points": POINTS, "data_seed": DATA_SEED, "pool": pool,
                         "copy_threshold": threshold, "batch": batch,
                         "dtype": str(fast_dtype(pipe.device) or torch.float32).replace("torch.", "")},
            "rows": rows, "summary": summary, "cli_seconds_per_shape": cli, "training": training_of(model)}



def print_table(r: dict) -> None:
    s = r["settings"]
    con = table_console()
    t = Table(title=f"shapes: {s['n']} held-out prompts ({s['per_category']} per category, data seed "
                    f"{s['data_seed']}), {s['points']} points, {s['steps']} steps, cfg {s['cfg']:g}, {s['dtype']}")
    for c in ("row", "1-NNA", "COV", "MMD-CD", "adherence", "category", "watertight", "near-copy", "s/shape"):
        t.add_column(c, justify="left" if c == "row" else "right")
    for row in r["rows"]:
        a = row["adherence"]
        t.add_row(row["name"], cell(row["one_nna"]), cell(row["cov"]), cell(row["mmd"], ".2e"), cell(a["adherence"]),
                  cell(a["per_attribute"].get("category")), cell(row["watertight"]), cell(row["near_copy"]),
                  cell(row.get("seconds_per_shape"), ".2f"))
    con.print(t)
    per = Table(title="per category: 1-NNA / COV")
    per.add_column("row", justify="left")
    for c in CATEGORIES:
        per.add_column(c, justify="right")
    for row in r["rows"]:
        pc = row["per_category"]
        per.add_row(row["kind"], *(f"{pc[c]['one_nna']:.2f}/{pc[c]['cov']:.2f}" if c in pc else "—"
                                   for c in CATEGORIES))
    con.print(per)
    sm = r["summary"]
    g, met = sm["goals"], sm["met"]
    con.print(f"1-NNA {sm['one_nna']:.3f} (goal ≤ {g['one_nna']}: {met['one_nna']}), COV {sm['cov']:.3f} (goal ≥ "
              f"{g['cov']}: {met['cov']}), adherence {sm['adherence']:.3f} (goal ≥ {g['adherence']}: "
              f"{met['adherence']}; the judge reads real shapes at {sm['judge_accuracy_on_real']['adherence']:.3f}), "
              f"watertight {sm['watertight']:.3f} (goal ≥ {g['watertight']}: {met['watertight']}), near copies "
              f"{sm['near_copy']:.3f}")
    if r.get("cli_seconds_per_shape") is not None:
        con.print(f"one shape through `noisebrush sculpt` at the model's defaults: {r['cli_seconds_per_shape']:.1f} s")
    tr = r.get("training") or {}
    if tr.get("train_seconds"):
        con.print(f"training: {tr.get('steps')} steps in {tr['train_seconds'] / 3600:.2f} h on {tr.get('hardware')}")


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    ap = BenchParser(prog="python -m noisebrush.bench shapes", description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="builtin-shape", help="the shape model (default: the built-in one)")
    ap.add_argument("--per-category", type=int, default=20, help="held-out shapes per category (2..200)")
    ap.add_argument("--steps", type=int, default=20, help="sampler steps")
    ap.add_argument("--cfg", type=float, default=3.0, help="guidance scale")
    ap.add_argument("--batch", type=int, default=16, help="shapes painted at once")
    ap.add_argument("--pool", type=int, default=4000, help="training shapes searched for near copies (100..20000)")
    ap.add_argument("--quick", action="store_true", help="leave out the shape through `noisebrush sculpt`'s path")
    ap.add_argument("--json", default=None, metavar="FILE")
    a = ap.parse_args(argv)
    whole("--per-category", a.per_category, 2, 200)
    whole("--steps", a.steps, 1, 1000)
    whole("--batch", a.batch, 1, 256)
    whole("--pool", a.pool, 100, 20000)
    number("--cfg", a.cfg, 0.0, 100.0)
    if a.json:
        check_report_path(a.json)
    report = run(model=a.model, per_category=a.per_category, steps=a.steps, cfg=a.cfg, batch=a.batch, pool=a.pool,
                 cli_shape=not a.quick,
                 command=f"{common.PROG[0]} shapes {shlex.join(argv)}".strip(),
                 log=lambda s: print(s, file=sys.stderr, flush=True))
    return finish(report, print_table, a.json, note="report → {path}")


if __name__ == "__main__":
    sys.exit(main())
