"""Training configuration: one dataclass, readable from TOML, with flags (keyword overrides) on top.

    cfg = TrainConfig.from_toml("configs/builtin.toml", steps=2000)

A TOML file holds the fields below at top level and the network's fields in a ``[model]`` table
(see :class:`noisebrush.nets.unet.UNetConfig`).

Every value is checked against its declared type before anything is built (the fields' annotations here, the
network config class's for ``model`` keys; an unknown key names the known ones), so ``channel_mult = "[1,2"`` is
one :class:`~noisebrush.errors.BadParameter` line, not a traceback from the network. ``warmup`` left unset (None)
fits the run: min(200, steps // 10) steps; a warmup that is given is kept, and must be shorter than the run.

``minutes`` instead of ``steps`` trains for a time budget (:mod:`noisebrush.train.budget`): the trainer measures
its own speed and plans (and re-plans) the steps that fill it; ``steps`` then stays unset (None). Without
``batch_size`` a budget run takes :func:`~noisebrush.train.budget.budget_batch` of its minutes (a step-count run:
64), and without ``warmup`` a tenth of its first plan, at most 200 steps. A short budget's picture diffusion run
without ``init`` takes the network settings of :func:`~noisebrush.train.budget.budget_model` it does not name
itself (up to 10 minutes: one block per level, 2×2-cell patches where the resolution allows, no self-attention)
and, without ``lr``, the peak LR of :func:`~noisebrush.train.budget.budget_lr` (up to 10 minutes: 2e-2, not 1e-2).

Resuming a run (``noisebrush train --resume``) starts from the run's own config (:func:`run_config` reads it from
the run folder) and :func:`merge_for_resume` lays the values given again on top: :data:`RESUME_MAY_CHANGE` may
change, any other key must agree with the run.
"""
from __future__ import annotations

import dataclasses
import json
import sys
import types
import typing

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib
from dataclasses import dataclass, field
from pathlib import Path

from noisebrush.data.superres import SuperRes
from noisebrush.diffusion.samplers import get_sampler
from noisebrush.errors import BadParameter, UserError
from noisebrush.nets import registry
from noisebrush.checks import number
from noisebrush.train.budget import MAX_MINUTES, budget_batch, budget_lr, budget_model
from noisebrush.train.checkpoint import latest_checkpoint
from noisebrush.train.lr import LR_SCHEDULES

__all__ = ["TrainConfig", "METHODS", "METHOD_DEFAULTS", "TASKS", "CAPTIONS", "CONDITIONS", "PRECISIONS",
           "DEFAULT_WARMUP", "DEFAULT_STEPS", "RESUME_MAY_CHANGE",
           "check_type", "read_toml", "run_config", "merge_for_resume"]

CONDITIONS = ("auto", "text", "label", "none")
METHODS = ("diffusion", "ddgan", "diffusion-gan", "gan")
# the optimiser settings a method gets unless told (lr: the main network's; a GAN's discriminator has d_lr)
METHOD_DEFAULTS = {"diffusion": {"lr": 1e-2, "betas": (0.9, 0.99)}, "gan": {"lr": 2e-3, "betas": (0.5, 0.9)}}
TASKS = ("image", "sr", "video", "shape")
CAPTIONS = ("template", "family")
PRECISIONS = ("auto", "bf16", "fp16", "no")
DEFAULT_WARMUP = 200  # the warmup of a run of ≥ 2000 steps when none is given (steps // 10 below that)
DEFAULT_STEPS = 10_000  # a run given neither steps nor minutes

# What a resumed run may change (everything else must agree with the run, since a checkpoint restores it — the
# optimizer's lr, betas and decay, the LR schedule — or the run's samples and network depend on it):
# steps or minutes (where to stop, in all: the LR schedule keeps the run's plan and holds its final value past
# it; a run keeps its kind, steps or minutes), where and how
# often to log, checkpoint and preview, the previews' sampler, and the precision and accumulation (the machine's
# business: the global batch and so the samples stay the same).
RESUME_MAY_CHANGE = frozenset({"steps", "minutes", "out_dir", "log_every", "sample_every", "sample_steps", "sampler",
                               "checkpoint_every", "keep_last", "mixed_precision", "grad_accum"})


@dataclass
class TrainConfig:
    # data
    data: str = "builtin"              # "builtin" (ProceduralArt) or a folder of pictures
    resolution: int = 32
    data_size: int = 60_000            # number of ProceduralArt items (builtin only)
    crop: str = "center"               # folders: "center" or "random"
    flip: bool = False                 # folders: random horizontal flips
    condition: str = "auto"            # text | label | none; auto = text for builtin or captioned folders,
                                       #   label for folders with several subfolders, else none
    cond_drop: float = 0.1             # probability of training a sample unconditionally (for CFG)
    max_tokens: int = 16
    captions: str = "template"         # builtin + text: "template" = each scene's one caption; "family" = a new
                                       #   phrasing per (seed, step, sample) from noisebrush.data.captions
    text_noise: float = 0.0            # std of Gaussian noise added to every real token embedding in training
                                       #   (MiniLM token states have RMS ≈ 0.42); 0 = off
    # task: "image" paints pictures; "sr" is a super-resolution stage (noisebrush.data.superres): it learns the
    # resolution-px pictures from their box-averaged 1/scale copies, on crop_size crops (0 = whole pictures);
    # "video" clips (noisebrush.train.video); "shape" 3-D shapes as signed-distance grids (noisebrush.train.shape)
    task: str = "image"
    scale: int = 2                     # sr: the upscaling factor (2 or 4)
    crop_size: int = 0                 # sr: side of the high-resolution crops it trains on; 0 = whole pictures
    sr_aug_max: float = 0.5            # sr: noise-conditioning augmentation σ_aug ~ U(0, sr_aug_max) on the low
                                       #   resolution picture ([-1, 1] units); the network is told σ_aug
    sr_blur: float = 0.0               # sr: Gaussian blur of up to this many low-resolution pixels on half the
                                       #   samples (CDM's augmentation for the higher stage); 0 = none
    # task "video": a factorised space-time UNet on ProceduralClips (noisebrush.data.clips), text-conditioned, trained
    # jointly on pictures and clips and, MCVD-style, on clips with some frames given (noisebrush.train.video)
    frames: int = 16                   # video: frames per training clip (the model's default length)
    joint_images: int = 0              # video: how many of each step's batch_size samples are pictures
                                       #   (ProceduralArt, 1-frame clips: the temporal layers are skipped)
    frame_noise: float = 0.0           # video: the correlation of a clip's frames' noise (PYoCo's mixed noise prior,
                                       #   noisebrush.diffusion.noise.correlate_frames); 0 = independent
    frame_masks: tuple[float, ...] = (0.5, 0.2, 0.15, 0.15)  # video: the shares of clips trained with no frame
                                       #   given (text → clip), the first (picture → clip), the first and the last
                                       #   (interpolation), and the first 2..frames/2 (extension)
    # progressive (coarse-to-fine) training of a picture model: the fractions of the run at which the training
    # resolution doubles, starting from resolution / 2^len(progressive); [] = off. [0.4, 0.7] at 128 px trains at
    # 32 px for the first 40% of the steps, at 64 px to 70%, then at 128 px (pictures box-averaged down)
    progressive: tuple[float, ...] = ()
    # network: fields of UNetConfig (dims, channels, channel_mult, blocks, attn_resolutions, dropout, ...)
    model: dict = field(default_factory=dict)
    # EDM loss (Karras et al. 2022)
    sigma_data: float = 0.5
    P_mean: float = -1.2
    P_std: float = 1.2
    # optimisation
    steps: int | None = None           # None: 10,000, or planned from minutes
    minutes: float | None = None       # a time budget instead of steps (noisebrush.train.budget): the run plans
                                       #   and re-plans its steps to end after this many minutes
    batch_size: int | None = None      # global batch per optimizer step (all processes, all accumulation steps);
                                       #   None: 64, or budget_batch(minutes) for a budget run
    grad_accum: int = 1
    lr: float | None = None            # None: the method's (METHOD_DEFAULTS). Diffusion: 1e-2 — Adam on unit-RMS
                                       #   (magnitude-preserving) weights learns ~2× faster than at 2e-3 here (eval
                                       #   loss 0.43 vs 0.73 after 80 steps); a GAN's generator: 2e-3
    betas: tuple[float, float] | None = None  # None: the method's ((0.9, 0.99); GANs (0.5, 0.9))
    lr_schedule: str = "cosine"
    warmup: int | None = None          # None: min(200, steps // 10), to fit the run (a budget run: of its
                                       #   first plan)
    lr_final: float = 0.05             # final LR as a fraction of lr (linear, exponential, cosine)
    weight_decay: float = 0.0          # AdamW's decoupled L2
    l1: float = 0.0                    # L1 penalty λ·Σ|w| added to the loss
    grad_clip: float = 1.0             # max global gradient norm; 0 = off
    ema_decay: float = 0.999
    mixed_precision: str = "auto"      # auto = bf16 where the hardware runs it fast, else no
    seed: int = 0
    train_only: tuple[str, ...] = ()   # train only the weights whose names contain one of these strings (the rest
                                       #   stay exactly as initialised); () = all
    init: str = ""                     # start from these weights: "builtin", a model folder or a checkpoint folder
                                       #   (same network; the optimizer, LR schedule and step start fresh)
    # method: "diffusion" (EDM denoising); the diffusion GANs of noisebrush.train.gan: "ddgan" (a generator learns
    # each of gan_steps large denoising steps against a discriminator), "diffusion-gan" (a one-step generator, the
    # discriminator reading diffused pictures at an adaptive depth), "gan" (the plain conditional GAN: DDGAN's T = 1)
    method: str = "diffusion"
    gan_steps: int = 4                 # ddgan: T, the steps of the chain (1-8; painting takes exactly these)
    latent_dim: int = 64               # GANs: the size of the generator's latent z
    disc: dict = field(default_factory=dict)  # GANs: discriminator settings (noisebrush.nets.disc.DiscConfig:
                                       #   channels, channel_mult, mbstd_group)
    d_lr: float = 2e-4                 # GANs: the discriminator's learning rate (AdamW, the run's betas)
    r1: float = 0.05                   # GANs: R1 weight γ (γ/2·‖∇D(real)‖²); 0 = off
    r1_every: int = 4                  # GANs: lazy R1, every this many steps (weighted by it)
    ada_target: float = 0.6            # diffusion-gan: the target of r_d = E[sign(D(real))]
    ada_every: int = 4                 # diffusion-gan: update T every this many steps
    ada_kimg: float = 20.0             # diffusion-gan: thousands of pictures for T to move across 1000 levels
    ada_t_min: int = 5                 # diffusion-gan: T's bounds (levels of DDPM's 1000-step table)
    ada_t_max: int = 500
    # output
    out_dir: str = "runs/default"
    log_every: int = 25
    sample_every: int = 1000           # 0 = never
    sample_steps: int = 20
    sampler: str = "dpmpp_2m"
    checkpoint_every: int = 500        # 0 = only at the end
    keep_last: int = 3

    def __post_init__(self):
        self._check_types()
        if self.method not in METHODS:
            raise BadParameter(f"method: one of {', '.join(METHODS)}; got {self.method!r}")
        defaults = METHOD_DEFAULTS["diffusion" if self.method == "diffusion" else "gan"]
        lr_given = self.lr is not None
        self.lr = defaults["lr"] if self.lr is None else self.lr
        self.betas = tuple(float(b) for b in (defaults["betas"] if self.betas is None else self.betas))
        if self.method != "diffusion":
            self._check_gan()
        self.model = dict(self.model)
        _check_model(self.model)
        self._resolve_budget(lr_given)
        if self.warmup is None and isinstance(self.steps, int) and self.steps >= 1:
            self.warmup = min(DEFAULT_WARMUP, self.steps // 10)
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise BadParameter(f"betas: two numbers in [0, 1), got {list(self.betas)}")
        try:
            get_sampler(self.sampler)
        except BadParameter as e:
            raise BadParameter(str(e)) from None
        if not self.sigma_data > 0 or not self.P_std > 0:
            raise BadParameter("sigma_data and P_std: must be > 0")
        if not 0 <= self.ema_decay < 1:
            raise BadParameter(f"ema_decay: in [0, 1), got {self.ema_decay}")
        positive = ("resolution", "data_size", "steps", "batch_size", "grad_accum", "max_tokens", "sample_steps")
        for name in positive:
            if getattr(self, name) is not None and int(getattr(self, name)) < 1:
                raise BadParameter(f"{name}: must be ≥ 1, got {getattr(self, name)}")
        for name in ("log_every", "sample_every", "checkpoint_every", "keep_last", "warmup"):
            if getattr(self, name) is not None and int(getattr(self, name)) < 0:
                raise BadParameter(f"{name}: must be ≥ 0, got {getattr(self, name)}")
        if self.condition not in CONDITIONS:
            raise BadParameter(f"condition: one of {', '.join(CONDITIONS)}; got {self.condition!r}")
        if self.mixed_precision not in PRECISIONS:
            raise BadParameter(f"mixed_precision: one of {', '.join(PRECISIONS)}; got {self.mixed_precision!r}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise BadParameter(f"lr_schedule: one of {', '.join(LR_SCHEDULES)}; got {self.lr_schedule!r}")
        if self.crop not in ("center", "random"):
            raise BadParameter(f"crop: 'center' or 'random', got {self.crop!r}")
        if not 0 <= self.cond_drop < 1:
            raise BadParameter(f"cond_drop: in [0, 1), got {self.cond_drop}")
        if self.task not in TASKS:
            raise BadParameter(f"task: one of {', '.join(TASKS)}; got {self.task!r}")
        if self.task == "sr":
            self.superres()  # checks scale, crop_size, sr_aug_max, sr_blur
            if self.captions == "family":
                raise BadParameter("captions: 'family' is for pictures (task = \"image\")")
        self.frame_masks = tuple(float(f) for f in self.frame_masks)
        self.train_only = tuple(str(t) for t in self.train_only)
        if any(not t.strip() for t in self.train_only):
            raise BadParameter(f"train_only: parts of weight names (non-empty), got {list(self.train_only)}")
        if self.task == "video":
            self._check_video()
        if self.task == "shape":
            self._check_shape()
        self.progressive = tuple(float(f) for f in self.progressive)
        if self.progressive:
            if self.task != "image":
                raise BadParameter("progressive: for picture models (task = \"image\")")
            if list(self.progressive) != sorted(self.progressive) or not all(0 < f < 1 for f in self.progressive) \
                    or len(set(self.progressive)) != len(self.progressive):
                raise BadParameter(f"progressive: increasing fractions of the run in (0, 1), got "
                                   f"{list(self.progressive)}")
            if self.resolution % (2 ** len(self.progressive)) or self.resolution >> len(self.progressive) < 8:
                raise BadParameter(f"progressive: {len(self.progressive)} doublings do not fit a resolution of "
                                   f"{self.resolution} (the first stage must be ≥ 8 px and a whole number)")
        if self.captions not in CAPTIONS:
            raise BadParameter(f"captions: one of {', '.join(CAPTIONS)}; got {self.captions!r}")
        if self.captions == "family" and (self.data != "builtin" or self.condition not in ("auto", "text")):
            raise BadParameter("captions: 'family' phrases the built-in scenes for a text condition (data = "
                               "\"builtin\", condition = \"text\" or \"auto\")")
        if not 0 <= self.text_noise <= 10:
            raise BadParameter(f"text_noise: in [0, 10], got {self.text_noise}")
        if not self.lr > 0:
            raise BadParameter(f"lr: must be > 0, got {self.lr}")
        for name in ("weight_decay", "l1", "grad_clip"):
            if getattr(self, name) < 0:
                raise BadParameter(f"{name}: must be ≥ 0, got {getattr(self, name)}")
        if self.batch_size % self.grad_accum:
            raise BadParameter(f"batch_size: {self.batch_size} is not divisible by grad_accum={self.grad_accum}")
        if self.steps is not None and self.warmup >= self.steps:
            raise BadParameter(f"warmup: {self.warmup} steps is not shorter than the run (steps = {self.steps}); "
                               f"give a smaller warmup, or leave it out (it is then steps/10, at most "
                               f"{DEFAULT_WARMUP})")

    def _resolve_budget(self, lr_given: bool) -> None:
        """``steps`` or ``minutes`` (not both), and the defaults that follow from them (``lr_given``: the run
        named its lr)."""
        if self.minutes is None:
            self.steps = DEFAULT_STEPS if self.steps is None else self.steps
            self.batch_size = 64 if self.batch_size is None else self.batch_size
            return
        if self.steps is not None:
            raise BadParameter(f"minutes: a run is planned by steps or by minutes, not both (steps = {self.steps}, "
                               f"minutes = {self.minutes:g})")
        self.minutes = number("minutes", self.minutes, 0, MAX_MINUTES, above=True)
        if self.progressive:
            raise BadParameter("progressive: needs a step count (steps), not a time budget (minutes)")
        if self.batch_size is None:
            self.batch_size = budget_batch(self.minutes)
        if self.task == "image" and self.method == "diffusion" and not self.init:  # a given network stays as it is
            chosen = {k: v for k, v in budget_model(self.minutes).items() if k not in self.model}
            levels = len(self.model.get("channel_mult", _network_defaults()["channel_mult"]))
            if self.resolution % (2 ** (levels - 1) * chosen.get("patch", 1)):
                chosen.pop("patch", None)  # a resolution the folded grid would not divide keeps whole cells
            self.model.update(chosen)
            if not lr_given:
                self.lr = budget_lr(self.minutes) or self.lr

    def _check_gan(self) -> None:
        if self.task != "image":
            raise BadParameter(f"method: {self.method} trains pictures (task = \"image\"), not {self.task!r}")
        if not 1 <= self.gan_steps <= 8:
            raise BadParameter(f"gan_steps: from 1 to 8, got {self.gan_steps}")
        if not 1 <= self.latent_dim <= 1024:
            raise BadParameter(f"latent_dim: from 1 to 1024, got {self.latent_dim}")
        if not self.d_lr > 0:
            raise BadParameter(f"d_lr: must be > 0, got {self.d_lr}")
        if not 0 <= self.r1 <= 100:
            raise BadParameter(f"r1: in [0, 100], got {self.r1}")
        for name in ("r1_every", "ada_every"):
            if not 1 <= getattr(self, name) <= 1000:
                raise BadParameter(f"{name}: from 1 to 1000, got {getattr(self, name)}")
        if not 0 < self.ada_target < 1:
            raise BadParameter(f"ada_target: in (0, 1), got {self.ada_target}")
        if not 0 < self.ada_kimg <= 100_000:
            raise BadParameter(f"ada_kimg: in (0, 100000], got {self.ada_kimg}")
        if not 0 <= self.ada_t_min <= self.ada_t_max <= 1000:
            raise BadParameter(f"ada_t_min/ada_t_max: need 0 ≤ ada_t_min ≤ ada_t_max ≤ 1000, got {self.ada_t_min}, "
                               f"{self.ada_t_max}")
        if self.progressive:
            raise BadParameter(f"progressive: not for {self.method} (its generator learns the full size)")
        try:
            registry.get("disc").make_config({"resolution": self.resolution, **self.disc})
        except (BadParameter, TypeError) as e:
            raise BadParameter(f"disc: {e}") from None

    def _check_video(self) -> None:
        if not 1 <= self.frames <= 64:
            raise BadParameter(f"frames: a whole number from 1 to 64, got {self.frames}")
        if not 0 <= self.joint_images < self.batch_size:
            raise BadParameter(f"joint_images: from 0 to batch_size - 1 ({self.batch_size - 1}), got "
                               f"{self.joint_images}")
        if not 0 <= self.frame_noise <= 0.95:
            raise BadParameter(f"frame_noise: in [0, 0.95], got {self.frame_noise}")
        if len(self.frame_masks) != 4 or min(self.frame_masks) < 0 or abs(sum(self.frame_masks) - 1) > 1e-6:
            raise BadParameter(f"frame_masks: four shares ≥ 0 that add up to 1 (none, first, first and last, "
                               f"first few), got {list(self.frame_masks)}")
        if self.data != "builtin":
            raise BadParameter("task: \"video\" trains on the built-in clips (data = \"builtin\"); folders of clips "
                               "are not read yet")
        if self.condition not in ("auto", "text"):
            raise BadParameter("condition: a video model is text-conditioned (\"text\" or \"auto\")")
        if self.model.get("dims", 3) != 3 or self.model.get("factorized", True) is not True:
            raise BadParameter("model: a video model is a factorised clip network (dims = 3, factorized = true)")

    def _check_shape(self) -> None:
        if self.data != "builtin":
            raise BadParameter("task: \"shape\" trains on the built-in shapes (data = \"builtin\"); folders of "
                               "meshes are not read yet")
        if self.condition not in ("auto", "text"):
            raise BadParameter("condition: a shape model is text-conditioned (\"text\" or \"auto\")")
        if self.model.get("dims", 3) != 3 or self.model.get("factorized", False):
            raise BadParameter("model: a shape model is a volumetric network (dims = 3, factorized = false)")
        if self.captions != "template":
            raise BadParameter("captions: a shape trains on its one caption (\"template\")")

    def superres(self):
        """The super-resolution task of a ``task = "sr"`` config (:class:`noisebrush.data.superres.SuperRes`)."""
        sr = SuperRes(scale=self.scale, crop=self.crop_size, aug_max=self.sr_aug_max, blur_max=self.sr_blur)
        sr.check_resolution(self.resolution)
        return sr

    def resolution_at(self, step: int, plan: int | None = None) -> int:
        """The picture size step ``step`` trains at (``progressive``: smaller before each doubling, placed in a run of
        ``plan`` steps: the run's own plan, which a resume with more ``--steps`` keeps, as the LR schedule does)."""
        halvings = sum(1 for f in self.progressive if step < f * (plan or self.steps))
        return self.resolution >> halvings

    def _check_types(self) -> None:
        """Every field has its declared type (TOML makes it easy to write "10" for 10); ints are taken for floats."""
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            v = check_type(f.name, getattr(self, f.name), hints[f.name])
            object.__setattr__(self, f.name, v)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["betas"] = list(self.betas)
        d["progressive"] = list(self.progressive)
        d["frame_masks"] = list(self.frame_masks)
        d["train_only"] = list(self.train_only)
        return d

    @classmethod
    def from_dict(cls, d: dict, **overrides) -> "TrainConfig":
        d = {**d, **{k: v for k, v in overrides.items() if v is not None}}
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise BadParameter(f"unknown training option(s): {', '.join(unknown)}")
        return cls(**d)

    @classmethod
    def from_toml(cls, path, **overrides) -> "TrainConfig":
        doc = read_toml(path)
        try:
            return cls.from_dict(doc, **overrides)
        except BadParameter as e:
            raise BadParameter(f"{path}: {e}") from None


# -- types ------------------------------------------------------------------------------------------------------------

def _kind(hint) -> str:
    """A type hint in words, for messages."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join("unset" if a is type(None) else _kind(a) for a in args)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return f"list of {_kind(args[0]).removeprefix('a ')}s"
        return f"list of {len(args)} {_kind(args[0]).removeprefix('a ')}s"
    return {int: "a whole number", float: "a number", bool: "true or false", str: "a string",
            dict: "a table"}.get(hint, getattr(hint, "__name__", str(hint)))


def check_type(name: str, v, hint):
    """``v`` if it has the type ``hint`` (int, float, bool, str, dict, X | None, tuple[X, ...], tuple[X, Y]),
    with ints as floats where a float is declared and lists as tuples; else a BadParameter naming ``name``."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        for a in args:
            if a is type(None) and v is None:
                return None
            if a is not type(None):
                try:
                    return check_type(name, v, a)
                except BadParameter:
                    pass
        raise BadParameter(f"{name}: expected {_kind(hint)}, got {v!r}")
    if origin is tuple:
        if not isinstance(v, (list, tuple)):
            raise BadParameter(f"{name}: expected a {_kind(hint)}, got {v!r}")
        each = [args[0]] * len(v) if len(args) == 2 and args[1] is Ellipsis else list(args)
        if len(each) != len(v):
            raise BadParameter(f"{name}: expected a {_kind(hint)}, got {list(v)!r}")
        try:
            return tuple(check_type(name, x, t) for x, t in zip(v, each))
        except BadParameter:
            raise BadParameter(f"{name}: expected a {_kind(hint)}, got {list(v)!r}") from None
    if hint is bool:
        ok = isinstance(v, bool)
    elif hint is int:
        ok = isinstance(v, int) and not isinstance(v, bool)
    elif hint is float:
        ok = isinstance(v, (int, float)) and not isinstance(v, bool)
        v = float(v) if ok else v
    elif hint in (str, dict):
        ok = isinstance(v, hint)
    else:  # pragma: no cover - a type this checker does not know: leave it to the class
        ok = True
    if not ok:
        raise BadParameter(f"{name}: expected {_kind(hint)}, got {v!r}")
    return v


def _check_model(model: dict) -> None:
    """``model`` keys against the network's config class (the trainer builds a UNet): names and types."""
    config_class = registry.get("unet").config_class
    hints = typing.get_type_hints(config_class)
    for key, v in model.items():
        if key not in hints:
            raise BadParameter(f"model.{key}: not a setting of the network; it has {', '.join(sorted(hints))}")
        check_type(f"model.{key}", v, hints[key])


# -- reading and resuming -----------------------------------------------------------------------------------------------

def read_toml(path) -> dict:
    """A TOML config file as a dict; a missing or malformed file is one UserError line naming it."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise UserError(f"{path}: no such config file") from None
    except IsADirectoryError:
        raise UserError(f"{path}: is a folder, not a config file") from None
    except tomllib.TOMLDecodeError as e:
        raise UserError(f"{path}: not valid TOML ({e})") from None


def run_config(out_dir) -> dict:
    """The training config a run folder records (``config.json``'s ``train``, else its latest checkpoint's)."""
    out = Path(out_dir)
    path = out / "config.json"
    try:
        doc = json.loads(path.read_text())
        train = doc.get("train") if isinstance(doc, dict) else None
        if isinstance(train, dict):
            return train
    except (OSError, ValueError):
        pass
    ck = latest_checkpoint(out)
    if ck is not None:
        try:
            train = json.loads((ck / "state.json").read_text()).get("config")
            if isinstance(train, dict):
                return train
        except (OSError, ValueError):
            pass
    raise UserError(f"nothing to resume: {out} holds no run (no config.json and no checkpoints)")


def _same(a, b) -> bool:
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    return a == b


def merge_for_resume(run: dict, given: dict, names: dict | None = None) -> dict:
    """The config dict of a resumed run: the run's own ``run`` with the ``given`` values on top. Keys in
    :data:`RESUME_MAY_CHANGE` override; any other given key must equal the run's value, else one BadParameter line
    naming it (``names[key]``: how the user gave it, e.g. ``--lr``), the run's value and the given one."""
    names = names or {}
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(given) - known)
    if unknown:
        raise BadParameter(f"unknown training option(s): {', '.join(unknown)}")
    run = {k: v for k, v in run.items() if k in known}  # a key an older noisebrush wrote and this one dropped
    merged = {**run, "model": dict(run.get("model") or {})}
    # both sides typed and normalised the same way before comparing (1 and 1.0, [1, 2] and (1, 2))
    ref = TrainConfig.from_dict(run).to_dict()
    for key, v in given.items():
        if key == "model":
            defaults = _network_defaults()
            for mk, mv in v.items():
                _check_model({mk: mv})
                old = ref["model"].get(mk, defaults.get(mk))
                if not _same(_norm(old), _norm(mv)):
                    raise BadParameter(f"{names.get('model.' + mk, 'model.' + mk)}: the run was trained with "
                                       f"{json.dumps(old)}, given {json.dumps(mv)}; a resumed run keeps its "
                                       f"network (start a new run with --set init=CHECKPOINT to change it)")
            continue
        if key in RESUME_MAY_CHANGE:
            merged[key] = v
            continue
        new = TrainConfig.from_dict({**run, key: v}).to_dict()[key]  # checked and normalised like the run's
        if not _same(_norm(new), _norm(ref[key])):
            raise BadParameter(f"{names.get(key, key)}: the run was trained with {json.dumps(ref[key])}, given "
                               f"{json.dumps(new)}; a resumed run keeps its settings but for --steps and how it logs, "
                               f"checkpoints and previews (start a new run with --set init=CHECKPOINT to change "
                               f"them)")
    return merged


def _network_defaults() -> dict:
    out = {}
    for f in dataclasses.fields(registry.get("unet").config_class):
        if f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            out[f.name] = f.default_factory()
    return out


def _norm(v):
    if isinstance(v, tuple):
        return [_norm(x) for x in v]
    if isinstance(v, list):
        return [_norm(x) for x in v]
    if isinstance(v, int) and not isinstance(v, bool):
        return float(v)
    return v
