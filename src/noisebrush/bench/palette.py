"""Palette control, measured: how close to the palette, and how faithful to the prompt, with and without guidance.

    python -m noisebrush.bench palette --n 200 --json outputs/bench-palette.json

Two scenarios, both on held-out prompts of the built-in set, each painted with the same seeds unguided and guided
at every ``--scales`` value (so the comparison is paired):

* ``shades`` — the palette holds darker, muted shades of red, blue and white (#b03a2e brick, #1f3a68 navy, #efe6d0
  cream) and the prompts are those whose named colours are red, blue or white: the user wants *these* hues of the
  colours they asked for. Adherence is the full content check (family, colours, shape, sky, ground).
* ``foreign`` — a palette unrelated to any prompt (#7a9a3a olive, #d08a9a dusty rose, #3a2a5a aubergine) over
  any prompts: the colours are deliberately overridden, so adherence is scored on the rest of the content
  (family, shape, sky, ground).

Palette distance: mean over pixels of the RGB distance (in [0, 1]) to the nearest palette colour. The goal: ≥ 50%
lower than unguided with adherence within 5 points.

The judge of adherence is the domain feature net, which learned the ten named colours from pure renders; a brick red
or a navy is further from what it knows than the red and blue it was trained on. So every row also reports the
control: the prompts' own *real* pictures, recoloured toward the palette just far enough to change their palette
distance as much as the guided paintings' did, and how much the judge's adherence for them moves
(``real_change_points``). A guided loss close to that one is the judge's, not the painting's.
"""
from __future__ import annotations

import sys
import time

from rich.console import Console
from rich.table import Table
import torch

import noisebrush
from noisebrush.bench.common import BenchParser, comma_choices, finish
from noisebrush.data.procedural import ATTRIBUTES, ProceduralArt
from noisebrush.errors import BadParameter
from noisebrush.eval.evaluation import adherence_hits
from noisebrush.eval.features import load_feature_net
from noisebrush.eval.sampling import sample_many
from noisebrush.paint.palette import PaletteGuide, _sq_dist, palette_distance, parse_palette

SCENARIOS = {
    "shades": {"palette": "#b03a2e,#1f3a68,#efe6d0", "colours": ("red", "blue", "white"),
               "attributes": ("family", "colour", "colour2", "shape", "sky", "ground")},
    "foreign": {"palette": "#7a9a3a,#d08a9a,#3a2a5a", "colours": None,
                "attributes": ("family", "shape", "sky", "ground")},
}


def _prompts(ds, n: int, colours, start: int = 40_000):
    """Captions and attribute rows of the first n items from ``start`` whose named colours lie in ``colours``."""
    names = list(ATTRIBUTES)
    ci, c2i = names.index("colour"), names.index("colour2")
    allowed = None if colours is None else {ATTRIBUTES["colour"].index(c) for c in colours}
    idx = []
    for i in range(start, len(ds)):
        row = ds.scene(i).attr_indices()
        named = [row[ci]] + ([row[c2i]] if row[c2i] >= 0 else [])
        if allowed is None or all(c in allowed for c in named):
            idx.append(i)
        if len(idx) == n:
            break
    return [ds.caption(i) for i in idx], torch.tensor([ds.scene(i).attr_indices() for i in idx]), idx


def recoloured(real: torch.Tensor, palette, change: float) -> torch.Tensor:
    """The real pictures moved toward their pixels' nearest palette colours, just far enough that their mean palette
    distance changes by ``change`` (e.g. -0.6): the control for what recolouring alone does to the judge."""
    pal = parse_palette(palette)
    snap = (pal * 2 - 1)[_sq_dist(real, pal * 2 - 1).argmin(1)].permute(0, 3, 1, 2)
    d0 = float(palette_distance(real, pal).mean())
    lo, hi = 0.0, 1.0
    for _ in range(30):  # the distance falls monotonically with t
        t = (lo + hi) / 2
        if float(palette_distance(real + t * (snap - real), pal).mean()) / d0 - 1 > change:
            lo = t
        else:
            hi = t
    t = (lo + hi) / 2
    return real + t * (snap - real)


def _adherence(pred, table, attributes) -> float:
    """Share of pictures whose ``attributes`` (where they apply) all match the prompt's."""
    hits = adherence_hits(pred, table)
    ok = torch.ones(table.shape[0], dtype=torch.bool)
    for name in attributes:
        ok &= hits[name]
    return float(ok.double().mean())


def run(*, n: int = 200, scales=((0.1, None), (0.15, None), (0.2, 2.0)), tau: float = 0.1,
        scenarios=("shades", "foreign"),
        steps: int = 20, cfg: float = 3.0, batch: int = 50, seed: int = 0, log=print) -> dict:
    pipe = noisebrush.load("builtin")
    fnet = load_feature_net()
    ds = ProceduralArt(resolution=pipe.resolution, size=60_000, seed=0)
    rows = []
    for name in scenarios:
        sc = SCENARIOS[name]
        prompts, table, idx = _prompts(ds, n, sc["colours"])
        real = torch.stack([ds[i]["image"] for i in idx])
        real_adh = _adherence(fnet.predict(real), table, sc["attributes"])
        base = None
        for scale, below in ((0.0, None), *scales):
            t = time.perf_counter()
            kw = {} if below is None else {"below": below}
            guides = [PaletteGuide(sc["palette"], scale=scale, tau=tau, **kw)] if scale else None
            x, _ = sample_many(pipe, n, prompts=prompts, seed=seed, batch=batch, steps=steps, cfg=cfg,
                               guidance=guides)
            dist = float(palette_distance(x, sc["palette"]).mean())
            adh = _adherence(fnet.predict(x), table, sc["attributes"])
            row = {"scenario": name, "palette": sc["palette"], "scale": scale, "tau": tau if scale else None,
                   "below": below,
                   "palette_distance": dist, "adherence": adh, "n": n, "seconds": time.perf_counter() - t}
            if base is None:
                base = row
            row["distance_change"] = dist / base["palette_distance"] - 1
            row["adherence_change_points"] = 100 * (adh - base["adherence"])
            row["goal_met"] = bool(scale and row["distance_change"] <= -0.5 and row["adherence_change_points"] >= -5)
            # the control: the prompts' own real pictures, recoloured toward the palette by the same amount
            ctrl = recoloured(real, sc["palette"], row["distance_change"]) if scale else real
            row["real_adherence"] = real_adh
            row["real_recoloured_adherence"] = _adherence(fnet.predict(ctrl), table, sc["attributes"])
            row["real_change_points"] = 100 * (row["real_recoloured_adherence"] - real_adh)
            rows.append(row)
            log(f"{name:8s} scale {scale:<5g} σ ≤ {below if below is not None else '∞'}  distance {dist:.4f} ({100 * row['distance_change']:+.0f}%)  "
                f"adherence {adh:.3f} ({row['adherence_change_points']:+.1f} pts; real pictures recoloured as far: "
                f"{row['real_change_points']:+.1f} pts)  {row['seconds']:.0f}s")
    return {"benchmark": "palette", "steps": steps, "cfg": cfg, "seed": seed, "rows": rows}


def print_table(report: dict) -> None:
    t = Table(title=f"palette guidance ({report['rows'][0]['n']} pictures per row, {report['steps']} steps, "
                    f"cfg {report['cfg']}; goal: distance ≥ 50% lower, adherence within 5 points)")
    for c in ("scenario", "palette", "scale", "σ ≤", "palette distance", "change", "adherence", "Δ points",
              "real recoloured Δ", "goal"):
        t.add_column(c, justify="left" if c in ("scenario", "palette") else "right")
    for r in report["rows"]:
        t.add_row(r["scenario"], r["palette"], f"{r['scale']:g}", "∞" if r.get("below") is None else f"{r['below']:g}",
                  f"{r['palette_distance']:.4f}",
                  f"{100 * r['distance_change']:+.0f}%", f"{r['adherence']:.3f}",
                  f"{r['adherence_change_points']:+.1f}", f"{r['real_change_points']:+.1f}",
                  ("met" if r["goal_met"] else "not met") if r["scale"] else "—")
    Console().print(t)


def main(argv=None) -> int:
    ap = BenchParser(prog="python -m noisebrush.bench palette", description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=200, help="prompts per scenario")
    ap.add_argument("--scales", default="0.1,0.15,0.2@2",
                    help="guidance settings, comma-separated: SCALE or SCALE@SIGMA (guide only where σ ≤ SIGMA)")
    ap.add_argument("--tau", type=float, default=0.1)
    ap.add_argument("--scenarios", default="shades,foreign")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--batch", type=int, default=50)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None, help="write the report here")
    a = ap.parse_args(argv)
    try:
        scales = tuple((float(s.split("@")[0]), float(s.split("@")[1]) if "@" in s else None)
                       for s in a.scales.split(","))
    except ValueError:
        raise BadParameter(f"--scales: comma-separated numbers, got {a.scales!r}") from None
    scenarios = tuple(comma_choices(a.scenarios, "--scenarios", SCENARIOS))
    if a.n < 2:
        raise BadParameter(f"--n: at least 2, got {a.n}")
    report = run(n=a.n, scales=scales, tau=a.tau, scenarios=scenarios, steps=a.steps, batch=a.batch, seed=a.seed,
                 log=lambda s: print(s, file=sys.stderr))
    return finish(report, print_table, a.json, note="report → {path}")


if __name__ == "__main__":
    sys.exit(main())
