"""iPNDM: Adams–Bashforth multistep on the probability-flow ODE in σ (Zhang & Chen 2023, "Fast Sampling of Diffusion
Models with Exponential Integrator", their improved PNDM; Zhou et al. 2024 found it the best training-free solver
at 5–10 NFE on the ρ = 7 schedule).

The ODE reads dx/dσ = d(x, σ) = (x − D(x; σ)) / σ. A linear multistep method keeps the slopes d of the last steps
and extrapolates them over the next step h = σ' − σ (negative: σ falls):

    order 1   x' = x + h·d_0                                     (Euler)
    order 2   x' = x + h·(3·d_0 − d_1) / 2
    order 3   x' = x + h·(23·d_0 − 16·d_1 + 5·d_2) / 12
    order 4   x' = x + h·(55·d_0 − 59·d_1 + 37·d_2 − 9·d_3) / 24

(d_0 the newest slope). The first steps use the orders their history allows (1, 2, 3, then 4): one network
evaluation per step, no extra evaluations to start. These are the fixed coefficients of equal steps — iPNDM as
published uses them on any schedule; ``variable=True`` instead integrates the polynomial through the last slopes
exactly over the actual, unequal σ steps (Lagrange form), which keeps the stated order on every grid. The step
onto σ = 0 is a multistep step too (d is finite there: it ends at x̂_0 only for order 1).
"""
from __future__ import annotations

import torch

from noisebrush.diffusion.samplers._common import prepare
from noisebrush.errors import BadParameter

__all__ = ["ipndm", "ipndm_v", "AB_COEFFICIENTS", "adams_bashforth_weights"]

#: Adams–Bashforth weights for equal steps, newest slope first (order 1 … 4)
AB_COEFFICIENTS = {1: (1.0,), 2: (3 / 2, -1 / 2), 3: (23 / 12, -16 / 12, 5 / 12),
                   4: (55 / 24, -59 / 24, 37 / 24, -9 / 24)}


def adams_bashforth_weights(nodes: list[float], a: float, b: float) -> list[float]:
    """w_j with ∫_a^b p(s) ds = Σ_j w_j·d_j for the polynomial p through (nodes[j], d_j): each Lagrange basis
    polynomial integrated exactly (float64; the nodes are distinct σ values, newest first)."""
    weights = []
    for j, sj in enumerate(nodes):
        # the basis polynomial ℓ_j(s) = Π_{m≠j} (s − s_m) / (s_j − s_m), as coefficients in powers of s
        coef = [1.0]
        denom = 1.0
        for m, sm in enumerate(nodes):
            if m == j:
                continue
            coef = [0.0] + coef  # × s
            for k in range(len(coef) - 1):
                coef[k] -= sm * coef[k + 1]
            denom *= sj - sm
        integral = sum(c * (b ** (k + 1) - a ** (k + 1)) / (k + 1) for k, c in enumerate(coef))
        weights.append(integral / denom)
    return weights


def ipndm(denoiser, x, sigmas, *, order: int = 4, variable: bool = False, extra_args=None, callback=None,
          noise=None):
    """Adams–Bashforth of ``order`` (1–4) on dx/dσ, one evaluation per step (see the module docstring);
    ``variable``: weights for the actual unequal steps instead of the published fixed ones."""
    if isinstance(order, bool) or order not in AB_COEFFICIENTS:
        raise BadParameter(f"order: 1, 2, 3 or 4; got {order!r}")
    s, D, _ = prepare(denoiser, x, sigmas, extra_args, noise)
    slopes: list[torch.Tensor] = []   # d at earlier steps, newest first
    nodes: list[float] = []           # their σ
    for i in range(len(s) - 1):
        sig, nxt = float(s[i]), float(s[i + 1])
        x0 = D(x, sig)
        if callback is not None:
            callback(x, x0, sig, i)
        d = (x - x0) / sig
        slopes = [d] + slopes[:order - 1]
        nodes = [sig] + nodes[:order - 1]
        k = len(slopes)
        if variable and k > 1:
            w = adams_bashforth_weights(nodes, sig, nxt)
            step = sum(wj * dj for wj, dj in zip(w, slopes))
        else:
            h = nxt - sig
            step = sum((h * c) * dj for c, dj in zip(AB_COEFFICIENTS[k], slopes))
        x = x + step
    return x


def ipndm_v(denoiser, x, sigmas, *, order: int = 4, extra_args=None, callback=None, noise=None):
    """:func:`ipndm` with ``variable=True``: Adams–Bashforth weights for the actual unequal σ steps."""
    return ipndm(denoiser, x, sigmas, order=order, variable=True, extra_args=extra_args, callback=callback,
                 noise=noise)
