"""Painting from a picture: variations (SDEdit), inpainting and outpainting (RePaint), and morphs.

    pipe = noisebrush.load("builtin")
    images, recipes = pipe.vary("mine.png", "a landscape", strength=0.5, seed=3, n=4)
    images, recipes = pipe.inpaint("mine.png", "mask.png", "a yellow sun")           # white in the mask = repaint
    images, recipes = pipe.outpaint("mine.png", (16, 0, 16, 0), "a landscape")       # left, top, right, bottom
    frames, recipe = pipe.morph("a red flower", to_prompt="a blue flower", seed=1, to_seed=2, frames=24)

All of them work with any model noisebrush trains; none needs special training.

* **Variations** (Meng et al. 2022, "SDEdit"): the picture is noised to the level σ that ``strength`` selects on the
  sampler's schedule and the sampler runs from there. ``strength`` 0 returns the picture itself; 1 starts from pure
  noise at σ_max and so ignores it; in between, the share of the schedule's steps that are run.
* **Inpainting** (Lugmayr et al. 2022, "RePaint"): at every step the known pixels are replaced by the original picture
  noised to the current σ, and the rest is denoised with an ancestral (DDPM) step; every ``jump_length`` steps the
  picture is noised back up ``jump_length`` levels and denoised again (``jumps`` passes in all), which lets the new
  region and the known one agree. At the end the known pixels are copied from the input, so they come out
  unchanged to the bit.
* **Outpainting** is inpainting on a larger canvas whose new border is the region to paint.
* **Morphs** go between two seeds (spherical interpolation of the starting noise, so every frame's noise has the
  norm of a real draw) and/or two prompts. Prompts are interpolated as conditions of the denoiser: frame t uses
  D_u + w·((1-t)·(D_A - D_u) + t·(D_B - D_u)), the guided denoiser of the geometric mixture p_A^(1-t)·p_B^t — exact
  at both ends (frame 0 is the painting of prompt A, the last frame that of prompt B) and smooth in between. A
  deterministic sampler keeps neighbouring frames close.

Pictures are tensors 1×C×H×W in [-1, 1], PIL images or files. A picture whose sides are not multiples of the
network's size step (or that is far larger than the model's resolution) is resized first: ``size`` sets the short
side (default: kept when valid, else the model's resolution), and the recipe says so.
"""
from __future__ import annotations

import hashlib
import math
from pathlib import Path

import numpy as np
import torch

from noisebrush.errors import BadParameter, UserError

__all__ = ["load_image", "load_mask", "working_size", "vary", "inpaint", "outpaint", "morph", "repaint_path",
           "slerp", "strength_start", "parse_extend"]


# -- pictures in --------------------------------------------------------------------------------------------------
def _open(path, name: str):
    from PIL import Image, UnidentifiedImageError

    p = Path(path)
    if not p.exists():
        raise UserError(f"{p}: no such file ({name})")
    if p.is_dir():
        raise UserError(f"{p}: is a folder, not a picture ({name})")
    try:
        with Image.open(p) as im:
            im.load()
            return im.copy()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise UserError(f"{p}: not a readable picture ({name}: {str(e).splitlines()[0] if str(e) else 'unreadable'})") \
            from None


def _pil_rgb(image, name: str):
    """A PIL RGB picture from a path, a PIL image or a tensor (C×H×W or 1×C×H×W in [-1, 1])."""
    from PIL import Image

    from noisebrush.data.folder import _to_rgb
    from noisebrush.io.images import to_pil

    if isinstance(image, (str, Path)):
        image = _open(image, name)
    if torch.is_tensor(image):
        t = image[0] if image.ndim == 4 else image
        if t.ndim != 3 or t.shape[0] not in (1, 3):
            raise BadParameter(f"{name}: a tensor C×H×W or 1×C×H×W in [-1, 1], got {tuple(image.shape)}")
        image = to_pil(t.expand(3, -1, -1) if t.shape[0] == 1 else t)
    if not isinstance(image, Image.Image):
        raise BadParameter(f"{name}: a file name, a PIL image or a tensor, got {type(image).__name__}")
    return _to_rgb(image)


def _to_tensor(pil) -> torch.Tensor:
    a = torch.from_numpy(np.asarray(pil.convert("RGB"), dtype=np.uint8).copy()).permute(2, 0, 1)
    return (a.to(torch.float32) / 127.5 - 1).unsqueeze(0)


def _size_step(pipe) -> int:
    return 2 ** (len(pipe.config["unet"].get("channel_mult", [1, 2, 2])) - 1)


def working_size(pipe, h: int, w: int, size: int | None = None) -> tuple[int, int]:
    """The size a picture is painted at: kept when both sides are multiples of the network's step and at most 4×
    the model's resolution (and ``size`` is not given); otherwise scaled so the short side is ``size`` (default: the
    resolution), both sides rounded to the step."""
    step = _size_step(pipe)
    if size is not None:
        if isinstance(size, bool) or not isinstance(size, int) or size < step:
            raise BadParameter(f"size: a whole number ≥ {step}, got {size!r}")
    elif h % step == 0 and w % step == 0 and max(h, w) <= 4 * pipe.resolution:
        return h, w
    short = size if size is not None else pipe.resolution
    k = short / min(h, w)
    return max(step, round(h * k / step) * step), max(step, round(w * k / step) * step)


def load_image(pipe, image, *, size: int | None = None, name: str = "image") -> tuple[torch.Tensor, dict]:
    """(1×3×H×W picture in [-1, 1] at its working size, a note for the recipe: source file, its SHA-256, resizing)."""
    from PIL import Image

    pil = _pil_rgb(image, name)
    note: dict = {}
    if isinstance(image, (str, Path)):
        note["source"] = str(Path(image).resolve())
        note["source_sha256"] = hashlib.sha256(Path(image).read_bytes()).hexdigest()[:16]
    h, w = working_size(pipe, pil.height, pil.width, size)
    if (h, w) != (pil.height, pil.width):
        note["resized_from"] = [pil.height, pil.width]
        note["resized_short"] = min(h, w)
        pil = pil.resize((w, h), Image.LANCZOS)
    if pipe.channels != 3:
        raise UserError(f"{name}: this model paints {pipe.channels}-channel pictures, not RGB")
    return _to_tensor(pil), note


def load_mask(mask, hw: tuple[int, int], *, name: str = "mask", source_hw: tuple[int, int] | None = None) \
        -> torch.Tensor:
    """1×1×H×W bool, True where the picture is repainted (white, i.e. grey level ≥ 128). The mask must have the
    picture's size (``source_hw``, before any resize); it is resized with the picture, nearest neighbour."""
    from PIL import Image

    if isinstance(mask, (str, Path)):
        pil = _open(mask, name)
    elif isinstance(mask, Image.Image):
        pil = mask
    elif torch.is_tensor(mask):
        m = mask.reshape(mask.shape[-2:]) if mask.numel() == mask.shape[-1] * mask.shape[-2] else None
        if m is None:
            raise BadParameter(f"{name}: a tensor H×W (or 1×1×H×W), got {tuple(mask.shape)}")
        pil = Image.fromarray((m.to(torch.float32) > 0.5).numpy().astype(np.uint8) * 255, "L")
    else:
        raise BadParameter(f"{name}: a file name, a PIL image or a tensor, got {type(mask).__name__}")
    want = source_hw or hw
    if (pil.height, pil.width) != tuple(want):
        where = f"{mask}" if isinstance(mask, (str, Path)) else name
        raise UserError(f"{where}: the mask is {pil.width}×{pil.height} but the picture is {want[1]}×{want[0]}")
    if "A" in pil.getbands() and pil.mode != "LA":
        pil = pil.convert("RGBA")
    grey = pil.convert("L")
    if (grey.height, grey.width) != tuple(hw):
        grey = grey.resize((hw[1], hw[0]), Image.NEAREST)
    return torch.from_numpy(np.asarray(grey) >= 128).reshape(1, 1, *hw)


# -- shared pieces --------------------------------------------------------------------------------------------------
def _whole(name: str, v, lo: int) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < lo:
        raise BadParameter(f"{name}: a whole number ≥ {lo}, got {v!r}")
    return v


def _schedule(pipe, steps: int, sampler: str, cfg: float, seed: int, n: int, prompt: str, label, hw):
    """Validated options and the σ schedule (sides checked against the network's step)."""
    from noisebrush.diffusion import karras

    steps, seed, n, cfg, _, sigma_min, sigma_max = pipe.check(prompt, steps=steps, seed=seed, n=n, sampler=sampler,
                                                              cfg=cfg, label=label)
    step = _size_step(pipe)
    if hw[0] % step or hw[1] % step:
        raise BadParameter(f"size: {hw[1]}×{hw[0]} — both sides must be multiples of {step}")
    return steps, seed, n, cfg, karras(steps, sigma_min=sigma_min, sigma_max=sigma_max), sigma_min, sigma_max


def _recipes(pipe, prompt, seeds, *, steps, sampler, cfg, hw, sigma_min, sigma_max, label, guidance, extra):
    return [{**pipe.recipe(prompt, seed=s, steps=steps, sampler=sampler, cfg=cfg, size=hw, sigma_min=sigma_min,
                           sigma_max=sigma_max, label=label, guidance=guidance), **extra} for s in seeds]


def strength_start(steps: int, strength: float) -> int:
    """Index into a schedule of ``steps`` steps where a variation of ``strength`` starts (steps = nothing to do)."""
    return steps - int(round(strength * steps))


def _check_strength(strength) -> float:
    if isinstance(strength, bool):
        raise BadParameter(f"strength: a number from 0 to 1, got {strength!r}")
    try:
        s = float(strength)
    except (TypeError, ValueError):
        raise BadParameter(f"strength: a number from 0 to 1, got {strength!r}") from None
    if not 0 <= s <= 1:
        raise BadParameter(f"strength: a number from 0 to 1, got {strength!r}")
    return s


# -- variations -----------------------------------------------------------------------------------------------------
@torch.no_grad()
def vary(pipe, image, prompt: str = "", *, strength: float = 0.6, steps: int = 20, seed: int = 0, n: int = 4,
         sampler: str = "dpmpp_2m", cfg: float = 3.0, size: int | None = None, label=None, guidance=None,
         callback=None) -> tuple[torch.Tensor, list[dict]]:
    """``n`` variations of ``image`` (SDEdit). Picture i uses seed ``seed + i``; returns (N×3×H×W, recipes)."""
    from noisebrush.diffusion import SampleNoise

    strength = _check_strength(strength)
    x0, note = load_image(pipe, image, size=size)
    hw = tuple(x0.shape[-2:])
    steps, seed, n, cfg, sigmas, lo, hi = _schedule(pipe, steps, sampler, cfg, seed, n, prompt, label, hw)
    guidance = pipe.check_guidance(guidance)
    seeds = [seed + i for i in range(n)]
    k = strength_start(steps, strength)
    extra = {"mode": "vary", "strength": strength, **note}
    recipes = _recipes(pipe, prompt, seeds, steps=steps, sampler=sampler, cfg=cfg, hw=hw, sigma_min=lo, sigma_max=hi,
                       label=label, guidance=guidance, extra=extra)
    if k >= steps:  # strength 0: the picture itself
        return x0.expand(n, -1, -1, -1).clone(), recipes
    noise = SampleNoise.from_seeds(seeds)
    eps = noise.randn(x0.shape[1:])
    start = float(sigmas[k])
    x = eps * start if k == 0 else x0 + eps * start  # strength 1 ignores the picture
    den = pipe.denoiser(prompt, label=label, cfg=cfg, guidance=guidance)

    def cb(info):
        info.step += k
        info.steps = steps
        callback(info)

    out = pipe.run_sampler(den, x, sigmas[k:], noise, sampler=sampler, callback=cb if callback else None)
    return out.clamp(-1, 1), recipes


# -- inpainting -----------------------------------------------------------------------------------------------------
def repaint_path(steps: int, jump_length: int, jumps: int) -> list[int]:
    """The RePaint walk over schedule indices 0 (σ_max) … steps (σ = 0), one level per move.

    Going down, at every boundary — index steps-1 and every ``jump_length`` levels above it, but never above
    index ``jump_length`` — the walk climbs back ``jump_length`` levels, ``jumps - 1`` times per boundary, so each
    stretch is denoised ``jumps`` times. ``jumps = 1`` is plain inpainting without resampling."""
    _whole("steps", steps, 1), _whole("jump_length", jump_length, 1), _whole("jumps", jumps, 1)
    boundaries = {i for i in range(jump_length, steps) if (steps - 1 - i) % jump_length == 0}
    done: dict[int, int] = {}
    path, i = [0], 0
    while i < steps:
        i += 1
        path.append(i)
        if i in boundaries and done.get(i, 0) < jumps - 1:
            done[i] = done.get(i, 0) + 1
            for _ in range(jump_length):
                i -= 1
                path.append(i)
    return path


def _repaint(pipe, den, x0, keep, sigmas, noise, path, callback):
    """Walk ``path`` (see :func:`repaint_path`); ``keep`` is True where the input picture is known."""
    from noisebrush.diffusion.samplers._common import ancestral_sigmas

    from noisebrush.paint.pipeline import StepInfo

    keep = keep.to(x0.dtype)
    x = noise.randn(x0.shape[1:]) * float(sigmas[0])
    moves = len(path) - 1
    for m in range(moves):
        i, j = path[m], path[m + 1]
        s, t = float(sigmas[i]), float(sigmas[j])
        if j > i:  # down one level: known pixels from the input at σ_i, the rest from an ancestral step
            x = keep * (x0 + noise.randn(x0.shape[1:]) * s) + (1 - keep) * x
            d = den(x, torch.full((x.shape[0],), s, dtype=torch.float64))
            if callback is not None:
                callback(StepInfo(step=m, steps=moves, sigma=s, x=x, x0=d))
            if t == 0:
                x = d
            else:
                down, up = ancestral_sigmas(s, t, 1.0)
                x = d + (x - d) * (down / s) + noise.randn(x0.shape[1:]) * up
        else:  # up one level: add the noise between σ_i and σ_j
            x = x + noise.randn(x0.shape[1:]) * math.sqrt(t * t - s * s)
    return keep * x0 + (1 - keep) * x.clamp(-1, 1)


def _check_jumps(steps, jump_length, jumps):
    _whole("jump_length", jump_length, 1)
    _whole("jumps", jumps, 1)
    if jump_length >= steps and jumps > 1:
        raise BadParameter(f"jump_length: must be below steps ({steps}) to resample, got {jump_length}")


@torch.no_grad()
def inpaint(pipe, image, mask, prompt: str = "", *, steps: int = 20, jump_length: int = 4, jumps: int = 3,
            seed: int = 0, n: int = 4, cfg: float = 3.0, size: int | None = None, label=None, guidance=None,
            callback=None) -> tuple[torch.Tensor, list[dict]]:
    """Repaint where ``mask`` is white (RePaint). The other pixels come out exactly as they went in."""
    x0, note = load_image(pipe, image, size=size)
    hw = tuple(x0.shape[-2:])
    src_hw = tuple(note["resized_from"]) if "resized_from" in note else hw
    repaint = load_mask(mask, hw, source_hw=src_hw)
    return _inpaint(pipe, x0, repaint, prompt, steps=steps, jump_length=jump_length, jumps=jumps, seed=seed, n=n,
                    cfg=cfg, label=label, guidance=guidance, callback=callback,
                    note={"mode": "inpaint", **note, **_mask_note(mask)})


def _mask_note(mask) -> dict:
    if isinstance(mask, (str, Path)):
        return {"mask": str(Path(mask).resolve()),
                "mask_sha256": hashlib.sha256(Path(mask).read_bytes()).hexdigest()[:16]}
    return {}


def _inpaint(pipe, x0, repaint, prompt, *, steps, jump_length, jumps, seed, n, cfg, label, guidance, callback, note):
    from noisebrush.diffusion import SampleNoise

    hw = tuple(x0.shape[-2:])
    steps, seed, n, cfg, sigmas, lo, hi = _schedule(pipe, steps, "ddpm", cfg, seed, n, prompt, label, hw)
    _check_jumps(steps, jump_length, jumps)
    guidance = pipe.check_guidance(guidance)
    seeds = [seed + i for i in range(n)]
    extra = {**note, "jump_length": jump_length, "jumps": jumps}
    recipes = _recipes(pipe, prompt, seeds, steps=steps, sampler="repaint", cfg=cfg, hw=hw, sigma_min=lo,
                       sigma_max=hi, label=label, guidance=guidance, extra=extra)
    den = pipe.denoiser(prompt, label=label, cfg=cfg, guidance=guidance)
    path = repaint_path(steps, jump_length, jumps)
    noise = SampleNoise.from_seeds(seeds)
    keep = ~repaint.expand(n, 1, *hw)
    out = _repaint(pipe, den, x0.expand(n, -1, -1, -1), keep, sigmas, noise, path, callback)
    return out, recipes


def parse_extend(text) -> tuple[int, int, int, int]:
    """"L,T,R,B" (pixels to add on each side), or one number for all four."""
    if isinstance(text, (tuple, list)):
        parts = list(text)
    else:
        parts = [p.strip() for p in str(text).split(",")]
    try:
        vals = [int(p) for p in parts]
    except (TypeError, ValueError):
        raise BadParameter(f"extend: L,T,R,B as whole numbers of pixels, got {text!r}") from None
    if len(vals) == 1:
        vals = vals * 4
    if len(vals) != 4 or any(v < 0 for v in vals) or not any(vals):
        raise BadParameter(f"extend: L,T,R,B — four whole numbers ≥ 0, not all 0, got {text!r}")
    return tuple(vals)


@torch.no_grad()
def outpaint(pipe, image, extend, prompt: str = "", *, steps: int = 20, jump_length: int = 4, jumps: int = 3,
             seed: int = 0, n: int = 4, cfg: float = 3.0, size: int | None = None, label=None, guidance=None,
             callback=None) -> tuple[torch.Tensor, list[dict]]:
    """Paint ``extend`` = (left, top, right, bottom) pixels beyond the picture's edges; the picture itself is kept
    exactly. The new canvas's sides must be multiples of the network's size step."""
    left, top, right, bottom = parse_extend(extend)
    x0, note = load_image(pipe, image, size=size)
    h, w = x0.shape[-2:]
    H, W = h + top + bottom, w + left + right
    step = _size_step(pipe)
    if H % step or W % step:
        raise BadParameter(f"extend: the new canvas {W}×{H} must have sides that are multiples of {step} "
                           f"(the picture is {w}×{h})")
    canvas = torch.zeros(1, x0.shape[1], H, W)
    canvas[..., top:top + h, left:left + w] = x0
    repaint = torch.ones(1, 1, H, W, dtype=torch.bool)
    repaint[..., top:top + h, left:left + w] = False
    return _inpaint(pipe, canvas, repaint, prompt, steps=steps, jump_length=jump_length, jumps=jumps, seed=seed, n=n,
                    cfg=cfg, label=label, guidance=guidance, callback=callback,
                    note={"mode": "outpaint", "extend": [left, top, right, bottom], **note})


# -- morphs ---------------------------------------------------------------------------------------------------------
def slerp(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    """Spherical interpolation between two noise tensors (per sample), in float64; linear when they are parallel."""
    a64, b64 = a.to(torch.float64).flatten(1), b.to(torch.float64).flatten(1)
    na, nb = a64.norm(dim=1, keepdim=True), b64.norm(dim=1, keepdim=True)
    cos = ((a64 / na) * (b64 / nb)).sum(1, keepdim=True).clamp(-1, 1)
    omega = torch.arccos(cos)
    so = torch.sin(omega)
    small = so.abs() < 1e-6
    wa = torch.where(small, torch.full_like(so, 1 - t), torch.sin((1 - t) * omega) / torch.where(small, 1, so))
    wb = torch.where(small, torch.full_like(so, t), torch.sin(t * omega) / torch.where(small, 1, so))
    return (wa * a64 + wb * b64).reshape(a.shape).to(a.dtype)


def _mix_denoiser(pipe, cond_a: dict, cond_b: dict, cfg: float, t: float):
    """Guided denoiser of the mixture of two conditions at weight t (see the module doc); one picture at a time."""
    den = pipe.den

    def run(x, sigma):
        outs = []
        for i in range(x.shape[0]):
            xi, si = x[i:i + 1], sigma[i:i + 1]
            if not cond_a:
                outs.append(den(xi, si))
                continue
            keys = list(cond_a)
            if t in (0.0, 1.0):  # the ends: exactly the plain painting
                c = cond_a if t == 0.0 else cond_b
                both = {k: torch.cat([c[k], c[k]]) for k in keys}
                d = den(torch.cat([xi, xi]), torch.cat([si, si]), drop=torch.tensor([False, True]), **both)
                dc, du = d[:1], d[1:]
            else:
                three = {k: torch.cat([cond_a[k], cond_b[k], cond_a[k]]) for k in keys}
                d = den(torch.cat([xi, xi, xi]), torch.cat([si, si, si]), drop=torch.tensor([False, False, True]),
                        **three)
                dc, du = (1 - t) * d[:1] + t * d[1:2], d[2:]
            outs.append(dc if cfg == 1.0 else du + cfg * (dc - du))
        return torch.cat(outs)

    return run


@torch.no_grad()
def morph(pipe, prompt: str = "", *, to_prompt: str | None = None, seed: int = 0, to_seed: int | None = None,
          frames: int = 16, steps: int = 20, sampler: str = "dpmpp_2m", cfg: float = 3.0, size: int | None = None,
          label=None, to_label=None, guidance=None, callback=None) -> tuple[torch.Tensor, dict]:
    """Frames F×C×H×W from (prompt, seed) to (to_prompt, to_seed); returns (frames, recipe). Frame 0 is the picture
    ``generate`` paints from prompt/seed; the last frame the one from to_prompt/to_seed."""
    from noisebrush.diffusion import SampleNoise, get_sampler
    from noisebrush.paint.guides import guided

    frames = _whole("frames", frames, 2)
    to_prompt = prompt if to_prompt is None else to_prompt
    to_seed = seed if to_seed is None else to_seed
    to_label = label if to_label is None else to_label
    if to_prompt == prompt and to_seed == seed and to_label == label:
        raise BadParameter("morph: give another prompt (to_prompt) and/or another seed (to_seed) to morph towards")
    info = get_sampler(sampler)
    if info.stochastic:
        raise BadParameter(f"sampler: {sampler} draws fresh noise at every step, so neighbouring frames would not "
                           f"match; use a deterministic one (euler, heun, ddim, dpmpp_2m, dpmpp_3m)")
    steps, seed, _, cfg, size, lo, hi = pipe.check(prompt, steps=steps, seed=seed, n=1, sampler=sampler, cfg=cfg,
                                                   size=size, label=label)
    pipe.check(to_prompt, seed=_whole("to_seed", to_seed, 0), label=to_label)
    guidance = pipe.check_guidance(guidance)
    from noisebrush.diffusion import karras

    sigmas = karras(steps, sigma_min=lo, sigma_max=hi)
    shape = (pipe.channels, *([size] * pipe.dims))
    ea = SampleNoise.from_seeds([seed]).randn(shape)
    eb = SampleNoise.from_seeds([to_seed]).randn(shape)
    ca = pipe._conditions(prompt, label, 1)
    cb_ = pipe._conditions(to_prompt, to_label, 1)
    out = []
    for f in range(frames):
        t = f / (frames - 1)
        eps = ea if t == 0 else eb if t == 1 else slerp(ea, eb, t)
        den = guided(_mix_denoiser(pipe, ca, cb_, cfg, t), guidance)
        noise = SampleNoise.from_seeds([seed if t < 0.5 else to_seed])  # unused by deterministic samplers

        def cb(info, f=f):
            info.step = f * steps + info.step
            info.steps = frames * steps
            callback(info)

        out.append(pipe.run_sampler(den, eps * float(sigmas[0]), sigmas, noise, sampler=sampler,
                                    callback=cb if callback else None).clamp(-1, 1))
    recipe = {**pipe.recipe(prompt, seed=seed, steps=steps, sampler=sampler, cfg=cfg, size=size, sigma_min=lo,
                            sigma_max=hi, label=label, guidance=guidance),
              "mode": "morph", "to_prompt": to_prompt, "to_seed": to_seed, "to_label": to_label, "frames": frames}
    return torch.cat(out), recipe
