"""Quality race: our ``--minutes`` training recipe against diffusers' unconditional recipe, like for like: both
unconditional, same data, same threads, same precision, same wall-clock budget each.

    python -m noisebrush.bench quality --minutes 20 --json out/bench-quality.json
    python -m noisebrush.bench quality --minutes 2 --n 200 --nfe 20                  (a quick look)
    python -m noisebrush.bench quality --minutes 20 --text-row                       (+ ours, text-conditional)

Both train on ProceduralArt at 32×32 (the built-in set, seed 0, ``--data-size`` items) for ``--minutes`` of training
time each, then paint ``--n`` pictures that are compared with ``--n`` real pictures of the set by ``fd_art``, the
Fréchet distance in the domain feature network's space (:mod:`noisebrush.eval.features`). Lower is better;
``ratio`` = ours / diffusers, so below 1 means ours is closer to the data.

**Ours**: what ``noisebrush train --minutes M --set condition="none"`` runs on the built-in set: a
:class:`~noisebrush.train.Trainer` on a :class:`~noisebrush.train.TrainConfig` with ``minutes`` and otherwise its
defaults (the default UNet, with one block per level on 2×2 patches and no self-attention up to 10 minutes,
:func:`noisebrush.train.budget.budget_model`; Adam, peak lr 1e-2 (2e-2 up to 10 minutes, :func:`noisebrush.train.budget.budget_lr`), cosine to
5%, EMA 0.999; the batch size the budget picks, :func:`noisebrush.train.budget.budget_batch`; warmup a tenth of the
first plan, at most 200 steps), unconditional.
Its steps are planned by the same code as ``noisebrush train --minutes`` (:class:`noisebrush.train.budget.
TimeBudget`: a two-step probe at LR 0, then the plan, re-planned every 1% of the budget from its measured rate), fed
with this side's own training time. It paints with the EMA weights, ``dpmpp_2m`` at ``--nfe`` evaluations on
Karras σ 0.002…80.

**diffusers**: the recipe of its ``examples/unconditional_image_generation/train_unconditional.py``: UNet2DModel
(bench/train.py's 32×32 layout, three levels with attention at 16 and 8 pixels, two layers per block, GroupNorm of 8
groups; its width searched so the parameter count is within 10% of ours), DDPMScheduler (1000 steps, linear β),
ε-prediction and MSE, AdamW lr 1e-4, betas (0.95, 0.999), weight decay 1e-6, eps 1e-8, gradient clipping at 1,
cosine schedule with 500 warmup steps (``diffusers.optimization.get_scheduler``), EMAModel (warm-up with
inv_gamma 1, power 3/4, max decay 0.9999), batch 16, no flips, images in [-1, 1]. It trains in our precision
(``--precision``: fp32, or bf16 autocast for both) and channels_last memory format (its script's default is fp32).
It paints with its EMA weights, DDIM at ``--nfe`` steps (DDIMScheduler from the DDPM config, η = 0), from the same
starting noise as ours.

**The text row** (``--text-row``, not like for like): a third contestant, ours text-conditional (the default
recipe on the built-in set: captions, condition dropout for guidance) on the same budget, painted from captions of
random items with guidance ``--guidance`` (3, as ``noisebrush paint``), conditional and unconditional halves in one
batch. It has information diffusers' recipe does not get, so it is reported in its own column and row
(``text_row``), never as ``ratio``.

Fairness:

* only the training loop is timed (each optimizer step with its batch assembly, noise, loss, backward, clipping,
  optimizer, LR and EMA updates). The pictures are rendered once, before the race, into one ``cache_uint8`` tensor
  every side reads. The text row encodes every distinct caption once when its Trainer is built (a cache, like the
  renders): not timed; its per-batch look-ups of those encodings are timed.
* the sides train in alternating slices (``--slice`` seconds, default 30) until each has spent its budget, so a
  change of load on this machine hits all alike.
* diffusers' LR schedule needs a total step count up front (its script's ``--num_epochs``). Its first slice
  (``--probe`` seconds, default 10% of the budget up to 60 s) is a throughput probe: real training steps (warm-up
  phase, whose LR does not depend on the total) that count against the budget. Its total is then the probe rate
  (first steps, where oneDNN builds its kernels, left out) times the budget; past it, it keeps its last scheduled LR.
  ``--replan`` re-estimates its total at every slice from the throughput so far instead. Ours plans itself (above)
  and stops at its planned end or when its budget is spent.

The JSON holds ``ours_fd``, ``diffusers_fd``, ``ratio``, ``minutes``, KID, precision/recall, ``real_fd_floor`` (fd_art
between two disjoint real sets of the same size: the best a model can score at this ``--n``), steps, images seen,
train and sampling seconds, parameter counts, each side's plan, ``text_row`` (null without ``--text-row``), and
every setting, with notes on the choices above.
"""
from __future__ import annotations

import argparse
import copy
import json
import math
import os
import sys
import tempfile
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from rich.console import Console
from rich.table import Table

from noisebrush.bench.common import BenchParser, check_report_path, finish
from noisebrush.checks import limited, number, whole
from noisebrush.data.procedural import ProceduralArt
from noisebrush.devices import emulated
from noisebrush.diffusion import EDMPrecond, SampleNoise, karras
from noisebrush.diffusion.sample import make_denoiser, sample, start
from noisebrush.diffusion.samplers import get_sampler
from noisebrush.errors import BadParameter, UserError
from noisebrush.eval.features import load_feature_net
from noisebrush.eval.metrics import frechet_distance, kid, precision_recall
from noisebrush.nets.unet import UNetConfig
from noisebrush.seeding import generator, mix
from noisebrush.train.budget import MAX_MINUTES
from noisebrush.train.config import TrainConfig
from noisebrush.train.loop import Trainer

RESOLUTION = 32
PRECISIONS = {"auto": "auto", "fp32": "no", "bf16": "bf16"}  # --precision → TrainConfig.mixed_precision
DIFFUSERS_RECIPE = {"lr": 1e-4, "betas": (0.95, 0.999), "weight_decay": 1e-6, "eps": 1e-8, "warmup": 500,
                    "batch_size": 16, "grad_clip": 1.0, "ema_max_decay": 0.9999, "ema_inv_gamma": 1.0,
                    "ema_power": 0.75, "train_timesteps": 1000, "beta_schedule": "linear", "lr_schedule": "cosine"}


# -- data ----------------------------------------------------------------------------------------------------------
class CachedArt(torch.utils.data.Dataset):
    """ProceduralArt items read from a rendered uint8 tensor (what both sides train on)."""

    def __init__(self, images: torch.Tensor, captions: list[str] | None = None):
        self.images = images
        self.captions = captions

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, i) -> dict:
        item = {"image": self.images[i].float().div_(127.5).sub_(1.0), "index": int(i)}
        if self.captions is not None:
            item["caption"] = self.captions[i]
        return item

    def caption(self, i: int) -> str:
        return self.captions[i]


def _float_images(u8: torch.Tensor) -> torch.Tensor:
    return u8.float().div_(127.5).sub_(1.0)


# -- LR plans ------------------------------------------------------------------------------------------------------
class LRPlan:
    """Sets every parameter group's LR to ``lr_at(step, total)`` before each optimizer step; ``step()`` is called once
    after each optimizer step (the trainer calls it as its scheduler). ``total`` may be set later (the warm-up phase
    does not depend on it); from step ``total`` on, the LR stays at that of step ``total - 1``."""

    UNPLANNED = 10**12

    def __init__(self, optimizer, lr_at, warmup: int):
        self.groups = optimizer.param_groups
        self.lr_at = lr_at
        self.warmup = warmup
        self.total: int | None = None
        self.count = 0
        self.lr = 0.0
        self._apply()

    def _apply(self) -> None:
        total = self.UNPLANNED if self.total is None else self.total
        self.lr = float(self.lr_at(min(self.count, total - 1), total))
        for g in self.groups:
            g["lr"] = self.lr

    def set_total(self, total: int) -> None:
        self.total = max(int(total), self.warmup + 1)
        self._apply()

    def step(self) -> None:
        self.count += 1
        self._apply()

    @property
    def held(self) -> bool:
        return self.total is not None and self.count >= self.total


def _diffusers_lr_at():
    """diffusers' cosine-with-warmup LR as a function of (step, total): the multiplier of the LambdaLR that
    ``get_scheduler`` builds for that total (on a throwaway optimizer), times the base LR."""
    from diffusers.optimization import get_scheduler  # lazy: diffusers is optional (checked in run)

    cache: dict[int, object] = {}

    def lr_at(step, total):
        if total not in cache:
            dummy = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
            cache.clear()
            cache[total] = get_scheduler(DIFFUSERS_RECIPE["lr_schedule"], optimizer=dummy,
                                         num_warmup_steps=DIFFUSERS_RECIPE["warmup"],
                                         num_training_steps=total).lr_lambdas[0]
        return DIFFUSERS_RECIPE["lr"] * cache[total](step)

    return lr_at


# -- the contestants -----------------------------------------------------------------------------------------------
class Racer:
    name = ""
    batch_size = 0
    needs_total = False  # its LR schedule needs a total step count from the race's probe (an LRPlan in .plan)
    clock = staticmethod(time.perf_counter)  # what its training seconds are measured with

    def __init__(self):
        self.steps = 0
        self.seconds = 0.0
        self.step_times: list[float] = []
        self.losses: list[float] = []

    def train_step(self) -> float:  # returns the loss
        raise NotImplementedError

    def after_step(self) -> bool:
        """Called after every step, its time counted; True when this side has finished (its own plan says so)."""
        return False

    def planned(self) -> int | None:
        """The steps this side plans now."""
        raise NotImplementedError

    def lr(self) -> float:
        """The LR of its next step."""
        raise NotImplementedError

    def held(self) -> bool:
        """Whether it went past its plan (its LR held at the last scheduled value)."""
        raise NotImplementedError

    def reached(self, target_seconds: float) -> bool:
        """Whether another step would end further past ``target_seconds`` than stopping now falls short of it (so
        each side's total lands within half a step of the budget, on either side)."""
        last = self.step_times[-1] if self.step_times else 0.0
        return self.seconds + 0.5 * last >= target_seconds

    def run_until(self, target_seconds: float) -> None:
        """Train whole steps until this side's training time reaches ``target_seconds`` (at least one step)."""
        while True:
            t = self.clock()
            loss = self.train_step()
            dt = self.clock() - t
            self.seconds += dt
            self.step_times.append(dt)
            self.losses.append(loss)
            self.steps += 1
            if self.after_step() or self.reached(target_seconds):
                return

    def rate(self) -> float:
        """Steps per second so far, leaving out the first steps (kernel creation) when there are enough."""
        skip = min(2, len(self.step_times) // 2)
        times = self.step_times[skip:]
        return len(times) / max(sum(times), 1e-9)

    def recent_loss(self, k: int = 20) -> float:
        tail = [v for v in self.losses[-k:] if math.isfinite(v)]
        return sum(tail) / len(tail) if tail else float("nan")


class Ours(Racer):
    """Ours: a Trainer on a ``minutes`` config, its steps planned by the trainer's own TimeBudget (the code
    ``noisebrush train --minutes`` runs), fed with this side's training seconds."""

    def __init__(self, data: CachedArt, condition: str, seed: int, model: dict, out_dir: str, minutes: float, *,
                 name: str = "ours", batch_size: int | None = None, precision: str = "auto"):
        super().__init__()
        self.name = name
        self.cfg = TrainConfig(data="builtin", resolution=RESOLUTION, data_size=len(data), condition=condition,
                               model=dict(model), seed=seed, out_dir=out_dir, minutes=minutes, batch_size=batch_size,
                               mixed_precision=PRECISIONS[precision], log_every=0, sample_every=0,
                               checkpoint_every=0)
        self.trainer = Trainer(self.cfg, dataset=data)
        self.batch_size = self.cfg.batch_size
        self.params = sum(p.numel() for p in self.trainer.net.parameters())
        self.finished = False

    @property
    def precision(self) -> str:
        return self.trainer.precision

    @property
    def device(self) -> torch.device:
        return self.trainer.acc.device

    def train_step(self) -> float:
        return self.trainer.train_step().loss

    def after_step(self) -> bool:
        self.finished = self.trainer.budget_tick(self.seconds)
        return self.finished

    def reached(self, target_seconds: float) -> bool:
        return self.finished or super().reached(target_seconds)

    def planned(self) -> int | None:
        return self.trainer.budget.plan.end

    def lr(self) -> float:
        return float(self.trainer.opt.param_groups[0]["lr"])

    def held(self) -> bool:
        end = self.trainer.budget.plan.end
        return end is not None and self.steps > end

    @torch.no_grad()
    def sample(self, seeds: list[int], captions: list[str] | None, *, nfe: int, guidance: float, batch: int,
               bf16: bool) -> torch.Tensor:
        tr = self.trainer
        info = get_sampler(tr.cfg.sampler)  # dpmpp_2m, our default
        sigmas = karras(info.steps_for_nfe(nfe), sigma_min=0.002, sigma_max=80.0)
        den = EDMPrecond(tr.ema.model, sigma_data=tr.cfg.sigma_data)
        dev = self.device
        shape = (tr.net_config.in_channels, RESOLUTION, RESOLUTION)
        out = []
        for i in range(0, len(seeds), batch):
            noise = SampleNoise.from_seeds(seeds[i:i + batch])
            x = start(noise, shape, sigmas, device=dev)
            cond = {}
            if tr.condition == "text":
                tok, mask = tr.text.encode(captions[i:i + batch])
                cond = {"text": tok.to(dev), "text_mask": mask.to(dev)}
            fn = make_denoiser(den, cond, cfg=guidance, batched=True, dtype=torch.bfloat16 if bf16 else None,
                               device_type=dev.type)
            y = sample(fn, x, sigmas.to(dev), sampler=info.fn)
            out.append(y.float().clamp(-1, 1).cpu())
        return torch.cat(out)


def diffusers_unet(width: int, layers: int = 2, resolution: int = RESOLUTION, groups: int = 8):
    """bench/train.py's 32×32 UNet2DModel layout (three levels, attention at 16 and 8 pixels), with an attention head
    size that divides the attention blocks' width (at most 64)."""
    from diffusers import UNet2DModel  # lazy: diffusers is optional (checked in run)

    wide = 2 * width
    head = max(d for d in range(1, min(64, wide) + 1) if wide % d == 0)
    return UNet2DModel(sample_size=resolution, block_out_channels=(width, wide, wide), layers_per_block=layers,
                       down_block_types=("DownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D"),
                       up_block_types=("AttnUpBlock2D", "AttnUpBlock2D", "UpBlock2D"),
                       norm_num_groups=groups, attention_head_dim=head)


def _count(model) -> int:
    return sum(p.numel() for p in model.parameters())


def match_width(target_params: int, resolution: int = RESOLUTION) -> tuple[int, int]:
    """The diffusers width (multiple of 8) whose parameter count is closest to ``target_params``."""
    best = None
    for width in range(8, 1025, 8):
        n = _count(diffusers_unet(width, resolution=resolution))
        if best is None or abs(n / target_params - 1) < abs(best[1] / target_params - 1):
            best = (width, n)
        if n > 1.3 * target_params:
            break
    return best


class Diffusers(Racer):
    name = "diffusers"
    needs_total = True

    def __init__(self, images_u8: torch.Tensor, width: int, seed: int, precision: str, device: torch.device):
        super().__init__()
        from diffusers import DDPMScheduler  # lazy: diffusers is optional (checked in run)
        from diffusers.training_utils import EMAModel  # lazy: diffusers is optional

        r = DIFFUSERS_RECIPE
        self.images = images_u8
        self.seed = seed
        self.width = width
        self.batch_size = r["batch_size"]
        self.bf16 = precision == "bf16"
        self.device = device
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(mix(seed, 0xD1FF))
            model = diffusers_unet(width)
        self.model = model.to(device).to(memory_format=torch.channels_last).train()
        self.params = _count(self.model)
        self.noise_scheduler = DDPMScheduler(num_train_timesteps=r["train_timesteps"], beta_schedule=r["beta_schedule"],
                                             prediction_type="epsilon")
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=r["lr"], betas=r["betas"],
                                     weight_decay=r["weight_decay"], eps=r["eps"])
        self.plan = LRPlan(self.opt, _diffusers_lr_at(), r["warmup"])
        self.ema = EMAModel(self.model.parameters(), decay=r["ema_max_decay"], use_ema_warmup=True,
                            inv_gamma=r["ema_inv_gamma"], power=r["ema_power"])
        self.gen = generator(seed, 0xD1FF, 1)  # noise and timesteps
        self._perm: tuple[int, torch.Tensor] | None = None
        self._generator = generator

    def _indices(self, start: int) -> torch.Tensor:
        """The items of global samples start … start+B−1: a fresh permutation of the set every epoch
        (the script's shuffle=True)."""
        n = self.images.shape[0]
        out = []
        for k in range(start, start + self.batch_size):
            epoch, pos = divmod(k, n)
            if self._perm is None or self._perm[0] != epoch:
                self._perm = (epoch, torch.randperm(n, generator=self._generator(self.seed, epoch, 0xDA7B)))
            out.append(int(self._perm[1][pos]))
        return torch.tensor(out)

    def train_step(self) -> float:
        dev = self.device
        clean = _float_images(self.images[self._indices(self.steps * self.batch_size)])
        noise = torch.randn(clean.shape, generator=self.gen)
        t = torch.randint(0, self.noise_scheduler.config.num_train_timesteps, (clean.shape[0],), generator=self.gen)
        clean, noise, t = clean.to(dev), noise.to(dev), t.to(dev)
        noisy = self.noise_scheduler.add_noise(clean, noise, t).contiguous(memory_format=torch.channels_last)
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=self.bf16):
            pred = self.model(noisy, t).sample
        loss = F.mse_loss(pred.float(), noise.float())
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), DIFFUSERS_RECIPE["grad_clip"])
        self.opt.step()
        self.plan.step()
        self.opt.zero_grad(set_to_none=True)
        self.ema.step(self.model.parameters())
        return float(loss.detach())

    def planned(self) -> int | None:
        return self.plan.total

    def lr(self) -> float:
        return self.plan.lr

    def held(self) -> bool:
        return self.plan.held

    def ema_model(self):
        m = copy.deepcopy(self.model)
        self.ema.copy_to(m.parameters())
        return m.eval().requires_grad_(False)

    @torch.no_grad()
    def sample(self, seeds: list[int], *, nfe: int, batch: int, bf16: bool) -> torch.Tensor:
        from diffusers import DDIMScheduler  # lazy: diffusers is optional (checked in run)


        model = self.ema_model()
        sched = DDIMScheduler.from_config(self.noise_scheduler.config)
        sched.set_timesteps(nfe)
        dev = self.device
        out = []
        for i in range(0, len(seeds), batch):
            x = SampleNoise.from_seeds(seeds[i:i + batch]).randn((3, RESOLUTION, RESOLUTION)).to(dev)
            for t in sched.timesteps:
                with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=bf16):
                    eps = model(x.contiguous(memory_format=torch.channels_last), t).sample
                x = sched.step(eps.float(), t, x, eta=0.0).prev_sample
            out.append(x.float().clamp(-1, 1).cpu())
        return torch.cat(out)


# -- the race ------------------------------------------------------------------------------------------------------
def race(racers: list[Racer], budget: float, slice_s: float, probe_s: float, replan: bool, log=print) -> dict:
    """Alternate slices of training until every racer has spent ``budget`` seconds (or finished its own plan);
    returns what each planned."""
    t0 = time.perf_counter()
    for r in racers:  # the first slice of each: diffusers' throughput probe
        r.run_until(min(probe_s, budget))
    plans = {}
    for r in racers:
        if r.needs_total:
            estimate = r.steps + round(r.rate() * max(budget - r.seconds, 0.0))
            r.plan.set_total(estimate)  # at least warmup + 1
            plans[r.name] = {"probe_steps": r.steps, "probe_seconds": r.seconds, "probe_steps_per_s": r.rate(),
                             "estimate": estimate, "planned_steps": r.plan.total}
        else:  # ours planned itself during its first slice
            plans[r.name] = {"planned_steps": r.planned(), "after_seconds": r.seconds, "after_steps": r.steps}
    log("first plans: " + ", ".join(f"{r.name} {r.steps} steps in {r.seconds:.1f} s ({r.rate():.2f} steps/s) → "
                                     f"{r.planned()} steps" for r in racers))
    while not all(r.reached(budget) for r in racers):
        for r in racers:
            if not r.reached(budget):
                r.run_until(min(r.seconds + slice_s, budget))
                if replan and r.needs_total and not r.reached(budget):
                    r.plan.set_total(r.steps + round(r.rate() * (budget - r.seconds)))
        log(f"[{time.perf_counter() - t0:6.0f} s] " + " | ".join(
            f"{r.name}: {r.seconds:6.1f}/{budget:.0f} s, step {r.steps}/{r.planned()}, lr {r.lr():.2e}, "
            f"loss {r.recent_loss():.4f}" for r in racers))
    return plans


def _seeds(seed: int, n: int) -> list[int]:
    return [mix(seed, 0x5A3F, i) for i in range(n)]


@dataclass
class _Data:
    """The rendered set both sides train on, and which of its items are prompts, the real set and the floor set."""
    images: torch.Tensor                 # N×3×H×W uint8
    captions: list[str] | None           # None unless condition is "text"
    render_s: float
    prompt_idx: list[int]
    real_idx: list[int]
    floor_idx: list[int] | None          # None when the set has fewer than 3n items


def _render_data(data_size: int, n: int, captions: bool, seed: int, log=print) -> _Data:
    """Render the set once for every side and draw the prompt, real and floor items from it."""
    t = time.perf_counter()
    ds = ProceduralArt(resolution=RESOLUTION, size=data_size, seed=0)
    workers = min(torch.get_num_threads(), os.cpu_count() or 1, 8) if data_size >= 8192 else 1
    images = ds.cache_uint8(workers=workers)
    texts = [ds.caption(i) for i in range(data_size)] if captions else None
    render_s = time.perf_counter() - t
    log(f"rendered {data_size} pictures in {render_s:.1f} s")
    perm = torch.randperm(data_size, generator=generator(seed, 0xE7A1))
    return _Data(images, texts, render_s, prompt_idx=perm[:n].tolist(), real_idx=perm[n:2 * n].tolist(),
                 floor_idx=perm[2 * n:3 * n].tolist() if data_size >= 3 * n else None)


def _enter_racers(data: _Data, minutes: float, seed: int, ours_model: dict, out_dir: str,
                  diffusers_width: int | None, *, text_row: bool, ours_batch: int | None, precision: str,
                  log=print) -> tuple[list[Racer], dict]:
    """Build the sides — ours, diffusers (its width matched to our parameter count unless given) and, with
    ``text_row``, ours text-conditional; returns them and their setup times."""
    setup = {}
    t = time.perf_counter()
    ours = Ours(CachedArt(data.images), "none", seed, ours_model, os.path.join(out_dir, "ours"), minutes,
                batch_size=ours_batch, precision=precision)
    setup["ours"] = time.perf_counter() - t
    width = diffusers_width
    if width is None:
        width, _ = match_width(ours.params)
    t = time.perf_counter()
    theirs = Diffusers(data.images, width, seed, ours.precision, ours.device)
    setup["diffusers"] = time.perf_counter() - t
    if abs(theirs.params / ours.params - 1) > 0.1:
        log(f"warning: diffusers' parameter count is {100 * (theirs.params / ours.params - 1):+.0f}% off ours "
            "(more than 10%)")
    log(f"ours: {ours.params / 1e6:.2f} M parameters, unconditional, batch {ours.batch_size}, {ours.precision}; "
        f"diffusers: width {width}, {theirs.params / 1e6:.2f} M parameters "
        f"({100 * (theirs.params / ours.params - 1):+.1f}%); {torch.get_num_threads()} threads")
    racers: list[Racer] = [ours, theirs]
    if text_row:
        t = time.perf_counter()
        text = Ours(CachedArt(data.images, data.captions), "text", seed, ours_model, os.path.join(out_dir, "text"),
                    minutes, name="ours_text", batch_size=ours_batch, precision=precision)
        setup["ours_text"] = time.perf_counter() - t
        log(f"text row: ours text-conditional, {text.params / 1e6:.2f} M parameters, batch {text.batch_size}")
        racers.append(text)
    return racers, setup


def _paint(racers: list[Racer], data: _Data, *, n: int, seed: int, nfe: int, guidance: float, sample_batch: int,
           sample_precision: str, log=print) -> tuple[dict, dict]:
    """Every side paints n pictures from the same starting seeds; returns the pictures and seconds, by side."""
    bf16 = sample_precision == "bf16"
    seeds = _seeds(seed, n)
    log(f"painting {n} pictures each ({sample_precision}) at {nfe} network evaluations")
    painted, seconds = {}, {}
    for r in racers:
        t = time.perf_counter()
        if isinstance(r, Ours):
            prompts = [data.captions[i] for i in data.prompt_idx] if r.trainer.condition == "text" else None
            painted[r.name] = r.sample(seeds, prompts, nfe=nfe, guidance=guidance, batch=sample_batch, bf16=bf16)
        else:
            painted[r.name] = r.sample(seeds, nfe=nfe, batch=sample_batch, bf16=bf16)
        seconds[r.name] = time.perf_counter() - t
        log(f"{r.name} painted {n} pictures in {seconds[r.name]:.1f} s")
    return painted, seconds


def _measure(fnet, data: _Data, painted: dict, n: int, seed: int) -> tuple[dict, float | None]:
    """fd_art, KID, precision and recall of each side against the real set, and the real-vs-real fd floor."""
    f_real = fnet.features(_float_images(data.images[data.real_idx]))
    sub = min(1000, n)
    metrics = {}
    for name, pictures in painted.items():
        f = fnet.features(pictures)
        p, r = precision_recall(f_real, f)
        metrics[name] = {"fd": frechet_distance(f, f_real), "kid": kid(f, f_real, subset_size=sub, seed=seed),
                         "precision": p, "recall": r}
    floor = None
    if data.floor_idx is not None:
        floor = frechet_distance(fnet.features(_float_images(data.images[data.floor_idx])), f_real)
    return metrics, floor


def _side(r: Racer, plan: dict, metrics: dict, setup: float, sample_s: float, extra: dict) -> dict:
    """One side's part of the report: its training, its plan, its scores, then what only it has (``extra``)."""
    return {"steps": r.steps, "images_seen": r.steps * r.batch_size, "batch_size": r.batch_size,
            "train_seconds": r.seconds, "img_s": r.steps * r.batch_size / max(r.seconds, 1e-9),
            "planned_steps": plan["planned_steps"], "final_planned_steps": r.planned(),
            "probe": plan, "lr_held": r.held(),
            "final_lr": r.lr(), "recent_loss": r.recent_loss(), "params": r.params,
            "setup_seconds": setup, "sampling_seconds": sample_s, **metrics, **extra}


def _ours_info(r: Ours, nfe: int, guidance: float) -> dict:
    text = r.trainer.condition == "text"
    return {"recipe": "noisebrush train --minutes (TrainConfig defaults: EDM loss, magnitude-preserving UNet, Adam "
                      f"peak lr {r.cfg.lr:g} cosine, the budget's batch, warmup and network, EMA 0.999)",
            "condition": r.trainer.condition, "train_precision": "bf16" if r.precision == "bf16" else "fp32",
            "sampler": f"{r.cfg.sampler}, {get_steps(r.cfg.sampler, nfe)} steps, karras σ 0.002..80",
            "guidance": guidance if text else None, "plan": r.trainer.budget.summary(),
            "config": {k: v for k, v in r.cfg.to_dict().items() if k != "out_dir"},
            "net": r.trainer.net_config.to_dict()}


def _sides(racers: list[Racer], plans: dict, metrics: dict, setup: dict, sample_s: dict, *, nfe: int,
           guidance: float, diffusers_version: str) -> dict:
    """Every side's part of the report, each with the recipe, sampler and settings it ran with."""
    out = {}
    for r in racers:
        if isinstance(r, Ours):
            extra = _ours_info(r, nfe, guidance)
        else:
            extra = {"recipe": "diffusers train_unconditional.py", "hyperparameters": dict(DIFFUSERS_RECIPE),
                     "width": r.width, "block_out_channels": list(r.model.config.block_out_channels),
                     "train_precision": "bf16" if r.bf16 else "fp32", "channels_last": True,
                     "sampler": f"DDIMScheduler, {nfe} steps, eta 0", "diffusers_version": diffusers_version}
        out[r.name] = _side(r, plans[r.name], metrics[r.name], setup[r.name], sample_s[r.name], extra)
    return out


def _notes(ours: Ours, theirs: Diffusers, *, replan: bool, width_given: bool, sample_precision: str,
           text_row: bool) -> list[str]:
    """What the report's numbers mean and how the race was run."""
    notes = [
        "like for like: ours and diffusers both unconditional, on the same rendered set, in the same process "
        "(same threads), same training precision, same training seconds",
        "training time is measured per optimizer step (batch assembly, noise, loss, backward, clipping, optimizer,"
        " LR and EMA updates); rendering the data set (once, shared) is not timed",
        "the sides train in alternating slices of slice_seconds until each has spent budget_seconds "
        "(to within half a step) or, ours, reached its planned end",
        "ours: steps planned by noisebrush.train.budget.TimeBudget (the --minutes code): 2 probe steps at LR 0, "
        "then planned from its measured rate and re-planned every 1% of the budget; batch and warmup from the "
        "budget unless given",
        "diffusers' LR schedule: total steps = steps of its probe (its first probe_seconds, counted in the "
        "budget) + probe throughput (its first steps left out) × the rest of the budget, at least warmup + 1"
        + (", re-estimated after every slice" if replan else "")
        + "; past the total the LR stays at its last scheduled value (lr_held)",
        ("both train in bf16 autocast" if ours.precision == "bf16" else "both train in fp32")
        + " and channels_last (diffusers' script: fp32)",
        ("diffusers width chosen so its parameter count is closest to ours" if not width_given else
         "diffusers width set by --diffusers-width") + f" ({100 * (theirs.params / ours.params - 1):+.1f}%)",
        "fd_art: Fréchet distance in the domain feature network's space between n generated pictures (same "
        "starting noise seeds for every side) and n real items of the set not used for prompts; real_fd_floor is "
        "fd_art between two disjoint real sets of n",
        f"sampling in {sample_precision}",
    ]
    if text_row:
        notes.append("text_row (not like for like): ours text-conditional on the same budget, painted from "
                     "captions with guidance; NFE counts one guided evaluation (a conditional + unconditional "
                     "pair in one batch) as one; its ratio is against diffusers' unconditional model")
    return notes


def run(minutes: float, *, n: int = 1000, seed: int = 0, slice_s: float = 30.0, probe_s: float | None = None,
        replan: bool = False, data_size: int | None = None, nfe: int = 50, guidance: float = 3.0,
        featnet: str | None = None, sample_batch: int = 250, sample_precision: str = "fp32", text_row: bool = False,
        precision: str = "auto", ours_batch: int | None = None, ours_model: dict | None = None,
        diffusers_width: int | None = None, log=print) -> dict:
    """Race the recipes for ``minutes`` of training each, paint ``n`` pictures each, score them; the report."""
    try:
        import diffusers  # lazy: an optional dependency, checked here for one clear error line
    except ImportError:
        raise UserError("the quality bench needs diffusers: pip install diffusers") from None
    fnet = load_feature_net(featnet)  # before any training: a missing network is an error now, not in an hour
    budget = minutes * 60.0
    probe_s = min(60.0, 0.1 * budget) if probe_s is None else probe_s
    data_size = TrainConfig.data_size if data_size is None else data_size

    data = _render_data(data_size, n, text_row, seed, log)
    with tempfile.TemporaryDirectory(prefix="nb-quality-") as tmp:
        racers, setup = _enter_racers(data, minutes, seed, dict(ours_model or {}), tmp, diffusers_width,
                                      text_row=text_row, ours_batch=ours_batch, precision=precision, log=log)
        plans = race(racers, budget, slice_s, probe_s, replan, log=log)
        painted, sample_s = _paint(racers, data, n=n, seed=seed, nfe=nfe, guidance=guidance,
                                   sample_batch=sample_batch, sample_precision=sample_precision, log=log)
    metrics, floor = _measure(fnet, data, painted, n, seed)
    info = _sides(racers, plans, metrics, setup, sample_s, nfe=nfe, guidance=guidance,
                  diffusers_version=diffusers.__version__)
    ours, theirs = racers[0], racers[1]
    d_fd = metrics["diffusers"]["fd"]
    text = None
    if text_row:
        text = {**info["ours_text"], "ratio_vs_diffusers": metrics["ours_text"]["fd"] / d_fd if d_fd > 0 else None,
                "like_for_like": False}
    return {
        "minutes": minutes, "budget_seconds": budget,
        "ours_fd": metrics["ours"]["fd"], "diffusers_fd": d_fd,
        "ratio": metrics["ours"]["fd"] / d_fd if d_fd > 0 else None,
        "ours_kid": metrics["ours"]["kid"], "diffusers_kid": metrics["diffusers"]["kid"],
        "ours_recall": metrics["ours"]["recall"], "diffusers_recall": metrics["diffusers"]["recall"],
        "real_fd_floor": floor,
        "ours_steps": ours.steps, "diffusers_steps": theirs.steps,
        "ours_images_seen": ours.steps * ours.batch_size, "diffusers_images_seen": theirs.steps * theirs.batch_size,
        "ours_params": ours.params, "diffusers_params": theirs.params,
        "ours_sampling_seconds": sample_s["ours"], "diffusers_sampling_seconds": sample_s["diffusers"],
        "ours": info["ours"], "diffusers": info["diffusers"], "text_row": text,
        "settings": {"n": n, "condition": "none", "text_row": text_row, "seed": seed,
                     "threads": torch.get_num_threads(), "precision": precision,
                     "train_precision": ours.precision, "ours_batch": ours_batch,
                     "resolution": RESOLUTION, "data_size": data_size, "slice_seconds": slice_s,
                     "probe_seconds": min(probe_s, budget), "replan": replan, "nfe": nfe, "guidance": guidance,
                     "sample_batch": sample_batch, "sample_precision": sample_precision,
                     "featnet": str(featnet) if featnet else "shipped", "render_seconds": data.render_s,
                     "torch": torch.__version__},
        "notes": _notes(ours, theirs, replan=replan, width_given=diffusers_width is not None,
                        sample_precision=sample_precision, text_row=text_row),
    }


def get_steps(sampler: str, nfe: int) -> int:
    return get_sampler(sampler).steps_for_nfe(nfe)


def print_table(result: dict, file=None) -> None:
    o, d, t = result["ours"], result["diffusers"], result.get("text_row")
    tab = Table(title=f"quality race: {result['minutes']:g} min of training each, fd_art on n = "
                      f"{result['settings']['n']}, like for like (both unconditional)")
    tab.add_column("")
    tab.add_column("ours", justify="right")
    tab.add_column("diffusers", justify="right")
    if t:
        tab.add_column("ours, text + cfg (not like for like)", justify="right")

    def f(v, fmt):
        return "–" if v is None else format(v, fmt)

    def plan(side):
        return f"{side['steps']} ({side['final_planned_steps']})"

    def sampler(side):
        return side["sampler"] + (f", cfg {side['guidance']:g}" if side.get("guidance") is not None else "")

    rows = [
        ("recipe", lambda s: "noisebrush train --minutes, " + s["condition"] if "condition" in s else
         "train_unconditional.py"),
        ("parameters", lambda s: f"{s['params'] / 1e6:.2f} M" + (f" (width {s['width']})" if "width" in s else "")),
        ("training precision", lambda s: s["train_precision"] + ", channels_last"),
        ("batch", lambda s: str(s["batch_size"])),
        ("training seconds", lambda s: f"{s['train_seconds']:.1f}"),
        ("steps (planned)", plan),
        ("images seen", lambda s: str(s["images_seen"])),
        ("img/s", lambda s: f"{s['img_s']:.1f}"),
        ("recent loss", lambda s: f"{s['recent_loss']:.4f}" + (" (EDM)" if "condition" in s else " (ε MSE)")),
        ("sampler", sampler),
        ("sampling seconds", lambda s: f"{s['sampling_seconds']:.1f}"),
        ("fd_art ↓", lambda s: f"{s['fd']:.3f}"),
        ("KID ↓", lambda s: f"{s['kid']:.4f}"),
        ("precision / recall ↑", lambda s: f"{s['precision']:.3f} / {s['recall']:.3f}"),
    ]
    for label, cell in rows:
        tab.add_row(label, *[cell(side) for side in ([o, d, t] if t else [o, d])])
    console = Console(file=file or sys.stdout, width=max(100, Console().width))
    console.print(tab)
    console.print(f"ratio ours / diffusers fd_art (like for like): {f(result['ratio'], '.3f')}   "
                  f"real-vs-real floor at this n: {f(result['real_fd_floor'], '.3f')}")
    if t:
        console.print(f"text row (not like for like): ours text + cfg / diffusers unconditional fd_art: "
                      f"{f(t['ratio_vs_diffusers'], '.3f')}")
    for note in result["notes"]:
        console.print(f"  · {note}", highlight=False)


# -- command line --------------------------------------------------------------------------------------------------
def _parser() -> BenchParser:
    ap = BenchParser(prog="python -m noisebrush.bench quality", description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", required=True, help="training time for each side, in minutes")
    ap.add_argument("--json", metavar="FILE")
    ap.add_argument("--n", type=int, default=1000, help="generated and real pictures for fd_art (default 1000)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    ap.add_argument("--condition", default="none", help="none (the default, and the only like-for-like choice: "
                    "diffusers' recipe is unconditional); for ours text-conditional, add --text-row")
    ap.add_argument("--text-row", action="store_true", help="also race ours text-conditional (with guidance) on "
                    "the same budget, reported in its own column (not like for like)")
    ap.add_argument("--precision", default="auto", help="training precision of every side: auto (bf16 where the "
                    "CPU runs it natively, else fp32), fp32 or bf16")
    ap.add_argument("--ours-batch", type=int, default=None, help="ours' batch size (default: what the --minutes "
                    "recipe picks for this budget)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--slice", default="30", help="seconds of training per turn (default 30)")
    ap.add_argument("--probe", default=None, help="seconds of the throughput probe per side (default 10%% of the "
                    "budget, at most 60)")
    ap.add_argument("--replan", action="store_true", help="re-estimate diffusers' LR schedule's total steps after "
                    "every slice (ours always re-plans)")
    ap.add_argument("--data-size", type=int, default=None, help="ProceduralArt items (default: TrainConfig's 60000)")
    ap.add_argument("--nfe", type=int, default=50, help="network evaluations per picture for both (default 50)")
    ap.add_argument("--guidance", type=float, default=3.0, help="the text row's guidance scale (default 3)")
    ap.add_argument("--sample-precision", default="fp32", help="fp32 (default) or bf16 autocast, both sides")
    ap.add_argument("--featnet", default=None, help="feature network folder (default: the shipped one)")
    # test-only: small networks and sampling batches
    ap.add_argument("--ours-model", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--diffusers-width", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--sample-batch", type=int, default=250, help=argparse.SUPPRESS)
    return ap


def _ours_model(text: str | None) -> dict:
    """``--ours-model``: UNet options as a JSON object, checked against UNetConfig now rather than after rendering."""
    if not text:
        return {}
    try:
        ours_model = json.loads(text)
    except json.JSONDecodeError:
        raise BadParameter(f"--ours-model: a JSON object of UNet options, got {text!r}") from None
    if not isinstance(ours_model, dict):
        raise BadParameter(f"--ours-model: a JSON object of UNet options, got {text!r}")
    UNetConfig.from_dict({"resolution": RESOLUTION, **ours_model})
    return ours_model


def main(argv=None) -> int:
    args = _parser().parse_args(argv)

    minutes = number("--minutes", args.minutes, 0, MAX_MINUTES, above=True)
    slice_s = number("--slice", args.slice, 0, above=True)
    probe_s = None if args.probe is None else number("--probe", args.probe, 0, above=True)
    whole("--n", args.n, 4)
    if args.threads is not None:
        whole("--threads", args.threads, 1)
    if args.condition == "text":
        raise BadParameter("--condition text: the race is like for like, and diffusers' recipe is unconditional; "
                           "add --text-row for ours text-conditional, in its own column")
    if args.condition != "none":
        raise BadParameter(f"--condition: none (the like-for-like race); got {args.condition!r}")
    if args.precision not in PRECISIONS:
        raise BadParameter(f"--precision: one of {', '.join(PRECISIONS)}; got {args.precision!r}")
    if args.precision == "bf16" and emulated(torch.bfloat16):
        raise BadParameter("--precision bf16: this CPU has no native bf16 (it would be emulated, about 100× slower "
                           "than fp32); use fp32 or auto")
    if args.ours_batch is not None:
        limited("--ours-batch", args.ours_batch, "batch_size")
    whole("--seed", args.seed, 0)

    data_size = TrainConfig.data_size if args.data_size is None else args.data_size
    if data_size < 2 * args.n:
        raise BadParameter(f"--data-size: at least 2 × --n = {2 * args.n} items (prompts and real pictures are "
                           f"different items), got {data_size}")
    whole("--nfe", args.nfe, 2)
    number("--guidance", args.guidance, 0)
    if args.sample_precision not in ("fp32", "bf16"):
        raise BadParameter(f"--sample-precision: fp32 or bf16, got {args.sample_precision!r}")
    if args.sample_precision == "bf16" and emulated(torch.bfloat16):
        raise BadParameter("--sample-precision bf16: this CPU has no native bf16 (it would be emulated, about 100× "
                           "slower than fp32); use fp32")
    whole("--sample-batch", args.sample_batch, 1)
    if args.diffusers_width is not None and (args.diffusers_width < 8 or args.diffusers_width % 8):
        raise BadParameter(f"--diffusers-width: a multiple of 8, ≥ 8; got {args.diffusers_width}")
    ours_model = _ours_model(args.ours_model)
    if args.json:
        check_report_path(args.json)
    if args.threads:
        torch.set_num_threads(args.threads)

    result = run(minutes, n=args.n, seed=args.seed, slice_s=slice_s, probe_s=probe_s, replan=args.replan,
                 data_size=data_size, nfe=args.nfe, guidance=args.guidance, featnet=args.featnet,
                 sample_batch=args.sample_batch, sample_precision=args.sample_precision, text_row=args.text_row,
                 precision=args.precision, ours_batch=args.ours_batch, ours_model=ours_model,
                 diffusers_width=args.diffusers_width, log=lambda s: print(s, flush=True))
    print()
    return finish(result, print_table, args.json, note="\nwrote {path}")


if __name__ == "__main__":
    sys.exit(main())
