"""Per-sample random streams: a sample's noise never depends on its batch.

Every stochastic piece of the engine draws from a :class:`SampleNoise`, which holds one CPU
``torch.Generator`` per batch item. Item i's noise comes from generator i alone, so seed s gives the
same picture whether it is rendered alone or in a batch of 8, at any position.

    noise = SampleNoise.from_seeds([7, 8, 9])
    x_T = noise.randn((3, 32, 32)) * sigmas[0]       # 3 x 3 x 32 x 32
"""
from __future__ import annotations

import math
from typing import Iterable, Sequence

import torch

from noisebrush.errors import BadParameter


class SampleNoise:
    """One independent CPU generator per batch item."""

    def __init__(self, generators: Sequence[torch.Generator]):
        if len(generators) == 0:
            raise BadParameter("noise: at least one generator is needed")
        self.generators = list(generators)

    @classmethod
    def from_seeds(cls, seeds: Iterable[int]) -> "SampleNoise":
        gens = []
        for s in seeds:
            g = torch.Generator(device="cpu")
            g.manual_seed(int(s))
            gens.append(g)
        return cls(gens)

    def __len__(self) -> int:
        return len(self.generators)

    def randn(self, shape: Sequence[int], *, dtype=torch.float32, device=None) -> torch.Tensor:
        """A tensor of shape (N, *shape); row i is drawn from generator i (on the CPU, then moved)."""
        rows = [torch.randn(tuple(shape), generator=g, dtype=torch.float32) for g in self.generators]
        return torch.stack(rows).to(device=device, dtype=dtype)

    def randn_like(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] != len(self.generators):
            raise BadParameter(f"noise: batch of {x.shape[0]} but {len(self.generators)} generators")
        return self.randn(x.shape[1:], dtype=x.dtype, device=x.device)

    def subset(self, index: Sequence[int]) -> "SampleNoise":
        """The streams of the given batch items (they stay shared, not copied)."""
        return SampleNoise([self.generators[int(i)] for i in index])

    def get_state(self) -> list[torch.Tensor]:
        return [g.get_state() for g in self.generators]

    def set_state(self, states: Sequence[torch.Tensor]) -> None:
        for g, s in zip(self.generators, states):
            g.set_state(s)


def as_noise(noise, batch: int | None = None) -> SampleNoise | None:
    """Accept a SampleNoise, a list of seeds, or None."""
    if noise is None or isinstance(noise, SampleNoise):
        out = noise
    elif isinstance(noise, torch.Generator):
        raise BadParameter("noise: pass one generator per sample (SampleNoise or a list of seeds), not one for the batch")
    else:
        out = SampleNoise.from_seeds(noise)
    if out is not None and batch is not None and len(out) != batch:
        raise BadParameter(f"noise: batch of {batch} but {len(out)} generators")
    return out


def correlate_frames(eps: torch.Tensor, rho: float, dim: int = -3) -> torch.Tensor:
    """Noise whose frames share a part: PYoCo's mixed noise prior (Ge et al. 2023, "Preserve Your Own
    Correlation") for clip models fine-tuned from picture models. ``eps`` is i.i.d. N(0, 1) with frames along
    ``dim``; the result is √ρ·(their mean·√T) + √(1−ρ)·(each frame's deviation from it·√(T/(T−1))): still N(0, 1)
    per element (so EDM's preconditioning holds), any two frames correlated by ρ − (1−ρ)/(T−1). A deterministic
    function of ``eps``: a sample's noise stays a function of its seed. ``rho`` 0 or a single frame: ``eps``.

    The probability-flow ODE of x_σ = x_0 + σ·n with n ~ N(0, Σ) is dx/dσ = (x − D(x))/σ whatever Σ, so the
    deterministic samplers paint a model trained on this noise unchanged, from a start drawn with it."""
    if not 0 <= rho < 1:
        raise BadParameter(f"rho: the frames' noise correlation, in [0, 1), got {rho}")
    t = eps.shape[dim]
    if rho == 0 or t == 1:
        return eps
    mean = eps.mean(dim, keepdim=True)
    return math.sqrt(rho * t) * mean + math.sqrt((1 - rho) * t / (t - 1)) * (eps - mean)
