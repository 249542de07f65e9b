"""Tuned discretizations: a σ-schedule fitted, for one model and one sampler at one NFE, so that the sampler's
result lands as close as possible to a fine solve of the probability-flow ODE from the same noise.

At 10 network evaluations almost all of a good solver's error comes from *where* it spends them. So we treat
the free levels (σ_1 … σ_{n-1}; σ_0 is where the noise starts, σ_n = 0) as parameters and minimise

    L(σ) = mean over training noises of ‖sampler(D, x_T, σ) - x_ref‖²

with a derivative-free pattern search over log σ (each trial is one cheap run of the sampler; no gradients
through the model are needed, so it works for any denoiser). The result is stored as JSON and reused:

    sigmas, info = tune_schedule(den, "dpmpp_3m", nfe=10, x_T=train_noise, reference=ref, init=karras(10, 0.01, 157))
    save_schedule("my-model-dpmpp_3m-10.json", sigmas, info)
    sigmas = load_schedule("my-model-dpmpp_3m-10.json")

The same idea (an optimised step schedule per model) appears as "Align Your Steps" (Sabour et al. 2024) and
in GITS (Chen et al. 2024); this is a plain, small, exact-target version of it.
"""
from __future__ import annotations

import json
import math
import os
import tempfile
from typing import Callable

import torch

from noisebrush.diffusion.samplers import get_sampler
from noisebrush.diffusion.schedules import check_sigmas
from noisebrush.errors import BadParameter, UserError

__all__ = ["tune_schedule", "save_schedule", "load_schedule", "schedule_loss"]

FORMAT = "noisebrush.tuned_schedule/1"


def schedule_loss(denoiser, sampler: Callable, x_T: torch.Tensor, reference: torch.Tensor, sigmas: torch.Tensor,
                  trim: float = 0.0, **kwargs) -> float:
    """Mean squared distance of the sampler's result to the reference (per element), leaving out the ``trim``
    fraction of samples with the largest error."""
    out = sampler(denoiser, x_T, sigmas, **kwargs)
    per = ((out.double() - reference.double()) ** 2).flatten(1).mean(1)
    keep = len(per) - int(trim * len(per))
    return float(per.sort().values[:max(keep, 1)].mean())


def _to_sigmas(sigma_max: float, logs: torch.Tensor) -> torch.Tensor | None:
    s = torch.cat([torch.tensor([sigma_max], dtype=torch.float64), logs.exp(), torch.zeros(1, dtype=torch.float64)])
    return s if bool((s[1:] < s[:-1]).all()) else None


def tune_schedule(denoiser, sampler: str, nfe: int, x_T: torch.Tensor, reference: torch.Tensor, init: torch.Tensor,
                  *, max_evals: int = 400, step: float = 0.25, min_step: float = 2e-3, sampler_kwargs: dict | None = None,
                  trim: float = 0.0, log: Callable[[str], None] | None = None):
    """Pattern search over log σ_1 … log σ_{n-1} of ``init`` (which fixes n and σ_0 and must end in 0).

    ``trim`` leaves the worst fraction of training samples out of the loss: with multi-modal data a few samples
    sit on a boundary between modes, where any coarse solver may land in the other mode; chasing those few
    makes the fit trade typical accuracy for them without removing the risk (seen on held-out noise).

    Returns (sigmas, info) where info records the sampler, NFE, losses before and after and evaluations used."""
    info_s = get_sampler(sampler)
    init = check_sigmas(init)
    if float(init[-1]) != 0.0 or len(init) < 3:
        raise BadParameter("init: need a schedule of at least 2 steps that ends in 0")
    kw = dict(sampler_kwargs or {})
    steps = len(init) - 1
    if info_s.steps_for_nfe(nfe) != steps:
        raise BadParameter(f"init: {steps} steps, but {sampler} at {nfe} NFE takes {info_s.steps_for_nfe(nfe)}")
    sigma_max = float(init[0])
    logs = init[1:-1].log().clone()

    def loss_of(l):
        s = _to_sigmas(sigma_max, l)
        return math.inf if s is None else schedule_loss(denoiser, info_s.fn, x_T, reference, s, trim=trim, **kw)

    best = loss_of(logs)
    start = best
    evals = 1
    delta = step
    while delta >= min_step and evals < max_evals:
        improved = False
        for i in range(len(logs)):
            for sign in (1.0, -1.0):
                trial = logs.clone()
                trial[i] += sign * delta
                val = loss_of(trial)
                evals += 1
                if val < best:
                    best, logs, improved = val, trial, True
                    break
            if evals >= max_evals:
                break
        if not improved:
            delta /= 2
        if log is not None:
            log(f"tune {sampler}@{nfe}: evals={evals} step={delta:.4f} rmse={math.sqrt(best):.3e}")
    sigmas = _to_sigmas(sigma_max, logs)
    info = {"sampler": sampler, "nfe": nfe, "steps": steps, "rmse_before": math.sqrt(start), "rmse_after": math.sqrt(best),
            "evals": evals, "train_samples": int(x_T.shape[0]), "trim": trim, "sampler_kwargs": kw}
    return sigmas, info


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
