"""Sliced Wasserstein distance between two sample sets (Rabin et al. 2011; Bonneel et al. 2015).

Both sets are projected on the same random unit directions; in 1-D the Wasserstein-2 distance is the
distance between sorted samples (quantile functions). SWD = sqrt(mean over directions of W2²).

    d = sliced_wasserstein(generated.flatten(1), reference.flatten(1), projections=256, seed=0)
"""
from __future__ import annotations

import torch

__all__ = ["sliced_wasserstein"]


def _quantiles(v: torch.Tensor, m: int) -> torch.Tensor:
    """Column-wise empirical quantiles of v (n×P) at m mid-points, by linear interpolation of sorted values."""
    v = v.sort(0).values
    n = v.shape[0]
    if n == m:
        return v
    pos = (torch.arange(m, dtype=v.dtype) + 0.5) / m * n - 0.5
    lo = pos.floor().clamp(0, n - 1).long()
    hi = (lo + 1).clamp(max=n - 1)
    w = (pos - lo).clamp(0, 1).unsqueeze(1)
    return v[lo] * (1 - w) + v[hi] * w


def sliced_wasserstein(a: torch.Tensor, b: torch.Tensor, projections: int = 256, seed: int = 0) -> float:
    a = a.reshape(a.shape[0], -1).double().cpu()
    b = b.reshape(b.shape[0], -1).double().cpu()
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"sliced_wasserstein: dimensions differ ({a.shape[1]} vs {b.shape[1]})")
    g = torch.Generator().manual_seed(seed)
    dirs = torch.randn(a.shape[1], projections, generator=g, dtype=torch.float64)
    dirs /= dirs.norm(dim=0, keepdim=True)
    m = max(a.shape[0], b.shape[0])
    qa, qb = _quantiles(a @ dirs, m), _quantiles(b @ dirs, m)
    return float(((qa - qb) ** 2).mean(0).mean().sqrt())
