"""Typed painting options and the sampling schedule a model folder records.

    opts = pipe.check("a red sun", steps=None, seed=7, n=4)     # a frozen PaintOptions, every field validated
    opts.steps, opts.sampler                                     # the model's own (config.json "schedule") when None
    opts.size                                                    # one size per axis of the model's modality
    sigmas = opts.sigmas()                                       # the σ schedule: kind and ρ from the model folder
    noise = SampleNoise.from_seeds(opts.seeds)

A model folder's config.json may say how it is best sampled::

    "schedule": {"kind": "karras", "sigma_min": 0.002, "sigma_max": 80.0, "rho": 7.0, "sampler": "dpmpp_2m",
                 "steps": 20}

:func:`model_schedule` reads it (the defaults are exactly these values, so a folder without it paints as before); an
unknown kind, sampler or a bad number is one :class:`noisebrush.errors.UserError` line naming the file.

Bounds (inclusive): steps and n as :data:`noisebrush.checks.LIMITS` says (steps 1 … 10 000, n 1 … 10 000; above the
usual 200 steps or 64 pictures the work runs and the front end warns with an ETA), cfg 0 … :data:`MAX_CFG`, seeds
0 … 2^64 - 1 (the range of a torch generator's seed), 0 < sigma_min < sigma_max ≤ :data:`MAX_SIGMA`; the size rule
is the modality's (:mod:`noisebrush.paint.modality`).

**Memory.** :func:`check_memory` refuses a request whose estimate (:func:`memory_needed`: the sampler's tensors for
n pictures plus the network's activations for the pictures of one network call, from
:func:`noisebrush.nets.registry.activation_bytes`) is more than the device has free
(:func:`noisebrush.devices.free_memory`, or ``NOISEBRUSH_MEMORY_LIMIT``), before any tensor is allocated:

    check_memory(pipe, (2048, 2048), n=4, cfg=3.0)
    # BadParameter: size 2048: needs about 68 GB, this machine has 21 GB free (set NOISEBRUSH_MEMORY_LIMIT to change)
    size = check_size(pipe, 64, n=4, cfg=3.0)     # the size rule, the memory check, then the untrained-size warning
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from noisebrush.checks import LIMITS, limited, number, whole
from noisebrush.devices import MEMORY_LIMIT_ENV, format_bytes, free_memory
from noisebrush.diffusion import SAMPLERS, SCHEDULES, get_sampler
from noisebrush.diffusion.schedules import check_sigmas
from noisebrush.diffusion.tuning import load_schedule
from noisebrush.errors import BadParameter, UserError, warn
from noisebrush.nets import registry

__all__ = ["PaintOptions", "ModelSchedule", "model_schedule", "schedule_sigmas", "check_common", "SCHEDULE_KINDS",
           "MAX_STEPS", "MAX_N", "MAX_CFG", "MAX_SIGMA", "MAX_SEED", "memory_needed", "check_memory", "check_size",
           "STATE_COPIES", "check_levels", "learned_schedules", "learned_path", "LEARNED_DIR"]

MAX_STEPS = int(LIMITS["steps"].hard)
MAX_N = int(LIMITS["n"].hard)
MAX_CFG = 100.0
MAX_SIGMA = 10_000.0
MAX_SEED = 2 ** 64 - 1
# the schedules a model folder may name: two that run between sigma_min and sigma_max, and a diffusion GAN's own
# ladder ("ddgan": fixed by its number of steps; the σ range it records is what it spans)
SCHEDULE_KINDS = ("karras", "exponential", "ddgan")


def schedule_sigmas(kind: str, steps: int, sigma_min: float, sigma_max: float, rho: float = 7.0) -> torch.Tensor:
    """The σ values (float64, ending in 0) of ``kind``: "karras" (Karras et al. 2022, eq. 5, with ``rho``),
    "exponential" (evenly spaced in log σ; ``rho`` unused) or "ddgan" (a diffusion GAN's ladder of ``steps`` steps,
    :func:`noisebrush.diffusion.schedules.ddgan`; the σ range and ``rho`` unused)."""
    if kind not in SCHEDULE_KINDS:
        raise BadParameter(f"schedule: one of {', '.join(SCHEDULE_KINDS)}; got {kind!r}")
    if kind == "ddgan":
        return SCHEDULES[kind](steps)
    extra = {"rho": rho} if kind == "karras" else {}
    return SCHEDULES[kind](steps, sigma_min=sigma_min, sigma_max=sigma_max, **extra)


@dataclass(frozen=True)
class ModelSchedule:
    """How a model is sampled unless the caller says otherwise (config.json's ``schedule``)."""

    kind: str = "karras"
    sigma_min: float = 0.002
    sigma_max: float = 80.0
    rho: float = 7.0
    sampler: str = "dpmpp_2m"
    steps: int = 20
    # learned schedules of the folder (``noisebrush tune``; :mod:`noisebrush.paint.learned`): (sampler, steps, σ levels)
    learned: tuple = ()

    def learned_for(self, sampler: str, steps: int) -> tuple[float, ...] | None:
        """The learned σ levels for ``sampler`` at ``steps`` steps, or None."""
        for name, n, levels in self.learned:
            if name == sampler and n == steps:
                return levels
        return None


def model_schedule(config: dict, where="config.json") -> ModelSchedule:
    """The validated ``schedule`` of a model's config (defaults for what it leaves out); ``where`` names the file in
    the one-line UserError."""
    sched = config.get("schedule")
    if sched is None:
        return ModelSchedule()
    if not isinstance(sched, dict):
        raise UserError(f"{where}: 'schedule' must be an object, got {sched!r}")
    d = ModelSchedule()
    got = {k: sched.get(k, getattr(d, k)) for k in ("kind", "sigma_min", "sigma_max", "rho", "sampler", "steps")}
    if got["kind"] not in SCHEDULE_KINDS:
        raise UserError(f"{where}: unknown schedule kind {got['kind']!r}; noisebrush paints with "
                        f"{' or '.join(SCHEDULE_KINDS)}")
    try:
        get_sampler(got["sampler"])
        lo = number("sigma_min", got["sigma_min"], 0.0, above=True)
        hi = number("sigma_max", got["sigma_max"], lo, MAX_SIGMA, above=True)
        rho = number("rho", got["rho"], 0.0, above=True)
        steps = whole("steps", got["steps"], 1, MAX_STEPS)
    except BadParameter as e:
        raise UserError(f"{where}: bad 'schedule' ({e})") from None
    return ModelSchedule(got["kind"], lo, hi, rho, got["sampler"], steps)


LEARNED_DIR = "schedules"  # a model folder's learned schedules: schedules/SAMPLER-nfeN.json (``noisebrush tune``)


def learned_path(folder: Path, sampler: str, nfe: int) -> Path:
    """Where ``noisebrush tune`` keeps the learned schedule of ``sampler`` at ``nfe`` evaluations in a model folder."""
    return Path(folder) / LEARNED_DIR / f"{sampler}-nfe{int(nfe)}.json"


def learned_schedules(folder: Path, weights_hash: str) -> tuple:
    """The learned schedules in a model folder, as :attr:`ModelSchedule.learned`: (sampler, steps, σ levels) of
    each file fitted for these weights. A file fitted for other weights (the model was trained further) is left
    out with a warning: its levels were chosen for another network."""
    found = []
    for f in sorted((Path(folder) / LEARNED_DIR).glob("*-nfe*.json")):
        sigmas, info = load_schedule(str(f), with_info=True)
        sampler, fitted = info.get("sampler"), info.get("weights_hash")
        if fitted != weights_hash:
            warn(f"{f}: learned for other weights than this model's; not used (run `noisebrush tune` again)")
            continue
        if not isinstance(sampler, str) or sampler not in SAMPLERS:
            raise UserError(f"{f}: names no sampler noisebrush has ({sampler!r})")
        found.append((sampler, len(sigmas) - 1, tuple(float(v) for v in sigmas)))
    return tuple(found)


@dataclass(frozen=True)
class PaintOptions:
    """Validated options for painting (what :meth:`noisebrush.paint.pipeline.Pipeline.check` returns)."""

    prompt: str
    steps: int
    seed: int                 # picture i of a call uses seed + i
    n: int
    sampler: str
    cfg: float                # classifier-free guidance scale (1 = plain conditional)
    size: tuple[int, ...]     # one size per axis of the model's modality (images: (height, width))
    sigma_min: float
    sigma_max: float
    label: int | str | None = None  # as the caller gave it (recipes record it so)
    schedule: str = "karras"  # the σ schedule kind and ρ (from the model folder); "learned": ``levels``
    rho: float = 7.0
    levels: tuple[float, ...] | None = None  # a learned schedule's σ levels (steps + 1, ending in 0)
    seeds: tuple[int, ...] = field(init=False)

    def __post_init__(self):
        object.__setattr__(self, "seeds", tuple(self.seed + i for i in range(self.n)))

    def sigmas(self) -> torch.Tensor:
        """The σ schedule of these options (float64, steps + 1 values ending in 0)."""
        if self.levels is not None:
            return torch.tensor(self.levels, dtype=torch.float64)
        return schedule_sigmas(self.schedule, self.steps, self.sigma_min, self.sigma_max, self.rho)


def check_levels(levels, steps: int | None) -> tuple[float, ...]:
    """Given σ levels (a recipe's learned schedule): decreasing, ending in 0, within the σ bound, ``steps`` + 1 of
    them when ``steps`` is given."""
    try:
        s = check_sigmas(levels)
    except (BadParameter, TypeError, ValueError, RuntimeError) as e:
        raise BadParameter(f"sigmas: {str(e).splitlines()[0] if str(e) else 'not a list of σ levels'}") from None
    if len(s) < 2 or float(s[-1]) != 0.0 or float(s[0]) > MAX_SIGMA:
        raise BadParameter(f"sigmas: need decreasing σ levels ending in 0 and starting at most {MAX_SIGMA:g}")
    if steps is not None and len(s) != steps + 1:
        raise BadParameter(f"sigmas: {len(s)} levels for {steps} steps (need steps + 1)")
    return tuple(float(v) for v in s)


def check_common(prompt, *, steps, seed, n, sampler, cfg, sigma_min, sigma_max, schedule: ModelSchedule,
                 sigmas=None) -> dict:
    """The options every model shares, validated (BadParameter naming the first bad one); ``None`` for steps,
    sampler, sigma_min or sigma_max means the model's ``schedule``. When the model has a learned schedule for the
    sampler at these steps and no other σ bounds are asked for, that schedule is used (kind "learned");
    ``sigmas`` gives the levels outright (a recipe's replay), and ``False`` asks for the folder's own schedule even
    where a learned one exists (the replay of a recipe that records no levels). Returns PaintOptions' fields but
    size/label."""
    if not isinstance(prompt, str):
        raise BadParameter(f"prompt: text, got {prompt!r}")
    sampler = schedule.sampler if sampler is None else sampler
    get_sampler(sampler)
    steps = schedule.steps if steps is None else limited("steps", steps, "steps")
    n = limited("n", n, "n")
    seed = whole("seed", seed, 0)
    if seed + n - 1 > MAX_SEED:
        raise BadParameter(f"seed: at most 2^64 - n ({MAX_SEED + 1 - n}) so every picture's seed fits, got {seed}")
    cfg = number("cfg", cfg, 0.0, MAX_CFG)
    lo = schedule.sigma_min if sigma_min is None else number("sigma_min", sigma_min)
    hi = schedule.sigma_max if sigma_max is None else number("sigma_max", sigma_max)
    if not 0 < lo < hi <= MAX_SIGMA:
        raise BadParameter(f"sigma_min/sigma_max: need 0 < sigma_min < sigma_max ≤ {MAX_SIGMA:g}, got {lo}, {hi}")
    if sigmas is False:  # a recipe painted without learned levels: the folder's schedule, as it was
        levels = None
    else:
        levels = check_levels(sigmas, steps) if sigmas is not None else schedule.learned_for(sampler, steps)
    # a learned schedule holds unless other σ bounds are asked for (a recipe replays its own, equal, bounds)
    if sigmas is None and levels is not None and not (sigma_min in (None, levels[-2]) and sigma_max in (None, levels[0])):
        levels = None
    if levels is not None:
        lo, hi = levels[-2], levels[0]
    return dict(prompt=prompt, steps=steps, seed=seed, n=n, sampler=sampler, cfg=cfg, sigma_min=lo, sigma_max=hi,
                schedule="learned" if levels is not None else schedule.kind, rho=schedule.rho, levels=levels)



STATE_COPIES = 8  # tensors the size of the n pictures a sampler holds: x, x̂_0, earlier x̂_0, noise, output, temporaries


def _per_call(pipe, cfg: float, batch) -> int:
    if batch is not None:
        return whole("batch", batch, 1)
    conditional = getattr(pipe, "condition", "none") in ("text", "label")
    return 2 if conditional and float(cfg) != 1.0 else 1  # classifier-free guidance: the unconditional twin


def memory_needed(pipe, size, *, n: int = 1, cfg: float = 3.0, batch: int | None = None, keep: int = 0) \
        -> tuple[int, int]:
    """(bytes on the host, bytes on the pipeline's device) a painting of ``n`` pictures of ``size`` (one number per
    axis of the modality) needs beyond the loaded model: the sampler's tensors (:data:`STATE_COPIES` per picture,
    on the host where the sampler runs) plus ``keep`` finished pictures held, and the network's activations for
    one call of ``batch`` pictures (default: 2 with classifier-free guidance, else 1; the pipeline runs the network
    per picture) with its inputs and outputs. On a CPU both numbers are the same total."""
    size = tuple(int(v) for v in size)
    numel = int(pipe.modality.channels)
    for v in size:
        numel *= v
    per_call = _per_call(pipe, cfg, batch)
    device = getattr(pipe, "device", torch.device("cpu"))
    te = (pipe.config.get("text_encoder") or {}) if getattr(pipe, "condition", None) == "text" else {}
    tokens = int(te.get("max_tokens", 16)) + 1 if te else 0
    act = registry.activation_bytes(pipe.net, size, per_call,
                                    attention_scores=device.type not in ("cpu", "cuda"), text_tokens=tokens) or 0
    host = (STATE_COPIES * n + keep) * numel * 4
    dev = act + 4 * per_call * numel * 4
    if device.type == "cpu":
        return host + dev, host + dev
    return host, dev


def _shown(size) -> str:
    size = tuple(size)
    if len(set(size)) == 1:
        return str(size[0])
    if len(size) == 2:
        return f"{size[1]}×{size[0]}"  # width×height, as the other messages about pictures say
    return "×".join(str(v) for v in size)


def check_memory(pipe, size, *, n: int = 1, cfg: float = 3.0, batch: int | None = None, keep: int = 0,
                 name: str = "size", given=None) -> None:
    """BadParameter when :func:`memory_needed` is more than the pipeline's device (or the host, for the sampler's
    part) has free — before anything is allocated. The message names ``name`` and ``given`` (what the caller
    asked for; default: the size), the estimate and the limit, and how to change it."""
    host, dev = memory_needed(pipe, size, n=n, cfg=cfg, batch=batch, keep=keep)
    device = getattr(pipe, "device", torch.device("cpu"))
    shown = _shown(size) if given is None else given
    checks = [(host, torch.device("cpu"))] if device.type == "cpu" else [(dev, device), (host, torch.device("cpu"))]
    for need, where in checks:
        free, words = free_memory(where)
        if free is not None and need > free:
            raise BadParameter(f"{name} {shown}: needs about {format_bytes(need)}, {words} "
                               f"(set {MEMORY_LIMIT_ENV} to change)")


def check_size(pipe, size, *, n: int = 1, cfg: float = 3.0, batch: int | None = None, keep: int = 0,
               name: str = "size") -> tuple[int, ...]:
    """``size`` checked for painting ``n`` pictures with ``pipe``: the modality's size rule
    (:meth:`noisebrush.paint.modality.Modality.check_size`), then :func:`check_memory`, then the warning for a size
    larger than the model was trained at — in that order, so a refused size gives its one error line alone.
    Returns the size per axis."""
    out = pipe.modality.check_size(size, name, warn=False)
    check_memory(pipe, out, n=n, cfg=cfg, batch=batch, keep=keep, name=name)
    if getattr(pipe, "task", "image") != "sr":  # a super-resolution stage is local: it paints any size as well
        pipe.modality.warn_untrained(out, name, given=size)
    return out
