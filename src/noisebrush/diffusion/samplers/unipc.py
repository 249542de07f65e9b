"""UniPC: a unified predictor–corrector multistep solver (Zhao et al. 2023, "UniPC: A Unified Predictor-Corrector
Framework for Fast Sampling of Diffusion Models"), in data prediction (x̂_0) form, written in σ-space with
λ = −ln σ like :mod:`noisebrush.diffusion.samplers.dpmpp`.

The probability-flow ODE reads dx/dλ = D(x; λ) − x; over a step from λ_0 to λ_t = λ_0 + h its exact solution is
x_t = e^{−h}·x_0 + ∫_0^h e^{−(h−τ)}·D(λ_0 + τ) dτ. UniPC keeps the first-order (DDIM) part exact and writes the
rest as one B(h)-weighted combination of divided differences of earlier x̂_0:

    x_t = e^{−h}·x + (1 − e^{−h})·m_0 + B(h)·Σ_k ρ_k·D_k,      D_k = (m_k − m_0) / r_k,   r_k = (λ_k − λ_0) / h

(m_0 the newest x̂_0, m_k earlier ones, r_k < 0). The weights ρ solve the order conditions
Σ_k ρ_k·r_k^{j−1} = j!·φ_{j+1}(−h)·(−h) / B̃(h) for j = 1 … p−1, with the φ functions of exponential integrators
(φ_1(z) = (e^z − 1)/z, φ_{j+1}(z) = (φ_j(z) − 1/j!)/z) and B̃ the signed B: ``bh2`` takes B(h) = 1 − e^{−h}
(e^h − 1 in the paper's λ-forward sign), ``bh1`` B(h) = h.

* **UniP-p**, the predictor, uses the p − 1 earlier outputs; for p = 2 the paper (and diffusers) fix ρ = 1/2, which
  with ``bh2`` is exactly DPM-Solver++(2M) (tested).
* **UniC-p**, the corrector, is the same formula once the model has been evaluated at the predicted x_t, with that
  output m_t added as one more node at r = 1 (the p × p system; for p = 1 the paper fixes ρ = 1/2). It replaces
  the predicted x_t by the corrected one, but keeps m_t — evaluated at the predicted point — as the next step's
  newest output: the corrector costs no evaluation, so the number of network evaluations equals the number of
  steps. It raises the order by one (UniPC-p converges with order p + 1 in the paper's analysis).

Warm-up: step i uses order min(p, i + 1). With ``lower_order_final`` a run of fewer than 15 steps also lowers the
order of its last steps (min(p, steps − i)), as DPM-Solver does and as diffusers' UniPC does at every step count;
at 15 steps and more ours keeps the full order to the end, where diffusers still lowers it. The step onto σ = 0
returns x̂_0 of the last evaluation (the corrector of the last state changes nothing there and is skipped). The
callback sees each evaluation's own pair (the predicted x and its x̂_0), not the corrected x.
"""
from __future__ import annotations

import math

import torch

from noisebrush.diffusion.samplers._common import prepare
from noisebrush.errors import BadParameter

__all__ = ["unipc", "unipc_weights", "LOWER_ORDER_FINAL_BELOW"]

#: runs shorter than this many steps lower the order of their last steps (``lower_order_final``)
LOWER_ORDER_FINAL_BELOW = 15


def _phis(z: float, n: int) -> list[float]:
    """[φ_1(z), …, φ_n(z)] in float64: the power series Σ_m z^m/(m+j)! where |z| < 1 (the recursion loses digits to
    cancellation for small steps), the recursion φ_{j+1} = (φ_j − 1/j!)/z elsewhere."""
    if abs(z) < 1:
        out = []
        for j in range(1, n + 1):
            term, total, m = 1.0 / math.factorial(j), 0.0, 0
            while m < 40 and abs(term) > 1e-18 * max(abs(total), 1e-300):
                total += term
                m += 1
                term *= z / (m + j)
            out.append(total)
        return out
    out = [math.expm1(z) / z]
    for j in range(1, n):
        out.append((out[-1] - 1 / math.factorial(j)) / z)
    return out


def _solve(a: list[list[float]], b: list[float]) -> list[float]:
    """A small dense linear system by Gaussian elimination with partial pivoting (float64)."""
    n = len(b)
    m = [row[:] + [b[i]] for i, row in enumerate(a)]
    for c in range(n):
        p = max(range(c, n), key=lambda r: abs(m[r][c]))
        if m[p][c] == 0:
            raise BadParameter("unipc: two steps share a noise level (singular order conditions)")
        m[c], m[p] = m[p], m[c]
        for r in range(c + 1, n):
            f = m[r][c] / m[c][c]
            for k in range(c, n + 1):
                m[r][k] -= f * m[c][k]
    x = [0.0] * n
    for r in range(n - 1, -1, -1):
        x[r] = (m[r][n] - sum(m[r][k] * x[k] for k in range(r + 1, n))) / m[r][r]
    return x


def unipc_weights(h: float, rks: list[float], solver_type: str = "bh2") -> tuple[float, list[float]]:
    """(B(h), ρ) for one update with nodes r_k (the earlier outputs', then r = 1 for a corrector's new one): ρ solves
    Σ_k ρ_k·r_k^{j−1} = j!·φ_{j+1}(−h)·(−h)/B̃(h), j = 1 … len(rks). ``len(rks) == 1`` gets the paper's fixed
    ρ = 1/2 (the order-2 predictor, the order-1 corrector)."""
    c0 = -math.expm1(-h)
    big_b = c0 if solver_type == "bh2" else h
    if not rks:
        return big_b, []
    if len(rks) == 1:
        return big_b, [0.5]
    phi = _phis(-h, len(rks) + 1)
    # B̃ is the signed B of the λ-backward form: −(1 − e^{−h}) for bh2, −h for bh1
    signed = -c0 if solver_type == "bh2" else -h
    rhs = [math.factorial(j) * phi[j] * (-h) / signed for j in range(1, len(rks) + 1)]
    rows = [[r ** (j - 1) for r in rks] for j in range(1, len(rks) + 1)]
    return big_b, _solve(rows, rhs)


def unipc(denoiser, x, sigmas, *, order: int = 3, solver_type: str = "bh2", corrector: bool = True,
          lower_order_final: bool = True, extra_args=None, callback=None, noise=None):
    """UniPC-``order`` (1–3): the UniP predictor of that order and, unless ``corrector=False``, the UniC corrector
    after every step but the last, 1 evaluation per step (see the module docstring). ``solver_type``: ``bh2``
    (B(h) = 1 − e^{−h}, the paper's choice for guided and few-step sampling) or ``bh1`` (B(h) = h)."""
    if isinstance(order, bool) or order not in (1, 2, 3):
        raise BadParameter(f"order: 1, 2 or 3; got {order!r}")
    if solver_type not in ("bh1", "bh2"):
        raise BadParameter(f"solver_type: one of bh1, bh2; got {solver_type!r}")
    s, D, _ = prepare(denoiser, x, sigmas, extra_args, noise)
    steps = len(s) - 1
    lower = lower_order_final and steps < LOWER_ORDER_FINAL_BELOW
    hist: list[tuple[torch.Tensor, float]] = []  # (x̂_0, λ) of the last evaluations, newest last
    last = None  # what the corrector needs from the previous step: (x before its predictor, h, its order)
    for i in range(steps):
        sig, nxt = float(s[i]), float(s[i + 1])
        x0 = D(x, sig)
        if callback is not None:
            callback(x, x0, sig, i)
        if nxt == 0:
            x = x0
            break
        lam = -math.log(sig)
        if corrector and last is not None:
            x = _update(last[0], hist, last[1], last[2], x0, solver_type)
        hist = (hist + [(x0, lam)])[-order:]
        p = min(order, len(hist), steps - i if lower else order)
        h = -math.log(nxt) - lam
        last = (x, h, p)
        x = _update(x, hist, h, p, None, solver_type)
    return x


def _update(x, hist, h, p, m_t, solver_type="bh2"):
    """One UniP-p step from x (at the newest entry of ``hist``) over h, or with ``m_t`` (x̂_0 at the step's end) the
    UniC-p step that replaces its result. ``hist`` holds (x̂_0, λ) newest last; a corrector's ``hist`` does not yet
    hold m_t."""
    m0, lam0 = hist[-1]
    ds, rks = [], []
    for k in range(1, p):
        mk, lamk = hist[-1 - k]
        r = (lamk - lam0) / h
        rks.append(r)
        ds.append((mk - m0) / r)
    if m_t is not None:
        rks.append(1.0)
        ds.append(m_t - m0)
    big_b, rho = unipc_weights(h, rks, solver_type)
    out = torch.lerp(m0, x, math.exp(-h))  # e^{−h}·x + (1 − e^{−h})·m_0
    for rk, dk in zip(rho, ds):
        out = out + (big_b * rk) * dk
    return out
