"""Clips from a clip model: text → clip, picture → clip, interpolation between two pictures, longer clips, loops.

    pipe = noisebrush.load("builtin-video")
    clips, recipes = pipe.animate("a small red circle sliding left slowly on a blue background", seed=3)
    clips, _ = pipe.animate("a yellow sun setting slowly over green hills", first="sun.png")        # picture → clip
    clips, _ = pipe.animate("a red flower opening", first="closed.png", last="open.png")         # interpolation
    clips, _ = pipe.animate("a mondrian grid sliding left slowly", frames=40, loop=True)          # longer, a loop

A clip model trained with given frames (``noisebrush train --task video``: its config.json says ``"video":
{"given_frames": "channels"}``) reads, next to the noisy clip, the frames it is given and a 0/1 mask
(:func:`noisebrush.data.clips.frame_condition`); every denoised estimate has the given frames put back
(:class:`KeepGiven`), so they come out exactly as given — ``first`` is the clip's first frame bit for bit. One
network does every job (MCVD's masking):

* **text → clip**: nothing given; the model's own length (its ``frames``) in one window;
* **picture → clip** (``first``): frame 0 given;
* **interpolation** (``first`` and ``last``): the first and the last frame given, in one window of ``frames``;
* **longer clips** (``frames`` above the model's length ``T``): autoregressive windows of ``T`` frames, each given
  the last ``T // 2`` frames painted so far and adding ``T - T // 2`` new ones (masking, not reconstruction
  guidance: the network was trained for exactly these masks, and guidance would need a gradient through the network
  at every step);
* **a loop** (``loop``): after the clip, one more window given its last frame first and its first frame last;
  its ``T - 2`` inner frames lead back to the start, so the clip plays round without a jump.

A model trained with correlated frame noise (``video.frame_noise``) starts from noise correlated the same way
(:func:`start_clip`). Clip i uses seed ``seed + i``; window w > 0 of it draws its noise from ``mix(seed + i, w, WINDOW_TAG)``. A clip model
without given frames (any ``dims = 3, factorized`` folder) paints text → clip of any length in one window.
Pictures of another size than the model's are cropped to a square in the middle and resized (Lanczos) first; the
recipe records that they were.
"""
from __future__ import annotations

import numpy as np
from PIL import Image
import torch

from noisebrush.checks import limited
from noisebrush.data.clips import frame_condition
from noisebrush.diffusion.noise import SampleNoise, correlate_frames
from noisebrush.diffusion.sample import sample, start
from noisebrush.errors import BadParameter, UserError, warn
from noisebrush.io.images import to_pil
from noisebrush.paint.upscale import as_pictures
from noisebrush.seeding import mix

__all__ = ["animate", "KeepGiven", "window", "conditioned", "frame_noise", "start_clip", "WINDOW_TAG"]

WINDOW_TAG = 0xA417  # the noise of the windows after the first


class KeepGiven(torch.nn.Module):
    """A clip denoiser whose every estimate x̂_0 has the given frames put back: ``where(keep_mask, keep, x̂_0)``
    (``keep``/``keep_mask`` come as conditions, one row per clip). The sampler's last step returns x̂_0, so the given
    frames come out exactly."""

    def __init__(self, den):
        super().__init__()
        self.den = den

    def forward(self, x, sigma, keep=None, keep_mask=None, **cond):
        x0 = self.den(x, sigma, **cond)
        if keep is None:
            return x0
        return torch.where(keep_mask.to(torch.bool), keep.to(x0.dtype), x0)


def frame_noise(pipe) -> float:
    """The correlation of a clip's frames' noise the model was trained with (``video.frame_noise``; 0: none)."""
    video = pipe.config.get("video")
    rho = video.get("frame_noise", 0.0) if isinstance(video, dict) else 0.0
    return float(rho) if isinstance(rho, (int, float)) and not isinstance(rho, bool) and 0 <= rho < 1 else 0.0


def start_clip(pipe, noise, shape, sigmas) -> torch.Tensor:
    """x_T for clips of ``shape`` (C×T×H×W): the sampling core's start with the frames' noise correlated as the
    model was trained (:func:`frame_noise`)."""
    return correlate_frames(start(noise, shape, sigmas), frame_noise(pipe))


def window(pipe) -> int:
    """The clip length the model was trained on (its default number of frames)."""
    return int(pipe.modality.default[0])


def conditioned(pipe) -> bool:
    """Whether the model reads given frames (trained with MCVD frame masks)."""
    video = pipe.config.get("video")
    return isinstance(video, dict) and video.get("given_frames") == "channels"


def _picture(pipe, image, name: str, hw: tuple[int, int], key: str) -> tuple[torch.Tensor, dict]:
    """(3×H×W in [-1, 1] at the model's size, the recipe's note: file name, SHA-256, resizing)."""
    x, note = as_pictures(image, name)
    if x.shape[0] != 1:
        raise BadParameter(f"{name}: one picture, got {x.shape[0]}")
    note = {key if k == "source" else f"{key}_sha256": v for k, v in note.items()}
    h, w = x.shape[-2:]
    if (h, w) != hw:
        side = min(h, w)
        top, left = (h - side) // 2, (w - side) // 2
        pil = to_pil(x[0, :, top:top + side, left:left + side])
        pil = pil.resize((hw[1], hw[0]), Image.LANCZOS)
        x = torch.from_numpy(np.asarray(pil, dtype=np.uint8).copy()).permute(2, 0, 1)[None]
        x = x.float() / 127.5 - 1
        note[f"{key}_resized_from"] = [int(h), int(w)]
    return x[0], note


def _plan(frames: int, T: int, first: bool, last: bool, loop: bool) -> list[dict]:
    """The windows of one clip: length, which of its frames come from earlier windows (``overlap``) or from the
    pictures, and how many new frames it adds."""
    if last:
        return [{"length": frames, "first": first, "last": True}]
    plan = [{"length": min(frames, T), "first": first}]
    done, keep = plan[0]["length"], max(1, T // 2)
    while done < frames:
        new = min(T - keep, frames - done)
        plan.append({"length": keep + new, "overlap": keep})
        done += new
    if loop:
        plan.append({"length": T, "bridge": True})
    return plan


@torch.no_grad()
def animate(pipe, prompt: str = "", *, frames: int | None = None, seed: int = 0, n: int = 1, steps: int | None = None,
            sampler: str | None = None, cfg: float = 3.0, first=None, last=None, loop: bool = False,
            negative: str | None = None, label=None, callback=None) -> tuple[torch.Tensor, list[dict]]:
    """``n`` clips (N×C×F×H×W in [-1, 1]; F = ``frames``, plus T − 2 with ``loop``) and one recipe each; see the
    module docstring. ``first``/``last``: a file, a PIL picture or a 3×H×W tensor in [-1, 1]. ``callback(StepInfo)``
    sees every step of every window (``step`` counts across the windows)."""
    if pipe.modality.kind != "clip":
        raise UserError(f"animate: {pipe.name} paints {pipe.modality.kind}s, not clips; use a clip model "
                        f"(noisebrush train --task video)")
    T, H, W = pipe.modality.default
    frames = T if frames is None else limited("frames", frames, "frames")
    if last is not None and first is None:
        raise BadParameter("to: an interpolation needs the first picture too (from)")
    loop = bool(loop)
    given = conditioned(pipe)
    if not given and (first is not None or loop):
        raise UserError(f"animate: {pipe.name} was not trained with given frames; it paints from a prompt only "
                        f"(no --from, --to or --loop)")
    if loop and T < 3:
        raise BadParameter(f"loop: needs a model that paints at least 3 frames (this one: {T})")
    o = pipe.check(prompt, steps=steps, seed=seed, n=n, sampler=sampler, cfg=cfg, size=(min(frames, T), H, W),
                   label=label, negative=negative)
    if (last is not None or not given) and frames > T:
        warn(f"frames {frames}: this model was trained on {T}-frame clips; painting {frames} in one window")
    notes: dict = {}
    pictures = {}
    if first is not None:
        pictures["first"], note = _picture(pipe, first, "from", (H, W), "source")
        notes |= note
    if last is not None:
        pictures["last"], note = _picture(pipe, last, "to", (H, W), "to")
        notes |= note
    plan = _plan(frames, T, first is not None, last is not None, loop) if given else [{"length": frames}]
    total = o.steps * len(plan)
    clips = [_one(pipe, prompt, s, plan, pictures, o, label, negative, callback, i * total, total * len(o.seeds))
             for i, s in enumerate(o.seeds)]
    extra = {"mode": "animate", **({"loop": True} if loop else {}), **notes}
    recipes = [{**pipe.recipe(prompt, seed=s, steps=o.steps, sampler=o.sampler, cfg=o.cfg, size=(frames, H, W),
                              sigma_min=o.sigma_min, sigma_max=o.sigma_max, label=label, negative=negative), **extra}
               for s in o.seeds]
    return torch.stack(clips), recipes


def _one(pipe, prompt, seed, plan, pictures, o, label, negative, callback, offset, total) -> torch.Tensor:
    """One clip (C×F×H×W), window by window."""
    C = pipe.channels
    H, W = pipe.modality.default[1:]
    sigmas = o.sigmas()
    painted = None  # C×F×H×W so far
    for w, win in enumerate(plan):
        L = win["length"]
        keep = torch.zeros(1, C, L, H, W)
        mask = torch.zeros(L, dtype=torch.bool)
        if win.get("first"):
            keep[0, :, 0], mask[0] = pictures["first"], True
        if win.get("last"):
            keep[0, :, -1], mask[-1] = pictures["last"], True
        if win.get("overlap"):
            k = win["overlap"]
            keep[0, :, :k], mask[:k] = painted[:, -k:], True
        if win.get("bridge"):
            keep[0, :, 0], keep[0, :, -1] = painted[:, -1], painted[:, 0]
            mask[0] = mask[-1] = True
        noise = SampleNoise.from_seeds([seed if w == 0 else mix(seed, w, WINDOW_TAG)])
        x = start_clip(pipe, noise, (C, L, H, W), sigmas)
        picture = None
        if conditioned(pipe):
            m = mask[None, None, :, None, None].to(torch.float32)
            picture = {"low": frame_condition(keep, mask), "keep": keep, "keep_mask": m}
        den = pipe.denoiser(prompt, label=label, cfg=o.cfg, negative=negative, picture=picture,
                            wrap=KeepGiven if picture else None)
        out = sample(den, x, sigmas, noise, sampler=o.sampler, callback=callback,
                     step_offset=offset + w * o.steps, steps=total)[0].clamp(-1, 1)
        out = torch.where(mask[None, :, None, None], keep[0], out)  # the given frames, exactly
        if painted is None:
            painted = out
        elif win.get("bridge"):
            painted = torch.cat([painted, out[:, 1:-1]], 1)
        else:
            painted = torch.cat([painted, out[:, win["overlap"]:]], 1)
    return painted
