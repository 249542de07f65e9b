"""The brief's experiments: ``noisebrush experiment NAME``.

Each experiment writes ``OUT/NAME.md`` (a markdown table and what was run), ``OUT/NAME.csv`` and ``OUT/NAME.png``
(a figure), and returns its rows. Nothing is overwritten: when any of the three exists, all three get the first free
stem (``NAME-2.md``, ``NAME-2.csv``, ``NAME-2.png``; the returned paths name them) unless ``force=True``; ``OUT`` is
checked (a folder that can be written) before any work. The seed is 0 unless given: a measurement repeats exactly.
Budgets are arguments (flags on the CLI); each default is sized to finish in under 20 minutes on 2 CPU cores.

* ``steps`` — NFE 10/20/50/100/200 for each sampler on the built-in model: fd_art, KID, adherence, seconds/picture.
* ``noise`` — σ_max and the shape of the noise schedule at 20 NFE: Karras ρ = 7 with σ_max 5/20/80/160, Karras
  ρ = 3, log-linear (exponential), and the VP schedules of DDPM (linear β) and of Nichol & Dhariwal (cosine).
* ``lr-schedule`` — constant / linear / exponential / cosine LR on equal short training budgets of a small
  unconditional model; fd_art, KID, precision, recall and the final loss.
* ``regularization`` — none / L2 weight decay / L1 / dropout on a *small* training set (where regularization
  matters: it is where a model overfits and memorizes); fd_art, KID, held-out denoising loss and the near-copy
  share.
* ``samplers`` — the sampler benchmark on the built-in model instead of the Gaussian-mixture oracle: each
  sampler at NFE 5/10/20/50, RMSE of the endpoint against a 100-step Heun solve from the same noise (deterministic
  samplers), fd_art and KID.

Pictures are painted with :mod:`noisebrush.eval.sampling` (batched) and compared with real ProceduralArt pictures
in the domain feature network's space (:mod:`noisebrush.eval.features`).
"""
from __future__ import annotations

import csv
import io
import math
import os
import shutil
import time
from pathlib import Path
from typing import Callable

import torch

from noisebrush.data.procedural import ProceduralArt
from noisebrush.diffusion import DIFFUSION_SAMPLERS, EDMPrecond, SAMPLERS, get_sampler
from noisebrush.diffusion.schedules import exponential, karras, vp_cosine, vp_linear
from noisebrush.errors import BadParameter, UserError
from noisebrush.eval.evaluation import adherence_scores, reference_split
from noisebrush.eval.features import load_feature_net
from noisebrush.eval.metrics import frechet_distance, kid, memorization, precision_recall
from noisebrush.eval.sampling import sample_many
from noisebrush.io.atomic import atomic_path, atomic_write_text
from noisebrush.io.outputs import Keeper, check_folder
from noisebrush.paint.pipeline import load
from noisebrush.train import TrainConfig, Trainer

__all__ = ["EXPERIMENTS", "run_experiment"]


# -- shared pieces ---------------------------------------------------------------------------------------------------

class _Reference:
    """Real pictures and prompts drawn from ProceduralArt, their features, and the prompts' attributes."""

    def __init__(self, n: int, resolution: int, seed: int, fnet, data_size: int = 60000):

        ds = ProceduralArt(resolution, size=data_size, seed=0)
        self.ref_idx, self.prompt_idx = reference_split(len(ds), n, seed)
        self.images = torch.stack([ds[i]["image"] for i in self.ref_idx])
        self.features = fnet.features(self.images)
        self.prompts = [ds.caption(i) for i in self.prompt_idx]
        self.table = torch.tensor([ds.scene(i).attr_indices() for i in self.prompt_idx], dtype=torch.long)
        self.fnet = fnet

    def score(self, pictures: torch.Tensor, text: bool) -> dict:

        f, pred = self.fnet.features_and_predictions(pictures)
        m = pictures.shape[0]
        out = {"fd_art": frechet_distance(f, self.features[:max(m, 2)]), "kid": kid(f, self.features)}
        out["precision"], out["recall"] = precision_recall(self.features, f, k=3)
        if text:
            out["adherence"] = adherence_scores(pred, self.table[:m])["adherence"]
        return out


def _fmt(v) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        if not math.isfinite(v):
            return "—"
        return f"{v:.4g}"
    return str(v)


def _free_stem(out: Path, name: str) -> str:
    """``name``, or ``name-2``, ``name-3`` … : the first stem none of whose .md, .csv and .png exists in ``out``."""
    stem, k = name, 1
    while any(os.path.lexists(out / f"{stem}{ext}") for ext in (".md", ".csv", ".png")):
        k += 1
        stem = f"{name}-{k}"
    return stem


def _write(out: Path, name: str, rows: list[dict], columns: list[str], title: str, notes: list[str],
           figure: Callable[[Path], None], force: bool = False) -> dict:

    name = name if force else _free_stem(out, name)
    keep = Keeper(out, force=True)  # the stem is free (or to be replaced); a folder gone read-only keeps all three
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in columns})
    csv_path = keep.save(lambda p: atomic_write_text(p, buf.getvalue()), f"{name}.csv")
    md = [f"# {title}", "", "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    md += ["| " + " | ".join(_fmt(r.get(c)) for c in columns) + " |" for r in rows]
    md += [""] + [f"- {n}" for n in notes] + ["", f"Figure: `{name}.png`; data: `{name}.csv`."]
    md_path = keep.save(lambda p: atomic_write_text(p, "\n".join(md) + "\n"), f"{name}.md")
    fig_path = keep.save(lambda p: _figure_file(figure, p), f"{name}.png")
    keep.done()
    return {"rows": rows, "markdown": md_path, "csv": csv_path, "figure": fig_path}


def _figure_file(figure: Callable[[Path], None], path: Path) -> Path:
    with atomic_path(path) as tmp:
        figure(Path(tmp))
    return path


def _plt():
    import matplotlib  # lazy: the Agg backend must be chosen before pyplot is first imported

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # lazy: after matplotlib.use("Agg")

    return plt


def _save(fig, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=110)
    _plt().close(fig)


def _check_list(name: str, values, lo: int = 1) -> list[int]:
    vals = list(values)
    if not vals or any(isinstance(v, bool) or not isinstance(v, int) or v < lo for v in vals):
        raise BadParameter(f"{name}: whole numbers ≥ {lo}, got {vals}")
    return vals


def _whole(name: str, v, lo: int = 1) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < lo:
        raise BadParameter(f"{name}: a whole number ≥ {lo}, got {v!r}")
    return v


def _load(model, device=None):

    return load(model, device=device)


# -- steps -----------------------------------------------------------------------------------------------------------

def exp_steps(out: Path, *, model="builtin", samplers=("euler", "dpmpp_2m"), nfes=(10, 20, 50, 100, 200), n=48,
              cfg=3.0, seed=0, batch=64, log=print, fnet=None, device=None, force=False) -> dict:

    nfes, n = _check_list("nfe", nfes), _whole("n", n, 4)
    infos = [get_sampler(s) for s in samplers]
    for i in infos:
        if not i.fixed_cost:
            raise BadParameter(f"samplers: {i.name} sets its own number of evaluations; use the samplers experiment")
    pipe = _load(model, device)
    ref = _Reference(n, pipe.resolution, seed, fnet or _fnet())
    text = pipe.condition == "text"
    rows = []
    for info in infos:
        for nfe in nfes:
            steps = info.steps_for_nfe(nfe)
            pics, sec = sample_many(pipe, n, prompts=ref.prompts if text else None, seed=seed, batch=batch,
                                    steps=steps, sampler=info.name, cfg=cfg)
            row = {"sampler": info.name, "nfe": nfe, "steps": steps, **ref.score(pics, text),
                   "seconds_per_image": sec}
            rows.append(row)
            log(f"steps: {info.name} NFE {nfe}: fd_art {row['fd_art']:.3g}, kid {row['kid']:.3g}, "
                f"{sec:.2f} s/picture")

    def figure(path):
        plt = _plt()
        fig, axes = plt.subplots(1, 3 if text else 2, figsize=(13 if text else 9, 3.6))
        for info in infos:
            rs = [r for r in rows if r["sampler"] == info.name]
            x = [r["nfe"] for r in rs]
            axes[0].plot(x, [r["fd_art"] for r in rs], "o-", label=info.name)
            axes[1].plot(x, [r["seconds_per_image"] for r in rs], "o-", label=info.name)
            if text:
                axes[2].plot(x, [r["adherence"] for r in rs], "o-", label=info.name)
        for ax, t in zip(axes, ["fd_art (lower is better)", "seconds per picture", "prompt adherence"]):
            ax.set_xscale("log")
            ax.set_xlabel("network evaluations (NFE)")
            ax.set_title(t)
            ax.grid(alpha=0.3)
        axes[0].legend()
        _save(fig, path)

    cols = ["sampler", "nfe", "steps", "fd_art", "kid", "precision", "recall"] + (["adherence"] if text else []) \
        + ["seconds_per_image"]
    notes = [f"model: {model}; {n} pictures per cell (prompts: captions of random data-set items), guidance {cfg}, "
             f"seed {seed}; reference: {n} real pictures.",
             "fd_art on a few dozen pictures is biased upwards (the covariance of 256 features is estimated from "
             "few samples); compare rows with one another, and trust KID (unbiased) for absolute levels."]
    return _write(out, "steps", rows, cols, "Steps: quality and cost against network evaluations", notes, figure,
                  force)


# -- noise -----------------------------------------------------------------------------------------------------------

def _noise_variants():

    def kar(smax, rho=7.0):
        return lambda steps, sigma_min, sigma_max: karras(steps, sigma_min=0.002, sigma_max=smax, rho=rho)

    return [
        ("karras ρ=7, σ_max=5", 5.0, kar(5.0)),
        ("karras ρ=7, σ_max=20", 20.0, kar(20.0)),
        ("karras ρ=7, σ_max=80", 80.0, kar(80.0)),
        ("karras ρ=7, σ_max=160", 160.0, kar(160.0)),
        ("karras ρ=3, σ_max=80", 80.0, kar(80.0, 3.0)),
        ("log-linear, σ_max=80", 80.0, lambda steps, sigma_min, sigma_max: exponential(steps, 0.002, 80.0)),
        ("VP linear β (DDPM)", None, lambda steps, sigma_min, sigma_max: vp_linear(steps)),
        ("VP cosine (Nichol & Dhariwal)", None, lambda steps, sigma_min, sigma_max: vp_cosine(steps)),
    ]


def exp_noise(out: Path, *, model="builtin", sampler="dpmpp_2m", nfe=20, n=128, cfg=3.0, seed=0, batch=64,
              log=print, fnet=None, device=None, force=False) -> dict:

    n, nfe = _whole("n", n, 4), _whole("nfe", nfe)
    info = get_sampler(sampler)
    steps = info.steps_for_nfe(nfe)
    pipe = _load(model, device)
    ref = _Reference(n, pipe.resolution, seed, fnet or _fnet())
    text = pipe.condition == "text"
    rows = []
    for name, smax, sched in _noise_variants():
        sig = sched(steps, None, None)
        pics, sec = sample_many(pipe, n, prompts=ref.prompts if text else None, seed=seed, batch=batch, steps=steps,
                                sampler=sampler, cfg=cfg, schedule=sched)
        row = {"schedule": name, "sigma_max": float(sig[0]), "sigma_min": float(sig[sig > 0].min()),
               **ref.score(pics, text), "seconds_per_image": sec}
        rows.append(row)
        log(f"noise: {name}: fd_art {row['fd_art']:.3g}, kid {row['kid']:.3g}")

    def figure(path):
        plt = _plt()
        fig, axes = plt.subplots(1, 2, figsize=(12, 4))
        names = [r["schedule"] for r in rows]
        axes[0].barh(names, [r["fd_art"] for r in rows], color="tab:blue")
        axes[0].set_title("fd_art (lower is better)")
        axes[0].invert_yaxis()
        for name, _, sched in _noise_variants():
            s = sched(steps, None, None)
            s = s[s > 0]
            axes[1].plot(range(len(s)), s.numpy(), "o-", ms=3, label=name)
        axes[1].set_yscale("log")
        axes[1].set_xlabel("step")
        axes[1].set_title(f"σ schedules ({steps} steps)")
        axes[1].legend(fontsize=7)
        _save(fig, path)

    cols = ["schedule", "sigma_max", "sigma_min", "fd_art", "kid", "precision", "recall"] + \
        (["adherence"] if text else []) + ["seconds_per_image"]
    notes = [f"model: {model}; sampler {sampler} at {nfe} NFE ({steps} steps); {n} pictures per row; guidance {cfg}.",
             "The model was trained with σ ~ logNormal(−1.2, 1.2²): σ_max well below 80 starts from noise that still "
             "carries the wrong low frequencies (x_T is not pure noise), σ_max far above spends steps where nothing "
             "changes."]
    return _write(out, "noise", rows, cols, "Noise levels and schedules", notes, figure, force)


# -- training experiments -------------------------------------------------------------------------------------------

SMALL_NET = dict(channels=32, channel_mult=[1, 2, 2], blocks=1, attn_resolutions=[8], cross_attn_resolutions=[])


def _train_and_score(cfg_over: dict, *, out_dir: Path, steps: int, n: int, seed: int, ref, sample_steps=20,
                     data_size=60000, heldout=None) -> dict:

    base = dict(data="builtin", resolution=32, data_size=data_size, condition="none", model=dict(SMALL_NET),
                steps=steps, batch_size=32, lr=1e-2, lr_schedule="cosine", warmup=min(50, steps // 5),
                ema_decay=0.99, log_every=max(1, steps // 20), sample_every=0, checkpoint_every=0, keep_last=1,
                seed=seed, out_dir=str(out_dir))
    model_over = cfg_over.pop("model", {})
    base.update(cfg_over)
    base["model"] = {**base["model"], **model_over}
    trainer = Trainer(TrainConfig(**base))
    t0 = time.perf_counter()
    losses: list[float] = []
    path = trainer.fit(lambda step, row: losses.append(float(row["loss"])))
    train_s = time.perf_counter() - t0
    held = _heldout_loss(trainer, heldout) if heldout is not None else None
    trainer.close()
    pipe = load(path)
    pics, sec = sample_many(pipe, n, seed=seed, batch=64, steps=sample_steps, sampler="dpmpp_2m", cfg=1.0)
    tail = losses[-max(1, len(losses) // 5):]
    row = {**ref.score(pics, False), "final_loss": sum(tail) / len(tail), "train_seconds": train_s,
           "heldout_loss": held, "pictures": pics}
    return row


@torch.no_grad()
def _heldout_loss(trainer, images: torch.Tensor) -> float:
    """EDM loss of the EMA weights on pictures the run never saw, at fixed σ and noise (seeded)."""

    den = EDMPrecond(trainer.ema.model, sigma_data=trainer.cfg.sigma_data)
    g = torch.Generator().manual_seed(0xE7A1)
    total, count = 0.0, 0
    for i in range(0, images.shape[0], 64):
        x0 = images[i:i + 64]
        sigma = torch.exp(-1.2 + 1.2 * torch.randn(x0.shape[0], generator=g, dtype=torch.float64))
        noise = torch.randn(x0.shape, generator=g)
        x = x0 + noise * sigma.float().view(-1, 1, 1, 1)
        w = (sigma**2 + 0.25) / (sigma * 0.5) ** 2
        err = (den(x, sigma) - x0).square().flatten(1).mean(1).double()
        total += float((w * err).sum())
        count += x0.shape[0]
    return total / count


def exp_lr_schedule(out: Path, *, steps=400, n=128, seed=0, log=print, fnet=None, work: Path | None = None,
                    force=False, **_) -> dict:
    steps, n = _whole("steps", steps, 10), _whole("n", n, 4)
    ref = _Reference(n, 32, seed, fnet or _fnet())
    work = Path(work or out / "runs")
    rows, curves = [], {}
    for kind in ("constant", "linear", "exponential", "cosine"):
        run = work / f"lr-{kind}"
        _fresh(run)
        row = _train_and_score({"lr_schedule": kind}, out_dir=run, steps=steps, n=n, seed=seed, ref=ref)
        row.pop("pictures")
        rows.append({"schedule": kind, "steps": steps, **row})
        curves[kind] = _log_curve(run)
        log(f"lr-schedule: {kind}: fd_art {row['fd_art']:.3g}, final loss {row['final_loss']:.4g}")

    def figure(path):
        plt = _plt()
        fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
        for kind, (st, loss, lr) in curves.items():
            axes[0].plot(st, lr, label=kind)
            axes[1].plot(st, loss, label=kind)
        axes[0].set_title("learning rate")
        axes[1].set_title("training loss")
        axes[1].set_yscale("log")
        axes[2].bar([r["schedule"] for r in rows], [r["fd_art"] for r in rows], color="tab:blue")
        axes[2].set_title("fd_art (lower is better)")
        for ax in axes[:2]:
            ax.set_xlabel("step")
            ax.legend()
        _save(fig, path)

    cols = ["schedule", "steps", "fd_art", "kid", "precision", "recall", "final_loss", "train_seconds"]
    notes = [f"Each run: the same small unconditional UNet ({SMALL_NET['channels']} channels, "
             f"{len(SMALL_NET['channel_mult'])} levels), {steps} steps of 32 ProceduralArt pictures at 32×32, peak LR "
             f"1e-2, warmup {min(50, steps // 5)}, the same seed and data order; only the LR schedule differs.",
             f"Sampled with dpmpp_2m at 20 steps; {n} pictures against {n} real ones; final_loss = the mean training "
             "loss over the last fifth of the steps."]
    return _write(out, "lr-schedule", rows, cols, "Learning-rate schedules on an equal training budget", notes,
                  figure, force)


def exp_regularization(out: Path, *, steps=400, n=128, data_size=256, seed=0, log=print, fnet=None,
                       work: Path | None = None, weight_decay=0.1, l1=1e-5, dropout=0.2, force=False, **_) -> dict:

    steps, n, data_size = _whole("steps", steps, 10), _whole("n", n, 4), _whole("data_size", data_size, 2)
    ref = _Reference(n, 32, seed, fnet or _fnet())
    train_set = ProceduralArt(32, size=data_size, seed=0)
    train_images = torch.stack([train_set[i]["image"] for i in range(data_size)])
    held = ProceduralArt(32, size=256, seed=777)
    held_images = torch.stack([held[i]["image"] for i in range(256)])
    work = Path(work or out / "runs")
    variants = [("none", {}), (f"L2 (weight decay {weight_decay})", {"weight_decay": weight_decay}),
                (f"L1 (λ = {l1})", {"l1": l1}), (f"dropout {dropout}", {"model": {"dropout": dropout}})]
    rows = []
    for k, (name, over) in enumerate(variants):
        run = work / f"reg-{k}"
        _fresh(run)
        row = _train_and_score(dict(over), out_dir=run, steps=steps, n=n, seed=seed, ref=ref,
                               data_size=data_size, heldout=held_images)
        pics = row.pop("pictures")
        m = memorization(pics, train_images, size=16)
        rows.append({"regularization": name, "data_size": data_size, "steps": steps, **row,
                     "near_copy_fraction": m["near_copy_fraction"]})
        log(f"regularization: {name}: fd_art {row['fd_art']:.3g}, held-out loss {row['heldout_loss']:.4g}, "
            f"near copies {m['near_copy_fraction']:.2f}")

    def figure(path):
        plt = _plt()
        fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
        names = [r["regularization"] for r in rows]
        for ax, key, title in zip(axes, ["fd_art", "heldout_loss", "near_copy_fraction"],
                                  ["fd_art (lower is better)", "held-out loss", "near-copy share"]):
            ax.bar(range(len(rows)), [r[key] or 0 for r in rows], color="tab:blue")
            ax.set_xticks(range(len(rows)), names, rotation=20, fontsize=8)
            ax.set_title(title)
        _save(fig, path)

    cols = ["regularization", "data_size", "steps", "fd_art", "kid", "precision", "recall", "final_loss",
            "heldout_loss", "near_copy_fraction", "train_seconds"]
    notes = [f"A small training set ({data_size} pictures), so that a model can overfit and memorize; "
             f"{steps} steps of 32; the same small unconditional UNet, seed and data order in every run.",
             "heldout_loss: the EDM loss of the EMA weights on 256 pictures of another data seed (fixed σ and noise). "
             "near_copy_fraction: paintings whose nearest training picture is 3× closer than the second nearest.",
             "The network's weights are forced to unit norm after every step (magnitude preserving, EDM2), so L2 "
             "weight decay can only act through Adam's state, not on the weights' scale."]
    return _write(out, "regularization", rows, cols, "Regularization on a small training set", notes, figure, force)


def _log_curve(run: Path):
    st, loss, lr = [], [], []
    try:
        with open(run / "log.csv") as f:
            for r in csv.DictReader(f):
                st.append(int(r["step"]))
                loss.append(float(r["loss"]))
                lr.append(float(r["lr"]))
    except (OSError, ValueError, KeyError):
        pass
    return st, loss, lr


def _fresh(run: Path) -> None:
    if run.exists():
        if not (run / "config.json").is_file() and any(run.iterdir()):
            raise UserError(f"{run}: exists and is not an experiment run; choose another --out")
        shutil.rmtree(run)


# -- samplers --------------------------------------------------------------------------------------------------------

def exp_samplers(out: Path, *, model="builtin", samplers=None, nfes=(5, 10, 20, 50), n=32, cfg=3.0, seed=0, batch=64,
                 ref_steps=100, log=print, fnet=None, device=None, force=False) -> dict:

    nfes, n = _check_list("nfe", nfes), _whole("n", n, 4)
    names = list(samplers) if samplers else [s for s in DIFFUSION_SAMPLERS if SAMPLERS[s].fixed_cost]
    infos = [get_sampler(s) for s in names]
    pipe = _load(model, device)
    ref = _Reference(n, pipe.resolution, seed, fnet or _fnet())
    text = pipe.condition == "text"
    prompts = ref.prompts if text else None
    exact, _ = sample_many(pipe, n, prompts=prompts, seed=seed, batch=batch, steps=ref_steps, sampler="heun", cfg=cfg)
    rows = []
    for info in infos:
        for nfe in nfes:
            if not info.fixed_cost:
                continue
            steps = info.steps_for_nfe(nfe)
            pics, sec = sample_many(pipe, n, prompts=prompts, seed=seed, batch=batch, steps=steps, sampler=info.name,
                                    cfg=cfg)
            rmse = None if info.stochastic else float((pics - exact).square().mean().sqrt())
            rows.append({"sampler": info.name, "nfe": nfe, "steps": steps, "rmse_vs_exact": rmse,
                         **ref.score(pics, text), "seconds_per_image": sec})
            log(f"samplers: {info.name} NFE {nfe}: fd_art {rows[-1]['fd_art']:.3g}"
                + (f", RMSE {rmse:.3g}" if rmse is not None else ""))

    def figure(path):
        plt = _plt()
        fig, axes = plt.subplots(1, 2, figsize=(12, 4))
        for info in infos:
            rs = [r for r in rows if r["sampler"] == info.name]
            if not rs:
                continue
            x = [r["nfe"] for r in rs]
            axes[0].plot(x, [r["fd_art"] for r in rs], "o-", label=info.name)
            if rs[0]["rmse_vs_exact"] is not None:
                axes[1].plot(x, [r["rmse_vs_exact"] for r in rs], "o-", label=info.name)
        axes[0].set_title("fd_art (lower is better)")
        axes[1].set_title(f"RMSE to a {ref_steps}-step Heun solve")
        for ax in axes:
            ax.set_xscale("log")
            ax.set_xlabel("NFE")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
        axes[1].set_yscale("log")
        _save(fig, path)

    cols = ["sampler", "nfe", "steps", "rmse_vs_exact", "fd_art", "kid", "precision", "recall"] + \
        (["adherence"] if text else []) + ["seconds_per_image"]
    notes = [f"model: {model}; {n} pictures per cell, guidance {cfg}; the exact reference is Heun with {ref_steps} "
             "steps from the same starting noise (RMSE only for deterministic samplers; stochastic ones end "
             "elsewhere by design).",
             "langevin and adaptive choose their own number of evaluations and are not in this table."]
    return _write(out, "samplers", rows, cols, "Samplers on the built-in model", notes, figure, force)


def _fnet():

    return load_feature_net()


EXPERIMENTS = {
    "steps": exp_steps,
    "noise": exp_noise,
    "lr-schedule": exp_lr_schedule,
    "regularization": exp_regularization,
    "samplers": exp_samplers,
}


def run_experiment(name: str, out="outputs/experiments", *, force: bool = False, **kw) -> dict:
    """Run experiment ``name`` (see ``EXPERIMENTS``) writing into ``out``; returns rows and written paths. ``out`` is
    checked first (a folder that can be written); existing result files are kept (free names) unless ``force``."""
    if name not in EXPERIMENTS:
        raise BadParameter(f"experiment: unknown {name!r}; choose one of {', '.join(EXPERIMENTS)}")
    out = Path(out)
    check_folder(out, what="--out")
    return EXPERIMENTS[name](out, force=force, **kw)
