"""What a model paints: images, clips, volumes (or 1-D signals) — their shape, size rule, recipe fields and decoding.

    from noisebrush.paint.modality import modality_for
    m = modality_for(config)                  # config.json of a model folder, as a dict
    m.kind, m.axes                            # "clip", ("frames", "height", "width")
    size = m.check_size((8, 16, 16))          # per axis; an int sets the spatial axes, None → the model's default
    x = noise.randn(m.shape(size))            # (channels, 8, 16, 16)
    fields = m.recipe_fields(size)            # {"frames": 8, "width": 16, "height": 16}
    m.size_from_recipe(fields) == size        # True
    frames = m.decode(x)                      # clips: one list of PIL frames per clip
    sheets = m.preview(x)                     # one PIL picture per sample (the picture, a film strip, a slice grid)

Which modality a model has follows from its network description (``config["unet"]``):

========  ===========================  ==============================  ===============================
kind      network                      axes                            recipe fields
========  ===========================  ==============================  ===============================
image     dims=2                       height, width                   width, height (as ever)
clip      dims=3, factorized=True      frames, height, width           frames, width, height
volume    dims=3                       depth, height, width            depth, width, height
signal    dims=1                       length                          length
========  ===========================  ==============================  ===============================

**Size rule.** The network halves every pooled axis once per level below the first, so a pooled axis must be a
multiple of the step 2^(levels-1); a factorised clip network never pools time (Ho et al. 2022, "Video Diffusion
Models", factorised space-time U-Net), so any number of frames ≥ 1 works. Every axis is at most
:data:`MAX_SCALE` × the model's resolution. The default size is the model's resolution on every axis, except
that a model folder may record ``"frames"`` (clips) or ``"depth"`` (volumes) at the top of its config.json.

**Sizes the model was not trained at.** A pooled axis larger than the size the model was trained at (its default)
is painted, with one warning line (:meth:`Modality.warn_untrained`): a convolutional network that never saw a wider
picture repeats its scenes across it (``--size 64`` on a 32 px model paints a 2×2 pattern of small scenes). The
memory such a size needs is checked by :func:`noisebrush.paint.options.check_memory`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch

from noisebrush.checks import warn_once
from noisebrush.errors import BadParameter, UserError
from noisebrush.io.images import make_grid, to_pil
from noisebrush.io.model_folder import network_description

__all__ = ["Modality", "Image", "Clip", "Volume", "Signal", "modality_for", "MAX_SCALE"]

MAX_SCALE = 8  # no axis larger than this many times the model's resolution (memory grows with its cube for volumes)


def _whole(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


@dataclass(frozen=True)
class Modality:
    """The shape of what a model paints. Subclasses name the axes; instances carry the model's numbers."""

    channels: int            # C of the C×(axes) tensors
    resolution: int          # the model's resolution (the default size of a spatial axis)
    step: int                # pooled axes must be multiples of this (2^(levels-1))
    default: tuple[int, ...]  # the size painted when none is given, one per axis

    kind: ClassVar[str] = ""
    axes: ClassVar[tuple[str, ...]] = ()
    spatial: ClassVar[tuple[bool, ...]] = ()  # the axes an int ``size`` sets
    pooled: ClassVar[tuple[bool, ...]] = ()   # the axes the network halves per level

    @property
    def dims(self) -> int:
        return len(self.axes)

    @property
    def max_size(self) -> int:
        return MAX_SCALE * self.resolution

    def shape(self, size: tuple[int, ...]) -> tuple[int, ...]:
        """The shape of one sample: (channels, *size)."""
        return (self.channels, *size)

    def only_images(self, what: str) -> None:
        """UserError unless this is an image model (edits and morphs work on pictures only)."""
        if self.kind != "image":
            raise UserError(f"{what}: works with image models only; this model paints {self.kind}s")

    # -- sizes ----------------------------------------------------------------------------------------------------
    def axes_of(self, size) -> tuple[int, ...]:
        """``size`` as one number per axis, unchecked: ``None`` → the default, an int → every spatial axis (the
        others keep their default), a sequence → as given."""
        if size is None:
            return tuple(self.default)
        if _whole(size):
            return tuple(size if s else d for s, d in zip(self.spatial, self.default))
        return tuple(int(v) for v in size)

    def check_size(self, size=None, name: str = "size", *, warn: bool = True) -> tuple[int, ...]:
        """``None`` → the default; an int → every spatial axis (the others keep their default); a tuple or list →
        one size per axis, in the order of :attr:`axes`. Returns the size per axis or raises BadParameter. ``warn``:
        say so when the size is larger than the model was trained at (:meth:`warn_untrained`)."""
        if size is None:
            return tuple(self.default)
        if _whole(size):
            out = tuple(self._axis(name, ax, v, p, int_given=s)
                        for ax, v, p, s in zip(self.axes, self.axes_of(size), self.pooled, self.spatial))
        elif not isinstance(size, (tuple, list)) or len(size) != self.dims:
            raise BadParameter(f"{name}: a whole number or {self.dims} of them ({', '.join(self.axes)}) for this "
                               f"{self.kind} model, got {size!r}")
        else:
            out = tuple(self._axis(name, ax, v, p) for ax, v, p in zip(self.axes, size, self.pooled))
        if warn:
            self.warn_untrained(out, name, given=size)
        return out

    def warn_untrained(self, size: tuple[int, ...], name: str = "size", given=None) -> None:
        """One warning line (once per run of a front end) when a pooled axis of ``size`` is larger than the model
        was trained at: the network repeats its scenes across a picture wider than it ever saw."""
        over = [ax for ax, v, d, p in zip(self.axes, size, self.default, self.pooled) if p and v > d]
        if not over:
            return
        trained = sorted({d for ax, d in zip(self.axes, self.default) if ax in over})
        shown = given if _whole(given) or isinstance(given, str) else "×".join(str(v) for v in size) if len(size) != 2 else \
            f"{size[1]}×{size[0]}"
        warn_once(f"untrained-size:{name}:{shown}",
                  f"{name} {shown}: this model was trained at {'/'.join(map(str, trained))} px; expect repeated "
                  f"scenes")

    def _axis(self, name: str, axis: str, v, pooled: bool, int_given: bool = False) -> int:
        lo = self.step if pooled else 1
        which = "" if int_given or self.dims == 1 else f" ({axis})"
        if not _whole(v) or not lo <= v <= self.max_size:
            raise BadParameter(f"{name}{which}: a whole number from {lo} to {self.max_size} "
                               f"({MAX_SCALE}× the model's resolution), got {v!r}")
        if pooled and v % self.step:
            raise BadParameter(f"{name}{which}: a multiple of {self.step}, got {v}")
        return v

    # -- recipes --------------------------------------------------------------------------------------------------
    def recipe_fields(self, size: tuple[int, ...]) -> dict:
        """The recipe's size keys for ``size`` (images: exactly the ``width``/``height`` of old recipes)."""
        named = dict(zip(self.axes, (int(s) for s in size)))
        lead = {k: named[k] for k in self.axes if k not in ("height", "width")}
        tail = {k: named[k] for k in ("width", "height") if k in named}
        return lead | tail

    def size_from_recipe(self, recipe: dict) -> tuple[int, ...] | None:
        """The size per axis a recipe records (``None`` when it records none: the model's default). A missing
        ``height`` is the ``width`` (square pictures), as in the recipes of the first versions."""
        if not any(k in recipe for k in self.axes):
            return None
        got = dict(recipe)
        if "height" in self.axes and "height" not in got and "width" in got:
            got["height"] = got["width"]
        missing = [k for k in self.axes if k not in got]
        if missing:
            raise BadParameter(f"recipe: records no {', '.join(missing)} for this {self.kind} model")
        vals = tuple(got[k] for k in self.axes)
        if not all(_whole(v) for v in vals):
            raise BadParameter(f"recipe: sizes must be whole numbers, got {dict(zip(self.axes, vals))}")
        return vals

    # -- output ---------------------------------------------------------------------------------------------------
    def decode(self, x: torch.Tensor):
        """Painted samples N×C×(axes) in [-1, 1] → what a user keeps (see the subclasses)."""
        raise NotImplementedError

    def preview(self, x: torch.Tensor) -> list:
        """One PIL picture per sample, to look at (and to carry a recipe in a PNG)."""
        raise NotImplementedError

    def _check_batch(self, x: torch.Tensor) -> None:
        if x.ndim != self.dims + 2 or x.shape[1] != self.channels:
            raise BadParameter(f"x: a batch N×{self.channels}×({', '.join(self.axes)}) for this {self.kind} model, "
                               f"got {tuple(x.shape)}")


@dataclass(frozen=True)
class Image(Modality):
    """Pictures N×C×H×W. ``decode`` → PIL images (``noisebrush.io.images.to_pil``), as ever."""

    kind: ClassVar[str] = "image"
    axes: ClassVar[tuple[str, ...]] = ("height", "width")
    spatial: ClassVar[tuple[bool, ...]] = (True, True)
    pooled: ClassVar[tuple[bool, ...]] = (True, True)

    def decode(self, x: torch.Tensor) -> list:
        self._check_batch(x)
        return list(to_pil(x))

    def preview(self, x: torch.Tensor) -> list:
        return self.decode(x)


@dataclass(frozen=True)
class Clip(Modality):
    """Clips N×C×T×H×W from a factorised space-time network. ``decode`` → one list of PIL frames per clip;
    :meth:`frames` → uint8 arrays T×H×W×C. An int size sets height and width; frames keep the model's default."""

    kind: ClassVar[str] = "clip"
    axes: ClassVar[tuple[str, ...]] = ("frames", "height", "width")
    spatial: ClassVar[tuple[bool, ...]] = (False, True, True)
    pooled: ClassVar[tuple[bool, ...]] = (False, True, True)

    def decode(self, x: torch.Tensor) -> list[list]:
        self._check_batch(x)
        return [list(to_pil(clip.transpose(0, 1))) for clip in x]

    def frames(self, x: torch.Tensor) -> list[np.ndarray]:
        """One uint8 array T×H×W×C per clip."""
        self._check_batch(x)
        return [np.ascontiguousarray(((c.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 3, 0)
                                     .numpy()) for c in x]

    def preview(self, x: torch.Tensor) -> list:
        """A film strip per clip: its frames left to right."""
        return [make_grid(frames, cols=len(frames)) for frames in self.decode(x)]


@dataclass(frozen=True)
class Volume(Modality):
    """Voxel grids N×C×D×H×W. ``decode`` → one float32 array C×D×H×W in [-1, 1] per sample; ``preview`` → its depth
    slices in a grid."""

    kind: ClassVar[str] = "volume"
    axes: ClassVar[tuple[str, ...]] = ("depth", "height", "width")
    spatial: ClassVar[tuple[bool, ...]] = (True, True, True)
    pooled: ClassVar[tuple[bool, ...]] = (True, True, True)

    def decode(self, x: torch.Tensor) -> list[np.ndarray]:
        self._check_batch(x)
        return [v.detach().to("cpu", torch.float32).numpy().copy() for v in x]

    def preview(self, x: torch.Tensor) -> list:
        self._check_batch(x)
        return [make_grid(list(to_pil(v.transpose(0, 1))), cols=math.ceil(math.sqrt(v.shape[1]))) for v in x]


@dataclass(frozen=True)
class Signal(Modality):
    """1-D signals N×C×L. ``decode`` → one float32 array C×L per sample; ``preview`` → a strip C pixels high."""

    kind: ClassVar[str] = "signal"
    axes: ClassVar[tuple[str, ...]] = ("length",)
    spatial: ClassVar[tuple[bool, ...]] = (True,)
    pooled: ClassVar[tuple[bool, ...]] = (True,)

    def decode(self, x: torch.Tensor) -> list[np.ndarray]:
        self._check_batch(x)
        return [s.detach().to("cpu", torch.float32).numpy().copy() for s in x]

    def preview(self, x: torch.Tensor) -> list:
        self._check_batch(x)
        return [to_pil(s.reshape(-1, 1, s.shape[-1]).mean(0, keepdim=True)) for s in x]


def _default(config: dict, key: str, resolution: int) -> int:
    v = config.get(key, resolution)
    if not _whole(v) or v < 1:
        raise BadParameter(f"{key}: the model's default {key} must be a whole number ≥ 1, got {v!r}")
    return v


def modality_for(config: dict) -> Modality:
    """The modality of a model from its config.json (a dict with ``unet`` and ``resolution``)."""
    net = network_description(config)  # config["unet"] for a UNet
    dims = int(net.get("dims", 2))
    resolution = int(config.get("resolution", net.get("resolution", 32)))
    step = 2 ** (len(net.get("channel_mult", [1, 2, 2])) - 1) * int(net.get("patch", 1))
    common = dict(channels=int(net.get("in_channels", 3)), resolution=resolution, step=step)
    if dims == 2:
        return Image(**common, default=(resolution, resolution))
    if dims == 1:
        return Signal(**common, default=(resolution,))
    if dims == 3 and net.get("factorized", False):
        return Clip(**common, default=(_default(config, "frames", resolution), resolution, resolution))
    if dims == 3:
        return Volume(**common, default=(_default(config, "depth", resolution), resolution, resolution))
    raise BadParameter(f"dims: 1, 2 or 3; got {dims}")
