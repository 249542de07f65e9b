"""Batched sampling for evaluation: many prompts (or labels) at once.

:meth:`noisebrush.paint.pipeline.Pipeline.generate` runs the network one picture at a time so that a picture never
depends on its batch. Evaluation paints hundreds of pictures, where that costs a factor of several on a CPU, so
here the network sees whole batches (conditional and unconditional halves together). The starting noise and every
noise a sampler draws still come from one generator per picture (seed ``seed + i``), so a picture differs from
the one ``noisebrush paint`` makes with the same seed only by float rounding in the network's batched kernels.
Both go through the same sampling core (:mod:`noisebrush.diffusion.sample`); only ``batched`` and the dtype differ.

    from noisebrush.eval.sampling import sample_batch, sample_batches
    x = sample_batch(pipe, prompts=["a red sun", "rings"], seeds=[0, 1], steps=20)
    for first, x in sample_batches(pipe, 1000, prompts=prompts, batch=64): ...   # one batch in memory at a time
"""
from __future__ import annotations

import time
from typing import Callable, Iterator, Sequence

import torch

from noisebrush.checks import whole
from noisebrush.devices import fast_dtype
from noisebrush.diffusion import SampleNoise
from noisebrush.diffusion.sample import make_denoiser, sample, start
from noisebrush.data.clips import frame_condition
from noisebrush.errors import BadParameter
from noisebrush.paint.animate import KeepGiven, conditioned, start_clip

__all__ = ["sample_batch", "sample_batches", "sample_many", "batch_denoiser", "conditions_for"]


def batch_denoiser(pipe, cond: dict, cfg: float, *, fast: bool = True, guidance=None, keep_given: bool = False):
    """``pipe``'s network as a batched denoiser (one call for the whole batch and its unconditional twins),
    under bf16 autocast when ``fast`` and the device runs bf16 fast (:func:`noisebrush.devices.fast_dtype`).
    ``keep_given``: a clip model's given frames (conditions ``keep``/``keep_mask``) put back into every estimate
    (:class:`noisebrush.paint.animate.KeepGiven`)."""
    den = KeepGiven(pipe.den) if keep_given else pipe.den
    return make_denoiser(den, cond, cfg=cfg, batched=True, dtype=fast_dtype(pipe.device) if fast else None,
                         device_type=pipe.device.type, guides=pipe.check_guidance(guidance))


def conditions_for(pipe, prompts, labels, n: int) -> dict:
    """The conditions of n pictures for a batched denoiser: one row per picture (text, labels, or none)."""
    if pipe.condition == "text":
        if prompts is None or len(prompts) != n:
            raise BadParameter("prompts: a text model needs one prompt per seed")
        tok, mask = pipe.text_encoder.encode(list(prompts))
        return {"text": tok, "text_mask": mask}
    if pipe.condition == "label":
        if labels is None or len(labels) != n:
            raise BadParameter("labels: a class-conditional model needs one label per seed")
        labels = torch.as_tensor(list(labels), dtype=torch.long)
        # checked here: the network's forward does no value checks (it must stay exportable)
        if labels.numel() and not (0 <= int(labels.min()) and int(labels.max()) < len(pipe.classes)):
            raise BadParameter(f"labels: class indices from 0 to {len(pipe.classes) - 1}, got {labels.tolist()}")
        return {"labels": labels}
    return {}


@torch.no_grad()
def sample_batch(pipe, *, prompts: Sequence[str] | None = None, labels: Sequence[int] | None = None,
                 seeds: Sequence[int], steps: int = 20, sampler: str = "dpmpp_2m", cfg: float = 3.0,
                 size: int | None = None, sigma_min: float | None = None, sigma_max: float | None = None,
                 schedule: Callable | None = None, stats: dict | None = None, fast: bool = True,
                 guidance=None, given: torch.Tensor | None = None, given_mask: torch.Tensor | None = None) \
        -> torch.Tensor:
    """One batch: N pictures in [-1, 1] (N = len(seeds)), picture i from ``prompts[i]`` / ``labels[i]``.

    ``schedule(steps, sigma_min, sigma_max) -> σ tensor`` replaces Karras et al.'s schedule when given.
    ``fast`` runs the network under bf16 autocast where the hardware has fast bf16 (the sampler's own arithmetic
    stays in float32/float64), as training does: evaluation numbers describe the model, not the last bits.
    ``guidance``: :class:`noisebrush.paint.guides.Guide` objects (a palette, a preference), as in ``Pipeline.generate``.
    """
    n = len(seeds)
    o = pipe.check("", steps=steps, seed=0, n=max(n, 1), sampler=sampler, cfg=cfg, size=size, sigma_min=sigma_min,
                   sigma_max=sigma_max, label=0 if pipe.condition == "label" else None)
    steps, cfg, sampler = o.steps, o.cfg, o.sampler
    cond = conditions_for(pipe, prompts, labels, n)
    noise = SampleNoise.from_seeds(list(seeds))
    sigmas = schedule(steps, sigma_min=o.sigma_min, sigma_max=o.sigma_max) if schedule else o.sigmas()
    shape = pipe.modality.shape(o.size)
    x = start_clip(pipe, noise, shape, sigmas) if pipe.modality.kind == "clip" else start(noise, shape, sigmas)
    keep = given_mask is not None and bool(torch.as_tensor(given_mask).any())
    if conditioned(pipe):
        frames = torch.zeros(n, *shape) if given is None else given.to(torch.float32)
        mask = torch.zeros(n, shape[1], dtype=torch.bool) if given_mask is None else \
            torch.as_tensor(given_mask, dtype=torch.bool)
        cond["low"] = frame_condition(frames, mask)
        if keep:
            cond |= {"keep": frames, "keep_mask": mask[:, None, :, None, None].to(torch.float32)}
    elif keep:
        raise BadParameter(f"given: {pipe.name} was not trained with given frames")
    den = batch_denoiser(pipe, cond, cfg, fast=fast, guidance=guidance, keep_given=keep)
    out = sample(den, x, sigmas, noise, sampler=sampler, stats=stats, **pipe.sampler_options(sampler)).clamp(-1, 1)
    if keep:  # the given frames, exactly
        out = torch.where(mask[:, None, :, None, None], frames, out)
    return out


def sample_batches(pipe, n: int, *, prompts=None, labels=None, seed: int = 0, batch: int = 64, progress=None,
                   **kw) -> Iterator[tuple[int, torch.Tensor]]:
    """N pictures, a batch of ``batch`` at a time: yields (index of the batch's first picture, its pictures), so a
    caller that keeps only what it measures holds one batch in memory. Picture i has seed ``seed + i``."""
    whole("n", n, 1)
    whole("batch", batch, 1)
    for i in range(0, n, batch):
        j = min(n, i + batch)
        yield i, sample_batch(pipe, prompts=None if prompts is None else prompts[i:j],
                              labels=None if labels is None else labels[i:j],
                              seeds=list(range(seed + i, seed + j)), **kw)
        if progress is not None:
            progress(j, n)


def sample_many(pipe, n: int, *, prompts=None, labels=None, seed: int = 0, batch: int = 64, progress=None,
                **kw) -> tuple[torch.Tensor, float]:
    """N pictures in batches of ``batch``; returns (pictures, seconds per picture)."""
    t0 = time.perf_counter()
    out = [x for _, x in sample_batches(pipe, n, prompts=prompts, labels=labels, seed=seed, batch=batch,
                                        progress=progress, **kw)]
    return torch.cat(out), (time.perf_counter() - t0) / n
