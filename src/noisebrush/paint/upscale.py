"""One super-resolution stage: paint a picture ``scale`` times larger, conditioned on the picture.

    pipe = noisebrush.load("builtin-sr64")                       # a model folder trained with task = "sr"
    big, recipes = pipe.upscale("small.png", seed=3)               # 1×3×2H×2W in [-1, 1], the stage's recipe
    big, recipes = upscale(pipe, low, "a red sun", aug=0.1)        # low: N×3×h×w in [-1, 1] (a cascade's pictures)

The stage starts from pure noise at the large size and denoises it with its network, which sees the small picture
plus ``aug``·ε (the noise-conditioning augmentation it was trained with, :mod:`noisebrush.data.superres`; default:
the σ_aug its model folder records) upsampled bicubically, and is told ``aug``. A text-conditioned stage also reads
the prompt (with guidance ``cfg``; the default 1 evaluates it once per step); a stage without text ignores it.

**Any size.** The network is convolutional: a picture whose sides are not a multiple of what the network needs is
padded (edges repeated) on the bottom and right, and the result cut back to exactly ``scale`` times the picture.

**Noise.** Picture i uses the seed ``seed + i``; its generator is ``seeding.generator(seed + i, STAGE_TAG, scale ×
height)``, so the stages of one cascade draw independent noise although they record the picture's seed. The
augmentation noise is drawn first (the small picture's shape), then x_T, then whatever the sampler draws.

**Faithful.** Unless ``project=False``, every prediction of the clean picture is corrected so its box averages are
the small picture's (:class:`Consistent`; the data-consistency step of ILVR-style guided sampling, exact here
because the degradation is a plain box average): the stage adds detail inside each block and never moves the
picture it was given.

Each result's recipe is the stage's: model, weights hash, sampler, steps, cfg, ``sr_aug``, ``sr_project``, seed and
output size (and the prompt for a text stage); :mod:`noisebrush.paint.cascade` puts them under a recipe's ``"stages"``.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from noisebrush.checks import number
from noisebrush.data.superres import downsample, low_condition
from noisebrush.diffusion import SampleNoise
from noisebrush.diffusion.sample import sample, start
from noisebrush.errors import BadParameter, UserError
from noisebrush.io.hashing import file_sha256
from noisebrush.paint.edit import _pil_rgb, _to_tensor
from noisebrush.seeding import generator

__all__ = ["upscale", "as_pictures", "Consistent", "stage_recipe_keys", "STAGE_TAG", "MAX_AUG", "is_stage"]

STAGE_TAG = 0x5EED5  # mixed into a stage's noise seed (see the module docstring)
MAX_AUG = 1.0        # the largest --sr-aug (the stages train with σ_aug up to 0.5)
# what a stage's recipe records (the rest of Pipeline.recipe belongs to the whole picture)
stage_recipe_keys = ("model", "model_hash", "lora", "prompt", "prompt_syntax", "negative", "sampler", "steps", "cfg",
                     "seed", "sr_aug", "sr_project", "width", "height", "sigma_min", "sigma_max")


def is_stage(pipe) -> bool:
    """Whether ``pipe`` is a super-resolution stage (its model folder was trained with ``task = "sr"``)."""
    return getattr(pipe, "task", "image") == "sr"


def as_pictures(image, name: str = "image") -> tuple[torch.Tensor, dict]:
    """N×3×h×w in [-1, 1] from a tensor (C×h×w or N×C×h×w), a PIL picture or a file; a note for the recipe."""
    note: dict = {}
    if torch.is_tensor(image):
        x = image.unsqueeze(0) if image.ndim == 3 else image
        if x.ndim != 4 or x.shape[1] != 3:
            raise BadParameter(f"{name}: a tensor 3×H×W or N×3×H×W in [-1, 1], got {tuple(image.shape)}")
        return x.detach().to("cpu", torch.float32), note
    if isinstance(image, (str, Path)):
        note = {"source": Path(image).name, "source_sha256": file_sha256(image)[:16]} if Path(image).is_file() \
            else {}
    return _to_tensor(_pil_rgb(image, name)), note


class Consistent(torch.nn.Module):
    """A stage's denoiser whose every prediction x̂_0 has the small picture's box averages: x̂_0 + up(t − down(x̂_0)),
    with ``t`` (the clean small picture, one row per picture) passed as the condition ``target`` and ``up`` the
    nearest-neighbour enlargement. The correction is a constant on each scale×scale block, affine in x̂_0, so it
    commutes with guidance's weighted sums; the sampler ends on a picture that box-averages back to ``t`` exactly
    (up to float rounding)."""

    def __init__(self, den, scale: int):
        super().__init__()
        self.den, self.scale = den, int(scale)

    def forward(self, x, sigma, target=None, **cond):
        x0 = self.den(x, sigma, **cond)
        if target is None:
            return x0
        s = self.scale
        fix = target.to(x0.dtype) - downsample(x0, s)
        return x0 + fix.repeat_interleave(s, -2).repeat_interleave(s, -1)


@torch.no_grad()
def upscale(pipe, image, prompt: str = "", *, seed: int = 0, aug: float | None = None, steps: int | None = None,
            sampler: str | None = None, cfg: float = 1.0, negative: str | None = None, label=None, callback=None,
            step_offset: int = 0, steps_total: int | None = None, name: str = "image", project: bool = True) \
        -> tuple[torch.Tensor, list[dict]]:
    """``image`` (a file, a PIL picture, or N×3×h×w in [-1, 1]) painted ``pipe.scale`` times larger by the stage
    ``pipe`` → (N×3×(scale·h)×(scale·w) in [-1, 1], one stage recipe each; a file adds ``source`` and its SHA-256).
    ``callback(StepInfo)`` sees every step, counted from ``step_offset`` of ``steps_total``. ``project``: keep every
    prediction consistent with the small picture (:class:`Consistent`), so the result box-averages back to it."""
    if not is_stage(pipe):
        raise UserError(f"{pipe.name}: not a super-resolution stage (train one with `noisebrush train --task sr`)")
    low, note = as_pictures(image, name)
    n, _, h, w = low.shape
    aug = float(pipe.superres.get("sampling_aug", 0.0)) if aug is None else number("sr_aug", aug, 0.0, MAX_AUG)
    scale = pipe.scale
    step = pipe.modality.step
    need = -(-step // scale)  # the small picture's sides must be multiples of this for the network's levels
    ph, pw = -h % need, -w % need
    padded = F.pad(low, (0, pw, 0, ph), mode="replicate") if ph or pw else low
    size = (scale * padded.shape[-2], scale * padded.shape[-1])
    o = pipe.check(prompt if pipe.conditional else "", steps=steps, seed=seed, n=n, sampler=sampler,
                   cfg=cfg if pipe.conditional else 1.0, size=size, label=label,
                   negative=negative if pipe.conditional else None)
    seeds = list(o.seeds)
    noise = SampleNoise([generator(s, STAGE_TAG, size[0]) for s in seeds])
    eps = noise.randn(padded.shape[1:])  # the augmentation's noise, first from each picture's generator
    cond = low_condition(padded, scale, aug=aug, noise=eps)
    sigmas = o.sigmas()
    x = start(noise, pipe.modality.shape(size), sigmas)
    picture = {"low": cond, "aug": torch.full((n,), aug)} | ({"target": padded} if project else {})
    den = pipe.denoiser(o.prompt, label=label, cfg=o.cfg, negative=negative if pipe.conditional else None,
                        picture=picture, wrap=(lambda d: Consistent(d, scale)) if project else None)
    out = sample(den, x, sigmas, noise, sampler=o.sampler, callback=callback, step_offset=step_offset,
                 steps=steps_total if steps_total is not None else o.steps)
    out = out[..., :scale * h, :scale * w].clamp(-1, 1)
    recipes = []
    for s in seeds:
        rec = pipe.recipe(o.prompt, seed=s, steps=o.steps, sampler=o.sampler, cfg=o.cfg, size=(scale * h, scale * w),
                          sigma_min=o.sigma_min, sigma_max=o.sigma_max, label=label,
                          negative=negative if pipe.conditional else None)
        rec["sr_aug"], rec["sr_project"] = aug, bool(project)
        rec = {k: rec[k] for k in stage_recipe_keys if k in rec}
        if not pipe.conditional:
            rec.pop("prompt", None)
        recipes.append({**rec, **note})
    return out, recipes
