"""Where a model, a sampler and conditioning meet: ``noisebrush.load(model)`` → :class:`Pipeline`.

    import noisebrush
    pipe = noisebrush.load("builtin")                       # or a model folder written by the trainer
    images = pipe("a red sun over purple mountains", steps=20, seed=7, n=4)   # PIL images
    pipe.to("cuda")                                         # or "mps", "cpu"; default: the best available

A model folder holds ``config.json`` (architecture, conditioning, σ_data, format version, provenance) and
``model.safetensors`` (EMA weights). Nothing is unpickled.

**Same seed, same picture.** Image i of a call gets the seed ``seed + i``; its starting noise and every noise the
sampler draws come from that seed's own generator, and the network is evaluated one picture at a time, so a picture
does not depend on how many others are painted with it. :meth:`Pipeline.recipe` records everything needed to paint it
again (it goes into every PNG the CLI writes).
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from noisebrush.errors import BadParameter, UserError

__all__ = ["load", "Pipeline", "BUILTIN", "MODEL_FORMAT", "resolve_model", "read_model_config", "pick_device"]

log = logging.getLogger("noisebrush.paint.pipeline")

MODEL_FORMAT = "noisebrush.model/1"
BUILTIN = Path(__file__).parent / "models" / "builtin"


def pick_device(device: str | None = None) -> torch.device:
    """``None``/"auto" → cuda, then mps, then cpu."""
    if device in (None, "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise BadParameter(f"device: unknown {device!r}; use cpu, cuda, cuda:N or mps") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserError("device: cuda was asked for but this torch sees no CUDA GPU")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise UserError("device: mps was asked for but is not available here")
    return dev


def _use_all_cores() -> None:
    """One torch thread per core this process may run on, unless the user chose (OMP_NUM_THREADS)."""
    if os.environ.get("OMP_NUM_THREADS"):
        return
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cores = os.cpu_count() or 1
    if torch.get_num_threads() != cores:
        torch.set_num_threads(cores)


def resolve_model(model) -> Path:
    """"builtin" → the model shipped in the package; anything else is a folder."""
    path = BUILTIN if str(model) == "builtin" else Path(model)
    if not path.exists():
        raise UserError(f"{model}: no such model folder")
    if not path.is_dir():
        raise UserError(f"{model}: not a model folder (expected a folder with config.json and model.safetensors)")
    if not (path / "config.json").is_file() or not (path / "model.safetensors").is_file():
        raise UserError(f"{model}: not a noisebrush model folder (config.json and model.safetensors are needed)")
    return path


def read_model_config(path: Path) -> dict:
    try:
        conf = json.loads((path / "config.json").read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise UserError(f"{path / 'config.json'}: unreadable ({e})") from None
    fmt = conf.get("format") if isinstance(conf, dict) else None
    if not isinstance(fmt, str) or not fmt.startswith("noisebrush.model/"):
        raise UserError(f"{path}: not a noisebrush model (config.json format is {fmt!r}, "
                        f"expected {MODEL_FORMAT!r})")
    try:
        version = int(fmt.split("/", 1)[1])
    except ValueError:
        raise UserError(f"{path}: unknown model format {fmt!r}") from None
    if version > 1:
        raise UserError(f"{path}: made by a newer noisebrush (model format version {version}); this one reads "
                        f"version 1 — upgrade noisebrush")
    for key in ("unet", "sigma_data", "condition", "resolution"):
        if key not in conf:
            raise UserError(f"{path / 'config.json'}: missing {key!r}")
    sched = conf.get("schedule")
    if sched is not None:
        lo, hi = (sched.get("sigma_min", 0.002), sched.get("sigma_max", 80.0)) if isinstance(sched, dict) else (0, 0)
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (lo, hi)) or not 0 < lo < hi:
            raise UserError(f"{path / 'config.json'}: 'schedule' needs numbers 0 < sigma_min < sigma_max")
    return conf


def weights_hash(path: Path) -> str:
    """First 10 hex digits of the SHA-256 of model.safetensors (A1111 shows a short hash too)."""
    h = hashlib.sha256()
    with open(path / "model.safetensors", "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:10]


def _takes(fn, name: str) -> bool:
    """Whether ``fn`` has a parameter called ``name``."""
    import inspect

    return name in inspect.signature(fn).parameters


@dataclass
class StepInfo:
    """What a step callback gets: the step index, σ, the current noisy images x_t and the predicted x̂_0."""
    step: int
    steps: int
    sigma: float
    x: torch.Tensor
    x0: torch.Tensor


class _OnDevice(torch.nn.Module):
    """Runs the raw network on its device; everything around it (the sampler's state, σ arithmetic in float64,
    preconditioning) stays on the CPU. That keeps float64 off devices without it (mps), and makes the sampler's
    arithmetic identical whatever the device."""

    def __init__(self, net):
        super().__init__()
        self.net = net
        self.device = torch.device("cpu")

    def forward(self, x, c_noise, **cond):
        dev = self.device
        cond = {k: (v.to(dev) if torch.is_tensor(v) else v) for k, v in cond.items()}
        return self.net(x.to(dev), c_noise.to(dev, torch.float32), **cond).to("cpu", torch.float32)


class Pipeline:
    def __init__(self, net, config: dict, path: Path, *, device=None, name: str | None = None,
                 loras: list[dict] | None = None):
        from noisebrush.diffusion import EDMPrecond

        self.config = config
        self.path = path
        self.name = name or path.name
        self.hash = weights_hash(path)
        self.net = net.eval().requires_grad_(False)
        self._runner = _OnDevice(self.net)
        self.den = EDMPrecond(self._runner, sigma_data=float(config["sigma_data"]))
        self.condition = config["condition"]
        self.resolution = int(config["resolution"])
        self.channels = int(config["unet"].get("in_channels", 3))
        self.dims = int(config["unet"].get("dims", 2))
        self.classes = config.get("classes") or []
        self._text = None
        self.loras = list(loras or [])  # LoRA adapters merged into the weights (noisebrush.nets.lora.apply_loras)
        self.device = torch.device("cpu")
        self.to(pick_device(device))

    # -- devices --------------------------------------------------------------------------------------------------
    def to(self, device) -> "Pipeline":
        dev = pick_device(device) if not isinstance(device, torch.device) else device
        self.net.to(dev)
        self._runner.device = dev
        self.device = dev
        return self

    @property
    def text_encoder(self):
        if self._text is None:
            from noisebrush.nets.text import TextEncoder

            te = self.config.get("text_encoder") or {}
            self._text = TextEncoder(max_tokens=int(te.get("max_tokens", 16)))
        return self._text

    # -- conditioning ---------------------------------------------------------------------------------------------
    def _conditions(self, prompt: str, label, n: int) -> dict:
        if self.condition == "text":
            tok, mask = self.text_encoder.encode([prompt])
            return {"text": tok, "text_mask": mask}
        if self.condition == "label":
            return {"labels": torch.tensor([self._label_index(prompt, label)])}
        return {}

    def _denoiser(self, cond: dict, scale: float):
        """A per-picture denoiser: each image is run through the network on its own (with its unconditional twin
        for guidance), so results never depend on the batch."""
        den = self.den

        def run(x, sigma):
            outs = []
            for i in range(x.shape[0]):
                xi, si = x[i:i + 1], sigma[i:i + 1]
                if not cond or scale == 1.0:
                    outs.append(den(xi, si, **cond))
                    continue
                both = {k: torch.cat([v, v]) for k, v in cond.items()}
                drop = torch.tensor([False, True], device=x.device)
                d = den(torch.cat([xi, xi]), torch.cat([si, si]), drop=drop, **both)
                dc, du = d[:1], d[1:]
                outs.append(du + scale * (dc - du))
            return torch.cat(outs)

        return run

    # -- painting -------------------------------------------------------------------------------------------------
    def recipe(self, prompt: str, *, seed: int, steps: int, sampler: str, cfg: float, size,
               sigma_min: float, sigma_max: float, label=None, guidance=None) -> dict:
        """Everything needed to paint a picture again. ``size`` is one side or (height, width)."""
        from noisebrush import __version__
        from noisebrush.paint.guides import guidance_recipes

        h, w = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
        rec = {"prompt": prompt, "label": label, "sampler": sampler, "steps": steps, "cfg": cfg, "seed": seed,
               "width": w, "height": h, "sigma_min": sigma_min, "sigma_max": sigma_max,
               "model": self.name, "model_hash": self.hash, "noisebrush": __version__}
        if self.loras:
            rec["lora"] = [dict(d) for d in self.loras]
        if guidance:
            rec["guidance"] = guidance_recipes(guidance)
        return rec

    def check(self, prompt: str = "", *, steps=20, seed=0, n=1, sampler="dpmpp_2m", cfg=3.0, size=None,
              sigma_min=None, sigma_max=None, label=None):
        """Validate painting options (BadParameter naming the first bad one); returns them normalised."""
        from noisebrush.diffusion import get_sampler

        def whole(name, v, lo):
            if isinstance(v, bool) or not isinstance(v, int) or v < lo:
                raise BadParameter(f"{name}: a whole number ≥ {lo}, got {v!r}")
            return v

        def number(name, v):
            if isinstance(v, bool):
                raise BadParameter(f"{name}: a number, got {v!r}")
            try:
                return float(v)
            except (TypeError, ValueError):
                raise BadParameter(f"{name}: a number, got {v!r}") from None

        if not isinstance(prompt, str):
            raise BadParameter(f"prompt: text, got {prompt!r}")
        get_sampler(sampler)
        steps, n, seed = whole("steps", steps, 1), whole("n", n, 1), whole("seed", seed, 0)
        cfg = number("cfg", cfg)
        if not cfg >= 0:
            raise BadParameter(f"cfg: guidance scale ≥ 0, got {cfg}")
        size = self.resolution if size is None else whole("size", size, 1)
        step = 2 ** (len(self.config["unet"].get("channel_mult", [1, 2, 2])) - 1)
        if size % step:
            raise BadParameter(f"size: a multiple of {step}, got {size}")
        sched = self.config.get("schedule") or {}
        sigma_min = float(sched.get("sigma_min", 0.002)) if sigma_min is None else number("sigma_min", sigma_min)
        sigma_max = float(sched.get("sigma_max", 80.0)) if sigma_max is None else number("sigma_max", sigma_max)
        if not 0 < sigma_min < sigma_max:
            raise BadParameter(f"sigma_min/sigma_max: need 0 < sigma_min < sigma_max, got {sigma_min}, {sigma_max}")
        if self.condition == "label":
            self._label_index(prompt, label)
        return steps, seed, n, cfg, size, sigma_min, sigma_max

    def _label_index(self, prompt: str, label) -> int:
        if label is None:
            if prompt in self.classes:
                return self.classes.index(prompt)
            raise BadParameter(f"label: this model paints classes {self.classes}; name one (got {prompt!r})")
        if isinstance(label, str):
            if label not in self.classes:
                raise BadParameter(f"label: unknown class {label!r}; one of {self.classes}")
            return self.classes.index(label)
        if isinstance(label, bool) or not isinstance(label, int) or not 0 <= label < len(self.classes):
            raise BadParameter(f"label: a class name or an index below {len(self.classes)}, got {label!r}")
        return label

    @torch.no_grad()
    def generate(self, prompt: str = "", *, steps: int = 20, seed: int = 0, n: int = 1, sampler: str = "dpmpp_2m",
                 cfg: float = 3.0, size: int | None = None, sigma_min: float | None = None,
                 sigma_max: float | None = None, label=None, callback=None, stats: dict | None = None,
                 guidance=None) -> tuple[torch.Tensor, list[dict]]:
        """N×C×H×W images in [-1, 1] and one recipe per image.

        ``steps`` sampler steps on Karras et al.'s σ schedule between ``sigma_min`` and ``sigma_max`` (default: the
        model folder's ``schedule``); image i uses seed ``seed + i``; ``cfg`` is the classifier-free guidance scale
        (1 = plain conditional); ``callback(StepInfo)`` sees x_t and x̂_0 at every step. ``stats``: a dict that
        samplers keeping statistics (``langevin``: corrector steps per level; ``adaptive``: accepted and rejected
        steps) fill in; other samplers leave it as it is. ``guidance``: a list of :class:`noisebrush.paint.guides.Guide`
        (a palette, a learned preference) that steer every step through the x̂_0-guidance hook.
        """
        from noisebrush.diffusion import SampleNoise, karras

        steps, seed, n, cfg, size, sigma_min, sigma_max = self.check(prompt, steps=steps, seed=seed, n=n,
                                                                     sampler=sampler, cfg=cfg, size=size,
                                                                     sigma_min=sigma_min, sigma_max=sigma_max,
                                                                     label=label)
        guidance = self.check_guidance(guidance)
        seeds = [seed + i for i in range(n)]
        noise = SampleNoise.from_seeds(seeds)
        shape = (self.channels, *([size] * self.dims))
        sigmas = karras(steps, sigma_min=sigma_min, sigma_max=sigma_max)
        x = noise.randn(shape) * float(sigmas[0])  # the sampler runs on the CPU; only the network moves
        den = self.denoiser(prompt, label=label, cfg=cfg, guidance=guidance)
        out = self.run_sampler(den, x, sigmas, noise, sampler=sampler, callback=callback, stats=stats, steps=steps)
        recipes = [self.recipe(prompt, seed=s, steps=steps, sampler=sampler, cfg=cfg, size=size,
                               sigma_min=sigma_min, sigma_max=sigma_max, label=label, guidance=guidance)
                   for s in seeds]
        return out.clamp(-1, 1).cpu(), recipes

    # -- the pieces every painting mode shares (noisebrush.paint.edit uses them too) ------------------------------------
    @staticmethod
    def check_guidance(guidance):
        from noisebrush.paint.guides import Guide

        if guidance is None:
            return []
        guidance = list(guidance) if isinstance(guidance, (list, tuple)) else [guidance]
        for g in guidance:
            if not isinstance(g, Guide):
                raise BadParameter(f"guidance: expected noisebrush.paint.guides.Guide objects, got {type(g).__name__}")
        return guidance

    def denoiser(self, prompt: str = "", *, label=None, cfg: float = 3.0, guidance=None):
        """The per-picture denoiser for ``prompt`` with classifier-free guidance ``cfg`` and the guides."""
        from noisebrush.paint.guides import guided

        return guided(self._denoiser(self._conditions(prompt, label, 1), cfg), guidance)

    def run_sampler(self, den, x: torch.Tensor, sigmas: torch.Tensor, noise, *, sampler: str = "dpmpp_2m",
                    callback=None, stats: dict | None = None, steps: int | None = None) -> torch.Tensor:
        """Run ``sampler`` from x at sigmas[0] down the schedule; ``callback(StepInfo)`` once per step."""
        from noisebrush.diffusion import get_sampler

        info = get_sampler(sampler)
        total = steps if steps is not None else len(sigmas) - 1

        def cb(xt, x0, sigma, i):
            callback(StepInfo(step=int(i), steps=total, sigma=float(torch.as_tensor(sigma).reshape(-1)[0]), x=xt,
                              x0=x0))

        extra = {"stats": stats} if stats is not None and _takes(info.fn, "stats") else {}
        return info.fn(den, x, sigmas, noise=noise, callback=cb if callback is not None else None, **extra)

    # -- personal art: variations, inpainting, outpainting, morphs (noisebrush.paint.edit) ------------------------------
    def vary(self, image, prompt: str = "", **kwargs):
        """Variations of ``image`` (SDEdit); see :func:`noisebrush.paint.edit.vary`."""
        from noisebrush.paint.edit import vary

        return vary(self, image, prompt, **kwargs)

    def inpaint(self, image, mask, prompt: str = "", **kwargs):
        """Repaint the white part of ``mask`` (RePaint); see :func:`noisebrush.paint.edit.inpaint`."""
        from noisebrush.paint.edit import inpaint

        return inpaint(self, image, mask, prompt, **kwargs)

    def outpaint(self, image, extend, prompt: str = "", **kwargs):
        """Paint beyond the edges of ``image``; see :func:`noisebrush.paint.edit.outpaint`."""
        from noisebrush.paint.edit import outpaint

        return outpaint(self, image, extend, prompt, **kwargs)

    def morph(self, prompt: str = "", **kwargs):
        """Frames between two seeds and/or two prompts; see :func:`noisebrush.paint.edit.morph`."""
        from noisebrush.paint.edit import morph

        return morph(self, prompt, **kwargs)

    def __call__(self, prompt: str = "", **kwargs):
        """PIL images (see :meth:`generate` for the options)."""
        from noisebrush.io.images import to_pil

        images, _ = self.generate(prompt, **kwargs)
        return to_pil(images)


def load(model="builtin", *, device=None, lora=None) -> Pipeline:
    """Load a model folder (or the built-in model) for painting.

    ``lora``: LoRA adapters made by ``noisebrush finetune --lora`` to merge into the weights — a list of
    ``"FILE"`` / ``"FILE:weight"`` strings or ``(path, weight)`` pairs (several add up)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from noisebrush.nets.unet import UNet, UNetConfig

    _use_all_cores()
    path = resolve_model(model)
    conf = read_model_config(path)
    try:
        net = UNet(UNetConfig.from_dict(conf["unet"]))
    except (BadParameter, TypeError) as e:
        raise UserError(f"{path / 'config.json'}: bad network description ({e})") from None
    try:
        state = load_file(str(path / "model.safetensors"))
    except (OSError, SafetensorError) as e:
        raise UserError(f"{path / 'model.safetensors'}: unreadable ({e})") from None
    try:
        net.load_state_dict({k: v.to(torch.float32) for k, v in state.items()})
    except RuntimeError as e:
        first = str(e).splitlines()[0] if str(e) else "mismatch"
        raise UserError(f"{path / 'model.safetensors'}: weights do not fit the network in config.json ({first})") \
            from None
    loras = []
    if lora:
        from noisebrush.nets.lora import apply_loras, parse_lora_spec

        specs = [parse_lora_spec(str(s)) if isinstance(s, (str, Path)) else (Path(s[0]), float(s[1]))
                 for s in ([lora] if isinstance(lora, (str, Path)) else lora)]
        loras = apply_loras(net, conf, weights_hash(path), specs)
    # the recipe names a folder by its absolute path, so `noisebrush reproduce` finds it from anywhere
    return Pipeline(net, conf, path, device=device, name="builtin" if str(model) == "builtin" else str(path.resolve()),
                    loras=loras)
