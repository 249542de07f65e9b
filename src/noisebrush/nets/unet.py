"""A magnitude-preserving UNet denoiser over 1, 2 or 3 spatial dimensions.

The architecture follows EDM2 (Karras et al. 2024, "Analyzing and Improving the Training Dynamics of Diffusion
Models", config G): forced weight normalisation, magnitude-preserving SiLU / sums / concatenation, pixel norm at the
start of every encoder block, no group norm, no biases. That keeps almost all the arithmetic in convolutions, which is
what makes it fast in bf16 with channels_last on a CPU (oneDNN) and on GPUs.

One class serves images (``dims=2``, N×C×H×W), sequences / audio-like signals (``dims=1``, N×C×L) and clips or voxel
grids (``dims=3``, N×C×T×H×W or N×C×D×H×W). For clips, ``factorized=True`` splits every 3×3×3 convolution into a
spatial 1×3×3 and a temporal 3×1×1 one, attends over space within each frame and then over time, and never pools the
time axis.

Conditioning (any combination):

* ``labels``  — class indices (N,) or one-hot / soft labels (N, label_dim);
* ``vector``  — any per-sample vector (N, vector_dim), e.g. a CLIP-like embedding or palette;
* ``text`` + ``text_mask`` — per-token embeddings (N, T, text_dim) from :class:`noisebrush.nets.text.TextEncoder`,
  used through cross-attention at ``cross_attn_resolutions`` and, mean-pooled, in the global embedding;
* ``drop`` — a bool (N,) that replaces every condition of those samples by the learned "no condition" (classifier-free
  guidance trains on it; sampling calls it for the unconditional branch).

The network is the raw F of EDM preconditioning: wrap it in :class:`noisebrush.diffusion.EDMPrecond`.

    net = UNet(UNetConfig(resolution=32, text_dim=384))
    den = EDMPrecond(net)
    x0_hat = den(x, sigma, text=tok, text_mask=mask)
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from noisebrush.errors import BadParameter
from noisebrush.nets.mp import MPConv, MPFourier, mp_cat, mp_silu, mp_sum, normalize, resample

__all__ = ["UNetConfig", "UNet"]


@dataclass
class UNetConfig:
    dims: int = 2                       # spatial dimensions: 1, 2 or 3
    in_channels: int = 3
    out_channels: int | None = None     # default: in_channels
    resolution: int = 32                # size of the last spatial axis at level 0 (picks attention levels)
    channels: int = 64
    channel_mult: tuple[int, ...] = (1, 2, 2)
    blocks: int = 2                     # residual blocks per level (decoder: blocks + 1)
    attn_resolutions: tuple[int, ...] = (16, 8)
    cross_attn_resolutions: tuple[int, ...] = (16, 8)
    channels_per_head: int = 64
    dropout: float = 0.0
    label_dim: int = 0
    vector_dim: int = 0
    text_dim: int = 0
    factorized: bool = False            # dims=3 only: space/time factorised convolutions and attention
    channels_last: bool = True          # run 2-D/3-D convolutions in channels_last memory format
    res_balance: float = 0.3
    attn_balance: float = 0.3
    concat_balance: float = 0.5
    cond_balance: float = 0.5
    clip_act: float = 256.0
    extra: dict = field(default_factory=dict)  # free-form notes kept with the config

    def __post_init__(self):
        self.channel_mult = tuple(int(m) for m in self.channel_mult)
        self.attn_resolutions = tuple(int(r) for r in self.attn_resolutions)
        self.cross_attn_resolutions = tuple(int(r) for r in self.cross_attn_resolutions)
        if self.dims not in (1, 2, 3):
            raise BadParameter(f"dims: 1, 2 or 3; got {self.dims}")
        if self.factorized and self.dims != 3:
            raise BadParameter("factorized: only for dims=3 (clips)")
        for name in ("in_channels", "channels", "blocks", "resolution", "channels_per_head"):
            if int(getattr(self, name)) < 1:
                raise BadParameter(f"{name}: must be ≥ 1, got {getattr(self, name)}")
        if not self.channel_mult or min(self.channel_mult) < 1:
            raise BadParameter(f"channel_mult: positive integers, got {self.channel_mult}")
        if not 0 <= self.dropout < 1:
            raise BadParameter(f"dropout: in [0, 1), got {self.dropout}")
        for name in ("label_dim", "vector_dim", "text_dim"):
            if int(getattr(self, name)) < 0:
                raise BadParameter(f"{name}: must be ≥ 0, got {getattr(self, name)}")

    @property
    def out(self) -> int:
        return self.out_channels or self.in_channels

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        for k, v in d.items():
            if isinstance(v, tuple):
                d[k] = list(v)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "UNetConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise BadParameter(f"unknown UNet config keys: {', '.join(unknown)}")
        return cls(**d)


def _kernel(cfg: UNetConfig) -> tuple[int, ...]:
    return (3,) * cfg.dims


class _Conv3(torch.nn.Module):
    """3^d convolution, or for factorised clips a 1×3×3 spatial followed by a 3×1×1 temporal one."""

    def __init__(self, cin: int, cout: int, cfg: UNetConfig):
        super().__init__()
        if cfg.factorized:
            self.space = MPConv(cin, cout, (1, 3, 3))
            self.time = MPConv(cout, cout, (3, 1, 1))
        else:
            self.conv = MPConv(cin, cout, _kernel(cfg))
        self.factorized = cfg.factorized

    def forward(self, x):
        if self.factorized:
            return self.time(self.space(x))
        return self.conv(x)


def _attention(q, k, v, mask=None):
    """q: N×h×c×Lq, k/v: N×h×c×Lk (normalised); softmax(qᵀk/√c)·v → N×h×c×Lq."""
    y = F.scaled_dot_product_attention(q.transpose(-1, -2), k.transpose(-1, -2), v.transpose(-1, -2),
                                       attn_mask=mask)
    return y.transpose(-1, -2)


class _SelfAttention(torch.nn.Module):
    def __init__(self, channels: int, cfg: UNetConfig, axes: str = "all"):
        super().__init__()
        self.heads = max(1, channels // cfg.channels_per_head)
        self.qkv = MPConv(channels, channels * 3, (1,) * cfg.dims)
        self.proj = MPConv(channels, channels, (1,) * cfg.dims)
        self.axes = axes  # "all", "space" (per frame) or "time" (per position), the latter two for clips

    def forward(self, x):
        y = self.qkv(x)
        n, c3 = y.shape[:2]
        c = c3 // 3
        if self.axes == "all":
            y = y.reshape(n, self.heads, c // self.heads, 3, -1)
        elif self.axes == "space":  # N×3C×T×H×W → (N·T)×h×c×3×(H·W)
            t = y.shape[2]
            y = y.transpose(1, 2).reshape(n * t, self.heads, c // self.heads, 3, -1)
        else:  # time: → (N·H·W)×h×c×3×T
            t = y.shape[2]
            y = y.permute(0, 3, 4, 1, 2).reshape(-1, self.heads, c // self.heads, 3, t)
        q, k, v = normalize(y, dim=2).unbind(3)
        a = _attention(q, k, v)
        if self.axes == "all":
            a = a.reshape(x.shape)
        elif self.axes == "space":
            a = a.reshape(n, x.shape[2], c, *x.shape[3:]).transpose(1, 2)
        else:
            a = a.reshape(n, *x.shape[3:], c, x.shape[2]).permute(0, 3, 4, 1, 2)
        return self.proj(a.contiguous())


class _CrossAttention(torch.nn.Module):
    def __init__(self, channels: int, text_dim: int, cfg: UNetConfig):
        super().__init__()
        self.heads = max(1, channels // cfg.channels_per_head)
        self.q = MPConv(channels, channels, (1,) * cfg.dims)
        self.kv = MPConv(text_dim, channels * 2)
        self.proj = MPConv(channels, channels, (1,) * cfg.dims)

    def forward(self, x, tokens, mask):
        n, c = x.shape[:2]
        h = self.heads
        q = normalize(self.q(x).reshape(n, h, c // h, -1), dim=2)
        kv = self.kv(tokens).reshape(n, -1, h, c // h, 2)            # N×T×h×c×2
        k, v = normalize(kv, dim=3).permute(0, 2, 3, 4, 1).unbind(3)  # N×h×c×T each
        a = _attention(q, k, v, mask[:, None, None, :])
        return self.proj(a.reshape(x.shape).contiguous())


class _Block(torch.nn.Module):
    def __init__(self, cin: int, cout: int, emb: int, cfg: UNetConfig, *, flavor: str, mode: str = "keep",
                 attention: bool = False, cross: bool = False):
        super().__init__()
        self.flavor, self.mode, self.cfg = flavor, mode, cfg
        self.emb_gain = torch.nn.Parameter(torch.zeros([]))
        self.conv_res0 = _Conv3(cout if flavor == "enc" else cin, cout, cfg)
        self.emb_linear = MPConv(emb, cout)
        self.conv_res1 = _Conv3(cout, cout, cfg)
        self.conv_skip = MPConv(cin, cout, (1,) * cfg.dims) if cin != cout else None
        self.attn = torch.nn.ModuleList()
        if attention:
            if cfg.factorized:
                self.attn.extend([_SelfAttention(cout, cfg, "space"), _SelfAttention(cout, cfg, "time")])
            else:
                self.attn.append(_SelfAttention(cout, cfg))
        self.cross = _CrossAttention(cout, cfg.text_dim, cfg) if cross and cfg.text_dim else None

    def forward(self, x, emb, text=None):
        cfg = self.cfg
        x = resample(x, self.mode, cfg.dims, time_axis=not cfg.factorized)
        if self.flavor == "enc":
            if self.conv_skip is not None:
                x = self.conv_skip(x)
            x = normalize(x, dim=1)  # pixel norm
        y = self.conv_res0(mp_silu(x))
        c = self.emb_linear(emb, gain=self.emb_gain) + 1
        y = mp_silu(y * c.reshape(*c.shape, *([1] * cfg.dims)).to(y.dtype))
        if self.training and cfg.dropout:
            y = F.dropout(y, p=cfg.dropout)
        y = self.conv_res1(y)
        if self.flavor == "dec" and self.conv_skip is not None:
            x = self.conv_skip(x)
        x = mp_sum(x, y, cfg.res_balance)
        for attn in self.attn:
            x = mp_sum(x, attn(x), cfg.attn_balance)
        if self.cross is not None and text is not None:
            x = mp_sum(x, self.cross(x, *text), cfg.attn_balance)
        if cfg.clip_act:
            x = x.clamp(-cfg.clip_act, cfg.clip_act)
        return x


class UNet(torch.nn.Module):
    """``UNet(config)(x, c_noise, labels=, vector=, text=, text_mask=, drop=) -> F`` (same shape as x)."""

    def __init__(self, config: UNetConfig | None = None, **kwargs):
        super().__init__()
        if config is None:
            config = UNetConfig(**kwargs)
        elif kwargs:
            config = dataclasses.replace(config, **kwargs)
        self.config = cfg = config
        ch = [cfg.channels * m for m in cfg.channel_mult]
        emb = max(ch)
        self.emb_fourier = MPFourier(cfg.channels)
        self.emb_noise = MPConv(cfg.channels, emb)
        self.emb_label = MPConv(cfg.label_dim, emb) if cfg.label_dim else None
        self.emb_vector = MPConv(cfg.vector_dim, emb) if cfg.vector_dim else None
        self.emb_text = MPConv(cfg.text_dim, emb) if cfg.text_dim else None
        # "no text": one learned token that every prompt also carries (so no attention row is ever empty)
        self.null_token = torch.nn.Parameter(torch.randn(cfg.text_dim)) if cfg.text_dim else None
        self.out_gain = torch.nn.Parameter(torch.zeros([]))

        def res(level):
            return cfg.resolution >> level

        self.enc = torch.nn.ModuleList()
        skips = []
        cout = cfg.in_channels + 1
        for level, c in enumerate(ch):
            if level == 0:
                self.enc.append(MPConv(cout, c, _kernel(cfg)))
                cout = c
            else:
                self.enc.append(_Block(cout, cout, emb, cfg, flavor="enc", mode="down"))
            skips.append(cout)
            for _ in range(cfg.blocks):
                r = res(level)
                self.enc.append(_Block(cout, c, emb, cfg, flavor="enc", attention=r in cfg.attn_resolutions,
                                       cross=r in cfg.cross_attn_resolutions))
                cout = c
                skips.append(cout)
        self.dec = torch.nn.ModuleList()
        self.dec_takes_skip = []
        last = len(ch) - 1
        for level in reversed(range(len(ch))):
            c, r = ch[level], res(level)
            if level == last:
                self.dec.append(_Block(cout, cout, emb, cfg, flavor="dec", attention=True,
                                       cross=bool(cfg.text_dim)))
                self.dec.append(_Block(cout, cout, emb, cfg, flavor="dec"))
                self.dec_takes_skip += [False, False]
            else:
                self.dec.append(_Block(cout, cout, emb, cfg, flavor="dec", mode="up"))
                self.dec_takes_skip.append(False)
            for _ in range(cfg.blocks + 1):
                cin = cout + skips.pop()
                self.dec.append(_Block(cin, c, emb, cfg, flavor="dec", attention=r in cfg.attn_resolutions,
                                       cross=r in cfg.cross_attn_resolutions))
                self.dec_takes_skip.append(True)
                cout = c
        self.out_conv = MPConv(cout, cfg.out, _kernel(cfg))

    # -- conditioning -------------------------------------------------------------------------------------------
    def _embed(self, c_noise, n, dtype, device, labels, vector, text, text_mask, drop):
        cfg = self.config
        emb = self.emb_noise(self.emb_fourier(c_noise.reshape(-1).expand(n)))
        keep = None if drop is None else (~drop.to(device=device, dtype=torch.bool)).reshape(n, 1)
        conds = []
        if self.emb_label is not None and labels is not None:
            if labels.ndim == 1:
                labels = F.one_hot(labels.long(), cfg.label_dim)
            labels = labels.to(torch.float32) * math.sqrt(cfg.label_dim)
            conds.append(self.emb_label(labels if keep is None else labels * keep))
        if self.emb_vector is not None and vector is not None:
            v = normalize(vector.to(torch.float32).reshape(n, -1))
            conds.append(self.emb_vector(v if keep is None else v * keep))
        tokens = None
        if self.emb_text is not None and text is not None:
            t = normalize(text.to(torch.float32), dim=-1)
            m = torch.ones(t.shape[:2], dtype=torch.bool, device=t.device) if text_mask is None else \
                text_mask.to(device=t.device, dtype=torch.bool)
            if keep is not None:
                m = m & keep
            w = m.to(t.dtype).unsqueeze(-1)
            pooled = (t * w).sum(1) / w.sum(1).clamp(min=1)
            pooled = normalize(pooled) * (w.sum(1) > 0).to(t.dtype)
            conds.append(self.emb_text(pooled))
            null = normalize(self.null_token.to(torch.float32), dim=-1).expand(n, 1, -1)
            tokens = (torch.cat([null, t], 1), torch.cat([torch.ones_like(m[:, :1]), m], 1))
        if conds:
            cond = sum(conds) / math.sqrt(len(conds))
            emb = mp_sum(emb, cond.to(emb.dtype), cfg.cond_balance)
        return mp_silu(emb), tokens

    def forward(self, x, c_noise, *, labels=None, vector=None, text=None, text_mask=None, drop=None):
        cfg = self.config
        if x.ndim != cfg.dims + 2 or x.shape[1] != cfg.in_channels:
            raise BadParameter(f"input: expected N×{cfg.in_channels}×(… {cfg.dims} spatial axes), got "
                               f"{tuple(x.shape)}")
        step = 2 ** (len(cfg.channel_mult) - 1)
        axes = x.shape[3:] if cfg.factorized else x.shape[2:]
        if any(s % step for s in axes):
            raise BadParameter(f"input: spatial size {tuple(x.shape[2:])} must be divisible by {step}")
        n = x.shape[0]
        c_noise = torch.as_tensor(c_noise, device=x.device, dtype=torch.float32)
        emb, tokens = self._embed(c_noise, n, x.dtype, x.device, labels, vector, text, text_mask, drop)
        if cfg.channels_last and x.ndim in (4, 5):
            x = x.contiguous(memory_format=torch.channels_last if x.ndim == 4 else torch.channels_last_3d)
        x = torch.cat([x, torch.ones_like(x[:, :1])], dim=1)
        skips = []
        for block in self.enc:
            x = block(x) if isinstance(block, MPConv) else block(x, emb, tokens)
            skips.append(x)
        for block, takes in zip(self.dec, self.dec_takes_skip):
            if takes:
                x = mp_cat(x, skips.pop(), t=cfg.concat_balance)
            x = block(x, emb, tokens)
        return self.out_conv(x, gain=self.out_gain)
