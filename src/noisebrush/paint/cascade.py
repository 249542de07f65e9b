"""Painting at 64 and 128 px: a base model settles the composition at its own size, super-resolution stages add the
detail (Cascaded Diffusion Models, Ho et al. 2021; SR3, Saharia et al. 2021).

    import noisebrush
    casc = noisebrush.cascade("builtin", size=128)        # the built-in base (32 px) + builtin-sr64 + builtin-sr128
    images, recipes = casc.generate("a red sun over purple mountains", seed=7, n=2)   # N×3×128×128 in [-1, 1]
    pictures = casc("a red sun", seed=7)                  # PIL pictures carrying their recipes
    casc = noisebrush.cascade("runs/mine/model", size=128, stages=["runs/mine-sr64/model", "builtin-sr128"])

**Which stages.** Each stage doubles the size (or quadruples it: ``scale`` 4). Unless told, the chain from the
base model's resolution to ``size`` takes, for each doubling, the built-in stage whose training resolution is
nearest the size it paints (``builtin-sr64`` for 64 px, ``builtin-sr128`` for 128 px and above), so any 32 or 64 px
model — the built-in one or one a user trained — paints at 128 through them.

**Options per stage** (:class:`Stage`): sampler, steps (default: what the stage's model folder records), guidance
``cfg`` (default 1: the prompt is read once per step; only text stages read it), ``aug``, the noise-conditioning
augmentation σ_aug given to the stage's input (default: the σ_aug its folder records), and ``project``: whether
every prediction is corrected to the small picture's block averages (:class:`~noisebrush.paint.upscale.Consistent`).
Upscaling a given picture projects by default (faithful to what it was given); a cascade does not, because its small
pictures are paintings: a blurred edge or a smudge of the base's is exactly what the augmentation lets a stage repaint
(measured in ``python -m noisebrush.bench cascade``). Picture i of a call gets seed
``seed + i`` in the base and in every stage (each stage mixes in a tag and its size: :mod:`noisebrush.paint.upscale`).

**Recipes.** A cascaded picture's recipe is the base painting's, with ``"stages"``: one entry per stage with its
model, weights hash, sampler, steps, cfg, σ_aug, seed and output size. :func:`replay_stages` repaints them (the
recipe module replays the base first), so ``noisebrush reproduce`` paints a 128 px picture again pixel for pixel.

**Edits at 128 px** work at the base and are then upscaled: the picture is box-averaged down to the base size,
varied, inpainted or outpainted there, and painted up through the stages; inpainting and outpainting paste the
original's known pixels back at full size, so they stay exactly as they were. Composition is what an edit changes,
and composition is the base's work; the stages only know how to add detail to a given small picture.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from noisebrush.checks import number
from noisebrush.data.superres import downsample
from noisebrush.errors import BadParameter, UserError
from noisebrush.io.png import RECIPE_KEY
from noisebrush.paint import edit
from noisebrush.paint.pipeline import Pipeline, load
from noisebrush.paint.upscale import MAX_AUG, as_pictures, is_stage, upscale

__all__ = ["BUILTIN_STAGES", "Stage", "Cascade", "cascade", "stage_names", "load_stage", "replay_stages", "stages_of",
           "upscale_image", "upscale_clip", "paste", "stages_strip", "MAX_STAGES"]

BUILTIN_STAGES = {64: "builtin-sr64", 128: "builtin-sr128"}  # the built-in stages by the size they were trained at
MAX_STAGES = 4


@dataclass(frozen=True)
class Stage:
    """One super-resolution stage of a cascade and how it paints (None: its model folder's sampler, steps, σ_aug)."""
    pipe: Pipeline
    steps: int | None = None
    sampler: str | None = None
    cfg: float = 1.0
    aug: float | None = None
    project: bool = False  # correct every prediction to the small picture's block averages (upscale.Consistent):
    #                        off in a cascade, where the stages may repaint what the base got wrong (see the module)

    def __post_init__(self):
        if not is_stage(self.pipe):
            raise UserError(f"{self.pipe.name}: not a super-resolution stage (its model folder was not trained with "
                            f"task = \"sr\")")
        if self.aug is not None:
            number("sr_aug", self.aug, 0.0, MAX_AUG)


def stage_names(resolution: int, size: int) -> list[str]:
    """The built-in stages that take a ``resolution`` px picture to ``size`` px (doubling each time): for each
    doubling, the stage trained nearest the size it paints. BadParameter when ``size`` is not resolution × 2^k."""
    if size < resolution or size % resolution or (size // resolution) & (size // resolution - 1):
        raise BadParameter(f"size: {size} px cannot be reached from this model's {resolution} px by doubling "
                           f"(use {', '.join(str(resolution << k) for k in range(3))})")
    names, r = [], resolution
    while r < size:
        r *= 2
        names.append(BUILTIN_STAGES[min(BUILTIN_STAGES, key=lambda t: abs(math.log2(t / r)))])
    if len(names) > MAX_STAGES:
        raise BadParameter(f"size: {size} px needs {len(names)} stages from {resolution} px; at most {MAX_STAGES}")
    return names


def load_stage(model, *, device=None, lora=None) -> Pipeline:
    """A super-resolution stage's pipeline (a model folder or a built-in stage's name); UserError for a folder
    that holds a picture model."""
    pipe = load(model, device=device, lora=lora)
    if not is_stage(pipe):
        raise UserError(f"{model}: not a super-resolution stage (train one with `noisebrush train --task sr`)")
    return pipe


class Cascade:
    """A base model and its stages; paints like a :class:`~noisebrush.paint.pipeline.Pipeline` at the last stage's
    size (:meth:`check`, :meth:`generate`, calling it; :meth:`vary`, :meth:`inpaint`, :meth:`outpaint` at full
    size). See the module docstring."""

    def __init__(self, base: Pipeline, stages):
        if is_stage(base):
            raise UserError(f"{base.name}: is a super-resolution stage, not a base model that paints from a prompt")
        if base.modality.kind != "image":
            raise UserError(f"{base.name}: a cascade upscales pictures; this model paints {base.modality.kind}s")
        self.base = base
        self.stages = [s if isinstance(s, Stage) else Stage(s) for s in stages]
        if not self.stages:
            raise BadParameter("stages: at least one super-resolution stage")
        if len(self.stages) > MAX_STAGES:
            raise BadParameter(f"stages: at most {MAX_STAGES}, got {len(self.stages)}")
        self.resolution = base.resolution * math.prod(s.pipe.scale for s in self.stages)
        self.modality = base.modality
        self.condition = base.condition
        self.name = base.name

    def with_options(self, *, steps=None, sampler=None, cfg=None, aug=None, project=None) -> "Cascade":
        """The same cascade with every stage's options set (None: left as they are)."""
        new = {k: v for k, v in (("steps", steps), ("sampler", sampler), ("cfg", cfg), ("aug", aug),
                                 ("project", project)) if v is not None}
        return Cascade(self.base, [replace(s, **new) for s in self.stages])

    def sizes(self) -> list[int]:
        """The side each stage paints (square base pictures: the base resolution times the scales so far)."""
        out, r = [], self.base.resolution
        for s in self.stages:
            r *= s.pipe.scale
            out.append(r)
        return out

    def check(self, prompt: str = "", *, size=None, n: int = 1, negative: str | None = None, **opts):
        """The base's :class:`~noisebrush.paint.options.PaintOptions` (at its own size) after checking ``size`` (None
        or the cascade's) and every stage's options and memory at the size it paints."""
        if size is not None and size != self.resolution and size != (self.resolution, self.resolution):
            raise BadParameter(f"size: this cascade paints {self.resolution} px, got {size}")
        o = self.base.check(prompt, n=n, negative=negative, **opts)
        for s, side in zip(self.stages, self.sizes()):
            s.pipe.check(prompt if s.pipe.conditional else "", steps=s.steps, seed=o.seed, n=o.n, sampler=s.sampler,
                         cfg=s.cfg if s.pipe.conditional else 1.0, size=side,
                         negative=negative if s.pipe.conditional else None)
        return o

    def total_steps(self, steps: int, n: int = 1) -> int:
        """Sampler steps of ``n`` pictures through the whole cascade when the base takes ``steps`` (progress bars:
        the base paints the n pictures together, each stage one picture at a time)."""
        return steps + n * sum(s.steps if s.steps is not None else s.pipe.schedule.steps for s in self.stages)

    @torch.no_grad()
    def generate(self, prompt: str = "", *, steps: int | None = None, seed: int = 0, n: int = 1,
                 sampler: str | None = None, cfg: float = 3.0, size=None, label=None, callback=None,
                 negative: str | None = None, stages_out: list | None = None, **base_options) \
            -> tuple[torch.Tensor, list[dict]]:
        """N×3×S×S samples in [-1, 1] at the cascade's size S and one recipe each: the base paints with these options
        (:meth:`Pipeline.generate <noisebrush.paint.pipeline.Pipeline.generate>`), then each stage upscales.
        ``callback(StepInfo)`` sees every step of every stage, counted through the whole cascade. ``stages_out``: a
        list that gets, per picture, its picture after the base and after each stage (1×3×s×s each)."""
        o = self.check(prompt, steps=steps, seed=seed, n=n, sampler=sampler, cfg=cfg, size=size, label=label,
                       negative=negative, sigmas=base_options.pop("sigmas", None))
        total = self.total_steps(o.steps, o.n)
        cb = None if callback is None else _counted(callback, total)
        # the base paints on the levels checked here (a learned schedule's, or the folder's between the bounds)
        images, recipes = self.base.generate(prompt, steps=o.steps, seed=o.seed, n=o.n, sampler=o.sampler, cfg=o.cfg,
                                             label=label, callback=cb, negative=negative,
                                             sigma_min=o.sigma_min, sigma_max=o.sigma_max,
                                             sigmas=o.levels if o.levels is not None else False, **base_options)
        return self.finish(images, recipes, prompt, negative=negative, callback=callback, done=o.steps, total=total,
                           stages_out=stages_out)

    def finish(self, images: torch.Tensor, recipes: list[dict], prompt: str, *, negative=None, callback=None,
               done: int = 0, total: int | None = None, stages_out: list | None = None) \
            -> tuple[torch.Tensor, list[dict]]:
        """Upscale base pictures (N×3×h×w) through every stage, each picture with the seed its recipe records (so a
        picture does not depend on the others, and a best-of-N winner keeps its own); the recipes gain
        ``"stages"``. ``callback(StepInfo)`` sees each picture's stage steps from ``done`` of ``total``."""
        each = self.total_steps(0)
        total = total if total is not None else done + len(recipes) * each
        outs, out_recipes = [], []
        for i, (x, rec) in enumerate(zip(images.split(1), recipes)):
            stages, at = [], done + i * each
            steps_of = [x]
            for s in self.stages:
                x, recs = upscale(s.pipe, x, prompt, seed=int(rec["seed"]), aug=s.aug, steps=s.steps,
                                  sampler=s.sampler, cfg=s.cfg, negative=negative, callback=callback, step_offset=at,
                                  steps_total=total, project=s.project)
                at += recs[0]["steps"]
                stages.append(recs[0])
                steps_of.append(x)
            if stages_out is not None:
                stages_out.append(steps_of)
            outs.append(x)
            out_recipes.append({**rec, "stages": stages})
        return torch.cat(outs), out_recipes

    def __call__(self, prompt: str = "", **kwargs):
        """What :meth:`generate` paints, as PIL pictures carrying their recipes (``noisebrush.save`` keeps them)."""
        images, recipes = self.generate(prompt, **kwargs)
        out = self.modality.decode(images)
        for picture, rec in zip(out, recipes):
            picture.info[RECIPE_KEY] = json.dumps(rec, sort_keys=True)
        return out

    # -- edits at full size: at the base, then upscaled -------------------------------------------------------------
    def _small(self, image, name: str = "image") -> tuple[torch.Tensor, dict, torch.Tensor]:
        """A full-size picture box-averaged to the base's size: (1×3×h×w, the note for the recipe: source file, its
        SHA-256 and ``base_scale``, the factor it was averaged by; the full-size picture itself)."""
        x, note = as_pictures(image, name)
        f = self.resolution // self.base.resolution
        h, w = x.shape[-2:]
        step = f * self.base.modality.step
        if h % step or w % step:
            raise BadParameter(f"{name}: {w}×{h} px; a picture this cascade edits has sides that are multiples of "
                               f"{step} ({f}× the {self.base.resolution} px base, whose network needs multiples of "
                               f"{self.base.modality.step})")
        return downsample(x[:1], f), {**note, "base_scale": f}, x[:1]

    def vary(self, image, prompt: str = "", *, seed: int = 0, n: int = 4, negative=None, callback=None, **opts):
        """Variations of a full-size picture: varied at the base size, then upscaled (see the module docstring)."""
        small, note, _ = self._small(image)
        chain = _Chain(callback, n * self.total_steps(0))
        images, recipes = edit.vary(self.base, small, prompt, seed=seed, n=n, negative=negative, callback=chain.base,
                                    **opts)
        recipes = [{**r, **note} for r in recipes]
        return self.finish(images, recipes, prompt, negative=negative, **chain.rest())

    def inpaint(self, image, mask, prompt: str = "", *, seed: int = 0, n: int = 4, negative=None, callback=None,
                **opts):
        """Repaint where ``mask`` (the full picture's size) is white: at the base size, where a base pixel is
        repainted when any full-size pixel of its block is, then upscaled; the unmasked pixels are the original's,
        exactly."""
        small, note, full = self._small(image)
        hole = edit.load_mask(mask, tuple(full.shape[-2:]))
        if not bool(hole.any()):
            raise BadParameter("mask: nothing to repaint: the mask is all black; white = repaint")
        f = note["base_scale"]
        small_hole = torch.nn.functional.max_pool2d(hole.float(), f) > 0
        chain = _Chain(callback, n * self.total_steps(0))
        images, recipes = edit._inpaint(self.base, small, small_hole, prompt, seed=seed, n=n, negative=negative,
                                        callback=chain.base, note={"mode": "inpaint"}, **_inpaint_options(opts))
        images, recipes = self.finish(images, [{**r, **note, **edit._mask_note(mask)} for r in recipes], prompt,
                                      negative=negative, **chain.rest())
        return paste(images, full, ~hole), recipes

    def outpaint(self, image, extend, prompt: str = "", *, seed: int = 0, n: int = 4, negative=None, callback=None,
                 **opts):
        """Paint ``extend`` = (left, top, right, bottom) full-size pixels beyond the edges (each a multiple of the
        cascade's factor): at the base size, then upscaled; the picture itself is the original's, exactly."""
        small, note, full = self._small(image)
        f = note["base_scale"]
        sides = edit.parse_extend(extend, tuple(full.shape[-2:]))
        if any(v % f for v in sides):
            raise BadParameter(f"extend: each side a multiple of {f} (the cascade paints at 1/{f} of the size first), "
                               f"got {','.join(map(str, sides))}")
        chain = _Chain(callback, n * self.total_steps(0))
        images, recipes = edit.outpaint(self.base, small, [v // f for v in sides], prompt, seed=seed, n=n,
                                        negative=negative, callback=chain.base, **opts)
        recipes = [{**r, **note, "extend_full": list(sides)} for r in recipes]
        images, recipes = self.finish(images, recipes, prompt, negative=negative, **chain.rest())
        left, top, _, _ = sides
        h, w = full.shape[-2:]
        known = torch.zeros(1, 1, *images.shape[-2:], dtype=torch.bool)
        known[..., top:top + h, left:left + w] = True
        canvas = torch.zeros(1, 3, *images.shape[-2:])
        canvas[..., top:top + h, left:left + w] = full
        return paste(images, canvas, known), recipes

    @torch.no_grad()
    def morph(self, prompt: str = "", *, seed: int = 0, to_prompt=None, negative=None, callback=None, **opts):
        """Frames of :func:`noisebrush.paint.edit.morph` at the base size, each upscaled through the stages with the
        seed of the first picture (so the detail the stages add stays put from frame to frame), and the prompt of
        the nearer end."""
        count = opts.get("frames", 16)  # edit.morph checks it; the progress bar only needs a number
        chain = _Chain(callback, (count if isinstance(count, int) else 16) * self.total_steps(0))
        frames, recipe = edit.morph(self.base, prompt, seed=seed, to_prompt=to_prompt, negative=negative,
                                    callback=chain.base, **opts)
        to = recipe["to_prompt"]
        outs, stages = [], None
        rest = chain.rest()
        each = self.total_steps(0)
        for i, frame in enumerate(frames.split(1)):
            near = prompt if i < (len(frames) - 1) / 2 else to
            x, recs = self.finish(frame, [{"seed": recipe["seed"]}], near, negative=negative,
                                  callback=rest["callback"], done=rest["done"] + i * each, total=rest["total"])
            outs.append(x)
            stages = stages or recs[0]["stages"]
        return torch.cat(outs), {**recipe, "stages": stages}


def _inpaint_options(opts: dict) -> dict:
    """The options of :func:`noisebrush.paint.edit._inpaint` a caller may give (the sampler is RePaint's own)."""
    allowed = {"steps", "jump_length", "jumps", "cfg", "label", "guidance"}
    unknown = sorted(set(opts) - allowed)
    if unknown:
        raise BadParameter(f"{unknown[0]}: not an option of inpainting through a cascade")
    return {"steps": None, "jump_length": None, "jumps": 3, "cfg": 3.0, "label": None, "guidance": None, **opts}


def paste(images: torch.Tensor, original: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """``images`` with ``original``'s pixels where ``keep`` (1×1×H×W bool) is true."""
    return torch.where(keep.expand_as(images), original.expand_as(images), images)


def cascade(base="builtin", *, size: int = 128, stages=None, device=None, lora=None, **stage_options) -> Cascade:
    """A :class:`Cascade` from ``base`` (a model folder or "builtin", with LoRAs) to ``size`` px. ``stages``: model
    folders or built-in stage names (default: :func:`stage_names`); ``stage_options``: steps, sampler, cfg, aug for
    every stage."""
    base_pipe = base if isinstance(base, Pipeline) else load(base, device=device, lora=lora)
    names = stage_names(base_pipe.resolution, size) if stages is None else list(stages)
    pipes = [s if isinstance(s, Pipeline) else load_stage(s, device=device) for s in names]
    casc = Cascade(base_pipe, pipes)
    if casc.resolution != size:
        raise BadParameter(f"size: {size} px, but these stages take the {base_pipe.resolution} px pictures to "
                           f"{casc.resolution} px")
    return casc.with_options(**stage_options)


class _Chain:
    """Progress through a base edit and then ``later`` stage steps: :meth:`base` is the edit's callback (its totals
    grow by ``later``); :meth:`rest` the keyword arguments that make :meth:`Cascade.finish` go on from there."""

    def __init__(self, callback, later: int):
        self.callback, self.later, self.done = callback, int(later), 0

    def base(self, info):
        self.done = info.steps
        if self.callback is not None:
            self.callback(replace(info, steps=info.steps + self.later))

    def rest(self) -> dict:
        return {"callback": self.callback, "done": self.done, "total": self.done + self.later}


def _counted(callback, total: int):
    """``callback`` seeing the base's steps as the first ones of ``total``."""
    def cb(info):
        callback(replace(info, steps=total))
    return cb


def stages_of(stages, *, where="recipe", device=None) -> list[Stage]:
    """The :class:`Stage` s a recipe's ``"stages"`` list records, each model checked against its weights hash."""
    if not isinstance(stages, list) or not stages or not all(isinstance(s, dict) for s in stages):
        raise UserError(f"{where}: its recipe's 'stages' is not a list of super-resolution stages")
    out = []
    for k, rec in enumerate(stages):
        named = rec.get("model")
        if not isinstance(named, str) or not named:
            raise UserError(f"{where}: its recipe's stage {k + 1} names no model")
        pipe = load_stage(named, device=device)
        if rec.get("model_hash") and rec["model_hash"] != pipe.hash:
            raise UserError(f"{where}: stage {k + 1} was painted with weights {rec['model_hash']}, but {named} has "
                            f"{pipe.hash}")
        try:
            out.append(Stage(pipe, steps=int(rec["steps"]), sampler=str(rec["sampler"]), cfg=float(rec["cfg"]),
                             aug=float(rec["sr_aug"]), project=bool(rec.get("sr_project", False))))
        except (KeyError, TypeError, ValueError) as e:
            raise UserError(f"{where}: incomplete stage {k + 1} in its recipe ({e})") from None
    return out


def replay_stages(x: torch.Tensor, stages, prompt: str = "", *, where="recipe", device=None, callback=None,
                  negative=None) -> tuple[torch.Tensor, list[dict]]:
    """Upscale ``x`` (the base picture of a recipe, 1×3×h×w) through the stages a recipe's ``"stages"`` list
    records (:func:`stages_of`) → (the picture, the stages' recipes). Each stage reads the prompt it recorded."""
    out = []
    for st, rec in zip(stages_of(stages, where=where, device=device), stages):
        x, recs = upscale(st.pipe, x, rec.get("prompt", prompt) if st.pipe.conditional else "", seed=int(rec["seed"]),
                          aug=st.aug, steps=st.steps, sampler=st.sampler, cfg=st.cfg,
                          negative=rec.get("negative", negative), callback=callback, project=st.project)
        out.append(recs[0])
    return x, out


def upscale_image(image, *, scale: int = 2, prompt: str = "", stages=None, seed: int = 0, device=None,
                  steps=None, sampler=None, cfg: float = 1.0, aug=None, negative=None, callback=None,
                  project: bool = True) \
        -> tuple[torch.Tensor, dict]:
    """Any picture (a file, a PIL picture, 1×3×h×w) upscaled ``scale`` (2 or 4) times through the built-in stages (or
    ``stages``) → (1×3×(scale·h)×(scale·w), its recipe: ``mode: "upscale"``, the source file and ``"stages"``)."""
    if scale not in (2, 4):
        raise BadParameter(f"scale: 2 or 4, got {scale}")
    low, note = as_pictures(image, "image")
    h = low.shape[-2]
    names = list(stages) if stages is not None else stage_names(h, h * scale)  # each stage checks its size
    pipes = [s if isinstance(s, Pipeline) else load_stage(s, device=device) for s in names]
    x, recs = low, []
    total = sum((steps if steps is not None else p.schedule.steps) for p in pipes)
    done = 0
    for p in pipes:
        x, r = upscale(p, x, prompt, seed=seed, aug=aug, steps=steps, sampler=sampler, cfg=cfg, negative=negative,
                       callback=callback, step_offset=done, steps_total=total, project=project)
        done += r[0]["steps"]
        recs.append({k: v for k, v in r[0].items() if k not in ("source", "source_sha256")})
    return x, {"mode": "upscale", "prompt": prompt, **note, "stages": recs, "width": x.shape[-1],
               "height": x.shape[-2]}


def upscale_clip(clip: torch.Tensor, *, scale: int = 4, prompt: str = "", seed: int = 0, device=None,
                 callback=None) -> torch.Tensor:
    """A clip's frames (C×F×h×w in [-1, 1]) upscaled ``scale`` times through the built-in stages, frame by frame,
    every frame with the same seed and projected onto its small frame's block averages (so the frames keep the
    clip's motion and differ in detail only where the small frames do) → C×F×(scale·h)×(scale·w)."""
    frames = []
    for f in range(clip.shape[1]):
        x, _ = upscale_image(clip[:, f][None], scale=scale, prompt=prompt, seed=seed, device=device,
                             callback=callback)
        frames.append(x[0])
    return torch.stack(frames, 1)


def stages_strip(steps: list[torch.Tensor], pad: int = 2) -> torch.Tensor:
    """One picture's way through a cascade (its picture after the base and after each stage) side by side, each
    enlarged to the last one's size by pixel repetition so the detail each stage adds shows: 3×S×(k·S + pads)
    in [-1, 1], white between them."""
    size = steps[-1].shape[-2:]
    parts = []
    for x in steps:
        f = size[0] // x.shape[-2]
        big = x[0].repeat_interleave(f, -2).repeat_interleave(f, -1)
        parts += [big, torch.ones(3, size[0], pad)]
    return torch.cat(parts[:-1], -1)
