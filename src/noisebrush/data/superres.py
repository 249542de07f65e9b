"""Super-resolution pairs: a high-resolution picture, the low-resolution picture it came from, and the degradation
a super-resolution stage is trained to undo (SR3, Saharia et al. 2021; Cascaded Diffusion Models, Ho et al. 2021).

    from noisebrush.data.superres import SuperRes, downsample, low_condition

    sr = SuperRes(scale=2, crop=32, aug_max=0.5, blur_max=0.0)
    hi, low_up, aug = sr.training_pair(x0, generator)    # x0: C×H×W in [-1, 1]; a crop of it and its condition
    cond = low_condition(low, 2, aug=0.1, noise=eps)       # at sampling time: the same degradation, no blur

The low-resolution picture is the **area (box) average** of the high-resolution one (``downsample``): the built-in
pictures are themselves box-filtered from a finer drawing, so a 32 px ProceduralArt render is (to its anti-aliasing)
the box average of the 64 px one, and a painting's low resolution stays what the base model paints. The stage sees it
**upsampled bicubically** to the output size and concatenated to its input (the network's ``low`` condition).

**Noise-conditioning augmentation.** During training the low-resolution picture gets Gaussian noise of a random
strength σ_aug ~ U(0, ``aug_max``) (in [-1, 1] pixel units) and, for the higher stage, with probability
``blur_prob`` a Gaussian blur of a random width in (0, ``blur_max``] low-resolution pixels first (CDM found blur
helps the 64→256 stage); the network is told σ_aug (the ``aug`` condition), not the blur. At sampling time σ_aug is
a knob (``--sr-aug``): the base picture gets that much noise and the stage is told so, which lets it repaint detail
the base got slightly wrong instead of copying it, so errors do not compound along the cascade.

**Crops.** The degradation is applied to the whole picture and then the same window is cut from the picture and its
condition (offsets on the low-resolution grid), so a stage trains at the cost of its crop while its condition is
exactly what it sees at full size; the network is convolutional and paints any size at sampling time.

Every draw (σ_aug, blur, offsets, noise) comes, in that order, from the ``torch.Generator`` the caller passes (the
trainer's sample stream gives sample k's own), so training stays a function of (seed, k).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from noisebrush.errors import BadParameter

__all__ = ["SCALES", "SuperRes", "downsample", "upsample", "blur", "low_condition", "psnr", "consistency_psnr"]

SCALES = (2, 4)  # upscaling factors a stage can have


def _batched(x: torch.Tensor) -> tuple[torch.Tensor, bool]:
    if x.ndim == 3:
        return x.unsqueeze(0), True
    if x.ndim != 4:
        raise BadParameter(f"picture: expected C×H×W or N×C×H×W, got shape {tuple(x.shape)}")
    return x, False


def downsample(x: torch.Tensor, scale: int) -> torch.Tensor:
    """The box (area) average over ``scale``×``scale`` blocks; H and W must be divisible by ``scale``."""
    y, single = _batched(x)
    if y.shape[-1] % scale or y.shape[-2] % scale:
        raise BadParameter(f"picture: {y.shape[-2]}×{y.shape[-1]} is not divisible by the scale {scale}")
    y = F.avg_pool2d(y.float(), scale)
    return y[0] if single else y


def upsample(x: torch.Tensor, scale: int) -> torch.Tensor:
    """Bicubic upsampling by ``scale`` (half-pixel centres, no clamping)."""
    y, single = _batched(x)
    y = F.interpolate(y.float(), scale_factor=scale, mode="bicubic", align_corners=False)
    return y[0] if single else y


def blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """A separable Gaussian blur of standard deviation ``sigma`` pixels (edges reflected); ``sigma`` 0: x."""
    if sigma <= 0:
        return x
    y, single = _batched(x)
    r = max(1, math.ceil(3 * sigma))
    t = torch.arange(-r, r + 1, dtype=torch.float64)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = (k / k.sum()).to(torch.float32)
    c = y.shape[1]
    r = min(r, y.shape[-1] - 1, y.shape[-2] - 1)
    k = k[len(k) // 2 - r:len(k) // 2 + r + 1]
    k = k / k.sum()
    y = F.pad(y.float(), (r, r, r, r), mode="reflect")
    y = F.conv2d(y, k.reshape(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    y = F.conv2d(y, k.reshape(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)
    return y[0] if single else y


def low_condition(low: torch.Tensor, scale: int, *, aug: float = 0.0, noise: torch.Tensor | None = None) \
        -> torch.Tensor:
    """The condition a stage sees: ``low`` (C×h×w or N×C×h×w in [-1, 1]) plus ``aug``·``noise`` (the
    augmentation; ``noise`` has low's shape), upsampled bicubically by ``scale``."""
    if aug:
        if noise is None or noise.shape != low.shape:
            raise BadParameter(f"noise: one N(0, 1) value per pixel of the low-resolution picture {tuple(low.shape)}")
        low = low + aug * noise
    return upsample(low, scale)


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """Peak signal-to-noise ratio in dB of two pictures in [-1, 1] (peak 1 on the [0, 1] scale)."""
    mse = float(((a.float() - b.float()) ** 2).mean()) / 4
    return 10 * math.log10(1 / max(mse, 1e-12))


def consistency_psnr(hi: torch.Tensor, low: torch.Tensor) -> float:
    """How faithful an upscaled picture is to the small one: ``hi`` box-averaged back to ``low``'s size, against
    ``low`` (PSNR in dB)."""
    return psnr(downsample(hi, hi.shape[-1] // low.shape[-1]), low)


@dataclass(frozen=True)
class SuperRes:
    """A super-resolution stage's task: ``scale`` (2 or 4), the high-resolution ``crop`` side it trains on (0: the
    whole picture), the augmentation's largest noise ``aug_max`` and blur ``blur_max`` (low-resolution pixels;
    0: no blur), applied with probability ``blur_prob``."""
    scale: int = 2
    crop: int = 0
    aug_max: float = 0.5
    blur_max: float = 0.0
    blur_prob: float = 0.5

    def __post_init__(self):
        if self.scale not in SCALES:
            raise BadParameter(f"scale: one of {', '.join(map(str, SCALES))}; got {self.scale}")
        if self.crop < 0 or self.crop % self.scale:
            raise BadParameter(f"crop_size: 0 (the whole picture) or a multiple of the scale {self.scale}, got "
                               f"{self.crop}")
        if not 0 <= self.aug_max <= 2:
            raise BadParameter(f"sr_aug_max: in [0, 2], got {self.aug_max}")
        if not 0 <= self.blur_max <= 4:
            raise BadParameter(f"sr_blur: in [0, 4] low-resolution pixels, got {self.blur_max}")
        if not 0 <= self.blur_prob <= 1:
            raise BadParameter(f"blur_prob: in [0, 1], got {self.blur_prob}")

    def check_resolution(self, resolution: int, multiple: int = 1) -> None:
        """BadParameter unless a ``resolution`` px picture can be cut into this task's crops and downsampled, and the
        crop (or picture) side is a multiple of ``multiple`` (the network's coarsest level)."""
        if resolution % self.scale:
            raise BadParameter(f"resolution: {resolution} is not divisible by the scale {self.scale}")
        if self.crop > resolution:
            raise BadParameter(f"crop_size: {self.crop} is larger than the pictures ({resolution} px)")
        side = self.crop or resolution
        if side % multiple:
            raise BadParameter(f"crop_size: the network needs a side divisible by {multiple}, got {side}")

    def training_pair(self, hi: torch.Tensor, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, float]:
        """(the high-resolution crop, its condition — the degraded low-resolution picture upsampled, same crop —,
        σ_aug) for one C×H×W picture, every draw from ``g``."""
        s = self.scale
        low = downsample(hi, s)
        aug = float(torch.rand((), generator=g, dtype=torch.float64)) * self.aug_max
        blurred = bool(torch.rand((), generator=g, dtype=torch.float64) < self.blur_prob)
        width = float(torch.rand((), generator=g, dtype=torch.float64)) * self.blur_max
        h, w = hi.shape[-2], hi.shape[-1]
        crop_h, crop_w = (self.crop, self.crop) if self.crop else (h, w)
        oy = int(torch.randint(0, (h - crop_h) // s + 1, (), generator=g)) * s
        ox = int(torch.randint(0, (w - crop_w) // s + 1, (), generator=g)) * s
        noise = torch.randn(low.shape, generator=g)
        if blurred and width > 0:
            low = blur(low, width)
        cond = low_condition(low, s, aug=aug, noise=noise)
        return (hi[..., oy:oy + crop_h, ox:ox + crop_w], cond[..., oy:oy + crop_h, ox:ox + crop_w], aug)

    def to_dict(self) -> dict:
        return {"scale": self.scale, "crop": self.crop, "aug_max": self.aug_max, "blur_max": self.blur_max,
                "blur_prob": self.blur_prob}
