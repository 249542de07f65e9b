"""RePaint (Lugmayr et al. 2022, "RePaint: Inpainting using Denoising Diffusion Probabilistic Models", Algorithm 1):
inpainting with any unconditionally trained denoiser, written as a sampler.

At every step down the schedule the known pixels are replaced by the known picture noised to the current σ
(eq. 8: x_known ~ N(x_0, σ²)), the rest is denoised with an ancestral (DDPM) step, and the two are joined by the
mask. Every ``jump_length`` levels the state is noised back up ``jump_length`` levels and denoised again (``jumps``
passes in all; the paper's "resampling", its Section 4.2), which lets the new region and the known one agree. At
the end the known pixels are copied from the input, so they come out unchanged to the bit.

    from noisebrush.diffusion.sample import sample, start
    x = sample(den, start(noise, known.shape[1:], sigmas), sigmas, noise, sampler=repaint,
               known=picture, keep=~hole, jump_length=4, jumps=3, steps=repaint_moves(20, 4, 3))

Not in :data:`noisebrush.diffusion.SAMPLERS`: it needs the known picture and its mask.
"""
from __future__ import annotations

import math

import torch

from noisebrush.diffusion.samplers._common import ancestral_sigmas, prepare, require_noise
from noisebrush.errors import BadParameter

__all__ = ["repaint", "repaint_path", "repaint_moves"]


def _whole(name: str, v, lo: int) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < lo:
        raise BadParameter(f"{name}: a whole number ≥ {lo}, got {v!r}")
    return v


def repaint_path(steps: int, jump_length: int, jumps: int) -> list[int]:
    """The RePaint walk over schedule indices 0 (σ_max) … steps (σ = 0), one level per move.

    Going down, at every boundary — index steps-1 and every ``jump_length`` levels above it, but never above
    index ``jump_length`` — the walk climbs back ``jump_length`` levels, ``jumps - 1`` times per boundary, so each
    stretch is denoised ``jumps`` times. ``jumps = 1`` is plain inpainting without resampling."""
    _whole("steps", steps, 1), _whole("jump_length", jump_length, 1), _whole("jumps", jumps, 1)
    boundaries = {i for i in range(jump_length, steps) if (steps - 1 - i) % jump_length == 0}
    done: dict[int, int] = {}
    path, i = [0], 0
    while i < steps:
        i += 1
        path.append(i)
        if i in boundaries and done.get(i, 0) < jumps - 1:
            done[i] = done.get(i, 0) + 1
            for _ in range(jump_length):
                i -= 1
                path.append(i)
    return path


def repaint_moves(steps: int, jump_length: int, jumps: int) -> int:
    """How many moves (and so denoiser calls, one per move down, and callbacks) the walk makes."""
    return len(repaint_path(steps, jump_length, jumps)) - 1


def repaint(denoiser, x, sigmas, *, known: torch.Tensor, keep: torch.Tensor, jump_length: int = 4, jumps: int = 3,
            extra_args=None, callback=None, noise=None):
    """Inpaint: ``known`` (N×C×…) is kept where ``keep`` (N×1×…, bool) is True, the rest is painted. ``x`` is the
    starting noise at sigmas[0]; the walk is :func:`repaint_path` over the schedule. ``callback(x, x̂_0, σ, move)``
    once per move down. Returns the known pixels exactly where ``keep`` is True, the painting (clamped to [-1, 1])
    elsewhere."""
    s, D, noise = prepare(denoiser, x, sigmas, extra_args, noise)
    noise = require_noise(noise, "repaint")
    path = repaint_path(len(s) - 1, jump_length, jumps)
    keep = keep.to(known.dtype)
    for m in range(len(path) - 1):
        i, j = path[m], path[m + 1]
        sig, nxt = float(s[i]), float(s[j])
        if j > i:  # down one level: known pixels from the input at σ_i, the rest from an ancestral step
            x = keep * (known + noise.randn_like(x) * sig) + (1 - keep) * x
            x0 = D(x, sig)
            if callback is not None:  # σ as the schedule's float64 entry: StepInfo reports it unrounded
                callback(x, x0, s[i], m)
            if nxt == 0:
                x = x0
            else:
                down, up = ancestral_sigmas(sig, nxt, 1.0)
                x = x0 + (x - x0) * (down / sig) + noise.randn_like(x) * up
        else:  # up one level: add the noise between σ_i and σ_j
            x = x + noise.randn_like(x) * math.sqrt(nxt * nxt - sig * sig)
    return keep * known + (1 - keep) * x.clamp(-1, 1)
