"""The discriminator of noisebrush's GANs: a residual convolutional network that scores pictures (or pairs of
pictures) at a noise level, under a text or class condition.

    from noisebrush.nets.disc import Discriminator, DiscConfig
    d = Discriminator(DiscConfig(in_channels=6, text_dim=384))        # a DDGAN pair (x_{t-1}, x_t): 2 × 3 channels
    logits = d(torch.cat([x_prev, x_t], 1), c_noise, text=tok, text_mask=mask)     # N logits: real > 0 > fake

It is what Denoising Diffusion GANs (Xiao et al. 2022) and Diffusion-GAN (Wang et al. 2023) use, in the shape of
StyleGAN2's residual discriminator: per level two 3×3 convolutions with leaky ReLUs and a 2× average-pool down,
the noise level's Fourier features (``c_noise``, as the UNet reads σ) added after the first convolution of every
block, a minibatch standard-deviation channel before the head (Karras et al. 2018; it lets D see a batch that lacks
variety), and the condition entering as a projection (Miyato & Koyama 2018): logit = ψ(h) + ⟨embed(condition), h⟩,
with h the pooled features. A text condition is the mask-weighted mean of the token embeddings; ``drop`` zeroes
it for samples trained without one (a GAN under classifier-free dropout).

It is a registered network (``"network": "disc"`` in a run's description), built from :class:`DiscConfig`; it has
no weight normalisation of its own: the GAN objectives regularise it with R1 (:mod:`noisebrush.train.gan`).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from noisebrush.errors import BadParameter
from noisebrush.nets.mp import MPFourier

__all__ = ["DiscConfig", "Discriminator"]


@dataclass
class DiscConfig:
    in_channels: int = 6                 # a DDGAN pair (x_{t-1}, x_t) of 3-channel pictures; 3 for one picture
    resolution: int = 32                 # the side of the pictures it reads
    channels: int = 64
    channel_mult: tuple[int, ...] = (1, 2, 4, 4)   # one level per entry; every level but the last halves the side
    text_dim: int = 0
    label_dim: int = 0
    time_cond: bool = True               # read a noise level (c_noise); False: a plain GAN's discriminator
    mbstd_group: int = 4                 # minibatch standard deviation over groups of this many samples; 0 = off

    def __post_init__(self):
        self.channel_mult = tuple(int(m) for m in self.channel_mult)
        for name in ("in_channels", "resolution", "channels"):
            if isinstance(getattr(self, name), bool) or int(getattr(self, name)) < 1:
                raise BadParameter(f"{name}: must be ≥ 1, got {getattr(self, name)}")
        if not self.channel_mult or min(self.channel_mult) < 1:
            raise BadParameter(f"channel_mult: positive integers, got {list(self.channel_mult)}")
        for name in ("text_dim", "label_dim", "mbstd_group"):
            if int(getattr(self, name)) < 0:
                raise BadParameter(f"{name}: must be ≥ 0, got {getattr(self, name)}")
        if self.resolution % self.step:
            raise BadParameter(f"resolution: {self.resolution} must be divisible by {self.step} "
                               f"({len(self.channel_mult)} levels)")

    @property
    def step(self) -> int:
        return 2 ** (len(self.channel_mult) - 1)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["channel_mult"] = list(self.channel_mult)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "DiscConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise BadParameter(f"unknown discriminator config keys: {', '.join(unknown)}")
        return cls(**d)


class _Block(torch.nn.Module):
    """A residual block: leaky ReLU → 3×3 conv (+ noise-level embedding) → leaky ReLU → 3×3 conv, then a 2×
    average-pool down (except at the last level); the skip path pools and, when widths differ, a 1×1 conv."""

    def __init__(self, cin: int, cout: int, emb: int, down: bool):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(cin, cout, 3, padding=1)
        self.conv2 = torch.nn.Conv2d(cout, cout, 3, padding=1)
        self.emb = torch.nn.Linear(emb, cout) if emb else None
        self.skip = torch.nn.Conv2d(cin, cout, 1, bias=False) if cin != cout else None
        self.down = down

    def forward(self, x, emb):
        h = self.conv1(F.leaky_relu(x, 0.2))
        if self.emb is not None:
            h = h + self.emb(emb)[:, :, None, None]
        h = self.conv2(F.leaky_relu(h, 0.2))
        s = x if self.skip is None else self.skip(x)
        if self.down:
            h, s = F.avg_pool2d(h, 2), F.avg_pool2d(s, 2)
        return (h + s) / math.sqrt(2)


class Discriminator(torch.nn.Module):
    """D(x, c_noise | condition) → one logit per sample (see the module docstring)."""

    def __init__(self, config: DiscConfig | None = None, **kwargs):
        super().__init__()
        cfg = self.config = config or DiscConfig(**kwargs)
        widths = [cfg.channels * m for m in cfg.channel_mult]
        emb = widths[0] if cfg.time_cond else 0
        if cfg.time_cond:
            self.fourier = MPFourier(emb)
            self.time = torch.nn.Sequential(torch.nn.Linear(emb, emb), torch.nn.LeakyReLU(0.2),
                                            torch.nn.Linear(emb, emb))
        self.stem = torch.nn.Conv2d(cfg.in_channels, widths[0], 3, padding=1)
        self.blocks = torch.nn.ModuleList(
            _Block(widths[max(i - 1, 0)], w, emb, down=i < len(widths) - 1) for i, w in enumerate(widths))
        last = widths[-1]
        extra = 1 if cfg.mbstd_group else 0
        self.final = torch.nn.Conv2d(last + extra, last, 3, padding=1)
        self.head = torch.nn.Linear(last, 1)
        self.embed_text = torch.nn.Linear(cfg.text_dim, last, bias=False) if cfg.text_dim else None
        self.embed_label = torch.nn.Embedding(cfg.label_dim, last) if cfg.label_dim else None

    def _check(self, x, c_noise, text, labels) -> None:
        cfg = self.config
        side = cfg.resolution
        if x.ndim != 4 or x.shape[1] != cfg.in_channels or x.shape[2] % cfg.step or x.shape[3] % cfg.step:
            raise BadParameter(f"input: expected N×{cfg.in_channels}×H×W with sides divisible by {cfg.step} (trained "
                               f"at {side}), got {tuple(x.shape)}")
        if cfg.time_cond and c_noise is None:
            raise BadParameter("c_noise: this discriminator reads a noise level")
        if text is not None and not cfg.text_dim:
            raise BadParameter("text: this discriminator was built without text conditioning")
        if labels is not None and not cfg.label_dim:
            raise BadParameter("labels: this discriminator was built without class conditioning")

    def forward(self, x, c_noise=None, *, text=None, text_mask=None, labels=None, drop=None):
        cfg = self.config
        self._check(x, c_noise, text, labels)
        n = x.shape[0]
        emb = None
        if cfg.time_cond:
            c = torch.as_tensor(c_noise, dtype=torch.float32, device=x.device).reshape(-1).expand(n)
            emb = self.time(self.fourier(c)).to(x.dtype)
        h = self.stem(x)
        for block in self.blocks:
            h = block(h, emb)
        if cfg.mbstd_group:
            h = torch.cat([h, _minibatch_std(h, cfg.mbstd_group)], 1)
        h = F.leaky_relu(self.final(h), 0.2).sum((2, 3)) / math.sqrt(h.shape[2] * h.shape[3])
        out = self.head(h).squeeze(1)
        keep = None if drop is None else (~drop.to(device=x.device, dtype=torch.bool)).to(h.dtype)
        cond = None
        if self.embed_text is not None and text is not None:
            t = F.normalize(text.to(torch.float32), dim=-1)
            m = torch.ones(t.shape[:2], device=t.device) if text_mask is None else text_mask.to(t.device, t.dtype)
            pooled = (t * m.unsqueeze(-1)).sum(1) / m.sum(1, keepdim=True).clamp(min=1)
            cond = self.embed_text(pooled.to(h.dtype))
        elif self.embed_label is not None and labels is not None:
            cond = self.embed_label(labels.long())
        if cond is not None:
            if keep is not None:
                cond = cond * keep[:, None]
            out = out + (cond * h).sum(1) / math.sqrt(h.shape[1])
        return out


def _minibatch_std(h: torch.Tensor, group: int) -> torch.Tensor:
    """One channel holding, for each group of samples, the mean over features of their standard deviation
    (a group is ``group`` consecutive samples, or fewer when the batch does not divide; its members share the
    value). Consecutive, not strided as in StyleGAN: a global batch split over processes or accumulation steps
    into slices that ``group`` divides makes the same groups, so D's output does not depend on the split."""
    n = h.shape[0]
    g = math.gcd(n, group)
    y = h.float().reshape(n // g, g, *h.shape[1:])               # group j holds samples j·g … j·g + g − 1
    std = (y.var(1, unbiased=False) + 1e-8).sqrt().mean((1, 2, 3))  # one value per group
    return std.repeat_interleave(g)[:, None, None, None].expand(n, 1, *h.shape[2:]).to(h.dtype)
