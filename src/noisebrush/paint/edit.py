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

Every one of them paints through the sampling core (:mod:`noisebrush.diffusion.sample`) with the pipeline's
per-picture denoiser; inpainting's walk is the engine's RePaint sampler (:mod:`noisebrush.diffusion.samplers.repaint`)
and a morph's prompt mixture is the engine's condition mixing (``make_denoiser(..., mix=...)``).

Pictures are tensors 1×C×H×W in [-1, 1], PIL images or files. A picture whose sides are not multiples of the
network's size step (or that is far larger than the model's resolution) is resized first: ``size`` sets the short
side (default: kept when valid, else the model's resolution; at most the modality's largest size), and the recipe
says so.

**Bounds, checked before any work.** Steps, pictures (``n``), ``jumps``, ``jump_length`` and ``frames`` follow
:data:`noisebrush.checks.LIMITS` (refused above the hard maximum; noted as unusual above the usual range). The
memory a request needs is estimated and refused when it does not fit (:func:`noisebrush.paint.options.check_memory`).
Inpainting and outpainting take the model's default steps, or :data:`REPAINT_STEPS` where those are a learned
schedule's (which RePaint cannot use). ``jump_length`` defaults to :data:`JUMP_LENGTH` levels, or one fewer than the steps when there are fewer (the recipe
records the value used). An all-black mask is refused (nothing to repaint). Outpainting adds at most
:data:`MAX_EXTEND` × the picture's side on each side, and the new canvas follows the modality's size rule.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from noisebrush.checks import limited, number, whole
from noisebrush.data.folder import _to_rgb
from noisebrush.diffusion import SampleNoise, get_sampler
from noisebrush.diffusion.sample import make_denoiser, sample, start
from noisebrush.diffusion.samplers.repaint import repaint, repaint_moves
from noisebrush.errors import BadParameter, UserError
from noisebrush.io.hashing import file_sha256
from noisebrush.io.images import to_pil
from noisebrush.nets.text import parse_weights
from noisebrush.paint.options import check_memory, check_size

__all__ = ["load_image", "load_mask", "working_size", "vary", "inpaint", "outpaint", "morph", "slerp",
           "strength_start", "sdedit", "repaint_known", "check_jumps", "parse_extend", "JUMP_LENGTH", "MAX_EXTEND"]

JUMP_LENGTH = 4  # RePaint's levels per jump unless told (fewer when the schedule has fewer steps)
# RePaint's steps when the model's default steps are a learned schedule's (the built-in's 10): those levels were
# learned for its deterministic sampler, not for RePaint's ancestral steps, so RePaint keeps the usual 20
REPAINT_STEPS = 20
MAX_EXTEND = 4   # outpainting adds at most this many times the picture's side on each side


# -- pictures in --------------------------------------------------------------------------------------------------
def _open(path, name: str):
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


def working_size(pipe, h: int, w: int, size: int | None = None) -> tuple[int, int]:
    """The size a picture is painted at: kept when both sides are multiples of the network's step and at most 4×
    the model's resolution (and ``size`` is not given); otherwise scaled so the short side is ``size`` (default: the
    resolution; at most the modality's largest size), both sides rounded to the step."""
    step = pipe.modality.step
    if size is not None:
        whole("size", size, step, pipe.modality.max_size)
    elif h % step == 0 and w % step == 0 and max(h, w) <= 4 * pipe.resolution:
        return h, w
    short = size if size is not None else pipe.resolution
    k = short / min(h, w)
    return max(step, round(h * k / step) * step), max(step, round(w * k / step) * step)


def load_image(pipe, image, *, size: int | None = None, name: str = "image") -> tuple[torch.Tensor, dict]:
    """(1×3×H×W picture in [-1, 1] at its working size, a note for the recipe: source file, its SHA-256, resizing)."""
    pipe.modality.only_images(name)
    pil = _pil_rgb(image, name)
    note: dict = {}
    if isinstance(image, (str, Path)):
        note["source"] = Path(image).name  # the name only: a shared picture names no folder (reproduce looks
        # next to the picture and in the current folder; the SHA-256 prefix says it is the same file)
        note["source_sha256"] = file_sha256(image)[:16]
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
    try:
        if "A" in pil.getbands() and pil.mode != "LA":
            pil = pil.convert("RGBA")
        try:
            grey = pil.convert("L")
        except ValueError:  # a mode Pillow converts to L only through RGBA (La, premultiplied alpha)
            grey = pil.convert("RGBA").convert("L")
    except (ValueError, OSError) as e:
        where = f"{mask}" if isinstance(mask, (str, Path)) else name
        raise UserError(f"{where}: a {pil.mode} picture cannot be read as a grey mask ({name}: "
                        f"{str(e).splitlines()[0] if str(e) else 'unsupported'})") from None
    if (grey.height, grey.width) != tuple(hw):
        grey = grey.resize((hw[1], hw[0]), Image.NEAREST)
    return torch.from_numpy(np.asarray(grey) >= 128).reshape(1, 1, *hw)


# -- shared pieces --------------------------------------------------------------------------------------------------
def _options(pipe, steps, sampler, cfg: float, seed: int, n: int, prompt: str, label, hw, *, size=None,
             name: str | None = None, given=None, negative=None, sigmas=None):
    """Validated options (steps and sampler default to the model's) with both sides checked against the network's
    size step, the memory check, and a warning for a size larger than the model was trained at (not for an
    outpainting canvas). ``name``/``given``: what the messages call the size (default: ``size`` when the caller gave
    one, else the picture's size). ``sigmas``: as :meth:`~noisebrush.paint.pipeline.Pipeline.check`'s (the
    folder's learned schedule for the sampler at these steps unless given)."""
    o = pipe.check(prompt, steps=steps, seed=seed, n=n, sampler=sampler, cfg=cfg, label=label, memory=False,
                   negative=negative, sigmas=sigmas)
    step = pipe.modality.step
    if hw[0] % step or hw[1] % step:
        raise BadParameter(f"size: {hw[1]}×{hw[0]} — both sides must be multiples of {step}")
    if name is None:
        name, given = ("size", size) if size is not None else ("picture size", f"{hw[1]}×{hw[0]}")
    check_memory(pipe, hw, n=o.n, cfg=o.cfg, name=name, given=given)
    if name != "extend":  # outpainting asks for a canvas larger than the picture: that is its point, not a slip
        pipe.modality.warn_untrained(tuple(hw), name, given=given)
    return o


def _recipes(pipe, prompt, seeds, *, steps, sampler, cfg, hw, sigma_min, sigma_max, label, guidance, extra,
             negative=None, levels=None):
    return [{**pipe.recipe(prompt, seed=s, steps=steps, sampler=sampler, cfg=cfg, size=hw, sigma_min=sigma_min,
                           sigma_max=sigma_max, label=label, guidance=guidance, negative=negative, levels=levels),
             **extra} for s in seeds]


def strength_start(steps: int, strength: float) -> int:
    """Index into a schedule of ``steps`` steps where a variation of ``strength`` starts (steps = nothing to do)."""
    return steps - int(round(strength * steps))


# -- variations -----------------------------------------------------------------------------------------------------
@torch.no_grad()
def vary(pipe, image, prompt: str = "", *, strength: float = 0.6, steps: int | None = None, seed: int = 0,
         n: int = 4, sampler: str | None = None, cfg: float = 3.0, size: int | None = None, label=None, guidance=None,
         callback=None, negative: str | None = None, sigmas=None) -> tuple[torch.Tensor, list[dict]]:
    """``n`` variations of ``image`` (SDEdit). Picture i uses seed ``seed + i``; returns (N×3×H×W, recipes).
    ``steps`` and ``sampler`` default to the model folder's; ``negative``: a negative prompt (as ``generate``);
    ``sigmas``: the σ levels (as ``generate``'s: the folder's learned schedule for the sampler at these steps when
    it has one; a recipe records them)."""
    strength = number("strength", strength, 0.0, 1.0)
    x0, note = load_image(pipe, image, size=size)
    hw = tuple(x0.shape[-2:])
    o = _options(pipe, steps, sampler, cfg, seed, n, prompt, label, hw, size=size, negative=negative, sigmas=sigmas)
    steps, n, cfg, sampler, lo, hi = o.steps, o.n, o.cfg, o.sampler, o.sigma_min, o.sigma_max
    guidance = pipe.check_guidance(guidance)
    seeds = list(o.seeds)
    k = strength_start(steps, strength)
    extra = {"mode": "vary", "strength": strength, **note}
    recipes = _recipes(pipe, prompt, seeds, steps=steps, sampler=sampler, cfg=cfg, hw=hw, sigma_min=lo, sigma_max=hi,
                       label=label, guidance=guidance, extra=extra, negative=negative, levels=o.levels)
    if k >= steps:  # strength 0: the picture itself
        return x0.expand(n, -1, -1, -1).clone(), recipes
    return sdedit(pipe, x0, prompt, o, k, label=label, guidance=guidance, negative=negative, callback=callback), \
        recipes


def sdedit(pipe, x0: torch.Tensor, prompt: str, o, k: int, *, label=None, guidance=None, negative=None,
           callback=None) -> torch.Tensor:
    """SDEdit's walk for any modality: ``x0`` (1×C×(axes) in [-1, 1]) noised to σ = ``o.sigmas()[k]`` with each
    seed's own noise, then ``o.sampler`` down the rest of the schedule; ``k`` 0 starts from pure noise (ignores
    ``x0``). Returns N×C×(axes) in [-1, 1], one per seed of ``o`` (:class:`noisebrush.paint.options.PaintOptions`)."""
    sigmas = o.sigmas()
    noise = SampleNoise.from_seeds(list(o.seeds))
    eps = noise.randn(x0.shape[1:])
    sigma = float(sigmas[k])
    x = eps * sigma if k == 0 else x0 + eps * sigma  # strength 1 ignores the picture
    den = pipe.denoiser(prompt, label=label, cfg=o.cfg, guidance=guidance, negative=negative)
    out = sample(den, x, sigmas[k:], noise, sampler=o.sampler, callback=callback or None, step_offset=k,
                 steps=o.steps, **pipe.sampler_options(o.sampler))
    return out.clamp(-1, 1)


# -- inpainting -----------------------------------------------------------------------------------------------------
def check_jumps(steps: int, jump_length, jumps) -> tuple[int, int]:
    """(jump_length, jumps) validated against the number of steps; ``jump_length`` None: :data:`JUMP_LENGTH`, or
    steps - 1 when that is smaller and there is resampling to do."""
    jumps = limited("jumps", jumps, "jumps")
    if jump_length is None:
        if jumps > 1 and steps < 2:
            raise BadParameter(f"jumps: resampling needs at least 2 steps, got {steps} step; use jumps 1 or more steps")
        return (JUMP_LENGTH if jumps == 1 else min(JUMP_LENGTH, steps - 1)), jumps
    jump_length = limited("jump_length", jump_length, "jump_length")
    if jump_length >= steps and jumps > 1:
        raise BadParameter(f"jump_length: must be below the number of steps ({steps}) to resample, got {jump_length}")
    return jump_length, jumps


@torch.no_grad()
def inpaint(pipe, image, mask, prompt: str = "", *, steps: int | None = None, jump_length: int | None = None,
            jumps: int = 3, seed: int = 0, n: int = 4, cfg: float = 3.0, size: int | None = None, label=None,
            guidance=None, callback=None, negative: str | None = None) -> tuple[torch.Tensor, list[dict]]:
    """Repaint where ``mask`` is white (RePaint). The other pixels come out exactly as they went in. An all-black
    mask (nothing to repaint) is refused. ``negative``: a negative prompt (as ``generate``)."""
    pipe.needs_diffusion("inpainting")
    x0, note = load_image(pipe, image, size=size)
    hw = tuple(x0.shape[-2:])
    src_hw = tuple(note["resized_from"]) if "resized_from" in note else hw
    hole = load_mask(mask, hw, source_hw=src_hw)
    if not bool(hole.any()):
        which = f" {Path(mask).name}" if isinstance(mask, (str, Path)) else ""
        raise BadParameter(f"mask{which}: nothing to repaint: the mask is all black; white = repaint")
    return _inpaint(pipe, x0, hole, prompt, steps=steps, jump_length=jump_length, jumps=jumps, seed=seed, n=n,
                    cfg=cfg, label=label, guidance=guidance, callback=callback,
                    note={"mode": "inpaint", **note, **_mask_note(mask)}, size=size, negative=negative)


def _mask_note(mask) -> dict:
    if isinstance(mask, (str, Path)):
        return {"mask": Path(mask).name,  # the name only, like "source"
                "mask_sha256": file_sha256(mask)[:16]}
    return {}


def _inpaint(pipe, x0, hole, prompt, *, steps, jump_length, jumps, seed, n, cfg, label, guidance, callback, note,
             size=None, name=None, given=None, negative=None):
    hw = tuple(x0.shape[-2:])
    sched = pipe.schedule
    if steps is None and sched.learned_for(sched.sampler, sched.steps) is not None:
        steps = REPAINT_STEPS
    o = _options(pipe, steps, "ddpm", cfg, seed, n, prompt, label, hw, size=size, name=name, given=given,
                 negative=negative)
    steps, cfg, lo, hi = o.steps, o.cfg, o.sigma_min, o.sigma_max
    jump_length, jumps = check_jumps(steps, jump_length, jumps)
    guidance = pipe.check_guidance(guidance)
    seeds = list(o.seeds)
    extra = {**note, "jump_length": jump_length, "jumps": jumps}
    recipes = _recipes(pipe, prompt, seeds, steps=steps, sampler="repaint", cfg=cfg, hw=hw, sigma_min=lo,
                       sigma_max=hi, label=label, guidance=guidance, extra=extra, negative=negative)
    out = repaint_known(pipe, x0, ~hole, prompt, o, jump_length=jump_length, jumps=jumps, label=label,
                        guidance=guidance, negative=negative, callback=callback)
    return out, recipes


def repaint_known(pipe, x0: torch.Tensor, keep: torch.Tensor, prompt: str, o, *, jump_length: int, jumps: int,
                  label=None, guidance=None, negative=None, callback=None) -> torch.Tensor:
    """RePaint for any modality: ``x0`` (1×C×(axes)) kept where ``keep`` (bool 1×1×(axes)) is true — exactly, to
    the bit — and the rest painted from each seed of ``o`` to agree with it. Returns N×C×(axes)."""
    n, sigmas = o.n, o.sigmas()
    den = pipe.denoiser(prompt, label=label, cfg=o.cfg, guidance=guidance, negative=negative)
    noise = SampleNoise.from_seeds(list(o.seeds))
    return sample(den, start(noise, x0.shape[1:], sigmas), sigmas, noise, sampler=repaint, callback=callback,
                  steps=repaint_moves(o.steps, jump_length, jumps), known=x0.expand(n, *x0.shape[1:]),
                  keep=keep.expand(n, *keep.shape[1:]), jump_length=jump_length, jumps=jumps)


def parse_extend(text, hw: tuple[int, int] | None = None) -> tuple[int, int, int, int]:
    """"L,T,R,B" (pixels to add on each side), or one number for all four. With the picture's ``hw`` (height,
    width), each side is at most :data:`MAX_EXTEND` × the picture's side along it."""
    if isinstance(text, (tuple, list)):
        parts = list(text)
    else:
        parts = [p.strip() for p in str(text).split(",")]
    try:
        vals = [int(p) for p in parts]
    except (TypeError, ValueError, OverflowError):
        raise BadParameter(f"extend: L,T,R,B as whole numbers of pixels, got {text!r}") from None
    if len(vals) == 1:
        vals = vals * 4
    if len(vals) != 4 or any(v < 0 for v in vals) or not any(vals):
        raise BadParameter(f"extend: L,T,R,B — four whole numbers ≥ 0, not all 0, got {text!r}")
    if hw is not None:
        h, w = hw
        limits = (MAX_EXTEND * w, MAX_EXTEND * h, MAX_EXTEND * w, MAX_EXTEND * h)
        if any(v > lim for v, lim in zip(vals, limits)):
            raise BadParameter(f"extend: at most {MAX_EXTEND}× the picture's side on each side ({limits[0]} left and "
                               f"right, {limits[1]} top and bottom for this {w}×{h} picture), got "
                               f"{','.join(str(v) for v in vals)}")
    return tuple(vals)


@torch.no_grad()
def outpaint(pipe, image, extend, prompt: str = "", *, steps: int | None = None, jump_length: int | None = None,
             jumps: int = 3, seed: int = 0, n: int = 4, cfg: float = 3.0, size: int | None = None, label=None,
             guidance=None, callback=None, negative: str | None = None) -> tuple[torch.Tensor, list[dict]]:
    """Paint ``extend`` = (left, top, right, bottom) pixels beyond the picture's edges; the picture itself is kept
    exactly (``negative``: a negative prompt, as ``generate``). Each side adds at most :data:`MAX_EXTEND` × the picture's side; the new canvas's sides must be
    multiples of the network's size step and at most the modality's largest size."""
    pipe.needs_diffusion("outpainting")
    parse_extend(extend)
    x0, note = load_image(pipe, image, size=size)
    h, w = x0.shape[-2:]
    left, top, right, bottom = parse_extend(extend, (h, w))
    H, W = h + top + bottom, w + left + right
    step = pipe.modality.step
    if H % step or W % step:
        raise BadParameter(f"extend: the new canvas {W}×{H} must have sides that are multiples of {step} "
                           f"(the picture is {w}×{h})")
    if max(H, W) > pipe.modality.max_size:
        raise BadParameter(f"extend: the new canvas {W}×{H} is larger than this model paints (at most "
                           f"{pipe.modality.max_size} a side)")
    shown = ",".join(str(v) for v in (left, top, right, bottom))
    canvas = torch.zeros(1, x0.shape[1], H, W)
    canvas[..., top:top + h, left:left + w] = x0
    hole = torch.ones(1, 1, H, W, dtype=torch.bool)
    hole[..., top:top + h, left:left + w] = False
    return _inpaint(pipe, canvas, hole, prompt, steps=steps, jump_length=jump_length, jumps=jumps, seed=seed, n=n,
                    cfg=cfg, label=label, guidance=guidance, callback=callback,
                    note={"mode": "outpaint", "extend": [left, top, right, bottom], **note}, name="extend",
                    given=shown, negative=negative)


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


@torch.no_grad()
def morph(pipe, prompt: str = "", *, to_prompt: str | None = None, seed: int = 0, to_seed: int | None = None,
          frames: int = 16, steps: int | None = None, sampler: str | None = None, cfg: float = 3.0,
          size: int | None = None,
          label=None, to_label=None, guidance=None, callback=None, negative: str | None = None, sigmas=None) \
        -> tuple[torch.Tensor, dict]:
    """Frames F×C×H×W from (prompt, seed) to (to_prompt, to_seed); returns (frames, recipe). Frame 0 is the picture
    ``generate`` paints from prompt/seed; the last frame the one from to_prompt/to_seed. Weighted prompts mix as
    their (condition, weight) lists (:meth:`noisebrush.paint.pipeline.Pipeline.condition_mix`); ``negative`` (one
    negative prompt for every frame) takes the unconditional twin's place. ``sigmas``: as ``generate``'s."""
    pipe.needs_diffusion("a morph")
    frames = limited("frames", frames, "frames")
    to_prompt = prompt if to_prompt is None else to_prompt
    to_seed = seed if to_seed is None else to_seed
    to_label = label if to_label is None else to_label
    if to_prompt == prompt and to_seed == seed and to_label == label:
        raise BadParameter("morph: give another prompt (to_prompt) and/or another seed (to_seed) to morph towards")
    pipe.modality.only_images("morph")
    # frames between the two ends run both conditions and the unconditional twin in one call; every frame is kept
    conditional = pipe.condition in ("text", "label")
    size = check_size(pipe, size, n=1, batch=3 if conditional else 1, keep=2 * frames)
    o = pipe.check(prompt, steps=steps, seed=seed, n=1, sampler=sampler, cfg=cfg, size=size, label=label,
                   memory=False, negative=negative, sigmas=sigmas)
    steps, seed, cfg, size, lo, hi, sampler = o.steps, o.seed, o.cfg, o.size, o.sigma_min, o.sigma_max, o.sampler
    if get_sampler(sampler).stochastic:
        raise BadParameter(f"sampler: {sampler} draws fresh noise at every step, so neighbouring frames would not "
                           f"match; use a deterministic one (euler, heun, ddim, dpmpp_2m, dpmpp_3m)")
    if pipe.condition == "text":
        parse_weights(to_prompt, "to_prompt")  # its weights' errors name it
    pipe.check(to_prompt, seed=whole("to_seed", to_seed, 0), label=to_label)
    guidance = pipe.check_guidance(guidance)
    sigmas = o.sigmas()
    shape = pipe.modality.shape(size)
    ea = SampleNoise.from_seeds([seed]).randn(shape)
    eb = SampleNoise.from_seeds([to_seed]).randn(shape)
    ca, cb = pipe.condition_mix(prompt, label), pipe.condition_mix(to_prompt, to_label)
    neg = pipe.negative_conditions(negative, cfg)
    out = []
    for f in range(frames):
        t = f / (frames - 1)
        eps = ea if t == 0 else eb if t == 1 else slerp(ea, eb, t)
        # the ends are exactly the plain paintings of A and B; in between, the guided mixture (module docstring)
        mix = ca if t == 0 else cb if t == 1 else [(c, (1 - t) * w) for c, w in ca] + [(c, t * w) for c, w in cb]
        den = make_denoiser(pipe.den, mix=mix, cfg=cfg, batched=False, guides=guidance, negative=neg)
        noise = SampleNoise.from_seeds([seed if t < 0.5 else to_seed])  # unused by deterministic samplers
        out.append(sample(den, eps * float(sigmas[0]), sigmas, noise, sampler=sampler, callback=callback or None,
                          step_offset=f * steps, steps=frames * steps).clamp(-1, 1))
    recipe = {**pipe.recipe(prompt, seed=seed, steps=steps, sampler=sampler, cfg=cfg, size=size, sigma_min=lo,
                            sigma_max=hi, label=label, guidance=guidance, negative=negative, levels=o.levels),
              "mode": "morph", "to_prompt": to_prompt, "to_seed": to_seed, "to_label": to_label, "frames": frames}
    return torch.cat(out), recipe
