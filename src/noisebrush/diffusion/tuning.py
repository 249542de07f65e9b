"""Learned discretizations: a σ-schedule fitted, for one model and one sampler at one NFE, so that the sampler's
result lands as close as possible to a fine solve of the probability-flow ODE from the same noise.

At 10 network evaluations almost all of a good solver's error comes from *where* it spends them. So we treat
the free levels σ_1 … σ_{n-1} (σ_0 is where the noise starts, σ_n = 0) as parameters and minimise

    L(σ) = trimmed mean over training noises of RMSE(sampler(D, x_T, σ), x_teacher)

by gradient descent (Adam), back-propagating through every step of the solver and through the denoiser itself
(its dependence on x and on σ): the idea of LD3 (Tong et al. 2024, "Learning to Discretize Denoising Diffusion
ODEs"), which fits the time steps of a few-step solver against a many-step teacher on ~100 noises in minutes.
The levels are parametrised as log σ_i = log σ_0 − Σ_{j≤i} e^{u_j}, so every schedule the optimiser visits is
strictly decreasing; the last non-zero level is free too. The worst ``trim`` fraction of samples is left out of
the loss: with multi-modal data a few noises sit on a boundary between modes, where any coarse solver may land in
the other mode, and chasing them trades typical accuracy for a risk it cannot remove. The result is judged on
held-out noises with the engine's own sampler, and the best schedule seen there is kept (never worse than the
schedule it started from).

    sigmas, info = learn_schedule(den, "dpmpp_2m", nfe=10, x_T=train_noise, reference=teacher,
                                  init=karras(10, 0.002, 80), valid=(valid_noise, valid_teacher))
    save_schedule("dpmpp_2m-nfe10.json", sigmas, info)
    sigmas = load_schedule("dpmpp_2m-nfe10.json")

``denoiser`` must be differentiable in x and σ: a network under the sampling core
(:func:`noisebrush.diffusion.sample.make_denoiser`), or :meth:`GaussianMixture.denoise_batch` for the exact
mixture. The solvers that can be learned (``LEARNABLE``) each have a differentiable twin here (:func:`solve`),
checked against the engine's sampler to float rounding.
"""
from __future__ import annotations

import json
import os
import tempfile
import time
from typing import Callable

import torch

from noisebrush.diffusion.samplers import get_sampler
from noisebrush.diffusion.schedules import check_sigmas
from noisebrush.errors import BadParameter, UserError

__all__ = ["LEARNABLE", "learn_schedule", "solve", "save_schedule", "load_schedule", "schedule_loss", "per_sample_rmse",
           "trimmed_mean"]

FORMAT = "noisebrush.tuned_schedule/1"


LEARNABLE = ("dpmpp_2m", "dpmpp_3m")


def schedule_loss(denoiser, sampler: Callable, x_T: torch.Tensor, reference: torch.Tensor, sigmas: torch.Tensor,
                  trim: float = 0.0, **kwargs) -> float:
    """Mean squared distance of the sampler's result to the reference (per element), leaving out the ``trim``
    fraction of samples with the largest error."""
    out = sampler(denoiser, x_T, sigmas, **kwargs)
    per = ((out.double() - reference.double()) ** 2).flatten(1).mean(1)
    keep = len(per) - int(trim * len(per))
    return float(per.sort().values[:max(keep, 1)].mean())


def per_sample_rmse(out: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """The RMSE of each sample to its reference (float64, one value per sample)."""
    return (out.double() - reference.double()).pow(2).flatten(1).mean(1).sqrt()


def trimmed_mean(per: torch.Tensor, trim: float) -> torch.Tensor:
    """The mean of ``per`` without its largest ``trim`` fraction (differentiable)."""
    keep = max(len(per) - int(trim * len(per)), 1)
    return per.sort().values[:keep].mean()


def solve(denoiser, x: torch.Tensor, sigmas: torch.Tensor, sampler: str) -> torch.Tensor:
    """The differentiable twin of a ``LEARNABLE`` engine sampler: the same arithmetic as
    :func:`noisebrush.diffusion.samplers.dpmpp.dpmpp_2m` (midpoint) and ``dpmpp_3m``, with σ a float64 tensor
    that may require a gradient (the engine's samplers turn σ into Python floats). The denoiser is called with
    one σ (a scalar tensor) for the whole batch."""
    if sampler not in LEARNABLE:
        raise BadParameter(f"sampler: a learned schedule is fitted for {', '.join(LEARNABLE)}; got {sampler!r}")
    order = 2 if sampler == "dpmpp_2m" else 3
    hist: list[tuple[torch.Tensor, torch.Tensor]] = []  # (x̂_0, λ) of earlier steps, newest last
    prev_h = None
    for i in range(len(sigmas) - 1):
        sig, nxt = sigmas[i], sigmas[i + 1]
        x0 = denoiser(x, sig)
        if i == len(sigmas) - 2:  # the last step lands on σ = 0: x̂_0
            return x0
        lam, h = -sig.log(), (sig / nxt).log()
        c0 = -torch.expm1(-h)
        x_new = x0 + (nxt / sig).to(x.dtype) * (x - x0)
        if hist and order == 2:
            x_new = x_new + (c0 / 2 * h / prev_h).to(x.dtype) * (x0 - hist[-1][0])
        elif hist:
            c1 = h - c0
            c2 = h * h - 2 * c1
            x1, lam1 = hist[-1]
            h1 = lam - lam1
            f01 = (x0 - x1) / h1.to(x.dtype)
            if len(hist) >= 2:
                x2, lam2 = hist[-2]
                h2 = lam1 - lam2
                f012 = (f01 - (x1 - x2) / h2.to(x.dtype)) / (h1 + h2).to(x.dtype)
                x_new = x_new + c1.to(x.dtype) * f01 + (c1 * h1 + c2).to(x.dtype) * f012
            else:
                x_new = x_new + c1.to(x.dtype) * f01
        hist = (hist + [(x0, lam)])[-2:]
        prev_h = h
        x = x_new
    return x


def _sigmas_of(sigma_max: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    logs = sigma_max.log() - torch.cumsum(u.exp(), 0)
    return torch.cat([sigma_max.reshape(1), logs.exp(), torch.zeros(1, dtype=torch.float64)])


def _gaps(init: torch.Tensor) -> torch.Tensor:
    logs = init[:-1].log()
    return (logs[:-1] - logs[1:]).log()


def learn_schedule(denoiser, sampler: str, nfe: int, x_T: torch.Tensor, reference: torch.Tensor, init: torch.Tensor,
                   *, valid: tuple[torch.Tensor, torch.Tensor] | None = None, iters: int = 150, lr: float = 0.05,
                   batch: int | None = None, trim: float = 0.1, every: int = 10, seed: int = 0,
                   select: Callable[[torch.Tensor], Callable] | None = None, valid_denoiser=None,
                   log: Callable[[str], None] | None = None, should_stop: Callable[[], bool] | None = None):
    """Fit σ_1 … σ_{n-1} of ``init`` (which fixes n and σ_0 and must end in 0) by gradient descent; see the
    module docstring. ``x_T``/``reference``: training noises (already scaled by σ_0) and where a fine solve takes
    them; ``valid``: held-out (noises, references) the schedule is judged on with the engine's sampler (default:
    the training set). ``batch``: noises per step (default all), drawn with ``seed``; ``every``: steps between
    judgements. ``select(indices)``: the denoiser for those training noises (when each noise has its own
    condition, e.g. a prompt); ``valid_denoiser``: the one for the held-out noises (default ``denoiser``).
    ``should_stop()`` ends the fit early (the best schedule so far is returned).

    Returns (sigmas, info): the best schedule on the held-out noises and what was measured (trimmed mean, median
    and 90th percentile of the per-sample RMSE there, before and after)."""
    fn = get_sampler(sampler).fn
    if sampler not in LEARNABLE:
        raise BadParameter(f"sampler: a learned schedule is fitted for {', '.join(LEARNABLE)}; got {sampler!r}")
    init = check_sigmas(init)
    if float(init[-1]) != 0.0 or len(init) < 3:
        raise BadParameter("init: need a schedule of at least 2 steps that ends in 0")
    steps = len(init) - 1
    if get_sampler(sampler).steps_for_nfe(nfe) != steps:
        raise BadParameter(f"init: {steps} steps, but {sampler} at {nfe} NFE takes "
                           f"{get_sampler(sampler).steps_for_nfe(nfe)}")
    if x_T.shape != reference.shape:
        raise BadParameter("reference: one reference per training noise, of the noise's shape")
    vx, vref = valid if valid is not None else (x_T, reference)
    sigma_max = init[0].clone()
    u = _gaps(init).clone().requires_grad_(True)
    opt = torch.optim.Adam([u], lr=lr)
    g = torch.Generator().manual_seed(seed)
    t0 = time.perf_counter()

    def judge(sig: torch.Tensor) -> dict:
        with torch.no_grad():
            per = per_sample_rmse(fn(valid_denoiser or denoiser, vx, sig), vref)
        return {"trimmed": float(trimmed_mean(per, trim)), "median": float(per.median()),
                "p90": float(per.quantile(0.9)), "rmse": float(per.pow(2).mean().sqrt())}

    start = judge(init)
    best, best_sig, best_at = start, init, 0
    train_first = None
    it = 0
    for it in range(1, iters + 1):
        idx = torch.randperm(len(x_T), generator=g)[:batch] if batch else torch.arange(len(x_T))
        sig = _sigmas_of(sigma_max, u)
        den = denoiser if select is None else select(idx)
        loss = trimmed_mean(per_sample_rmse(solve(den, x_T[idx], sig, sampler), reference[idx]), trim)
        opt.zero_grad()
        loss.backward()
        if not bool(torch.isfinite(u.grad).all()):
            raise UserError(f"learning the {sampler} schedule: the gradient is not finite (step {it})")
        opt.step()
        train_first = float(loss.detach()) if train_first is None else train_first
        if it % every == 0 or it == iters:
            cand = _sigmas_of(sigma_max, u.detach())
            got = judge(cand)
            if got["trimmed"] < best["trimmed"]:
                best, best_sig, best_at = got, cand, it
            if log is not None:
                log(f"learn {sampler}@{nfe}: step {it}/{iters} train {float(loss.detach()):.3e} held-out {got['trimmed']:.3e} "
                    f"(best {best['trimmed']:.3e}, start {start['trimmed']:.3e})")
        if should_stop is not None and should_stop():
            break
    info = {"sampler": sampler, "nfe": nfe, "steps": steps, "method": "gradient (LD3-style, Adam through the solver)",
            "iterations": it, "best_at": best_at, "lr": lr, "batch": batch or int(len(x_T)), "trim": trim,
            "train_samples": int(len(x_T)), "valid_samples": int(len(vx)), "train_loss_first": train_first,
            "held_out_before": start, "held_out_after": best, "seconds": round(time.perf_counter() - t0, 1),
            "init": [float(v) for v in init]}
    return best_sig.detach().clone(), info


def save_schedule(path: str, sigmas: torch.Tensor, info: dict) -> None:
    """Write {format, sigmas, info} as JSON, atomically (temp file + rename)."""
    sigmas = check_sigmas(sigmas)
    data = {"format": FORMAT, "sigmas": [float(v) for v in sigmas], "info": info}
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".json")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=1)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def load_schedule(path: str, with_info: bool = False):
    """The σ tensor from a file written by :func:`save_schedule` (and its info dict if ``with_info``)."""
    try:
        with open(path) as f:
            data = json.load(f)
    except FileNotFoundError:
        raise UserError(f"{path}: no such schedule file") from None
    except (OSError, ValueError) as e:
        raise UserError(f"{path}: not a readable schedule file ({e})") from None
    except RecursionError:
        raise UserError(f"{path}: not a readable schedule file (nested too deeply)") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise UserError(f"{path}: not a noisebrush tuned schedule (expected format {FORMAT})")
    try:
        sigmas = check_sigmas(data["sigmas"])
    except (KeyError, UserError, TypeError, ValueError, OverflowError, RuntimeError) as e:
        # a list of σ levels is all a schedule holds; torch rejects anything else with one of these
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise UserError(f"{path}: bad sigmas ({first})") from None
    if not isinstance(data.get("info", {}), dict):
        raise UserError(f"{path}: its 'info' is not an object")
    return (sigmas, data.get("info", {})) if with_info else sigmas
