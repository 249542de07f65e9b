"""The sampling core: the denoiser a sampler calls, and "noise → σ schedule → sampler" in one place.

Painting (one picture at a time), edits, morphs, evaluation (batches under bf16), the trainer's previews and the
benches all paint through the three functions here; what differs between them is an argument, not a code path.

    from noisebrush.diffusion import EDMPrecond, SampleNoise, karras
    from noisebrush.diffusion.sample import make_denoiser, sample, start

    den = make_denoiser(EDMPrecond(net), {"labels": y}, cfg=3.0)       # y: one label per picture (or one for all)
    noise = SampleNoise.from_seeds([7, 8, 9])                          # one generator per picture
    sigmas = karras(20, sigma_min=0.002, sigma_max=80.0)
    x0 = sample(den, start(noise, (3, 32, 32), sigmas), sigmas, noise, sampler="dpmpp_2m",
                callback=lambda info: print(info.step, info.sigma))

* :func:`make_denoiser` wraps a preconditioned denoiser ``den(x, sigma, **cond)`` with classifier-free guidance
  (the one implementation, :func:`noisebrush.diffusion.guidance.guided_call`), condition mixing for morphs, the
  x̂_0-guidance hook for guides (a palette, a preference), per-picture or batched network calls and an optional
  autocast dtype.
* :func:`start` is the starting point x_T = ε·σ_max, ε from each picture's own generator.
* :func:`sample` runs a sampler (by name, or a sampler function such as
  :func:`noisebrush.diffusion.samplers.repaint.repaint`) and turns its step callback into :class:`StepInfo`.

**Per picture or batched.** ``batched=False`` runs the network on one picture at a time (with its unconditional
twin), so a picture is bit-for-bit the same whatever batch it is painted in; ``batched=True`` runs the whole batch
(and the twins) in one call, several times faster on a CPU but exact only up to the float rounding of batched
kernels. The noise is per picture either way.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import torch

from noisebrush.diffusion.guidance import guided_call, per_sample_sigma, x0_guidance
from noisebrush.diffusion.samplers import get_sampler
from noisebrush.errors import BadParameter

__all__ = ["StepInfo", "Denoiser", "make_denoiser", "sample", "start"]


@dataclass
class StepInfo:
    """What a step callback gets: the step index, σ, the current noisy images x_t and the predicted x̂_0."""
    step: int
    steps: int
    sigma: float
    x: torch.Tensor
    x0: torch.Tensor


def _check_cond(cond, name: str) -> dict:
    if cond is None:
        return {}
    if not isinstance(cond, dict):
        raise BadParameter(f"{name}: a dict of condition tensors, got {type(cond).__name__}")
    for k, v in cond.items():
        if not torch.is_tensor(v) or v.ndim < 1:
            raise BadParameter(f"{name}: {k!r} must be a tensor batched along dim 0, got {type(v).__name__}")
    return cond


def _rows(cond: dict, n: int, i: Optional[int] = None) -> dict:
    """The conditions for a batch of n pictures (``i`` None) or for picture i alone. A condition holds one row per
    picture, or one row that every picture shares."""
    out = {}
    for k, v in cond.items():
        if v.shape[0] not in (1, n):
            raise BadParameter(f"cond: {k!r} has {v.shape[0]} rows for a batch of {n} (need {n} or 1)")
        if i is None:
            out[k] = v if v.shape[0] == n else v.expand(n, *v.shape[1:])
        else:
            out[k] = v if v.shape[0] == 1 else v[i:i + 1]
    return out


class Denoiser:
    """The denoiser a sampler calls, made by :func:`make_denoiser`: ``d(x, sigma) -> x̂_0``.

    Its conditions travel as the sampler's ``extra_args`` (:attr:`extra_args`; :func:`sample` passes them), so a
    sampler that evaluates part of the batch (``adaptive``, ``langevin``) slices them with x. Called directly, it uses
    the conditions it was made with."""

    def __init__(self, den, conds: list[dict], weights: Optional[list[float]], *, cfg: float, batched: bool,
                 dtype: Optional[torch.dtype], device_type: str, mix: bool, guides: Sequence = (),
                 negative: Optional[dict] = None):
        self.den, self.conds, self.weights, self.mix = den, conds, weights, mix
        self.negative = negative or None  # conditions for the unconditional half (a negative prompt), or None
        self.cfg, self.batched, self.dtype, self.device_type = float(cfg), bool(batched), dtype, device_type
        fn = self._guided
        for g in guides:
            if g.scale:
                fn = x0_guidance(fn, g.gradient, scale=float(g.scale), weight=g.weight)
        self._fn = fn

    @property
    def extra_args(self) -> dict:
        """The conditions, flattened to ``{"<i>.<key>": tensor}`` (i: the condition's place in the mix; ``neg``: the
        negative condition)."""
        flat = {f"{i}.{k}": v for i, c in enumerate(self.conds) for k, v in c.items()}
        return flat | {f"neg.{k}": v for k, v in (self.negative or {}).items()}

    def _unflatten(self, flat: dict) -> tuple[list[dict], Optional[dict], dict]:
        """(conditions, negative, inputs): a key without a dot is a per-picture input of the network that is not a
        condition (a GAN generator's latent ``z``): every condition, the negative and the unconditional half get
        the same rows of it."""
        conds, neg, inputs = [{} for _ in self.conds], {}, {}
        for key, v in flat.items():
            if "." not in key:
                inputs[key] = v
                continue
            i, k = key.split(".", 1)
            if i == "neg":
                neg[k] = v
            else:
                conds[int(i)][k] = v
        return conds, neg or None, inputs

    def __call__(self, x: torch.Tensor, sigma, **extra) -> torch.Tensor:
        """x̂_0 of x at σ; ``extra``: the flattened conditions (a sampler passes :attr:`extra_args`, sliced with x),
        default: the ones it was made with, plus any per-picture inputs (keys without a dot, such as ``z``)."""
        if not any("." in k for k in extra):
            extra = {**self.extra_args, **extra}
        return self._fn(x, per_sample_sigma(sigma, x), **extra)

    def _net(self, x, sigma, **kw):
        if self.dtype is None:
            return self.den(x, sigma, **kw)
        with torch.autocast(self.device_type, dtype=self.dtype):
            return self.den(x, sigma, **kw).float()

    def _one_call(self, x, sigma, conds: list[dict], neg: Optional[dict], inputs: dict) -> torch.Tensor:
        if not conds[0]:
            return self._net(x, sigma, **inputs)
        conds = [{**c, **inputs} for c in conds]  # guidance stacks the halves: each gets the same inputs
        neg = None if neg is None else {**neg, **inputs}
        return guided_call(self._net, x, sigma, conds, self.cfg, weights=self.weights, mix=self.mix, uncond=neg)

    def _guided(self, x, sigma, **flat):
        (conds, neg, inputs), n = self._unflatten(flat), x.shape[0]
        if self.batched:
            return self._one_call(x, sigma, [_rows(c, n) for c in conds], None if neg is None else _rows(neg, n),
                                  _rows(inputs, n))
        return torch.cat([self._one_call(x[i:i + 1], sigma[i:i + 1], [_rows(c, n, i) for c in conds],
                                         None if neg is None else _rows(neg, n, i), _rows(inputs, n, i))
                          for i in range(n)])


def make_denoiser(den, cond: Optional[dict] = None, *, cfg: float = 1.0, batched: bool = True,
                  dtype: Optional[torch.dtype] = None, device_type: str = "cpu",
                  mix: Optional[Sequence[tuple[dict, float]]] = None, guides: Sequence = (),
                  negative: Optional[dict] = None) -> Denoiser:
    """The denoiser a sampler calls, around a preconditioned ``den(x, sigma, **cond) -> x̂_0``.

    ``cond``: condition tensors (``{"labels": …}``, ``{"text": …, "text_mask": …}``), each with one row per picture
    or one row every picture shares; None or {} for an unconditional model. ``cfg``: the classifier-free guidance
    scale w: D = D_u + w·(D_c − D_u), where D_u is the same condition with the network's ``drop`` flag set, and the
    conditional and unconditional halves go through the network together; at w = 1 only D_c is evaluated (and no
    ``drop`` flag is passed, so networks without one work). ``batched``: False runs the network on one picture at a
    time, so a picture never depends on its batch (painting); True runs the whole batch at once (evaluation,
    previews). ``dtype``: run the network under ``torch.autocast(device_type, dtype)`` (bf16 in evaluation); the
    sampler's own arithmetic stays in float32/float64. ``mix``: instead of ``cond``, a list of (condition, weight)
    pairs with weights summing to 1: D = D_u + w·(Σ weight_i·D_i − D_u), the guided denoiser of the geometric
    mixture (morphs between prompts); the unconditional twin (the first condition dropped) is always evaluated with
    them. ``guides``: objects with ``gradient(x0, sigma)``, ``scale`` and ``weight(sigma)``
    (:class:`noisebrush.paint.guides.Guide`) applied in order through
    :func:`noisebrush.diffusion.guidance.x0_guidance`; those of scale 0 are skipped. ``negative``: condition tensors
    with the same keys as ``cond`` (a negative prompt's text and mask) that take the unconditional half's place:
    D = D_neg + w·(D_c − D_neg), so guidance pushes away from the negative instead of from "no condition"; None or
    {} keeps the dropped condition. At w = 1 the negative is not evaluated (it has no effect there)."""
    if mix is not None and cond:
        raise BadParameter("cond: give the conditions either as cond or as mix, not both")
    if mix is not None:
        mix = list(mix)
        if not mix:
            raise BadParameter("mix: at least one (condition, weight) pair")
        conds = [_check_cond(c, "mix") for c, _ in mix]
        weights = [float(w) for _, w in mix]
    else:
        conds, weights = [_check_cond(cond, "cond")], None
    negative = _check_cond(negative, "negative") or None
    if negative is not None and set(negative) != set(conds[0]):
        raise BadParameter(f"negative: needs the same condition keys as the prompt's ({sorted(conds[0])}), got "
                           f"{sorted(negative)}")
    return Denoiser(den, conds, weights, cfg=cfg, batched=batched, dtype=dtype, device_type=device_type,
                    mix=mix is not None, guides=tuple(guides or ()), negative=negative)


def start(noise, shape: Sequence[int], sigmas, *, device=None) -> torch.Tensor:
    """x_T = ε·σ_0 with ε from each picture's own generator (a :class:`~noisebrush.diffusion.noise.SampleNoise`):
    N×shape, drawn on the CPU and then moved to ``device``."""
    x = noise.randn(tuple(shape)) * float(sigmas[0])
    return x if device is None else x.to(device)


def _takes(fn, name: str) -> bool:
    """Whether ``fn`` has a parameter called ``name``."""
    return name in inspect.signature(fn).parameters


def sample(denoiser, x: torch.Tensor, sigmas: torch.Tensor, noise=None, *, sampler="dpmpp_2m",
           callback: Optional[Callable[[StepInfo], None]] = None, stats: Optional[dict] = None, step_offset: int = 0,
           steps: Optional[int] = None, **options) -> torch.Tensor:
    """Run ``sampler`` from x at sigmas[0] down the schedule and return x̂_0 (not clamped).

    ``sampler``: a name in :data:`noisebrush.diffusion.SAMPLERS` or a sampler function. ``noise``: per-picture
    generators (:class:`~noisebrush.diffusion.noise.SampleNoise` or seeds) for the samplers that draw noise.
    ``callback(StepInfo)`` once per step, with ``step`` counted from ``step_offset`` and ``steps`` the total shown
    (default: the schedule's steps) — a variation or a morph frame reports its place in the whole run.
    ``stats``: a dict that samplers keeping statistics (``langevin``, ``adaptive``) fill in; others leave it alone.
    ``options`` go to the sampler (``eta``, ``known``/``keep`` for repaint, …). A :class:`Denoiser`'s conditions go
    to the sampler as its ``extra_args``."""
    fn = get_sampler(sampler).fn if isinstance(sampler, str) else sampler
    total = len(sigmas) - 1 if steps is None else steps
    cb = None
    if callback is not None:
        # σ reaches StepInfo as the sampler reports it: a float is read as float32 (as painting always has), a
        # tensor (adaptive's per-sample σ, repaint's schedule entry) at its own precision
        def cb(xt, x0, sigma, i):
            callback(StepInfo(step=int(i) + step_offset, steps=total,
                              sigma=float(torch.as_tensor(sigma).reshape(-1)[0]), x=xt, x0=x0))

    if stats is not None and _takes(fn, "stats"):
        options["stats"] = stats
    extra = denoiser.extra_args if isinstance(denoiser, Denoiser) else None
    return fn(denoiser, x, sigmas, noise=noise, extra_args=extra, callback=cb, **options)
