"""What a training run optimises: an objective declares its networks and losses; the loop does the rest.

    from noisebrush.train import Trainer, TrainConfig
    from noisebrush.train.objectives import EDMObjective

    Trainer(TrainConfig(steps=2000, out_dir="runs/try"), objective=EDMObjective()).fit()   # the default objective

The loop (:mod:`noisebrush.train.loop`) owns everything that does not depend on *what* is learned: Accelerate and
the precision, the split of each optimizer step's global batch over processes and accumulation steps, the
non-finite guard, weight projection, EMA, LR schedules, checkpoints and exact resume, logs, previews, export and
Ctrl-C. An objective owns the rest, through a small interface:

* :meth:`Objective.build` ``(loop)`` creates the networks and returns ``parts``: an ordered dict of
  :class:`Part` — one trained network with its optimizer, LR scheduler and optional EMA, its gradient-clipping norm
  and whether the loop projects its weights after a step (``net.project_()``, EDM2's forced weight normalisation).
  The first part is the main one: its EMA (or weights) is what gets exported and previewed, its LR is logged.
  ``loop`` gives the accelerator (``loop.acc``), the run folder (``loop.out``, may be None) and ``loop.autocast()``.
* :meth:`Objective.phases` ``(step)`` lists the step's :class:`Phase` s, run in order: each names the part it
  updates, how to build a micro-batch from global sample ids (``batch(ks)``) and the loss of a micro-batch
  (``loss(batch, micro, accum)`` → :class:`Loss`; the value to backpropagate is this micro-batch's share, i.e.
  already divided by ``accum``). The loop accumulates the phase's micro-batches, clips, guards, steps the part's
  optimizer, projects, updates its EMA and steps its scheduler — then runs the next phase. A GAN lists a
  discriminator phase and a generator phase; EDM has one phase.
* :meth:`Objective.describe` — a JSON description of the networks (checkpoints record it; resume checks it);
  :meth:`Objective.model_config` — the config.json of the exported model (``None``: nothing to export);
  optional: :meth:`Objective.sample` (preview pictures), :meth:`Objective.init_weights`, :meth:`Objective.prepared`,
  :meth:`Objective.state` / :meth:`Objective.load_state` (adaptive settings a checkpoint keeps),
  :meth:`Objective.step_done` and ``log_fields`` (the log's extra columns, averaged from ``Loss.stats``),
  :meth:`Objective.unused_parameters` (whether a process's micro-batch can leave weights without a gradient).
  :class:`noisebrush.train.gan.GANObjective` (DDGAN, Diffusion-GAN, the plain GAN) uses all of them.

Randomness: the loop seeds torch's global RNG per micro-batch from (seed, step, micro-batch, process[, phase]) for
dropout masks; everything else an objective draws should come from :mod:`noisebrush.train.stream` (a function of
the global sample id), so that runs split differently or resumed stay bit-identical.

:class:`EDMObjective` is the denoising objective of Karras et al. 2022 ("EDM", eq. 2 with the preconditioning of
table 1 and the loss weight λ(σ) of eq. 8) on the magnitude-preserving UNet, with condition dropout for
classifier-free guidance and an optional L1 penalty on the weight matrices. Its text condition trains on each item's
caption (``captions = "template"``: the data set's one caption, encoded once for the run) or, with ``captions =
"family"`` on the built-in set, on a new phrasing of the item's scene per sample (:mod:`noisebrush.data.captions`,
drawn from the sample stream's ``caption_rng(k)``, encoded as it comes without growing the encoder's cache);
``text_noise`` adds Gaussian noise from the stream to the token embeddings (an embedding-level augmentation).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from noisebrush.data.captions import phrase
from noisebrush.data.folder import ImageFolder
from noisebrush.data.procedural import ProceduralArt
from noisebrush.data.superres import downsample, low_condition
from noisebrush.diffusion import EDMPrecond, karras
from noisebrush.diffusion.losses import edm_loss
from noisebrush.diffusion.noise import SampleNoise
from noisebrush.diffusion.sample import make_denoiser, sample, start
from noisebrush.errors import UserError, warn
from noisebrush.io import model_folder
from noisebrush.nets import registry
from noisebrush.nets.text import TextEncoder
from noisebrush.nets.unet import UNet, UNetConfig
from noisebrush.seeding import mix
from noisebrush.train.checkpoint import load_checkpoint
from noisebrush.train.config import TrainConfig
from noisebrush.train.ema import EMA
from noisebrush.train.lr import make_scheduler
from noisebrush.train.stream import SampleStream

__all__ = ["Part", "Phase", "Loss", "Objective", "EDMObjective", "build_dataset", "resolve_condition", "read_init"]

log = logging.getLogger("noisebrush.train")

SAMPLING_AUG = 0.05  # a super-resolution stage's default σ_aug when painting (its model folder records it)


@dataclass
class Part:
    """One trained network and what updates it. ``module`` is the network as Accelerate prepared it (set by the
    loop; DDP-wrapped in a multi-process run); ``net`` stays the plain network the EMA and checkpoints read."""
    net: torch.nn.Module
    optimizer: Any
    scheduler: Any
    ema: EMA | None = None
    grad_clip: float = 0.0   # max global gradient norm of the part's parameters; 0 = off
    project: bool = True     # call net.project_() after each optimizer step (when the network has one)
    module: torch.nn.Module | None = None


@dataclass
class Loss:
    """A micro-batch's loss. ``value``: what gets backpropagated (this micro-batch's share: divided by the number
    of accumulation steps). ``per_sample``: per-sample losses; a step with any of them not finite is skipped.
    ``sigma``: per-sample noise levels, for the log's per-σ buckets (None: no buckets). ``logged``: the per-sample
    losses the log and :class:`~noisebrush.train.loop.StepResult` report (default: ``per_sample``)."""
    value: torch.Tensor
    per_sample: torch.Tensor
    sigma: torch.Tensor | None = None
    logged: torch.Tensor | None = None
    stats: dict[str, torch.Tensor] | None = None  # per-sample values of the objective's log_fields (averaged)


@dataclass
class Phase:
    """One optimizer update within a step: ``part`` names the part it trains, ``batch(ks)`` builds the micro-batch
    of global samples ``ks``, ``loss(batch, micro, accum)`` computes its :class:`Loss`."""
    part: str
    batch: Callable[[range], Any]
    loss: Callable[[Any, int, int], Loss]


class Objective:
    """The interface the loop trains (see the module docstring). Subclass it; override what you need."""

    log_fields: tuple[str, ...] = ()  # the log's extra columns: averages of Loss.stats and of step_done's values

    def build(self, loop) -> dict[str, Part]:
        raise NotImplementedError

    def phases(self, step: int) -> list[Phase]:
        raise NotImplementedError

    def describe(self) -> dict:
        """A JSON description of the networks: stored in checkpoints, compared on resume (:meth:`same_networks`)."""
        return {}

    def same_networks(self, saved: dict) -> bool:
        """Whether ``saved`` (a checkpoint's :meth:`describe`) describes this run's networks."""
        return saved == self.describe()

    def run_info(self) -> dict:
        """What the run folder's config.json records besides the training config."""
        return {"network": self.describe()}

    def data_size(self) -> int:
        """Items in the data set (recorded in checkpoints)."""
        return 0

    def prepared(self, loop) -> None:
        """Called once the parts' networks and optimizers went through Accelerate (``part.module`` is set)."""

    def unused_parameters(self, cfg: TrainConfig) -> bool:
        """Whether one process's micro-batch can leave trainable weights of a network without a gradient that
        another process's gives one (a clip network's temporal layers, on a process holding only pictures). DDP
        all-reduces the gradients of the weights a backward reached; it must then look for the others every step
        (``find_unused_parameters``), or the processes' collectives no longer match and the run aborts."""
        return False

    def state(self) -> dict:
        """What a checkpoint keeps besides weights, optimizers and the step (JSON; an adaptive setting, say).
        Called on every process of a multi-process run (a collective step, so it may reduce counters over them);
        the main process's answer is saved."""
        return {}

    def load_state(self, state: dict | None) -> None:
        """Restore :meth:`state` on resume (None: a checkpoint without one), on every process."""

    def step_done(self, step: int) -> dict:
        """Called after each optimizer step (``step`` counts it); returns values for the log's extra columns."""
        return {}

    def init_weights(self, source: str) -> None:
        raise UserError(f"init: {type(self).__name__} cannot start from other weights ({source})")

    def model_config(self) -> dict | None:
        """config.json of the exported model, without format and provenance (the loop adds those); None: the
        objective exports nothing."""
        return None

    def sample(self, n: int = 16, steps: int | None = None, seeds=None) -> torch.Tensor | None:
        """Preview pictures (N×C×H×W in [-1, 1]) from the main part's EMA; None: no previews."""
        return None


class _Pixels:
    """A [-1, 1] picture kept as its uint8 pixels (a quarter of the memory): ProceduralArt makes its float
    pictures from uint8 as ``u / 127.5 - 1``, so :meth:`image` gives them back bit for bit."""
    __slots__ = ("u8",)

    def __init__(self, x: torch.Tensor):
        self.u8 = (x.float() + 1).mul_(127.5).round_().clamp_(0, 255).to(torch.uint8)

    def image(self) -> torch.Tensor:
        return self.u8.float().div_(127.5).sub_(1.0)


def build_dataset(cfg: TrainConfig):
    """The data set a config names: ``builtin`` → ProceduralArt, anything else → ImageFolder."""
    if cfg.data == "builtin":
        return ProceduralArt(resolution=cfg.resolution, size=cfg.data_size, seed=0)
    return ImageFolder(cfg.data, resolution=cfg.resolution, crop=cfg.crop, flip=cfg.flip, seed=cfg.seed)


def resolve_condition(cfg: TrainConfig, dataset) -> str:
    """The condition a config asks for; ``auto``: text for the built-in set and captioned folders, label for
    folders of several classes, else none."""
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


def read_init(source: str, net: torch.nn.Module | None = None) -> tuple[dict | None, dict, dict, int]:
    """(network config, weights, EMA weights, EMA updates) of the ``init`` a config names: a model folder
    ("builtin" included; it holds the average only; one built on a base is completed for ``net``) or a checkpoint
    folder (raw weights and their average)."""
    path = Path(source)
    if path.is_dir() and (path / "state.json").is_file():
        ck = load_checkpoint(path)
        return ck["net_config"], ck["model"], ck["ema"], ck["ema_updates"]
    path = model_folder.resolve(source)
    conf = model_folder.read_config(path)
    state = registry.load_weights(path, conf, net) if net is not None else model_folder.read_weights(path)
    return conf.get("unet"), state, state, 0


class EDMObjective(Objective):
    """EDM denoising (see the module docstring) on a :class:`~noisebrush.nets.unet.UNet` described by the config.

    ``dataset``: the data (default: :func:`build_dataset` of the config); ``text_encoder``: for text conditioning
    (default: :class:`noisebrush.nets.text.TextEncoder`). The config is the loop's :class:`TrainConfig`."""

    def __init__(self, *, dataset=None, text_encoder=None):
        self.dataset, self.text = dataset, text_encoder
        self.cfg: TrainConfig | None = None
        self.den = None

    # -- set-up ----------------------------------------------------------------------------------------------------
    def build(self, loop) -> dict[str, Part]:
        self.loop = loop
        self.cfg = loop.cfg
        self._prepare_data()
        self.net_config = self._network_config()
        return self._make_parts()

    def _prepare_data(self) -> None:
        """The data set, the condition, the caption mode and the sample stream of the run."""
        cfg = self.cfg
        if self.dataset is None:
            self.dataset = build_dataset(cfg)
        if len(self.dataset) < 1:
            raise UserError("the data set is empty")
        self.condition = resolve_condition(cfg, self.dataset)
        self.family = cfg.captions == "family"
        if self.family and (self.condition != "text" or not hasattr(self.dataset, "scene")):
            raise UserError("captions = \"family\" needs the built-in data set (its scenes) and a text condition")
        if cfg.text_noise and self.condition != "text":
            raise UserError(f"text_noise = {cfg.text_noise} needs a text condition (this run's is {self.condition})")
        self._uses_epoch = hasattr(self.dataset, "get")
        self._image_cache: dict[int, dict] = {}
        self._cache_images = type(self.dataset).__name__ == "ProceduralArt"  # deterministic renders: keep them
        self.stream = SampleStream(len(self.dataset), cfg.seed, P_mean=cfg.P_mean, P_std=cfg.P_std,
                                   cond_drop=cfg.cond_drop)
        self.sr = cfg.superres() if cfg.task == "sr" else None

    def _network_config(self) -> UNetConfig:
        cfg = self.cfg
        picture = {"cond_channels": int(cfg.model.get("in_channels", 3)), "aug_cond": True} if self.sr else {}
        net_config = UNetConfig.from_dict({"resolution": cfg.resolution, **cfg.model, **self._cond_dims(), **picture})
        if self.sr:
            self.sr.check_resolution(cfg.resolution, net_config.step)
        return net_config

    def _make_parts(self) -> dict[str, Part]:
        """The network (seeded by the run's seed), its EMA, AdamW and the LR schedule."""
        cfg = self.cfg
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(mix(cfg.seed, 0x1417))
            self.net = UNet(self.net_config)
        ema = EMA(self.net, cfg.ema_decay)
        decay, plain = [], []
        for name, p in self.net.named_parameters():
            if cfg.train_only and not any(t in name for t in cfg.train_only):
                p.requires_grad_(False)  # frozen: no gradient, no update, no projection
                continue
            (decay if p.ndim >= 2 else plain).append(p)
        if not decay + plain:
            raise UserError(f"train_only: no weight of the network has a name containing "
                            f"{' or '.join(map(repr, cfg.train_only))}")
        self._l1_params = decay
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                                 {"params": plain, "weight_decay": 0.0}], lr=cfg.lr, betas=cfg.betas)
        plan = self.plan = getattr(self.loop, "lr_steps", None) or cfg.steps  # a resumed run keeps its plan
        sched = make_scheduler(opt, cfg.lr_schedule, plan, warmup=cfg.warmup, final=cfg.lr_final)
        return {"model": Part(self.net, opt, sched, ema, grad_clip=cfg.grad_clip, project=True)}

    def _cond_dims(self) -> dict:
        """text_dim and label_dim of the network (loads the text encoder and encodes the captions when needed)."""
        text_dim = label_dim = 0
        if self.condition == "text":
            if self.text is None:
                # A family run encodes every step's phrasings: on a GPU's run, on the GPU (the CPU would take
                # ~0.2 s per batch of 32 there, longer than the network's step); elsewhere on the CPU as before.
                dev = torch.device(self.loop.acc.device)
                device = dev if self.family and dev.type == "cuda" else "cpu"
                self.text = TextEncoder(max_tokens=self.cfg.max_tokens, device=device)
            text_dim = self.text.dim
            if not self.family:  # a family run encodes its phrasings as they come (see batch)
                self._encode_captions()
            else:
                self._check_phrasing_lengths()
        else:
            self.text = None
            if self.condition == "label":
                label_dim = int(getattr(self.dataset, "num_classes", 0))
                if label_dim < 2:
                    raise UserError("condition=label needs a data set with at least two classes (subfolders)")
        return {"text_dim": text_dim, "label_dim": label_dim}

    def _check_phrasing_lengths(self, n: int = 512) -> None:
        """Warn when more than 1 % of the first ``n`` samples' phrasings have more word pieces than the encoder
        keeps (``max_tokens`` - 2): their last words — often the background, position or time of day — are cut."""
        count = getattr(self.text, "word_pieces", None)
        if count is None:
            return
        keep = self.text.max_tokens - 2
        long = sum(count(phrase(self.dataset.scene(self.stream.item(k)[0]), self.stream.caption_rng(k))) > keep
                   for k in range(n))
        if long > n // 100:
            warn(f"captions = \"family\": {long / n:.0%} of the phrasings are longer than max_tokens = "
                 f"{self.text.max_tokens} keeps ({keep} word pieces) and lose their last words; max_tokens = 24 "
                 f"keeps them all")

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
        with self.loop.acc.main_process_first():  # one process writes the cache, the others read it
            self.text.encode_dataset(unique, cache_path=self.loop.out / "text-cache.safetensors", progress=False)

    def prepared(self, loop) -> None:
        self.den = EDMPrecond(loop.parts["model"].module, sigma_data=self.cfg.sigma_data)

    def describe(self) -> dict:
        return self.net_config.to_dict()

    def same_networks(self, saved: dict) -> bool:
        return UNetConfig.same(saved, self.describe())  # a checkpoint from before a setting existed still resumes

    def run_info(self) -> dict:
        return {"network": self.net_config.to_dict(), "condition": self.condition}

    def data_size(self) -> int:
        return len(self.dataset)

    def init_weights(self, source: str) -> None:
        """Load the weights of a model folder ("builtin" included) or a checkpoint into the network and its EMA."""
        net_config, state, ema, updates = read_init(source, self.net)
        if not UNetConfig.same(net_config or {}, self.net_config.to_dict()):
            raise UserError(f"init: {source} holds another network than this config describes (check [model], "
                            f"resolution and condition)")
        self._load(source, state, ema, updates)

    def _load(self, source: str, state: dict, ema: dict, updates: int) -> None:
        part = self.loop.parts["model"]
        try:
            self.net.load_state_dict({k: v.to(torch.float32) for k, v in state.items()})
            part.ema.load_state_dict({k: v.to(torch.float32) for k, v in ema.items()}, updates)
        except RuntimeError as e:
            raise UserError(f"init: the weights in {source} do not fit the network ({str(e).splitlines()[0]})") \
                from None

    # -- data ------------------------------------------------------------------------------------------------------
    def _image(self, index: int, epoch: int) -> dict:
        if self._cache_images and index in self._image_cache:
            return self._image_cache[index]
        item = self.dataset.get(index, epoch) if self._uses_epoch else self.dataset[index]
        if self._cache_images:  # deterministic renders: keep what the loop uses, the picture as its uint8 pixels
            item = {k: item[k] for k in ("image", "caption", "label", "index") if k in item}
            item["image"] = _Pixels(item["image"])
            self._image_cache[index] = item
        return item

    def caption(self, k: int, index: int, item: dict | None = None) -> str:
        """The caption global sample ``k`` (data item ``index``) trains on: with ``captions = "family"`` a phrasing
        of the item's scene drawn from (seed, k) (:meth:`SampleStream.caption_rng`), else the item's caption."""
        if self.family:
            return phrase(self.dataset.scene(index), self.stream.caption_rng(k))
        if item is not None and "caption" in item:
            return item["caption"]
        return self.dataset.caption(index)

    def _encode(self, ks, captions: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Token embeddings of a micro-batch's captions. Family phrasings bypass the encoder's in-memory cache
        (``encode_uncached``; it would grow by every new phrasing, ~24 KB each); ``text_noise`` adds N(0, σ²) from
        the sample stream to every real token."""
        uncached = getattr(self.text, "encode_uncached", None) if self.family else None
        tok, mask = (uncached or self.text.encode)(captions)
        if self.cfg.text_noise:
            noise = torch.stack([self.stream.token_noise(k, tok.shape[1:]) for k in ks])
            tok = tok + self.cfg.text_noise * noise * mask.unsqueeze(-1)
        return tok, mask

    def batch(self, ks) -> dict:
        """Images, σ, noise and conditions of the global samples ``ks`` (and, for a text condition, ``captions``)."""
        images, sigmas, noises, drops, captions, labels, lows, augs = [], [], [], [], [], [], [], []
        for k in ks:
            index, epoch = self.stream.item(k)
            item = self._image(index, epoch)
            x0 = item["image"]
            x0 = x0.image() if isinstance(x0, _Pixels) else x0
            if self.sr:  # a crop of the picture, and its degraded low-resolution copy as the condition
                x0, low, aug = self.sr.training_pair(x0, self.stream.condition_generator(k))
                lows.append(low), augs.append(aug)
            elif self.cfg.progressive:  # coarse-to-fine: the picture box-averaged to this step's size
                size = self.cfg.resolution_at(k // self.cfg.batch_size, self.plan)
                if size != x0.shape[-1]:
                    x0 = downsample(x0, x0.shape[-1] // size)
            sigma, noise, drop = self.stream.draws(k, x0.shape)
            sigmas.append(sigma), noises.append(noise), drops.append(drop), images.append(x0)
            if self.condition == "text":
                captions.append(self.caption(k, index, item))
            elif self.condition == "label":
                labels.append(int(item["label"]) if "label" in item else int(self.dataset[index]["label"]))
        dev = self.loop.acc.device
        out = {"x0": torch.stack(images).to(dev), "sigma": torch.tensor(sigmas, dtype=torch.float64, device=dev),
               "noise": torch.stack(noises).to(dev), "cond": {}}
        drop = torch.tensor(drops, device=dev)
        if self.condition == "text":
            tok, mask = self._encode(ks, captions)
            out["cond"] = {"text": tok.to(dev), "text_mask": mask.to(dev), "drop": drop}
            out["captions"] = captions
        elif self.condition == "label":
            out["cond"] = {"labels": torch.tensor(labels, device=dev), "drop": drop}
        if self.sr:
            out["cond"] |= {"low": torch.stack(lows).to(dev), "aug": torch.tensor(augs, device=dev)}
        return out

    # -- the loss --------------------------------------------------------------------------------------------------
    def phases(self, step: int) -> list[Phase]:
        return [Phase("model", self.batch, self.loss)]

    def loss(self, batch: dict, micro: int, accum: int) -> Loss:
        """EDM's λ(σ)-weighted denoising loss of the micro-batch, plus λ_L1·Σ|w| over the weight matrices."""
        cfg = self.cfg
        with self.loop.autocast():
            per = edm_loss(self.den, batch["x0"], sigma=batch["sigma"], noise=batch["noise"],
                           sigma_data=cfg.sigma_data, **batch["cond"])
        loss = per.float().mean() / accum
        if cfg.l1:
            loss = loss + cfg.l1 * sum(p.abs().sum() for p in self._l1_params) / accum
        return Loss(loss, per.detach().float(), batch["sigma"])

    # -- previews and the exported model -----------------------------------------------------------------------------
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
        """EMA-model samples with the preview conditions (N×C×H×W in [-1, 1]), batched, without guidance."""
        cfg, dev = self.cfg, self.loop.acc.device
        den = EDMPrecond(self.loop.parts["model"].ema.model, sigma_data=cfg.sigma_data)
        seeds = list(range(n)) if seeds is None else list(seeds)
        noise = SampleNoise.from_seeds(seeds)
        shape = (self.net_config.in_channels, *([cfg.resolution] * self.net_config.dims))
        sigmas = karras(steps or cfg.sample_steps, sigma_min=0.002, sigma_max=80.0)
        cond = {k: v.to(dev) for k, v in self.preview_conditions(len(seeds)).items()}
        if self.sr:  # the previews upscale the first pictures of the data set, without augmentation
            pictures = [self.dataset[i % len(self.dataset)]["image"] for i in range(len(seeds))]
            lows = [low_condition(downsample(p, self.sr.scale), self.sr.scale) for p in pictures]
            size = pictures[0].shape[-2:]
            shape = (self.net_config.in_channels, *size)
            cond |= {"low": torch.stack(lows).to(dev), "aug": torch.zeros(len(seeds), device=dev)}
        x = start(noise, shape, sigmas, device=dev)
        return sample(make_denoiser(den, cond), x, sigmas.to(dev), noise, sampler=cfg.sampler).clamp(-1, 1).cpu()

    def model_config(self) -> dict:
        cfg = self.cfg
        return {
            "network": "unet",
            "unet": self.net_config.to_dict(),
            "sigma_data": cfg.sigma_data,
            # how to sample it: Karras et al. 2022's schedule over the σ range the loss trained on
            "schedule": {"kind": "karras", "sigma_min": 0.002, "sigma_max": 80.0, "rho": 7.0,
                         "sampler": cfg.sampler, "steps": cfg.sample_steps},
            "resolution": cfg.resolution,
            "condition": self.condition,
            "text_encoder": ({"name": self.text.name, "max_tokens": self.text.max_tokens} if self.text else None),
            "classes": list(getattr(self.dataset, "classes", [])) if self.condition == "label" else None,
            **({"task": "sr", "superres": {**self.sr.to_dict(), "sampling_aug": SAMPLING_AUG}} if self.sr else {}),
        }
