"""``noisebrush tune``: learn a model's σ schedule for a few-step sampler, so it paints at fewer steps.

    report = tune("builtin", nfe=10)           # → builtin's folder: schedules/dpmpp_2m-nfe10.json
    pipe = noisebrush.load("builtin"); pipe("a red sun", steps=10)   # painted on the learned schedule

The model paints ``samples`` training noises with its own sampler at ``teacher_steps`` steps (the teacher), at the
guidance scale people paint with; :func:`noisebrush.diffusion.tuning.learn_schedule` then moves the levels of the
``nfe``-evaluation schedule by gradient descent through the solver and the network until the few-step pictures land
where the teacher's did, and keeps the schedule that does best on ``valid`` held-out noises (their own prompts). The
file records the weights it was fitted for; a Pipeline uses it whenever it paints with that sampler at that number
of steps and no other σ bounds are asked for (:func:`noisebrush.paint.options.learned_schedules`), and recipes
record the levels. ``set_default`` also makes those steps the folder's default (config.json's ``schedule``).

Prompts: the given ones (``prompts``), else captions of the built-in procedural set (drawn with their own seed, so
no held-out evaluation prompt is ever tuned on). Class models cycle through their classes; unconditional models
need none.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable

import torch

from noisebrush.checks import number, whole
from noisebrush.data.procedural import ProceduralArt
from noisebrush.diffusion import SAMPLERS, SampleNoise
from noisebrush.diffusion.sample import make_denoiser, sample, start
from noisebrush.diffusion.schedules import karras
from noisebrush.diffusion.tuning import LEARNABLE, learn_schedule, save_schedule
from noisebrush.errors import BadParameter, UserError
from noisebrush.eval.sampling import conditions_for
from noisebrush.io import model_folder
from noisebrush.io.atomic import atomic_path, check_writable
from noisebrush.paint.options import learned_path
from noisebrush.paint.pipeline import load

__all__ = ["tune", "TUNE_SEED", "DEFAULTS"]

TUNE_SEED = 900_000  # noises and prompts of tuning: far from painting's usual seeds and from eval's
DEFAULTS = dict(nfe=10, cfg=3.0, samples=64, valid=32, teacher_steps=50, iters=60, batch=8, lr=0.05)
LIMITS = dict(nfe=(2, 50), samples=(4, 1024), valid=(4, 1024), teacher_steps=(10, 1000), iters=(1, 5000),
              batch=(1, 256))


def _prompts(pipe, given, n: int, offset: int) -> tuple[list[str] | None, list[int] | None]:
    if pipe.condition == "text":
        if given:
            return [given[(offset + i) % len(given)] for i in range(n)], None
        art = ProceduralArt(resolution=pipe.resolution, size=100_000, seed=TUNE_SEED)
        return [art.caption(offset + i) for i in range(n)], None
    if pipe.condition == "label":
        return None, [(offset + i) % len(pipe.classes) for i in range(n)]
    return None, None


def tune(model="builtin", *, nfe: int = DEFAULTS["nfe"], sampler: str | None = None, cfg: float = DEFAULTS["cfg"],
         samples: int = DEFAULTS["samples"], valid: int = DEFAULTS["valid"],
         teacher_steps: int = DEFAULTS["teacher_steps"], iters: int = DEFAULTS["iters"],
         batch: int = DEFAULTS["batch"], lr: float = DEFAULTS["lr"], prompts: list[str] | None = None,
         out: str | Path | None = None, set_default: bool = False, log: Callable[[str], None] | None = None,
         should_stop: Callable[[], bool] | None = None) -> dict:
    """Learn ``model``'s schedule for ``sampler`` (default: the folder's) at ``nfe`` evaluations and write it into
    the model folder (or ``out``). Returns a report: the file, the held-out per-sample RMSE to the teacher before
    (the folder's own schedule at those steps) and after, the levels and the seconds taken."""
    for name, value in (("nfe", nfe), ("samples", samples), ("valid", valid), ("teacher_steps", teacher_steps),
                        ("iters", iters), ("batch", batch)):
        whole(name, value, *LIMITS[name])
    cfg = number("cfg", cfg, 0.0, 100.0)
    lr = number("lr", lr, 0.0, 1.0, above=True)
    if prompts is not None and (not prompts or not all(isinstance(p, str) and p.strip() for p in prompts)):
        raise BadParameter("prompts: at least one non-empty prompt")
    say = log or (lambda _m: None)
    pipe = load(model)
    if pipe.is_gan:
        raise UserError(f"{pipe.name}: a {pipe.method} model paints in its own {pipe.schedule.steps} steps; "
                        f"there is no schedule to learn")
    if pipe.task != "image" or pipe.modality.kind != "image":
        raise UserError(f"{pipe.name}: `tune` learns schedules of picture models (this one is a "
                        f"{'super-resolution stage' if pipe.task == 'sr' else pipe.modality.kind} model)")
    sampler = sampler or pipe.schedule.sampler
    if sampler not in LEARNABLE:
        raise BadParameter(f"sampler: a schedule can be learned for {', '.join(LEARNABLE)}; got {sampler!r}")
    steps = SAMPLERS[sampler].steps_for_nfe(nfe)
    if steps < 2:
        raise BadParameter(f"nfe: {sampler} needs at least 2 steps to learn where they go")
    if not pipe.conditional:
        cfg = 1.0
    folder = Path(model_folder.resolve(model))
    target = Path(out) if out is not None else learned_path(folder, sampler, nfe)
    check_writable(target, what="the learned schedule")
    t0 = time.perf_counter()

    shape = pipe.modality.shape(pipe.modality.check_size(None))
    sched = pipe.schedule
    init = karras(steps, sched.sigma_min, sched.sigma_max, rho=sched.rho) if sched.kind == "karras" else \
        pipe.check("", steps=steps, sampler=sampler, memory=False,
                   label=0 if pipe.condition == "label" else None).sigmas()
    teacher = karras(teacher_steps, sched.sigma_min, sched.sigma_max, rho=sched.rho)
    init = init.clone()
    init[0] = teacher[0]

    def part(n: int, offset: int):
        texts, labels = _prompts(pipe, prompts, n, offset)
        cond = conditions_for(pipe, texts, labels, n)
        noise = SampleNoise.from_seeds(range(TUNE_SEED + offset, TUNE_SEED + offset + n))
        x_T = start(noise, shape, teacher)
        den = make_denoiser(pipe.den, cond, cfg=cfg, batched=True)
        with torch.no_grad():
            ref = sample(den, x_T, teacher, noise, sampler=sampler)
        return x_T, ref, cond

    say(f"teacher: {sampler} at {teacher_steps} steps on {samples} + {valid} noises (cfg {cfg:g})")
    x_T, ref, cond = part(samples, 0)
    vx, vref, vcond = part(valid, samples)

    def select(idx: torch.Tensor):
        return make_denoiser(pipe.den, {k: v[idx] for k, v in cond.items()}, cfg=cfg, batched=True)

    # the network's weights need no gradient (the Pipeline froze them); the levels get theirs through x and σ
    sigmas, info = learn_schedule(make_denoiser(pipe.den, cond, cfg=cfg, batched=True), sampler, nfe, x_T, ref,
                                  init, valid=(vx, vref), iters=iters, lr=lr, batch=min(batch, samples),
                                  every=max(1, min(10, iters // 6)), select=select,
                                  valid_denoiser=make_denoiser(pipe.den, vcond, cfg=cfg, batched=True),
                                  log=say, should_stop=should_stop)
    info.update(weights_hash=pipe.hash, model=pipe.name, cfg=cfg, teacher={"sampler": sampler, "steps": teacher_steps},
                prompts="given" if prompts else ("procedural captions, seed %d" % TUNE_SEED
                                                 if pipe.condition == "text" else pipe.condition),
                noise_seeds=[TUNE_SEED, TUNE_SEED + samples + valid])
    target.parent.mkdir(parents=True, exist_ok=True)
    save_schedule(str(target), sigmas, info)
    if set_default:
        _set_default(folder, sampler, steps)
    return {"file": str(target), "sampler": sampler, "nfe": nfe, "steps": steps, "cfg": cfg,
            # judged on the held-out noises by the learner itself: the start, and the schedule it kept
            "median_before": info["held_out_before"]["median"], "median_after": info["held_out_after"]["median"],
            "p90_before": info["held_out_before"]["p90"], "p90_after": info["held_out_after"]["p90"],
            "sigmas": [float(v) for v in sigmas], "seconds": round(time.perf_counter() - t0, 1),
            "default": set_default}


def _set_default(folder: Path, sampler: str, steps: int) -> None:
    """Make ``steps`` of ``sampler`` the folder's default (config.json's schedule), written atomically."""
    path = folder / "config.json"
    conf = model_folder.read_config(folder)
    conf["schedule"] = {**(conf.get("schedule") or {}), "sampler": sampler, "steps": int(steps)}
    with atomic_path(path) as tmp:
        Path(tmp).write_text(json.dumps(conf, indent=1) + "\n")
