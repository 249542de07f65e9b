"""Batched sampling for evaluation: many prompts (or labels) at once.

:meth:`noisebrush.paint.pipeline.Pipeline.generate` runs the network one picture at a time so that a picture never
depends on its batch. Evaluation paints hundreds of pictures, where that costs a factor of several on a CPU, so
here the network sees whole batches (conditional and unconditional halves together). The starting noise and every
noise a sampler draws still come from one generator per picture (seed ``seed + i``), so a picture differs from
the one ``noisebrush paint`` makes with the same seed only by float rounding in the network's batched kernels.
"""
from __future__ import annotations

import time
from typing import Callable, Sequence

import torch

from noisebrush.errors import BadParameter

__all__ = ["sample_batch", "sample_many"]


def _fast_dtype(pipe):
    """bf16 where the network's device runs it fast (CUDA, or a CPU with AVX-512 bf16), else None."""
    from noisebrush.train.loop import _cpu_bf16_fast

    if pipe.device.type == "cuda" or (pipe.device.type == "cpu" and _cpu_bf16_fast()):
        return torch.bfloat16
    return None


def _denoiser(pipe, cond: dict, scale: float, fast: bool):
    dtype = _fast_dtype(pipe) if fast else None

    def den(x, sigma, **kw):
        if dtype is None:
            return pipe.den(x, sigma, **kw)
        with torch.autocast(pipe.device.type, dtype=dtype):
            return pipe.den(x, sigma, **kw).float()

    def run(x, sigma):
        if not cond or scale == 1.0:
            return den(x, sigma, **cond)
        n = x.shape[0]
        both = {k: torch.cat([v, v]) for k, v in cond.items()}
        drop = torch.cat([torch.zeros(n, dtype=torch.bool), torch.ones(n, dtype=torch.bool)])
        d = den(torch.cat([x, x]), torch.cat([sigma, sigma]), drop=drop, **both)
        dc, du = d[:n], d[n:]
        return du + scale * (dc - du)

    return run


@torch.no_grad()
def sample_batch(pipe, *, prompts: Sequence[str] | None = None, labels: Sequence[int] | None = None,
                 seeds: Sequence[int], steps: int = 20, sampler: str = "dpmpp_2m", cfg: float = 3.0,
                 size: int | None = None, sigma_min: float | None = None, sigma_max: float | None = None,
                 schedule: Callable | None = None, stats: dict | None = None, fast: bool = True,
                 guidance=None) -> torch.Tensor:
    """One batch: N pictures in [-1, 1] (N = len(seeds)), picture i from ``prompts[i]`` / ``labels[i]``.

    ``schedule(steps, sigma_min, sigma_max) -> σ tensor`` replaces Karras et al.'s schedule when given.
    ``fast`` runs the network under bf16 autocast where the hardware has fast bf16 (the sampler's own arithmetic
    stays in float32/float64), as training does: evaluation numbers describe the model, not the last bits.
    ``guidance``: :class:`noisebrush.paint.guides.Guide` objects (a palette, a preference), as in ``Pipeline.generate``.
    """
    from noisebrush.paint.guides import guided
    from noisebrush.diffusion import SampleNoise, get_sampler, karras
    from noisebrush.paint.pipeline import _takes

    n = len(seeds)
    steps, _, _, cfg, size, sigma_min, sigma_max = pipe.check("", steps=steps, seed=0, n=max(n, 1), sampler=sampler,
                                                              cfg=cfg, size=size, sigma_min=sigma_min,
                                                              sigma_max=sigma_max,
                                                              label=0 if pipe.condition == "label" else None)
    cond: dict = {}
    if pipe.condition == "text":
        if prompts is None or len(prompts) != n:
            raise BadParameter("prompts: a text model needs one prompt per seed")
        tok, mask = pipe.text_encoder.encode(list(prompts))
        cond = {"text": tok, "text_mask": mask}
    elif pipe.condition == "label":
        if labels is None or len(labels) != n:
            raise BadParameter("labels: a class-conditional model needs one label per seed")
        cond = {"labels": torch.as_tensor(list(labels), dtype=torch.long)}
    info = get_sampler(sampler)
    noise = SampleNoise.from_seeds(list(seeds))
    sigmas = (schedule or karras)(steps, sigma_min=sigma_min, sigma_max=sigma_max)
    x = noise.randn((pipe.channels, *([size] * pipe.dims))) * float(sigmas[0])
    kwargs = {"stats": stats} if stats is not None and _takes(info.fn, "stats") else {}
    den = guided(_denoiser(pipe, cond, cfg, fast), pipe.check_guidance(guidance))
    return info.fn(den, x, sigmas, noise=noise, **kwargs).clamp(-1, 1)


def sample_many(pipe, n: int, *, prompts=None, labels=None, seed: int = 0, batch: int = 64, progress=None,
                **kw) -> tuple[torch.Tensor, float]:
    """N pictures in batches of ``batch``; returns (pictures, seconds per picture)."""
    if n < 1:
        raise BadParameter(f"n: a whole number ≥ 1, got {n}")
    out = []
    t0 = time.perf_counter()
    for i in range(0, n, batch):
        j = min(n, i + batch)
        out.append(sample_batch(pipe, prompts=None if prompts is None else prompts[i:j],
                                labels=None if labels is None else labels[i:j],
                                seeds=list(range(seed + i, seed + j)), **kw))
        if progress is not None:
            progress(j, n)
    return torch.cat(out), (time.perf_counter() - t0) / n
