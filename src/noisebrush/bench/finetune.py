"""Fine-tuning on a style folder: full and LoRA, before against after.

    python -m noisebrush.bench finetune --json out/bench-finetune.json        (about 17 CPU minutes, 1 thread)
    python -m noisebrush.bench finetune --quick --base runs/tiny/model         (seconds; what the tests run)

**The style.** :func:`make_style_folder` writes ~20 pictures of one ProceduralArt family (``rings``: concentric
circles or squares) recoloured into a palette the built-in set never uses — umber, olive and mint, each at least
~85 RGB units from every one of the ten base colours (about the gap between two neighbouring base colours) — with
colour-free sidecar captions ("three concentric rings, centred on the left"). A larger held-out set of the same
style (another seed: other layouts, other colour pairs) is the reference.

**What is measured**, for the base model, the fully fine-tuned one and the base + LoRA, all at the same sampler
settings (``dpmpp_2m``, ``--sample-steps``, guidance 3):

* ``fd_style``: ``fd_art`` (Fréchet distance in the domain feature network's space) between ``--paint-n`` paintings
  of the token prompts (held-out captions behind the token, ``"<mystyle> three concentric rings"``) and the held-out
  style set. Goal: a drop of ≥ 50% after fine-tuning.
* ``adherence``: prompt adherence on ``--adherence-n`` base prompts (captions of the built-in set; the evaluation's
  content attributes read back by the feature network) — does the model still paint what it could? The goal is
  ≥ 0.80; the built-in model itself scores 0.77 (``noisebrush eval``, n = 300), so the table also gives the share of
  the base's adherence that is kept (``adherence_kept``).
* the LoRA file's size (goal < 2 MB), each run's CPU seconds (``time.process_time``: all threads) and the
  memorization check the fine-tune runs at the end (share of near-copies among paintings of the training prompts).

Both runs use prior preservation by default (``--no-prior-preservation`` to turn it off): the base model paints the
class pictures from the captions without the token and, every other one, from captions of the built-in set, which
is what keeps the base prompts working (with the class captions alone, in a first run at 200 steps: adherence kept
79% full / 81% LoRA, against 100% with both).

Measured with the defaults (1 thread, on a 2-core machine shared with other work): fd_style 131 → 57 full (−57%)
and 58 LoRA (−56%); adherence 0.70 → 0.71 / 0.70 (n = 100, 12 steps); LoRA file 1.24 MB; training 309 / 326 CPU s,
341 / 359 CPU s with the class pictures and the memorization check; no near-copies.
"""
from __future__ import annotations

import dataclasses
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import noisebrush
from noisebrush.bench.common import BenchParser, check_report_path, finish
from noisebrush.data.procedural import ProceduralArt, make_scene, render_scene
from noisebrush.errors import BadParameter
from noisebrush.eval.evaluation import adherence_scores, reference_split
from noisebrush.eval.features import load_feature_net
from noisebrush.eval.metrics import frechet_distance
from noisebrush.eval.sampling import sample_many
from noisebrush.io.atomic import atomic_path, atomic_write_text
from noisebrush.io.images import make_grid, save_image
from noisebrush.nets.lora import apply_loras
from noisebrush.seeding import mix
from noisebrush.workflows.finetune import caption_with_token, finetune

__all__ = ["STYLE_FAMILY", "STYLE_PALETTE", "style_scenes", "style_images", "style_caption", "make_style_folder",
           "measure", "run", "table", "main"]

STYLE_FAMILY = "rings"
STYLE_PALETTE = {"umber": (112, 66, 38), "olive": (124, 130, 30), "mint": (164, 234, 200)}
TOKEN = "<mystyle>"


def style_caption(scene) -> str:
    """A colour-free caption of a rings scene: "three concentric rings, centred on the left"."""
    a = scene.attributes
    noun = "rings" if a["shape"] == "circle" else "squares"
    where = "" if a["position"] == "centre" else f", centred on the {a['position']}"
    return f"{a['count']} concentric {noun}{where}"


def style_scenes(n: int, seed: int = 0) -> list:
    """The first ``n`` rings scenes of ProceduralArt(seed), recoloured into :data:`STYLE_PALETTE` (a random pair of
    distinct palette colours per picture, each with a small change of shade, from a generator of (seed, index))."""
    names = list(STYLE_PALETTE)
    out, i = [], 0
    while len(out) < n:
        scene = make_scene(seed, i)
        i += 1
        if scene.family != STYLE_FAMILY:
            continue
        rng = random.Random(mix(seed, i, 0xC0102))
        fg, bg = rng.sample(names, 2)
        p = dict(scene.params)
        p["fg"] = tuple(min(255, round(c * rng.uniform(0.93, 1.05))) for c in STYLE_PALETTE[fg])
        p["bg"] = tuple(min(255, round(c * rng.uniform(0.93, 1.05))) for c in STYLE_PALETTE[bg])
        out.append(dataclasses.replace(scene, params=tuple(sorted(p.items())), caption=style_caption(scene)))
    return out


def style_images(n: int, seed: int = 0, resolution: int = 32) -> tuple[torch.Tensor, list[str]]:
    """``n`` style pictures (N×3×H×W in [-1, 1]) and their colour-free captions."""
    scenes = style_scenes(n, seed)
    pics = [torch.from_numpy(np.asarray(render_scene(s, resolution), dtype=np.uint8).transpose(2, 0, 1).copy())
            for s in scenes]
    return torch.stack(pics).float() / 127.5 - 1, [s.caption for s in scenes]


def make_style_folder(path, n: int = 20, seed: int = 0, resolution: int = 32, captions: bool = True) -> Path:
    """Write ``n`` style pictures as ``style-NNN.png`` (+ ``style-NNN.txt`` captions) into ``path``."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    for k, scene in enumerate(style_scenes(n, seed)):
        with atomic_path(path / f"style-{k:03d}.png", suffix=".png") as tmp:
            render_scene(scene, resolution).save(tmp, format="PNG")
        if captions:
            atomic_write_text(path / f"style-{k:03d}.txt", scene.caption + "\n")
    return path


# -- measurements ---------------------------------------------------------------------------------------------------

def measure(pipe, *, ref_features, style_prompts: list[str], paint_n: int, adherence_n: int, steps: int,
            cfg: float = 3.0, seed: int = 0, fnet=None) -> dict:
    """fd_style (token-prompt paintings against the held-out style set) and adherence on base prompts."""
    fnet = fnet or load_feature_net()
    t = time.perf_counter()
    prompts = [style_prompts[i % len(style_prompts)] for i in range(paint_n)]
    pics, _ = sample_many(pipe, paint_n, prompts=prompts, seed=seed, steps=steps, cfg=cfg)
    fd = frechet_distance(fnet.features(pics), ref_features)
    ds = ProceduralArt(resolution=pipe.resolution, size=60000, seed=0)
    _, idx = reference_split(len(ds), adherence_n, seed)
    base_prompts = [ds.caption(i) for i in idx]
    table_ = torch.tensor([ds.scene(i).attr_indices() for i in idx], dtype=torch.long)
    gen, _ = sample_many(pipe, adherence_n, prompts=base_prompts, seed=seed + 7919, steps=steps, cfg=cfg)
    scores = adherence_scores(fnet.predict(gen), table_)
    return {"fd_style": fd, "adherence": scores["adherence"], "measure_seconds": time.perf_counter() - t,
            "adherence_per_attribute": scores["adherence_per_attribute"],
            "paintings": pics[:16]}


def run(*, base: str = "builtin", workdir, style_n: int = 20, ref_n: int = 200, paint_n: int = 100,
        adherence_n: int = 100, sample_steps: int = 12, steps_full: int | None = None, steps_lora: int | None = None,
        lr_full: float | None = None, lr_lora: float | None = None, batch_size: int = 8, rank: int = 8,
        prior_preservation: bool = True, memorization_n: int = 16, modes=("full", "lora"), seed: int = 0,
        log=print) -> dict:
    workdir = Path(workdir)
    fnet = load_feature_net()
    base_pipe = noisebrush.load(base)
    res = base_pipe.resolution
    data = make_style_folder(workdir / "style", n=style_n, seed=seed, resolution=res)
    ref, ref_caps = style_images(ref_n, seed=seed + 1000, resolution=res)
    ref_f = fnet.features(ref)
    prompts = [caption_with_token(c, TOKEN) for c in ref_caps]
    common = dict(ref_features=ref_f, style_prompts=prompts, paint_n=paint_n, adherence_n=adherence_n,
                  steps=sample_steps, seed=seed, fnet=fnet)
    log(f"measuring the base model ({paint_n} style paintings, {adherence_n} base prompts, {sample_steps} steps)")
    rows = {"base": measure(base_pipe, **common)}
    runs = {}
    for mode in modes:
        lora = mode == "lora"
        out = workdir / ("mystyle.safetensors" if lora else "mystyle-full")
        log(f"fine-tuning ({mode}) …")
        rep = finetune(base, data, out, lora=lora, rank=rank, token=TOKEN, prior_preservation=prior_preservation,
                       steps=steps_lora if lora else steps_full, lr=lr_lora if lora else lr_full,
                       batch_size=batch_size, seed=seed, memorization_n=memorization_n, sample_steps=sample_steps,
                       command="python -m noisebrush.bench finetune")
        runs[mode] = rep
        log(f"  {mode}: {rep['train_cpu_seconds']:.0f} CPU s training, {rep['cpu_seconds']:.0f} CPU s in all, "
            f"loss on the pictures {rep['loss_before']:.4f} → {rep['loss_after']:.4f}")
        if lora:
            pipe = noisebrush.load(base)
            apply_loras(pipe.net, pipe.config, pipe.hash, [(out, 1.0)])
        else:
            pipe = noisebrush.load(out)
        rows[mode] = measure(pipe, **common)
    b = rows["base"]
    result = {"base": base, "token": TOKEN, "style_family": STYLE_FAMILY, "palette": STYLE_PALETTE,
              "style_pictures": style_n, "reference_pictures": ref_n, "paint_n": paint_n,
              "adherence_n": adherence_n, "sample_steps": sample_steps, "cfg": 3.0,
              "prior_preservation": prior_preservation, "threads": torch.get_num_threads(), "rows": {}}
    for name, r in rows.items():
        row = {"fd_style": r["fd_style"], "adherence": r["adherence"], "measure_seconds": r["measure_seconds"],
               "adherence_per_attribute": r["adherence_per_attribute"]}
        if name != "base":
            rep = runs[name]
            row.update(fd_drop=1 - r["fd_style"] / b["fd_style"] if b["fd_style"] > 0 else None,
                       adherence_kept=r["adherence"] / b["adherence"] if b["adherence"] > 0 else None,
                       bytes=rep["bytes"], steps=rep["steps"], lr=rep["lr"], batch_size=rep["batch_size"],
                       params_trained=rep["params_trained"], train_cpu_seconds=rep["train_cpu_seconds"],
                       cpu_seconds=rep["cpu_seconds"], train_seconds=rep["train_seconds"],
                       loss_before=rep["loss_before"], loss_after=rep["loss_after"],
                       near_copy_fraction=(rep["memorization"] or {}).get("near_copy_fraction"),
                       nearest_ratio_median=(rep["memorization"] or {}).get("nearest_ratio_median"))
        result["rows"][name] = row
    result["paintings"] = {"style": ref[:16], **{name: r["paintings"] for name, r in rows.items()}}  # for a figure
    return result


def table(result: dict) -> str:
    rows = result["rows"]
    cols = list(rows)

    def fmt(v, spec):
        return "–" if v is None else format(v, spec)

    lines = ["| | " + " | ".join(cols) + " |", "|---|" + "---:|" * len(cols)]
    spec = [("fd_style", "fd_art to the held-out style set (lower is better)", ".1f"),
            ("fd_drop", "fd drop against the base (goal ≥ 50%)", ".0%"),
            ("adherence", "prompt adherence on base prompts (goal ≥ 0.80)", ".3f"),
            ("adherence_kept", "… as a share of the base's", ".0%"),
            ("bytes", "size written (LoRA goal < 2 MB)", ",d"),
            ("params_trained", "parameters trained", ",d"),
            ("steps", "steps (batch of pictures + batch of class pictures)", "d"),
            ("train_cpu_seconds", "CPU seconds, training", ".0f"),
            ("cpu_seconds", "CPU seconds, whole fine-tune (class pictures, check)", ".0f"),
            ("loss_before", "loss on the style pictures, before", ".4f"),
            ("loss_after", "… after", ".4f"),
            ("near_copy_fraction", "memorization: near-copies among paintings", ".2f"),
            ("nearest_ratio_median", "memorization: median nearest/second ratio", ".2f")]
    for key, label, sp in spec:
        lines.append(f"| {label} | " + " | ".join(fmt(rows[c].get(key), sp) for c in cols) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = BenchParser(prog="python -m noisebrush.bench finetune", description=__doc__.split("\n\n")[0])
    p.add_argument("--base", default="builtin", help="the model to fine-tune (default: builtin)")
    p.add_argument("--style-n", type=int, default=20, help="pictures in the style folder")
    p.add_argument("--ref-n", type=int, default=200, help="held-out style pictures (the fd reference)")
    p.add_argument("--paint-n", type=int, default=100, help="token-prompt paintings per model")
    p.add_argument("--adherence-n", type=int, default=100, help="base-prompt paintings per model")
    p.add_argument("--sample-steps", type=int, default=12, help="sampler steps of every painting")
    p.add_argument("--steps-full", type=int, default=None, help="full fine-tune steps (default: finetune's)")
    p.add_argument("--steps-lora", type=int, default=None, help="LoRA steps (default: finetune's)")
    p.add_argument("--lr-full", type=float, default=None)
    p.add_argument("--lr-lora", type=float, default=None)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--rank", type=int, default=8)
    p.add_argument("--modes", default="full,lora", help="comma-separated: full, lora")
    p.add_argument("--no-prior-preservation", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="a tiny run (for tests): few pictures, steps, paintings")
    p.add_argument("--workdir", type=Path, default=None, help="keep the style folder, model and LoRA here")
    p.add_argument("--json", type=Path, default=None, help="write the results here")
    p.add_argument("--figure", type=Path, default=None, help="a PNG: a row of style pictures, then eight "
                                                             "token-prompt paintings per model")
    a = p.parse_args(argv)
    for name in ("style_n", "ref_n", "paint_n", "adherence_n", "sample_steps", "batch_size", "rank"):
        if getattr(a, name) < (2 if name in ("style_n", "ref_n", "paint_n") else 1):
            raise BadParameter(f"--{name.replace('_', '-')}: too small ({getattr(a, name)})")
    modes = tuple(m.strip() for m in a.modes.split(",") if m.strip())
    if not modes or any(m not in ("full", "lora") for m in modes):
        raise BadParameter(f"--modes: full, lora or both, got {a.modes!r}")
    if a.json is not None:
        check_report_path(a.json)
    kw = dict(style_n=a.style_n, ref_n=a.ref_n, paint_n=a.paint_n, adherence_n=a.adherence_n,
              sample_steps=a.sample_steps, steps_full=a.steps_full, steps_lora=a.steps_lora, lr_full=a.lr_full,
              lr_lora=a.lr_lora, batch_size=a.batch_size, rank=a.rank, modes=modes,
              prior_preservation=not a.no_prior_preservation, seed=a.seed)
    if a.quick:
        kw.update(style_n=6, ref_n=12, paint_n=6, adherence_n=6, sample_steps=2, steps_full=a.steps_full or 3,
                  steps_lora=a.steps_lora or 3, batch_size=2, memorization_n=3)
    log = lambda s: print(s, flush=True)  # noqa: E731
    with tempfile.TemporaryDirectory() as tmp:
        workdir = a.workdir or Path(tmp)
        result = run(base=a.base, workdir=workdir, log=log, **kw)
    paintings = result.pop("paintings")
    if a.figure is not None:
        rows_ = [paintings[k][:8] for k in ("style", "base", *modes)]
        g = make_grid(torch.cat(rows_), cols=min(8, rows_[0].shape[0]))
        a.figure.parent.mkdir(parents=True, exist_ok=True)
        save_image(g.resize((g.width * 3, g.height * 3), resample=0), a.figure)
        print(f"figure → {a.figure}")
    return finish(result, lambda r: print(table(r)), a.json, note="results → {path}")


if __name__ == "__main__":
    sys.exit(main())
