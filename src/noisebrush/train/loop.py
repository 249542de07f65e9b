"""The trainer: EDM-preconditioned UNet, trained with Hugging Face Accelerate.

    from noisebrush.train import Trainer, TrainConfig
    Trainer(TrainConfig(steps=2000, out_dir="runs/try")).fit()

The same code runs on one CPU, one GPU, or many processes (``accelerate launch`` / ``torchrun``): Accelerate handles
devices, mixed precision and DDP; the trainer does everything that decides *what* is computed, so results do not depend
on how the work is split:

* **A global sample stream.** Optimizer step s consumes the global samples k = s·B … s·B+B−1 (B = ``batch_size``);
  sample k is the item ``perm_e[k mod n]`` of the per-epoch permutation e = k // n, and its σ, noise and
  condition-dropout flag come from a generator seeded by (seed, k). Processes and accumulation steps take equal
  slices of that global batch. With the same global batch, 1 process or 8 see the same samples with the same noise.
* **Exact resume.** All randomness is a function of (seed, step, sample), so a checkpoint only has to hold weights,
  EMA, optimizer and scheduler state and the step: resuming ends bit-identical to an uninterrupted run (CPU, same
  settings). Checkpoints are atomic (see :mod:`noisebrush.train.checkpoint`).
* **A guard.** A step whose loss or gradient is not finite is skipped and counted; weights, optimizer moments and EMA
  are left untouched (the LR schedule still advances with the step count, and so does the data stream).
"""
from __future__ import annotations

import contextlib
import csv
import json
import logging
import math
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from noisebrush.diffusion import EDMPrecond, karras
from noisebrush.diffusion.losses import edm_loss
from noisebrush.diffusion.noise import SampleNoise
from noisebrush.errors import BadParameter, UserError
from noisebrush.io.atomic import atomic_write_text
from noisebrush.io.images import make_grid, save_image
from noisebrush.nets.unet import UNet, UNetConfig
from noisebrush.seeding import generator, mix
from noisebrush.train.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from noisebrush.train.config import TrainConfig
from noisebrush.train.ema import EMA
from noisebrush.train.lr import make_scheduler

__all__ = ["Trainer", "StepResult", "SIGMA_BUCKETS", "MODEL_FORMAT", "leave_worker"]

log = logging.getLogger("noisebrush.train")

# σ bucket edges for the per-noise-level loss in the log: (<0.1, 0.1–0.3, 0.3–1, 1–3, 3–10, >10)
SIGMA_BUCKETS = (0.1, 0.3, 1.0, 3.0, 10.0)
MODEL_FORMAT = "noisebrush.model/1"
_LOG_FIELDS = ["step", "loss", *[f"loss_s{i}" for i in range(len(SIGMA_BUCKETS) + 1)], "lr", "grad_norm", "img_s",
               "skipped", "time"]


@dataclass
class StepResult:
    step: int
    loss: float
    grad_norm: float
    skipped: bool
    lr: float


def _has_accelerator() -> bool:
    return torch.cuda.is_available() or (hasattr(torch, "xpu") and torch.xpu.is_available())


def _cpu_bf16_fast() -> bool:
    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except Exception:  # pragma: no cover - older builds
        return False


def build_dataset(cfg: TrainConfig):
    """The data set a config names: ``builtin`` → ProceduralArt, anything else → ImageFolder."""
    if cfg.data == "builtin":
        from noisebrush.data.procedural import ProceduralArt

        return ProceduralArt(resolution=cfg.resolution, size=cfg.data_size, seed=0)
    from noisebrush.data.folder import ImageFolder

    return ImageFolder(cfg.data, resolution=cfg.resolution, crop=cfg.crop, flip=cfg.flip, seed=cfg.seed)


def resolve_condition(cfg: TrainConfig, dataset) -> str:
    if cfg.condition != "auto":
        return cfg.condition
    if cfg.data == "builtin":
        return "text"
    captions = getattr(dataset, "captions", None)
    if captions and any(c for c in captions):
        return "text"
    if getattr(dataset, "num_classes", 1) > 1:
        return "label"
    return "none"


class Trainer:
    def __init__(self, config: TrainConfig, *, dataset=None, resume=False, text_encoder=None, accelerator=None):
        from accelerate import Accelerator

        self.cfg = cfg = config
        mp = cfg.mixed_precision
        if mp == "auto":
            mp = "bf16" if (_has_accelerator() or _cpu_bf16_fast()) else "no"
        if mp == "fp16" and not _has_accelerator():
            raise BadParameter("mixed_precision: fp16 needs a GPU; use bf16 or no on the CPU")
        self.precision = mp
        self.acc = accelerator or Accelerator(cpu=not _has_accelerator(), mixed_precision=mp)
        world = self.acc.num_processes
        if cfg.batch_size % (world * cfg.grad_accum):
            raise BadParameter(f"batch_size: {cfg.batch_size} must be divisible by processes × grad_accum = "
                               f"{world} × {cfg.grad_accum}")
        self.micro = cfg.batch_size // (world * cfg.grad_accum)
        self.out = Path(cfg.out_dir)
        if self.out.exists() and not self.out.is_dir():
            raise UserError(f"{self.out}: exists and is not a folder (out_dir)")
        if not resume and latest_checkpoint(self.out) is not None:
            raise UserError(f"{self.out} already holds checkpoints; resume it (--resume) or choose another out_dir")
        self.dataset = dataset if dataset is not None else build_dataset(cfg)
        if len(self.dataset) < 1:
            raise UserError("the data set is empty")
        self.condition = resolve_condition(cfg, self.dataset)
        self._uses_epoch = hasattr(self.dataset, "get")
        self._image_cache: dict[int, torch.Tensor] = {}
        self._cache_images = type(self.dataset).__name__ == "ProceduralArt"  # deterministic renders: keep them
        self._perm: tuple[int, torch.Tensor] | None = None

        self.text = None
        text_dim = label_dim = 0
        if self.condition == "text":
            if text_encoder is None:
                from noisebrush.nets.text import TextEncoder

                text_encoder = TextEncoder(max_tokens=cfg.max_tokens)
            self.text = text_encoder
            text_dim = text_encoder.dim
            self._encode_captions()
        elif self.condition == "label":
            label_dim = int(getattr(self.dataset, "num_classes", 0))
            if label_dim < 2:
                raise UserError("condition=label needs a data set with at least two classes (subfolders)")
        model_cfg = {"resolution": cfg.resolution, **cfg.model, "text_dim": text_dim, "label_dim": label_dim}
        self.net_config = UNetConfig.from_dict(model_cfg)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(mix(cfg.seed, 0x1417))
            self.net = UNet(self.net_config)
        self.ema = EMA(self.net, cfg.ema_decay)
        decay, plain = [], []
        for p in self.net.parameters():
            (decay if p.ndim >= 2 else plain).append(p)
        self._l1_params = decay
        self.opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                                      {"params": plain, "weight_decay": 0.0}], lr=cfg.lr, betas=cfg.betas)
        self.sched = make_scheduler(self.opt, cfg.lr_schedule, cfg.steps, warmup=cfg.warmup, final=cfg.lr_final)
        self.command: str | None = None  # how the run was started, recorded in the model's provenance
        self.step = 0
        self.skipped = 0
        self.train_seconds = 0.0
        self.init_from: str | None = None
        if resume:
            self._resume(resume)
        elif cfg.init:
            self._init_weights(cfg.init)
        self.net.to(self.acc.device)
        self.ema.model.to(self.acc.device)
        self.model, self.opt = self.acc.prepare(self.net, self.opt)
        if self._pending_opt_state is not None:
            self.opt.load_state_dict(self._pending_opt_state)
        self.den = EDMPrecond(self.model, sigma_data=cfg.sigma_data)
        self._window = self._new_window()

    def _encode_captions(self) -> None:
        """Encode every distinct caption of the data set once, through a file cache in the run folder."""
        if not hasattr(self.text, "encode_dataset"):
            return
        ds = self.dataset
        if isinstance(getattr(ds, "captions", None), list):
            captions = ds.captions
        elif hasattr(ds, "caption"):
            captions = [ds.caption(i) for i in range(len(ds))]
        else:
            return
        unique = list(dict.fromkeys(captions))
        log.info("encoding %d distinct captions", len(unique))
        with self.acc.main_process_first():  # one process writes the cache, the others read it
            self.text.encode_dataset(unique, cache_path=self.out / "text-cache.safetensors", progress=False)

    # -- init from other weights ---------------------------------------------------------------------------------
    def _init_weights(self, source: str) -> None:
        """Load the weights of a model folder ("builtin" included) or a checkpoint into the network and its EMA."""
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        from noisebrush.paint.pipeline import read_model_config, resolve_model

        path = Path(source)
        if path.is_dir() and (path / "state.json").is_file():  # a checkpoint: raw weights and their average
            ck = load_checkpoint(path)
            net_config, state, ema, updates = ck["net_config"], ck["model"], ck["ema"], ck["ema_updates"]
        else:  # a model folder holds the average only
            path = resolve_model(source)
            net_config = read_model_config(path).get("unet")
            try:
                state = load_file(str(path / "model.safetensors"))
            except (OSError, SafetensorError) as e:
                raise UserError(f"{path / 'model.safetensors'}: unreadable ({e})") from None
            ema, updates = state, 0
        if net_config != self.net_config.to_dict():
            raise UserError(f"init: {source} holds another network than this config describes (check [model], "
                            f"resolution and condition)")
        try:
            self.net.load_state_dict({k: v.to(torch.float32) for k, v in state.items()})
            self.ema.load_state_dict({k: v.to(torch.float32) for k, v in ema.items()}, updates)
        except RuntimeError as e:
            raise UserError(f"init: the weights in {source} do not fit the network ({str(e).splitlines()[0]})") \
                from None
        self.init_from = str(source)
        log.info("initialised from %s", source)

    # -- resume ---------------------------------------------------------------------------------------------------
    _pending_opt_state = None

    def _resume(self, resume) -> None:
        path = latest_checkpoint(self.out) if resume is True else Path(resume)
        if path is None:
            raise UserError(f"nothing to resume: {self.out} has no checkpoints")
        ck = load_checkpoint(path)
        if ck["net_config"] != self.net_config.to_dict():
            raise UserError(f"{path}: the checkpoint's network differs from this config; resume with the same model")
        self.net.load_state_dict(ck["model"])
        self.ema.load_state_dict(ck["ema"], ck["ema_updates"])
        self._pending_opt_state = ck["optimizer"]
        self.sched.load_state_dict(ck["scheduler"])
        self.step = int(ck["step"])
        self.skipped = int(ck["skipped"])
        self.train_seconds = float(ck.get("train_seconds", 0.0))
        if ck.get("rng_torch") is not None:
            torch.set_rng_state(ck["rng_torch"])
        self._truncate_log()
        log.info("resumed from %s at step %d", path, self.step)

    # -- data -----------------------------------------------------------------------------------------------------
    def _item_index(self, k: int) -> tuple[int, int]:
        n = len(self.dataset)
        epoch, pos = divmod(k, n)
        if self._perm is None or self._perm[0] != epoch:
            self._perm = (epoch, torch.randperm(n, generator=generator(self.cfg.seed, epoch, 0xDA7A)))
        return int(self._perm[1][pos]), epoch

    def _image(self, index: int, epoch: int) -> dict:
        if self._cache_images and index in self._image_cache:
            return self._image_cache[index]
        item = self.dataset.get(index, epoch) if self._uses_epoch else self.dataset[index]
        if self._cache_images:  # deterministic renders: keep what the loop uses
            item = {k: item[k] for k in ("image", "caption", "label", "index") if k in item}
            self._image_cache[index] = item
        return item

    def batch(self, ks) -> dict:
        """Images, σ, noise and conditions of the global samples ``ks``."""
        cfg = self.cfg
        images, sigmas, noises, drops, captions, labels = [], [], [], [], [], []
        for k in ks:
            index, epoch = self._item_index(k)
            item = self._image(index, epoch)
            x0 = item["image"]
            g = generator(cfg.seed, k, 0x5A)
            sigmas.append(math.exp(cfg.P_mean + cfg.P_std * float(torch.randn((), generator=g, dtype=torch.float64))))
            noises.append(torch.randn(x0.shape, generator=g))
            drops.append(bool(torch.rand((), generator=g, dtype=torch.float64) < cfg.cond_drop))
            images.append(x0)
            if self.condition == "text":
                captions.append(item["caption"] if "caption" in item else self.dataset.caption(index))
            elif self.condition == "label":
                labels.append(int(item["label"]) if "label" in item else int(self.dataset[index]["label"]))
        dev = self.acc.device
        out = {"x0": torch.stack(images).to(dev), "sigma": torch.tensor(sigmas, dtype=torch.float64, device=dev),
               "noise": torch.stack(noises).to(dev), "cond": {}}
        drop = torch.tensor(drops, device=dev)
        if self.condition == "text":
            tok, mask = self.text.encode(captions)
            out["cond"] = {"text": tok.to(dev), "text_mask": mask.to(dev), "drop": drop}
        elif self.condition == "label":
            out["cond"] = {"labels": torch.tensor(labels, device=dev), "drop": drop}
        return out

    # -- one optimizer step ---------------------------------------------------------------------------------------
    def train_step(self) -> StepResult:
        cfg, acc = self.cfg, self.acc
        self.model.train()
        world, rank, accum, b = acc.num_processes, acc.process_index, cfg.grad_accum, self.micro
        per_sample, sig = [], []
        t0 = time.perf_counter()
        for a in range(accum):
            start = self.step * cfg.batch_size + (a * world + rank) * b
            batch = self.batch(range(start, start + b))
            torch.manual_seed(mix(cfg.seed, self.step, a, rank, 0xD0))  # dropout masks: a function of the step
            sync = contextlib.nullcontext() if a == accum - 1 else acc.no_sync(self.model)
            with sync:
                with acc.autocast():
                    per = edm_loss(self.den, batch["x0"], sigma=batch["sigma"], noise=batch["noise"],
                                   sigma_data=cfg.sigma_data, **batch["cond"])
                loss = per.float().mean() / accum
                if cfg.l1:
                    loss = loss + cfg.l1 * sum(p.abs().sum() for p in self._l1_params) / accum
                acc.backward(loss)
            per_sample.append(per.detach().float())
            sig.append(batch["sigma"])
        per = torch.cat(per_sample)
        max_norm = cfg.grad_clip if cfg.grad_clip else float("inf")
        gnorm = acc.clip_grad_norm_(self.model.parameters(), max_norm)
        gnorm = torch.as_tensor(gnorm, dtype=torch.float32, device=acc.device).reshape(())
        ok = torch.isfinite(gnorm) & torch.isfinite(per).all()
        ok = acc.reduce(ok.to(torch.float32).reshape(1), "sum").item() == world
        if ok:
            self.opt.step()
            if hasattr(self.net, "project_"):
                self.net.project_()  # forced weight normalisation (EDM2)
            self.ema.update(self.net)
        else:
            self.skipped += 1
            log.warning("step %d skipped: loss or gradient is not finite", self.step)
        self.opt.zero_grad(set_to_none=True)
        lr = self.opt.param_groups[0]["lr"]
        self.sched.step()
        self.step += 1
        dt = time.perf_counter() - t0
        self.train_seconds += dt
        self._accumulate(per, torch.cat(sig), dt, float(gnorm), not ok)
        return StepResult(self.step, float(per.mean()), float(gnorm), not ok, lr)

    # -- logging --------------------------------------------------------------------------------------------------
    def _new_window(self):
        nb = len(SIGMA_BUCKETS) + 1
        return {"loss": 0.0, "n": 0, "bucket_sum": torch.zeros(nb, dtype=torch.float64),
                "bucket_n": torch.zeros(nb, dtype=torch.float64), "seconds": 0.0, "images": 0, "gnorm": 0.0,
                "steps": 0, "skipped": 0}

    def _accumulate(self, per, sigma, dt, gnorm, skipped):
        w = self._window
        finite = torch.isfinite(per)
        per64 = per.to(torch.float64).cpu()[finite.cpu()]
        s = sigma.cpu()[finite.cpu()]
        w["loss"] += float(per64.sum())
        w["n"] += int(per64.numel())
        idx = torch.bucketize(s, torch.tensor(SIGMA_BUCKETS, dtype=torch.float64))
        w["bucket_sum"].index_add_(0, idx, per64)
        w["bucket_n"].index_add_(0, idx, torch.ones_like(per64))
        w["seconds"] += dt
        w["images"] += self.cfg.batch_size
        w["gnorm"] += gnorm if math.isfinite(gnorm) else 0.0
        w["steps"] += 1
        w["skipped"] += int(skipped)

    def _flush_log(self, tb=None) -> dict:
        w = self._window
        if not w["steps"]:
            return {}
        # all processes saw different samples: sum the window over processes
        stats = torch.cat([torch.tensor([w["loss"], w["n"]], dtype=torch.float64), w["bucket_sum"], w["bucket_n"]])
        stats = self.acc.reduce(stats.to(self.acc.device), "sum").cpu()
        nb = len(SIGMA_BUCKETS) + 1
        loss = float(stats[0] / max(stats[1], 1))
        buckets = stats[2:2 + nb] / stats[2 + nb:].clamp(min=1)
        row = {"step": self.step, "loss": loss, "lr": self.opt.param_groups[0]["lr"],
               "grad_norm": w["gnorm"] / w["steps"], "img_s": w["images"] / max(w["seconds"], 1e-9),
               "skipped": self.skipped, "time": round(self.train_seconds, 3)}
        for i in range(nb):
            row[f"loss_s{i}"] = float(buckets[i]) if stats[2 + nb + i] > 0 else ""
        if self.acc.is_main_process:
            path = self.out / "log.csv"
            new = not path.exists()
            with open(path, "a", newline="") as f:
                wr = csv.DictWriter(f, fieldnames=_LOG_FIELDS)
                if new:
                    wr.writeheader()
                wr.writerow(row)
            if tb is not None:
                for k, v in row.items():
                    if k != "step" and v != "":
                        tb.add_scalar(f"train/{k}", v, self.step)
        self._window = self._new_window()
        return row

    def _truncate_log(self) -> None:
        """After a resume, drop log rows written after the checkpoint (they will be written again)."""
        path = self.out / "log.csv"
        if not path.exists() or not self.acc.is_main_process:
            return
        with open(path, newline="") as f:
            rows = [r for r in csv.DictReader(f) if int(r["step"]) <= self.step]
        import io

        buf = io.StringIO()
        wr = csv.DictWriter(buf, fieldnames=_LOG_FIELDS)
        wr.writeheader()
        wr.writerows(rows)
        atomic_write_text(path, buf.getvalue())

    # -- samples, checkpoints, the exported model -----------------------------------------------------------------
    def preview_conditions(self, n: int = 16) -> dict:
        if self.condition == "text":
            caps = [self.dataset.caption(i) if hasattr(self.dataset, "caption") else self.dataset[i]["caption"]
                    for i in range(min(n, len(self.dataset)))]
            caps = (caps * n)[:n]
            tok, mask = self.text.encode(caps)
            return {"text": tok, "text_mask": mask}
        if self.condition == "label":
            return {"labels": torch.arange(n) % self.net_config.label_dim}
        return {}

    @torch.no_grad()
    def sample(self, n: int = 16, steps: int | None = None, seeds=None) -> torch.Tensor:
        """EMA-model samples with the preview conditions (N×C×H×W in [-1, 1])."""
        from noisebrush.diffusion.samplers import get_sampler

        cfg = self.cfg
        den = EDMPrecond(self.ema.model, sigma_data=cfg.sigma_data)
        seeds = list(range(n)) if seeds is None else list(seeds)
        noise = SampleNoise.from_seeds(seeds)
        shape = (self.net_config.in_channels, *([cfg.resolution] * self.net_config.dims))
        sigmas = karras(steps or cfg.sample_steps, sigma_min=0.002, sigma_max=80.0)
        x = noise.randn(shape) * sigmas[0]
        dev = self.acc.device
        x = x.to(dev)
        cond = {k: v.to(dev) for k, v in self.preview_conditions(len(seeds)).items()}
        fn = get_sampler(cfg.sampler)
        kwargs = {"noise": noise} if fn.stochastic else {}
        return fn.fn(den, x, sigmas.to(dev), extra_args=cond, **kwargs).clamp(-1, 1).cpu()

    def save_samples(self) -> Path:
        path = self.out / "samples" / f"step-{self.step:07d}.png"
        save_image(make_grid(self.sample(), cols=4), path)
        return path

    def checkpoint(self) -> Path | None:
        self.acc.wait_for_everyone()
        path = None
        if self.acc.is_main_process:
            state = {"skipped": self.skipped, "train_seconds": self.train_seconds,
                     "data": {"seed": self.cfg.seed, "samples_seen": self.step * self.cfg.batch_size,
                              "size": len(self.dataset)},
                     "net_config": self.net_config.to_dict(), "config": self.cfg.to_dict()}
            path = save_checkpoint(self.out, self.step, model=self.net, ema=self.ema, optimizer=self.opt,
                                   scheduler=self.sched, state=state, keep_last=self.cfg.keep_last)
        self.acc.wait_for_everyone()
        return path

    def export(self, path=None) -> Path:
        """Write the model folder (config.json + model.safetensors with the EMA weights)."""
        from safetensors.torch import save_file

        from noisebrush import __version__
        from noisebrush.io.atomic import atomic_path

        path = Path(path or self.out / "model")
        if not self.acc.is_main_process:
            return path
        path.mkdir(parents=True, exist_ok=True)
        with atomic_path(path / "model.safetensors") as tmp:
            save_file({k: v.contiguous() for k, v in self.ema.state_dict().items()}, tmp)
        conf = {
            "format": MODEL_FORMAT,
            "network": "unet",
            "unet": self.net_config.to_dict(),
            "sigma_data": self.cfg.sigma_data,
            # how to sample it: Karras et al. 2022's schedule over the σ range the loss trained on
            "schedule": {"kind": "karras", "sigma_min": 0.002, "sigma_max": 80.0, "rho": 7.0,
                         "sampler": self.cfg.sampler, "steps": self.cfg.sample_steps},
            "resolution": self.cfg.resolution,
            "condition": self.condition,
            "text_encoder": ({"name": self.text.name, "max_tokens": self.text.max_tokens} if self.text else None),
            "classes": list(getattr(self.dataset, "classes", [])) if self.condition == "label" else None,
            "provenance": {
                "noisebrush": __version__, "command": self.command or "python API", "data": self.cfg.data,
                "init": self.init_from,
                "steps": self.step, "images_seen": self.step * self.cfg.batch_size,
                "train_seconds": round(self.train_seconds, 1), "processes": self.acc.num_processes,
                "precision": self.precision, "hardware": _hardware(self.acc.device),
                "config": self.cfg.to_dict(),
            },
        }
        atomic_write_text(path / "config.json", json.dumps(conf, indent=2))
        return path

    # -- the loop -------------------------------------------------------------------------------------------------
    def fit(self, progress=None) -> Path:
        """Train to ``cfg.steps``; returns the exported model folder. ``progress(step, row)`` is called per step.

        A KeyboardInterrupt writes a checkpoint first, then propagates.
        """
        cfg = self.cfg
        if self.acc.is_main_process:
            self.out.mkdir(parents=True, exist_ok=True)
            atomic_write_text(self.out / "config.json", json.dumps(
                {"train": cfg.to_dict(), "network": self.net_config.to_dict(), "condition": self.condition}, indent=2))
        tb = _tensorboard(self.out) if self.acc.is_main_process else None
        try:
            while self.step < cfg.steps:
                res = self.train_step()
                row = {}
                if cfg.log_every and self.step % cfg.log_every == 0:
                    row = self._flush_log(tb)
                if progress is not None:
                    progress(self.step, {"loss": res.loss, "lr": res.lr, "skipped": self.skipped, "log": row})
                if cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0 and self.step < cfg.steps:
                    self.checkpoint()
                if cfg.sample_every and self.step % cfg.sample_every == 0 and self.acc.is_main_process:
                    self.save_samples()
        except KeyboardInterrupt:
            self._flush_log(tb)
            self.checkpoint()
            raise
        self._flush_log(tb)
        self.checkpoint()
        if tb is not None:
            tb.close()
        return self.export()


    def close(self) -> None:
        """End the run: waits for every process and tears down the process group (call once, at the end)."""
        self.acc.wait_for_everyone()
        self.acc.end_training()


def leave_worker(code: int = 0):
    """End a worker of a multi-process run: flush, then leave without the interpreter's teardown.

    With torch 2.13 on CPU, once DistributedDataParallel has checked parameter shapes across processes, the gloo
    process group outlives ``destroy_process_group`` (its worker threads keep running; measured: three threads
    named gloo_tcp_loop / pt_gloo_runloop after the destroy). They are torn down at interpreter exit, and about one
    run in 25 on a busy machine then aborts with "terminate called without an active exception" — after every
    file was written, but with a failing exit status. Call this after ``Trainer.close()`` when
    ``trainer.acc.num_processes > 1``; a single-process run can simply return.
    """
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    logging.shutdown()
    os._exit(code)


def _hardware(device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{platform.processor() or platform.machine()} ({os.cpu_count()} CPUs)"


def _tensorboard(out: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except Exception:  # tensorboard is optional
        return None
    return SummaryWriter(str(out / "tb"))
