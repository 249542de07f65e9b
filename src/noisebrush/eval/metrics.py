"""Distances between a set of generated pictures and a reference set.

In the domain feature network's space (:mod:`noisebrush.eval.features`):

* :func:`frechet_distance` — FD between Gaussians fitted to two feature sets (Heusel et al. 2017); on our features
  it is called ``fd_art``. The matrix square root is computed from symmetric eigendecompositions
  (tr √(Σ₁Σ₂) = tr √(Σ₁^½ Σ₂ Σ₁^½)), exact to float64 rounding, never complex.
* :func:`kid` — kernel inception distance (Bińkowski et al. 2018): the unbiased MMD² with the cubic polynomial
  kernel, averaged over random subsets. Unbiased, so usable on small sets where FD is biased upwards.
* :func:`precision_recall` — improved precision and recall (Kynkäänniemi et al. 2019): a generated picture is
  "precise" if it falls inside the k-NN ball of some real one; a real picture is "recalled" if it falls inside
  the k-NN ball of some generated one.

Without any network:

* :func:`swd_laplacian` — sliced Wasserstein distance between 7×7 patches of the Laplacian pyramids of the two sets
  (Karras et al. 2018, "Progressive Growing of GANs"), per level and averaged, ×10³ as in that paper.
* :func:`memorization` — for each generated picture, its pixel distance to the nearest training picture divided by
  the distance to the second nearest. A ratio well below 1 means the picture sits on one training picture and
  nowhere near the others: a near-copy. The share of ratios under ``threshold`` (1/3 by default) is reported.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["frechet_distance", "kid", "precision_recall", "swd_laplacian", "laplacian_pyramid", "memorization",
           "pairwise_distances"]


def _stats(f: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    f = f.double()
    mu = f.mean(0)
    d = f - mu
    return mu, d.T @ d / max(f.shape[0] - 1, 1)


def _sqrt_psd(a: torch.Tensor) -> torch.Tensor:
    w, v = torch.linalg.eigh((a + a.T) / 2)
    return (v * w.clamp_min(0).sqrt()) @ v.T


def frechet_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """FD between two N×D feature sets (each needs at least 2 rows)."""
    if a.shape[0] < 2 or b.shape[0] < 2:
        raise ValueError("frechet_distance: each set needs at least 2 samples")
    mu1, s1 = _stats(a)
    mu2, s2 = _stats(b)
    r = _sqrt_psd(s1)
    m = r @ s2 @ r
    cross = torch.linalg.eigvalsh((m + m.T) / 2).clamp_min(0).sqrt().sum()
    fd = (mu1 - mu2).square().sum() + torch.trace(s1) + torch.trace(s2) - 2 * cross
    return max(float(fd), 0.0)


def kid(a: torch.Tensor, b: torch.Tensor, subsets: int = 50, subset_size: int = 1000, seed: int = 0) -> float:
    """Mean over random subsets of the unbiased MMD² with k(x, y) = (x·y / D + 1)³."""
    a, b = a.double(), b.double()
    m = min(subset_size, a.shape[0], b.shape[0])
    if m < 2:
        raise ValueError("kid: each set needs at least 2 samples")
    d = a.shape[1]
    g = torch.Generator().manual_seed(seed)
    total = 0.0
    for _ in range(subsets):
        x = a[torch.randperm(a.shape[0], generator=g)[:m]]
        y = b[torch.randperm(b.shape[0], generator=g)[:m]]
        kxx = (x @ x.T / d + 1) ** 3
        kyy = (y @ y.T / d + 1) ** 3
        kxy = (x @ y.T / d + 1) ** 3
        total += float((kxx.sum() - kxx.diagonal().sum()) / (m * (m - 1))
                       + (kyy.sum() - kyy.diagonal().sum()) / (m * (m - 1)) - 2 * kxy.mean())
    return total / subsets


def pairwise_distances(a: torch.Tensor, b: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
    """Euclidean distances, |a| × |b|, in float64 chunks."""
    a, b = a.double(), b.double()
    bb = b.square().sum(1)
    out = []
    for i in range(0, a.shape[0], chunk):
        x = a[i:i + chunk]
        d2 = x.square().sum(1, keepdim=True) + bb[None] - 2 * x @ b.T
        out.append(d2.clamp_min(0).sqrt())
    return torch.cat(out) if out else torch.zeros(0, b.shape[0], dtype=torch.float64)


def _knn_radius(f: torch.Tensor, k: int) -> torch.Tensor:
    d = pairwise_distances(f, f)
    return d.kthvalue(k + 1, dim=1).values  # the 0-th neighbour is the point itself


def precision_recall(real: torch.Tensor, fake: torch.Tensor, k: int = 3) -> tuple[float, float]:
    """(precision, recall) of ``fake`` against ``real`` with k-NN balls (k = 3, as the paper recommends)."""
    if real.shape[0] <= k or fake.shape[0] <= k:
        raise ValueError(f"precision_recall: each set needs more than k = {k} samples")
    r_real, r_fake = _knn_radius(real, k), _knn_radius(fake, k)
    d = pairwise_distances(fake, real)  # fake × real
    precision = (d <= r_real[None]).any(1).double().mean()
    recall = (d.T <= r_fake[None]).any(1).double().mean()
    return float(precision), float(recall)


# -- Laplacian-pyramid SWD -----------------------------------------------------------------------------------------

_BINOMIAL = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0]) / 16


def _blur(x: torch.Tensor) -> torch.Tensor:
    c = x.shape[1]
    k = _BINOMIAL.to(x.dtype)
    x = F.conv2d(F.pad(x, (2, 2, 0, 0), mode="reflect"), k.view(1, 1, 1, 5).repeat(c, 1, 1, 1), groups=c)
    return F.conv2d(F.pad(x, (0, 0, 2, 2), mode="reflect"), k.view(1, 1, 5, 1).repeat(c, 1, 1, 1), groups=c)


def laplacian_pyramid(x: torch.Tensor, min_size: int = 8) -> list[torch.Tensor]:
    """Band-pass levels, finest first, then the low-pass residual at the coarsest size ≥ ``min_size``."""
    levels = []
    cur = x.double()
    while cur.shape[-1] // 2 >= min_size and cur.shape[-2] // 2 >= min_size:
        low = _blur(cur)[..., ::2, ::2]
        up = F.interpolate(low, size=cur.shape[-2:], mode="bilinear", align_corners=False)
        levels.append(cur - up)
        cur = low
    levels.append(cur)
    return levels


def _patches(level: torch.Tensor, per_image: int, size: int, g: torch.Generator) -> torch.Tensor:
    n, c, h, w = level.shape
    size = min(size, h, w)
    ys = torch.randint(0, h - size + 1, (n, per_image), generator=g)
    xs = torch.randint(0, w - size + 1, (n, per_image), generator=g)
    off = torch.arange(size)
    rows = (ys[..., None] + off)[..., :, None].expand(n, per_image, size, size)
    cols = (xs[..., None] + off)[..., None, :].expand(n, per_image, size, size)
    idx_n = torch.arange(n)[:, None, None, None].expand(n, per_image, size, size)
    p = level.permute(0, 2, 3, 1)[idx_n, rows, cols]  # n × P × s × s × c
    return p.reshape(n * per_image, -1)


def _normalise(d: torch.Tensor, c: int) -> torch.Tensor:
    """Per-channel standardisation of patch descriptors (as in Karras et al.): mean 0, std 1 per colour channel."""
    v = d.reshape(d.shape[0], -1, c)
    mu = v.mean((0, 1), keepdim=True)
    sd = v.std((0, 1), keepdim=True).clamp_min(1e-8)
    return ((v - mu) / sd).reshape(d.shape[0], -1)


def _swd(a: torch.Tensor, b: torch.Tensor, directions: int, repeats: int, g: torch.Generator) -> float:
    m = min(a.shape[0], b.shape[0])
    a = a[torch.randperm(a.shape[0], generator=g)[:m]]
    b = b[torch.randperm(b.shape[0], generator=g)[:m]]
    total = 0.0
    for _ in range(repeats):
        dirs = torch.randn(a.shape[1], directions, generator=g, dtype=torch.float64)
        dirs /= dirs.norm(dim=0, keepdim=True)
        pa, pb = (a @ dirs).sort(0).values, (b @ dirs).sort(0).values
        total += float((pa - pb).abs().mean())
    return total / repeats


def swd_laplacian(a: torch.Tensor, b: torch.Tensor, *, patches_per_image: int = 64, patch: int = 7,
                  directions: int = 512, repeats: int = 4, seed: int = 0) -> dict:
    """SWD ×10³ per Laplacian level (finest first) and their mean, between picture sets N×C×H×W in [-1, 1].

    Returns ``{"levels": [...], "mean": float, "sizes": [...]}``.
    """
    if a.shape[1:] != b.shape[1:]:
        b = F.interpolate(b.double(), size=a.shape[-2:], mode="area")
    g = torch.Generator().manual_seed(seed)
    la, lb = laplacian_pyramid(a), laplacian_pyramid(b)
    out, sizes = [], []
    c = a.shape[1]
    for xa, xb in zip(la, lb):
        da = _normalise(_patches(xa, patches_per_image, patch, g), c)
        db = _normalise(_patches(xb, patches_per_image, patch, g), c)
        out.append(1e3 * _swd(da, db, directions, repeats, g))
        sizes.append(int(xa.shape[-1]))
    return {"levels": out, "sizes": sizes, "mean": sum(out) / len(out)}


# -- memorization ----------------------------------------------------------------------------------------------------

def _flat(x: torch.Tensor, size: int) -> torch.Tensor:
    x = x.float()
    if x.shape[-1] != size or x.shape[-2] != size:
        x = F.interpolate(x, size=(size, size), mode="area")
    return x.reshape(x.shape[0], -1)


def memorization(generated: torch.Tensor, training, *, threshold: float = 1 / 3, size: int = 32,
                 chunk: int = 8192) -> dict:
    """Nearest / second-nearest training-picture distance ratios of each generated picture (pixels, at
    ``size``×``size``). ``training`` is a tensor N×C×H×W in [-1, 1] or an iterable of such chunks (so a large set
    need not be in memory at once). Returns the share of ratios below ``threshold`` (``near_copy_fraction``), the
    ratios, and the index of each picture's nearest training picture."""
    g = _flat(generated, size).double()
    n = g.shape[0]
    best = torch.full((n, 2), math.inf, dtype=torch.float64)
    best_idx = torch.full((n,), -1, dtype=torch.long)
    seen = 0
    chunks = [training] if torch.is_tensor(training) else training
    for part in chunks:
        for i in range(0, part.shape[0], chunk):
            t = _flat(part[i:i + chunk], size).double()
            d = pairwise_distances(g, t)
            k = min(2, d.shape[1])
            vals, idx = d.topk(k, dim=1, largest=False)
            if k < 2:  # a chunk of one picture: pad so the merge below always sees two candidates
                vals = torch.cat([vals, torch.full_like(vals, math.inf)], 1)
                idx = torch.cat([idx, idx], 1)
            merged = torch.cat([best, vals], 1)
            order = merged.argsort(1)[:, :2]
            first = order[:, 0]
            from_chunk = idx.gather(1, (first - 2).clamp_min(0)[:, None])[:, 0] + seen + i
            best_idx = torch.where(first >= 2, from_chunk, best_idx)
            best = merged.gather(1, order)
        seen += part.shape[0]
    if seen < 2:
        raise ValueError("memorization: the training set needs at least 2 pictures")
    ratio = best[:, 0] / best[:, 1].clamp_min(1e-12)
    return {"near_copy_fraction": float((ratio < threshold).double().mean()) if n else 0.0,
            "threshold": threshold, "ratios": ratio.tolist(), "nearest": best_idx.tolist(),
            "nearest_distance": best[:, 0].tolist(), "training_pictures": seen}
