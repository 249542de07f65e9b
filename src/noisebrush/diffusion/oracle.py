"""An exact oracle: a Gaussian mixture whose denoiser is known in closed form at every σ.

With data x_0 ~ Σ_k w_k·N(μ_k, diag(v_k)) and x_σ = x_0 + σ·ε, the noisy marginal is Σ_k w_k·N(μ_k, diag(v_k+σ²))
and the ideal denoiser (the posterior mean, Tweedie's formula) is

    D(x; σ) = E[x_0 | x_σ = x] = Σ_k γ_k(x)·(μ_k + v_k/(v_k+σ²)·(x - μ_k)),   γ_k ∝ w_k·N(x; μ_k, v_k+σ²).

Any sample shape works (images, clips, voxels, point sets): means and variances have the data's shape. The
computation is float64 and runs sample by sample, so results never depend on the batch.

    gm = GaussianMixture.random((3, 32, 32), components=16, seed=0)
    x0 = gm.sample(SampleNoise.from_seeds(range(8)))         # exact data samples
    x = dpmpp_2m(gm, noise.randn((3, 32, 32)) * 80, karras(20))   # gm is itself a denoiser
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F

from noisebrush.diffusion.noise import SampleNoise
from noisebrush.errors import BadParameter

__all__ = ["GaussianMixture"]

F64 = torch.float64


class GaussianMixture:
    """Σ_k w_k·N(μ_k, diag(v_k)) over samples of any shape; callable as a denoiser ``gm(x, sigma)``."""

    def __init__(self, means: torch.Tensor, variances, weights=None):
        means = torch.as_tensor(means, dtype=F64)
        if means.ndim < 2:
            raise BadParameter("means: need shape (components, *sample_shape)")
        K = means.shape[0]
        var = torch.as_tensor(variances, dtype=F64)
        if var.ndim == 1 and var.shape[0] == K:  # one isotropic variance per component
            var = var.reshape(K, *([1] * (means.ndim - 1))).expand_as(means)
        var = var.expand_as(means).clone()
        if (var < 0).any():
            raise BadParameter("variances: must be ≥ 0")
        w = torch.full((K,), 1.0 / K, dtype=F64) if weights is None else torch.as_tensor(weights, dtype=F64)
        if w.shape != (K,) or (w < 0).any() or w.sum() <= 0:
            raise BadParameter("weights: need one non-negative weight per component")
        self.shape = tuple(means.shape[1:])
        self.means = means.reshape(K, -1)
        self.variances = var.reshape(K, -1)
        self.weights = w / w.sum()
        self.log_weights = self.weights.log()

    @property
    def components(self) -> int:
        return self.means.shape[0]

    @classmethod
    def random(cls, shape: Sequence[int], components: int = 16, seed: int = 0, std_range=(0.05, 0.3),
               coarse: int = 4) -> "GaussianMixture":
        """A mixture that looks a little like data: smooth random means in (-1, 1) (coarse noise upsampled over
        the spatial dimensions), smooth per-pixel standard deviations within ``std_range``, uneven weights."""
        g = torch.Generator().manual_seed(seed)
        shape = tuple(int(s) for s in shape)
        K = components

        def smooth(n_out):
            spatial = shape[1:]
            if 1 <= len(spatial) <= 3:
                small = [max(1, min(coarse, s)) for s in spatial]
                z = torch.randn(n_out, shape[0], *small, generator=g, dtype=F64)
                mode = {1: "linear", 2: "bilinear", 3: "trilinear"}[len(spatial)]
                return F.interpolate(z, size=spatial, mode=mode, align_corners=True)
            return torch.randn(n_out, *shape, generator=g, dtype=F64)

        means = torch.tanh(1.2 * smooth(K))
        lo, hi = std_range
        std = lo + (hi - lo) * torch.sigmoid(2 * smooth(K))
        w = torch.rand(K, generator=g, dtype=F64) + 0.5
        return cls(means, std**2, w)

    # ---- exact data ----
    def sample(self, noise: SampleNoise | Sequence[int]) -> torch.Tensor:
        """One exact sample of x_0 per generator (float64)."""
        noise = noise if isinstance(noise, SampleNoise) else SampleNoise.from_seeds(noise)
        rows = []
        for g in noise.generators:
            k = int(torch.multinomial(self.weights, 1, generator=g))
            z = torch.randn(self.means.shape[1], generator=g, dtype=F64)
            rows.append(self.means[k] + self.variances[k].sqrt() * z)
        return torch.stack(rows).reshape(len(rows), *self.shape)

    def sample_noisy(self, sigma: float, noise: SampleNoise | Sequence[int]) -> torch.Tensor:
        """Exact samples of the noisy marginal p_σ."""
        noise = noise if isinstance(noise, SampleNoise) else SampleNoise.from_seeds(noise)
        x0 = self.sample(noise)
        return x0 + sigma * noise.randn(self.shape, dtype=F64)

    # ---- closed forms ----
    def _level(self, sigma: float):
        """Per-σ constants: 1/v, μ/v and the per-component constant of log N(x; μ_k, v_k), r = var/v and μ·(1-r)."""
        v = self.variances + sigma**2  # K×D
        inv = 1.0 / v
        mu_inv = self.means * inv
        const = self.log_weights - 0.5 * ((self.means * mu_inv).sum(1) + v.log().sum(1)
                                          + self.means.shape[1] * math.log(2 * math.pi))
        r = self.variances * inv
        return inv, mu_inv, const, r, self.means * (1 - r)

    def _logits(self, x: torch.Tensor, lv) -> torch.Tensor:
        # log w_k + log N(x; μ_k, diag v_k), expanded so that each term is a matrix-vector product (exact per
        # sample: the same kernels run whatever the batch)
        inv, mu_inv, const, _, _ = lv
        return const - 0.5 * torch.mv(inv, x * x) + torch.mv(mu_inv, x)

    def _levels(self, s: torch.Tensor) -> dict:
        return {float(v): self._level(float(v)) for v in s.unique()}

    def log_prob(self, x: torch.Tensor, sigma) -> torch.Tensor:
        """log p_σ(x) per sample."""
        x, s = self._prep(x, sigma)
        lvs = self._levels(s)
        return torch.stack([torch.logsumexp(self._logits(x[i], lvs[float(s[i])]), 0) for i in range(len(x))])

    def denoise(self, x: torch.Tensor, sigma) -> torch.Tensor:
        """E[x_0 | x_σ = x], in x's dtype (computed in float64)."""
        xs, s = self._prep(x, sigma)
        lvs = self._levels(s)
        out = torch.empty_like(xs)
        for i in range(len(xs)):
            lv = lvs[float(s[i])]
            gamma = torch.softmax(self._logits(xs[i], lv), 0)
            # Σ_k γ_k·(μ_k + r_k·(x - μ_k)) = Σ_k γ_k·μ_k·(1 - r_k) + x·Σ_k γ_k·r_k
            out[i] = torch.mv(lv[4].t(), gamma) + xs[i] * torch.mv(lv[3].t(), gamma)
        return out.reshape(x.shape).to(x.dtype)

    def denoise_batch(self, x: torch.Tensor, sigma) -> torch.Tensor:
        """:meth:`denoise` for a whole batch at one σ in one set of matrix products, differentiable in x and in σ
        (a float64 scalar tensor that may require a gradient): what a learned discretization back-propagates
        through (:mod:`noisebrush.diffusion.tuning`). Equal to :meth:`denoise` up to the rounding of batched
        kernels."""
        s = torch.as_tensor(sigma, dtype=F64).reshape(-1)
        if s.numel() > 1:  # one value per sample, as the samplers pass it: they must all be the same σ
            if bool((s.detach() != s.detach()[0]).any()):
                raise BadParameter("sigma: denoise_batch takes one σ for the whole batch")
            s = s[0]
        if tuple(x.shape[1:]) != self.shape:
            raise BadParameter(f"x: sample shape {tuple(x.shape[1:])} does not match the mixture's {self.shape}")
        xs = x.to(F64).reshape(x.shape[0], -1)
        logits, inv = self._batch_logits(xs, s.reshape(()))
        gamma = torch.softmax(logits, 1)  # N×K
        r = self.variances * inv
        out = gamma @ (self.means * (1 - r)) + xs * (gamma @ r)
        return out.reshape(x.shape).to(x.dtype)

    def component(self, x: torch.Tensor, sigma: float) -> torch.Tensor:
        """The most probable component of each sample of x seen at noise level σ (its mode), as indices."""
        xs = x.detach().to("cpu", F64).reshape(x.shape[0], -1)
        return self._batch_logits(xs, torch.as_tensor(float(sigma), dtype=F64))[0].argmax(1)

    def _batch_logits(self, xs: torch.Tensor, s: torch.Tensor):
        """(N×K log w_k + log N(x; μ_k, v_k + σ²), 1/(v + σ²)) for flattened samples xs at one σ (a scalar tensor)."""
        v = self.variances + s ** 2
        inv = 1.0 / v
        mu_inv = self.means * inv
        const = self.log_weights - 0.5 * ((self.means * mu_inv).sum(1) + v.log().sum(1)
                                          + self.means.shape[1] * math.log(2 * math.pi))
        return const - 0.5 * (xs * xs) @ inv.t() + xs @ mu_inv.t(), inv

    def score(self, x: torch.Tensor, sigma) -> torch.Tensor:
        """∇_x log p_σ(x) = (D(x; σ) - x) / σ²."""
        s = torch.as_tensor(sigma, dtype=F64).reshape(-1).expand(x.shape[0])
        return (self.denoise(x, s).double() - x.double()) / s.reshape(-1, *([1] * (x.ndim - 1))) ** 2

    def __call__(self, x: torch.Tensor, sigma, **_) -> torch.Tensor:
        return self.denoise(x, sigma)

    def _prep(self, x, sigma):
        if tuple(x.shape[1:]) != self.shape:
            raise BadParameter(f"x: sample shape {tuple(x.shape[1:])} does not match the mixture's {self.shape}")
        s = torch.as_tensor(sigma, dtype=F64).detach().cpu().reshape(-1)
        s = s.expand(x.shape[0]) if s.numel() == 1 else s
        return x.detach().to("cpu", F64).reshape(x.shape[0], -1), s
