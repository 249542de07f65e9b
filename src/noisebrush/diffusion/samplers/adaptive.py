"""Adaptive step size with error control — the brief's "steady-state detection" for ODE solvers: refine only
where the error estimate says so, and stop refining once it is under tolerance.

An embedded pair of exponential integrators in λ = -ln σ (see :mod:`.dpmpp`): the first-order step
(DDIM) x₁ = e^{-h}x + c0·x̂_0(x) and the second-order step that integrates the line through x̂_0(x) and
x̂_0(x₁) exactly, x₂ = x₁ + (c1/h)·(x̂_0(x₁) - x̂_0(x)). Their difference estimates the local error:

    err = RMS( (x₂ - x₁) / (atol + rtol·max(|x₁|, |x₂|)) )

A step is accepted when err ≤ 1 (the sample advances to x₂); either way the next h is
h·clip(safety·err^{-1/2}, 0.2, 5). Each sample keeps its own λ and h, so a result never depends on the
batch. An accepted step costs 2 evaluations, a rejected one 1. The solve runs from sigmas[0] to the last
non-zero σ; when ``sigmas`` ends in 0, a final evaluation returns x̂_0 there. Interior values only set the
first step size.

    stats = {}
    x0 = adaptive(den, x_T, karras(10), rtol=0.02, stats=stats)
    stats["nfe"], stats["accepted"], stats["rejected"]
"""
from __future__ import annotations

import logging
import math

import torch

from noisebrush.diffusion.samplers._common import prepare
from noisebrush.diffusion.samplers.dpmpp import phi_integrals
from noisebrush.errors import BadParameter

__all__ = ["adaptive"]

log = logging.getLogger(__name__)


def _bcast(v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return v.reshape(-1, *([1] * (x.ndim - 1))).to(device=x.device, dtype=x.dtype)


def adaptive(denoiser, x, sigmas, *, rtol: float = 0.05, atol: float = 0.0078, safety: float = 0.9,
             max_nfe: int = 10_000, extra_args=None, callback=None, noise=None, stats: dict | None = None):
    """Error-controlled exponential Heun–DDIM pair; see the module docstring. ``stats`` (optional dict)
    receives per-sample lists ``nfe``, ``accepted``, ``rejected``, ``sigmas`` (the accepted levels) and
    ``finished`` (False where ``max_nfe`` stopped a sample early, which is also logged as a warning)."""
    if rtol < 0 or atol < 0 or rtol + atol == 0:
        raise BadParameter(f"rtol/atol: need non-negative tolerances, not both zero; got {rtol!r}, {atol!r}")
    s, D, _ = prepare(denoiser, x, sigmas, extra_args)
    n = x.shape[0]
    final_denoise = float(s[-1]) == 0.0
    sig_end = float(s[-2] if final_denoise else s[-1])
    lam_end = -math.log(sig_end)
    lam = torch.full((n,), -math.log(float(s[0])), dtype=torch.float64)
    h = torch.full((n,), (lam_end - float(lam[0])) / max(len(s) - 1 - int(final_denoise), 1), dtype=torch.float64)
    accepted = torch.zeros(n, dtype=torch.long)
    rejected = torch.zeros(n, dtype=torch.long)
    levels = [[float(s[0])] for _ in range(n)]
    x = x.clone()
    x0 = D(x, float(s[0]))
    active = torch.arange(n)
    it = 0
    while len(active) > 0:
        idx = active
        sub = None if len(idx) == n else idx
        ha = torch.minimum(h[idx], lam_end - lam[idx])
        sig_n = (-(lam[idx] + ha)).exp()
        c1h = torch.tensor([phi_integrals(float(v))[1] for v in ha], dtype=torch.float64) / ha
        xa, x0a = x[idx], x0[idx]
        x1 = torch.lerp(x0a, xa, _bcast((-ha).exp(), xa))  # e^{-h}x + c0·x̂_0
        x0_1 = D(x1, sig_n, index=sub)
        x2 = x1 + _bcast(c1h, xa) * (x0_1 - x0a)
        scale = atol + rtol * torch.maximum(x1.abs(), x2.abs()).double()
        err = (((x2 - x1).double() / scale) ** 2).reshape(len(idx), -1).mean(1).sqrt()
        ok = err <= 1.0
        factor = (safety * err.clamp(min=1e-10) ** -0.5).clamp(0.2, 5.0)
        h[idx] = ha * factor
        acc = idx[ok]
        if len(acc) > 0:
            x[acc] = x2[ok]
            lam[acc] = lam[acc] + ha[ok]
            accepted[acc] += 1
            for j in acc.tolist():
                levels[j].append(math.exp(-float(lam[j])))
            done = (lam[acc] >= lam_end - 1e-12)
            todo = acc[~done]
            if len(todo) > 0:
                x0[todo] = D(x[todo], (-lam[todo]).exp(), index=None if len(todo) == n else todo)
            finished = acc[done]
            if len(finished) > 0 and final_denoise:
                x0[finished] = D(x[finished], sig_end, index=None if len(finished) == n else finished)
        rejected[idx[~ok]] += 1
        if callback is not None:
            callback(x.clone(), x0.clone(), (-lam).exp(), it)
        it += 1
        active = torch.arange(n)[(lam < lam_end - 1e-12) & (D.nfe < max_nfe)]
    finished = (lam >= lam_end - 1e-12).tolist()
    if not all(finished):
        log.warning("adaptive: %d of %d samples hit max_nfe=%d before reaching sigma=%.3g; they end early",
                    finished.count(False), n, max_nfe, sig_end)
    if final_denoise:
        x = x0.clone()
    if stats is not None:
        stats.update(nfe=D.nfe.tolist(), accepted=accepted.tolist(), rejected=rejected.tolist(), sigmas=levels,
                     finished=finished)
    return x
