"""DPM-Solver++ multistep samplers (Lu et al. 2022, "DPM-Solver++: Fast Solver for Guided Sampling of
Diffusion Probabilistic Models"), written as exponential integrators in λ = -ln σ.

With data prediction the probability-flow ODE reads dx/dλ = D(x; λ) - x, whose exact solution over a
step h = λ' - λ = ln(σ/σ') is

    x' = e^{-h}·x + ∫_0^h e^{-(h-τ)} D(λ+τ) dτ.

Multistep methods replace D by the polynomial through the last k denoiser outputs and integrate it exactly:
    ∫ e^{-(h-τ)}·1    = c0 = 1 - e^{-h}
    ∫ e^{-(h-τ)}·τ    = c1 = h - c0
    ∫ e^{-(h-τ)}·τ²   = c2 = h² - 2·c1
(k = 1: DDIM; k = 2: ``dpmpp_2m``; k = 3: ``dpmpp_3m``). The step onto σ = 0 (h = ∞) returns x̂_0.

``dpmpp_2m_sde`` integrates the matching SDE; η = 0 turns it back into ``dpmpp_2m``.
"""
from __future__ import annotations

import math

import torch

from noisebrush.diffusion.samplers._common import prepare, require_noise
from noisebrush.errors import BadParameter

__all__ = ["dpmpp_2m", "dpmpp_3m", "dpmpp_2m_sde", "phi_integrals"]


def phi_integrals(h: float) -> tuple[float, float, float]:
    """(c0, c1, c2) above, in float64; a Taylor series for tiny h keeps c1 and c2 free of cancellation."""
    if h < 1e-3:
        c0 = -math.expm1(-h)
        c1 = h * h / 2 - h**3 / 6 + h**4 / 24 - h**5 / 120
        c2 = h**3 / 3 - h**4 / 12 + h**5 / 60
        return c0, c1, c2
    c0 = -math.expm1(-h)
    c1 = h - c0
    return c0, c1, h * h - 2 * c1


def _lam(sigma: float) -> float:
    return -math.log(sigma)


def dpmpp_2m(denoiser, x, sigmas, *, solver_type: str = "midpoint", extra_args=None, callback=None, noise=None):
    """Second-order multistep. ``solver_type='midpoint'`` weights the slope term by c0·h/2 (the form of the
    paper, k-diffusion and diffusers' default); ``'heun'`` integrates the linear interpolant exactly (c1)."""
    return _multistep_2(denoiser, x, sigmas, 0.0, 1.0, solver_type, extra_args, callback, noise, "dpmpp_2m")


def dpmpp_3m(denoiser, x, sigmas, *, extra_args=None, callback=None, noise=None):
    """Third-order multistep: the quadratic through the last three x̂_0 (Newton form on the non-uniform λ grid),
    integrated exactly. Starts with one first- and one second-order step; 1 evaluation per step."""
    s, D, _ = prepare(denoiser, x, sigmas, extra_args)
    hist: list[tuple[torch.Tensor, float]] = []  # (x̂_0, λ) of earlier steps, newest last
    for i in range(len(s) - 1):
        sig, nxt = float(s[i]), float(s[i + 1])
        x0 = D(x, sig)
        if callback is not None:
            callback(x, x0, sig, i)
        if nxt == 0:
            x = x0
            break
        lam = _lam(sig)
        h = _lam(nxt) - lam
        c0, c1, c2 = phi_integrals(h)
        x_new = torch.lerp(x0, x, nxt / sig)
        if hist:
            x1, lam1 = hist[-1]
            h1 = lam - lam1
            f01 = (x0 - x1) / h1  # first divided difference (slope in λ)
            if len(hist) >= 2:
                x2, lam2 = hist[-2]
                h2 = lam1 - lam2
                f12 = (x1 - x2) / h2
                f012 = (f01 - f12) / (h1 + h2)
                # p(τ) = x̂_0 + (f01 + h1·f012)·τ + f012·τ²
                x_new = x_new + c1 * f01 + (c1 * h1 + c2) * f012
            else:
                x_new = x_new + c1 * f01
        hist = (hist + [(x0, lam)])[-2:]
        x = x_new
    return x


def dpmpp_2m_sde(denoiser, x, sigmas, *, eta: float = 1.0, s_noise: float = 1.0, solver_type: str = "midpoint",
                 extra_args=None, callback=None, noise=None):
    """Second-order multistep solver of the reverse SDE (DPM-Solver++(2M) SDE). Per step:
    x' = (σ'/σ)·e^{-ηh}·x + (1 - e^{-(1+η)h})·x̂_0 + slope term + σ'·sqrt(1 - e^{-2ηh})·s_noise·z."""
    return _multistep_2(denoiser, x, sigmas, eta, s_noise, solver_type, extra_args, callback, noise, "dpmpp_2m_sde")


def _multistep_2(denoiser, x, sigmas, eta, s_noise, solver_type, extra_args, callback, noise, name):
    """DPM-Solver++(2M) for the SDE with noise fraction η; η = 0 is the probability-flow ODE (``dpmpp_2m``)."""
    if solver_type not in ("midpoint", "heun"):
        raise BadParameter(f"solver_type: one of midpoint, heun; got {solver_type!r}")
    s, D, noise = prepare(denoiser, x, sigmas, extra_args, noise)
    if eta > 0:
        noise = require_noise(noise, name)
    prev_x0, prev_h = None, None
    for i in range(len(s) - 1):
        sig, nxt = float(s[i]), float(s[i + 1])
        x0 = D(x, sig)
        if callback is not None:
            callback(x, x0, sig, i)
        if nxt == 0:
            x = x0
            break
        h = _lam(nxt) - _lam(sig)
        hh = (1 + eta) * h
        c0 = -math.expm1(-hh)
        if eta == 0:
            x_new = torch.lerp(x0, x, nxt / sig)  # e^{-h}·x + (1 - e^{-h})·x̂_0
        else:
            x_new = (nxt / sig * math.exp(-eta * h)) * x + c0 * x0
        if prev_x0 is not None:
            # slope in λ, scaled to the effective step (1+η)h of the data term
            w = (c0 / 2 if solver_type == "midpoint" else (hh - c0) / hh) * h / prev_h
            x_new = x_new + w * (x0 - prev_x0)
        if eta > 0:
            x_new = x_new + (nxt * math.sqrt(-math.expm1(-2 * eta * h)) * s_noise) * noise.randn_like(x)
        x, prev_x0, prev_h = x_new, x0, h
    return x
