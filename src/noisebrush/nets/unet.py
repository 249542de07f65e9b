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
* ``low`` — a picture the output is conditioned on, concatenated to the input channels (``cond_channels`` > 0):
  a super-resolution stage's low-resolution picture, upsampled to x's size (:mod:`noisebrush.data.superres`). It is
  not scaled by the preconditioning and never dropped: guidance acts on the other conditions;
* ``aug`` — the per-sample strength σ_aug of the noise-conditioning augmentation applied to ``low`` (``aug_cond``;
  Ho et al. 2021, "Cascaded Diffusion Models"), embedded like the noise level next to it; absent: 0;
* ``drop`` — a bool (N,) that replaces every condition of those samples by the learned "no condition" (classifier-free
  guidance trains on it; sampling calls it for the unconditional branch).

The network is the raw F of EDM preconditioning: wrap it in :class:`noisebrush.diffusion.EDMPrecond`.

    net = UNet(UNetConfig(resolution=32, text_dim=384))
    den = EDMPrecond(net)
    x0_hat = den(x, sigma, text=tok, text_mask=mask)

For inference, ``net.eval().bake()`` normalises each weight once instead of on every call (bit-identical outputs,
about 1.3× faster at batch 1 on a CPU; ``train()`` unbakes). ``forward`` checks shapes but never reads tensor
values, so it can be traced by ``torch.export`` / ONNX; ``net.check_inputs(x, c_noise, labels=…)`` adds the checks
that do (class indices in range) for callers with untrusted inputs.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from noisebrush.errors import BadParameter
from noisebrush.nets.mp import (MPConv, MPFourier, bake_weights_, mp_cat, mp_silu, mp_sum, normalize, project_weights_,
                                resample)

__all__ = ["UNetConfig", "UNet", "inflate_image_weights"]


@dataclass
class UNetConfig:
    dims: int = 2                       # spatial dimensions: 1, 2 or 3
    in_channels: int = 3
    out_channels: int | None = None     # default: in_channels
    resolution: int = 32                # size of the last spatial axis at level 0 (picks attention levels)
    channels: int = 64
    channel_mult: tuple[int, ...] = (1, 2, 2)
    blocks: int = 2                     # residual blocks per level (decoder: blocks + 1)
    attn_resolutions: tuple[int, ...] = (8,)  # self-attention at these sizes of the network's grid (resolution /
                                        #   patch at the first level; EDM2: resolution/4 and /8)
    cross_attn_resolutions: tuple[int, ...] = (16, 8)
    channels_per_head: int = 64
    dropout: float = 0.0
    label_dim: int = 0
    vector_dim: int = 0
    text_dim: int = 0
    cond_channels: int = 0              # channels of a conditioning picture (``low``) concatenated to the input
    aug_cond: bool = False              # embed a per-sample augmentation level (``aug``) next to the noise level
    latent_dim: int = 0                 # a generator's latent z (N×latent_dim, N(0, I)) modulating every block
                                        #   through the embedding (a diffusion GAN's G; never dropped)
    factorized: bool = False            # dims=3 only: space/time factorised convolutions and attention
    patch: int = 1                      # 1, 2 or 4: the network runs on patch^dims-cell blocks folded into channels
                                        #   (space-to-depth in, depth-to-space out; see UNet.forward)
    channels_last: bool = True          # run 2-D/3-D convolutions in channels_last memory format
    activation: str = "hardswish"       # or "silu" (EDM2's); see ACTIVATIONS
    res_balance: float = 0.3
    attn_balance: float = 0.3
    concat_balance: float = 0.5
    cond_balance: float = 0.5
    clip_act: float = 0.0             # clamp activations to ±clip_act after each block (EDM2 uses 256 for
                                        #   fp16); 0 = off
    extra: dict = field(default_factory=dict)  # free-form notes kept with the config

    def __post_init__(self):
        self.channel_mult = tuple(int(m) for m in self.channel_mult)
        self.attn_resolutions = tuple(int(r) for r in self.attn_resolutions)
        self.cross_attn_resolutions = tuple(int(r) for r in self.cross_attn_resolutions)
        if self.dims not in (1, 2, 3):
            raise BadParameter(f"dims: 1, 2 or 3; got {self.dims}")
        if self.factorized and self.dims != 3:
            raise BadParameter("factorized: only for dims=3 (clips)")
        if self.patch not in (1, 2, 4):
            raise BadParameter(f"patch: 1, 2 or 4; got {self.patch}")
        if self.patch > 1 and self.factorized:
            raise BadParameter("patch: not for factorised clip networks (time is never folded)")
        for name in ("in_channels", "channels", "blocks", "resolution", "channels_per_head"):
            if int(getattr(self, name)) < 1:
                raise BadParameter(f"{name}: must be ≥ 1, got {getattr(self, name)}")
        if not self.channel_mult or min(self.channel_mult) < 1:
            raise BadParameter(f"channel_mult: positive integers, got {self.channel_mult}")
        if not 0 <= self.dropout < 1:
            raise BadParameter(f"dropout: in [0, 1), got {self.dropout}")
        for name in ("label_dim", "vector_dim", "text_dim", "cond_channels", "latent_dim"):
            if int(getattr(self, name)) < 0:
                raise BadParameter(f"{name}: must be ≥ 0, got {getattr(self, name)}")
        if self.activation not in ACTIVATIONS:
            raise BadParameter(f"activation: one of {', '.join(ACTIVATIONS)}; got {self.activation!r}")
        if self.out_channels is not None and int(self.out_channels) < 1:
            raise BadParameter(f"out_channels: must be ≥ 1 (or unset), got {self.out_channels}")
        for m in self.channel_mult:
            c = self.channels * m
            heads = max(1, c // self.channels_per_head)
            if c % heads:
                raise BadParameter(f"channels_per_head: {c} channels do not split into {heads} equal heads "
                                   f"(channels={self.channels}, channel_mult={list(self.channel_mult)})")

    @property
    def out(self) -> int:
        return self.out_channels or self.in_channels

    @property
    def step(self) -> int:
        """Every spatial size the network takes is a multiple of this: 2 per level below the first, times patch."""
        return 2 ** (len(self.channel_mult) - 1) * self.patch

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

    @classmethod
    def same(cls, a: dict, b: dict) -> bool:
        """Whether two config dicts describe the same network: compared as configs, so a folder written before a
        setting existed (the key absent, its default meant) equals one that spells the default out. A dict that is
        not a valid config equals nothing."""
        try:
            return cls.from_dict(dict(a)).to_dict() == cls.from_dict(dict(b)).to_dict()
        except (BadParameter, TypeError, ValueError):
            return False


def _kernel(cfg: UNetConfig) -> tuple[int, ...]:
    """The kernel of the input and output convolutions: 3 per axis; a factorised clip network's are spatial only
    (time is mixed by the temporal layers alone, so a 1-frame clip meets exactly a picture network)."""
    return (1, 3, 3) if cfg.factorized else (3,) * cfg.dims


# Activations and their magnitude-preserving gains 1/E[f(z)²]^½ for z ~ N(0, 1), applied through the next
# convolution's gain. hardswish (Howard et al. 2019) is a piecewise-polynomial SiLU; bf16 SiLU is a slow kernel on
# CPUs (about 2× a hardswish forward + backward here), so it is the default.
ACTIVATIONS = {"silu": (F.silu, 1 / 0.5966), "hardswish": (F.hardswish, 1 / 0.5759)}


def _balance(t: float) -> tuple[float, float]:
    """mp_sum(x, y, t) = a·x + b·y."""
    s = math.sqrt((1 - t) ** 2 + t**2)
    return (1 - t) / s, t / s


class _Conv3(torch.nn.Module):
    """3^d convolution, or for factorised clips a 1×3×3 spatial one followed by a residual 3×1×1 temporal one:
    y = s + g·time(s) with s the spatial convolution's output (time starts as a per-channel mean over three frames)
    and g a learned gain that starts at 0, so a new clip
    network (or one inflated from a picture network, :func:`inflate_image_weights`) starts as the picture network
    run on every frame. A 1-frame clip (a picture in joint training) skips the temporal convolution."""

    def __init__(self, cin: int, cout: int, cfg: UNetConfig):
        super().__init__()
        self.factorized = cfg.factorized
        if cfg.factorized:
            self.space = MPConv(cin, cout, (1, 3, 3))
            self.time = MPConv(cout, cout, (3, 1, 1))
            with torch.no_grad():  # starts as each channel's mean over three frames (Make-A-Video starts from an
                # identity): the first gradient of the gain then says how much smoothing over time helps, where a
                # random mixing of channels would tell it little
                self.time.weight.copy_(normalize(torch.eye(cout)[:, :, None, None, None].expand(-1, -1, 3, 1, 1)))
            self.time_gain = torch.nn.Parameter(torch.zeros([]))
        else:
            self.conv = MPConv(cin, cout, _kernel(cfg))

    def forward(self, x, gain=1.0):
        if not self.factorized:
            return self.conv(x, gain=gain)
        y = self.space(x, gain=gain)
        if y.shape[2] > 1:  # a shape, not a value: traceable
            y = y + self.time(y, gain=self.time_gain)
        return y


def _attend(y: torch.Tensor, heads: int, mask=None, kv: torch.Tensor | None = None) -> torch.Tensor:
    """Multi-head attention on channels-last token tensors, cosine-style (q, k, v normalised per head).

    ``y``: B×L×3C (self-attention) or B×L×C queries with ``kv``: B×T×2C. Returns B×L×C.
    The scores are softmax(q·k/√c) of unit-RMS q and k, as in EDM2.
    """
    b, n = y.shape[:2]
    if kv is None:
        y = normalize(y.reshape(b, n, 3, heads, -1), dim=-1)
        q, k, v = y.unbind(2)
    else:
        q = normalize(y.reshape(b, n, heads, -1), dim=-1)
        k, v = normalize(kv.reshape(b, kv.shape[1], 2, heads, -1), dim=-1).unbind(2)
    a = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), attn_mask=mask)
    return a.transpose(1, 2).reshape(b, n, -1)


def _to_tokens(x: torch.Tensor) -> torch.Tensor:
    """N×C×(spatial) → N×L×C; free (a view) for channels_last tensors."""
    return x.movedim(1, -1).reshape(x.shape[0], -1, x.shape[1])


def _from_tokens(t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """N×L×C → N×C×(spatial) with channels-last strides (the inverse of _to_tokens)."""
    return t.reshape(like.shape[0], *like.shape[2:], t.shape[-1]).movedim(-1, 1)


class _SelfAttention(torch.nn.Module):
    def __init__(self, channels: int, cfg: UNetConfig, axes: str = "all"):
        super().__init__()
        self.heads = max(1, channels // cfg.channels_per_head)
        self.qkv = MPConv(channels, channels * 3, (1,) * cfg.dims)
        self.proj = MPConv(channels, channels, (1,) * cfg.dims)
        self.axes = axes  # "all", "space" (per frame) or "time" (per position), the latter two for clips

    def forward(self, x, gain=1.0):
        y = self.qkv(x)
        if self.axes == "all":
            a = _from_tokens(_attend(_to_tokens(y), self.heads), y)
        else:  # clips N×3C×T×H×W
            n, c3, t, h, w = y.shape
            y = y.movedim(1, -1)  # N×T×H×W×3C
            if self.axes == "space":
                a = _attend(y.reshape(n * t, h * w, c3), self.heads).reshape(n, t, h, w, -1)
            else:
                a = _attend(y.permute(0, 2, 3, 1, 4).reshape(n * h * w, t, c3), self.heads)
                a = a.reshape(n, h, w, t, -1).permute(0, 3, 1, 2, 4)
            a = a.movedim(-1, 1)
        return self.proj(a, gain=gain)


class _CrossAttention(torch.nn.Module):
    def __init__(self, channels: int, text_dim: int, cfg: UNetConfig):
        super().__init__()
        self.heads = max(1, channels // cfg.channels_per_head)
        self.q = MPConv(channels, channels, (1,) * cfg.dims)
        self.kv = MPConv(text_dim, channels * 2)
        self.proj = MPConv(channels, channels, (1,) * cfg.dims)

    def forward(self, x, tokens, mask, gain=1.0):
        q = self.q(x)
        a = _attend(_to_tokens(q), self.heads, mask=mask[:, None, None, :], kv=self.kv(tokens))
        return self.proj(_from_tokens(a, q), gain=gain)


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
        self.time_attn = None
        if attention:
            if cfg.factorized:  # over space within each frame, then (residual, gain from 0) over time
                self.attn.append(_SelfAttention(cout, cfg, "space"))
                self.time_attn = _SelfAttention(cout, cfg, "time")
                self.time_attn_gain = torch.nn.Parameter(torch.zeros([]))
            else:
                self.attn.append(_SelfAttention(cout, cfg))
        self.cross = _CrossAttention(cout, cfg.text_dim, cfg) if cross and cfg.text_dim else None

    def forward(self, x, emb, text=None):
        # Constant factors of mp_silu and mp_sum are folded into the convolutions' gains (they are linear), and
        # each residual sum is one fused add: x·(1-t)/s + y·t/s. Fewer element-wise passes over the activations
        # is most of what makes this network fast on a CPU.
        cfg = self.cfg
        x = resample(x, self.mode, cfg.dims, time_axis=not cfg.factorized)
        if self.flavor == "enc":
            if self.conv_skip is not None:
                x = self.conv_skip(x)
            x = normalize(x, dim=1)  # pixel norm
        act, k = ACTIVATIONS[cfg.activation]
        y = self.conv_res0(act(x), gain=k)
        c = self.emb_linear(emb, gain=self.emb_gain) + 1
        y = act(y * c.reshape(*c.shape, *([1] * cfg.dims)).to(y.dtype))
        if self.training and cfg.dropout:
            y = F.dropout(y, p=cfg.dropout)
        a, b = _balance(cfg.res_balance)
        y = self.conv_res1(y, gain=k * b)
        if self.flavor == "dec" and self.conv_skip is not None:
            x = self.conv_skip(x)
        x = torch.add(y, x, alpha=a)
        a, b = _balance(cfg.attn_balance)
        for attn in self.attn:
            x = torch.add(attn(x, gain=b), x, alpha=a)
        if self.time_attn is not None and x.shape[2] > 1:  # temporal attention: skipped by a 1-frame clip
            x = x + self.time_attn(x, gain=self.time_attn_gain)
        if self.cross is not None and text is not None:
            x = torch.add(self.cross(x, *text, gain=b), x, alpha=a)
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
        # the augmentation level of the conditioning picture: Fourier features of ln(σ_aug + 1e-3) / 4, as c_noise
        self.emb_aug_fourier = MPFourier(cfg.channels, seed=1) if cfg.aug_cond else None
        self.emb_aug = MPConv(cfg.channels, emb) if cfg.aug_cond else None
        self.emb_latent = MPConv(cfg.latent_dim, emb) if cfg.latent_dim else None
        # the latent's gain starts at 0: a new generator — or one started from a diffusion model's weights — begins
        # as the denoiser it is built from and learns how much z moves it
        self.latent_gain = torch.nn.Parameter(torch.zeros([])) if cfg.latent_dim else None

        def res(level):  # the side of the network's own grid at a level (patch folds the input first)
            return (cfg.resolution // cfg.patch) >> level

        self.enc = torch.nn.ModuleList()
        skips = []
        fold = cfg.patch ** cfg.dims  # cells per patch
        cout = (cfg.in_channels + cfg.cond_channels) * fold + 1
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
        self.out_conv = MPConv(cout, cfg.out * fold, _kernel(cfg))

    # -- conditioning -------------------------------------------------------------------------------------------
    def _embed(self, c_noise, n, dtype, device, labels, vector, text, text_mask, drop, aug=None, z=None):
        cfg = self.config
        emb = self.emb_noise(self.emb_fourier(c_noise.reshape(-1).expand(n)))
        if self.emb_latent is not None:  # z ~ N(0, I), normalised to unit variance per value
            emb = emb + self.emb_latent(normalize(z.to(torch.float32).reshape(n, -1)), gain=self.latent_gain).to(emb.dtype)
        if self.emb_aug is not None:
            level = torch.zeros(n, device=device) if aug is None else \
                torch.as_tensor(aug, device=device, dtype=torch.float32).reshape(-1).expand(n)
            a = self.emb_aug(self.emb_aug_fourier((level.clamp(min=0) + 1e-3).log() / 4))
            emb = mp_sum(emb, a.to(emb.dtype), 0.5)
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

    def project_(self) -> None:
        """Forced weight normalisation: call after every optimizer step when training (the trainer does)."""
        project_weights_(self)

    def bake(self) -> "UNet":
        """Inference: every MPConv keeps the normalised, gain-folded weight its forward computes instead of
        recomputing it on each call (bit-identical outputs; see :class:`noisebrush.nets.mp.MPConv` for when the
        baked weight is used). ``train()`` unbakes. Returns self, so ``net = UNet(cfg).eval().bake()`` reads well."""
        bake_weights_(self)
        return self

    def unbake(self) -> "UNet":
        """Undo :meth:`bake`: every forward normalises the stored weights again. Returns self."""
        bake_weights_(self, bake=False)
        return self

    # -- memory ---------------------------------------------------------------------------------------------------
    def activation_bytes(self, size, batch: int = 1, dtype: torch.dtype = torch.float32, *,
                         attention_scores: bool = False, text_tokens: int = 0) -> int:
        """An upper estimate of the activation memory one forward pass without gradients holds at its peak, for
        ``batch`` inputs of spatial ``size`` (one number per axis) in ``dtype`` — the weights not included.

        It walks the network as :meth:`forward` does: every encoder output is kept for its decoder skip until the
        decoder takes it, and at each block the skips still held add to the block's own temporaries (its input
        and, for the decoder, the concatenation, the residual branch's few tensors of the block's width, and for
        self-attention q, k, v and their normalised copies). ``attention_scores``: the attention kernel holds the
        tokens² score matrix of every head (a plain softmax(q·kᵀ)·v; PyTorch's fused CPU and CUDA kernels work in
        tiles and do not); ``text_tokens``: the keys of cross-attention. A margin of 1.75 covers the allocator and
        the convolution kernels' scratch space (measured against the peak resident memory of real forwards in
        ``tests/nets/test_unet.py``)."""
        cfg = self.config
        size = tuple(int(s) for s in size)
        if len(size) != cfg.dims or min(size) < 1:
            raise BadParameter(f"size: {cfg.dims} whole numbers ≥ 1 (one per spatial axis), got {size}")
        item = torch.empty((), dtype=dtype).element_size()

        def pixels(level: int) -> int:
            n = 1
            for i, s in enumerate(size):
                n *= s if (cfg.factorized and i == 0) else max(1, s >> level)
            return n

        def width(conv) -> tuple[int, int]:  # (in, out) channels of an MPConv or _Conv3
            w = conv.space.weight if isinstance(conv, _Conv3) and conv.factorized else \
                conv.conv.weight if isinstance(conv, _Conv3) else conv.weight
            return int(w.shape[1]), int(w.shape[0])

        def attention(block, c: int, p: int) -> int:
            """Elements a block's attention holds besides its input: qkv, normalised q/k/v, the output, its copy,
            the projection; plus the scores when they are materialised."""
            n = 0
            for attn in [*block.attn, *([block.time_attn] if block.time_attn is not None else [])]:
                n = max(n, 9 * c * p)
                if attention_scores:
                    tokens = p if attn.axes == "all" else (p // size[0] if attn.axes == "space" else size[0])
                    groups = 1 if attn.axes == "all" else p // tokens
                    n = max(n, 7 * c * p + 2 * attn.heads * groups * tokens * tokens)
            if block.cross is not None and text_tokens:
                n = max(n, 5 * c * p + (2 * block.cross.heads * p * (text_tokens + 1) if attention_scores else 0))
            return n

        level, peak = 0, 0
        fold = cfg.patch ** cfg.dims
        size = tuple(max(1, s // cfg.patch) for s in size)  # the network's own grid (patch: blocks as channels)
        c_in = (cfg.in_channels + cfg.cond_channels) * fold
        # the input, its channels-last copy and the copy with the ones channel, then the first convolution's output
        first = self.enc[0]
        x = width(first)[1] * pixels(0)
        peak = (2 * c_in + (c_in + 1)) * pixels(0) + x
        skips = [x]
        for block in self.enc[1:]:
            p_in = pixels(level)
            if block.mode == "down":
                level += 1
            p = pixels(level)
            cin = width(block.conv_skip)[0] if block.conv_skip is not None else width(block.conv_res0)[0]
            cout = width(block.conv_res1)[1]
            resampled = cin * p if block.mode != "keep" else 0
            residual = 2 * cout * p + max(cin, cout) * p + 3 * cout * p  # skip conv + pixel norm; act(x); y's
            work = resampled + max(residual, 2 * cout * p + attention(block, cout, p))
            peak = max(peak, sum(skips) + work, sum(skips) + cin * p_in)
            skips.append(cout * p)
        x = skips[-1]
        held = sum(skips)
        for block, takes in zip(self.dec, self.dec_takes_skip):
            if block.mode == "up":
                level -= 1
            p = pixels(level)
            cin, _ = width(block.conv_res0)
            cout = width(block.conv_res1)[1]
            if takes:
                s = skips.pop()
                held -= s
                cat = cin * p
                peak = max(peak, held + 2 * (x + s) + cat)  # the two scaled parts and the concatenation
            else:
                cat = x if block.mode == "keep" else cin * p
            residual = cat + 2 * cin * p + 4 * cout * p  # act(x), the skip conv, y's
            work = max(residual, cat + cout * p + attention(block, cout, p))
            peak = max(peak, held + x + work)
            x = cout * p
        peak = max(peak, x + 2 * cfg.out * fold * pixels(0))
        return int(1.75 * peak * batch * item)

    def check_inputs(self, x, c_noise, *, labels=None, vector=None, text=None, text_mask=None, drop=None, low=None,
                     aug=None, z=None) -> None:
        """Raise :class:`BadParameter` for inputs this network cannot take, including the checks that read tensor
        values (class indices in range), which :meth:`forward` leaves out so that it never branches on a value
        (``torch.export`` / ONNX). Callers with untrusted inputs call this first; the Pipeline validates labels
        itself and the trainer's data is valid by construction."""
        self._check_shapes(x, c_noise, labels, vector, text, low, aug, z)
        if labels is not None and labels.ndim == 1 and labels.numel() and \
                (int(labels.min()) < 0 or int(labels.max()) >= self.config.label_dim):
            raise BadParameter(f"labels: class indices must be in [0, {self.config.label_dim}), got "
                               f"{labels.tolist()}")

    def _check_shapes(self, x, c_noise, labels, vector, text, low=None, aug=None, z=None) -> None:
        """The input checks that depend on shapes only (forward runs them; they are free to trace)."""
        cfg = self.config
        if x.ndim != cfg.dims + 2 or x.shape[1] != cfg.in_channels:
            raise BadParameter(f"input: expected N×{cfg.in_channels}×(… {cfg.dims} spatial axes), got "
                               f"{tuple(x.shape)}")
        step = cfg.step
        axes = x.shape[3:] if cfg.factorized else x.shape[2:]
        if any(s % step for s in axes):
            raise BadParameter(f"input: spatial size {tuple(x.shape[2:])} must be divisible by {step}")
        n = x.shape[0]
        count = c_noise.numel() if isinstance(c_noise, torch.Tensor) else torch.as_tensor(c_noise).numel()
        if count not in (1, n):
            raise BadParameter(f"c_noise: one value or one per sample ({n}), got {count}")
        for name, value, dim in (("labels", labels, cfg.label_dim), ("vector", vector, cfg.vector_dim),
                                 ("text", text, cfg.text_dim)):
            if value is not None and not dim:
                raise BadParameter(f"{name}: this network was built without {name} conditioning")
            if value is not None and value.shape[0] != n:
                raise BadParameter(f"{name}: {value.shape[0]} rows for a batch of {n}")
        if vector is not None and vector.reshape(n, -1).shape[1] != cfg.vector_dim:
            raise BadParameter(f"vector: expected {cfg.vector_dim} values per sample, got {tuple(vector.shape)}")
        if text is not None and (text.ndim != 3 or text.shape[2] != cfg.text_dim):
            raise BadParameter(f"text: expected N×T×{cfg.text_dim} token embeddings, got {tuple(text.shape)}")
        if cfg.cond_channels and (low is None or tuple(low.shape) != (n, cfg.cond_channels, *x.shape[2:])):
            got = "none" if low is None else tuple(low.shape)
            raise BadParameter(f"low: this network needs a conditioning picture of shape "
                               f"{(n, cfg.cond_channels, *x.shape[2:])}, got {got}")
        if low is not None and not cfg.cond_channels:
            raise BadParameter("low: this network was built without a conditioning picture")
        if cfg.latent_dim and (z is None or tuple(z.shape) != (n, cfg.latent_dim)):
            got = "none" if z is None else tuple(z.shape)
            raise BadParameter(f"z: this network is a generator and needs a latent of shape {(n, cfg.latent_dim)}, "
                               f"got {got}")
        if z is not None and not cfg.latent_dim:
            raise BadParameter("z: this network was built without a latent input")
        if aug is not None and not cfg.aug_cond:
            raise BadParameter("aug: this network was built without an augmentation level")
        if aug is not None and torch.as_tensor(aug).numel() not in (1, n):
            raise BadParameter(f"aug: one value or one per sample ({n}), got {torch.as_tensor(aug).numel()}")

    def forward(self, x, c_noise, *, labels=None, vector=None, text=None, text_mask=None, drop=None, low=None,
                aug=None, z=None):
        """F(x, c_noise | conditions). Checks shapes but never reads tensor values (so it can be exported):
        call :meth:`check_inputs` first on inputs that may hold out-of-range class indices. ``z``: a generator's
        latent (networks built with ``latent_dim``)."""
        cfg = self.config
        self._check_shapes(x, c_noise, labels, vector, text, low, aug, z)
        n = x.shape[0]
        c_noise = torch.as_tensor(c_noise, device=x.device, dtype=torch.float32)
        emb, tokens = self._embed(c_noise, n, x.dtype, x.device, labels, vector, text, text_mask, drop, aug, z)
        if cfg.patch > 1:  # space-to-depth: the network sees blocks of patch^dims cells as channels
            x = _fold(x, cfg.patch)
            low = None if low is None else _fold(low.to(x.dtype), cfg.patch)
        if cfg.channels_last and x.ndim in (4, 5):
            fmt = torch.channels_last if x.ndim == 4 else torch.channels_last_3d
            x = x.contiguous(memory_format=fmt)
            low = None if low is None else low.to(x.dtype).contiguous(memory_format=fmt)
        parts = [x] if low is None else [x, low.to(x.dtype)]
        x = torch.cat([*parts, torch.ones_like(x[:, :1])], dim=1)
        skips = []
        for block in self.enc:
            x = block(x) if isinstance(block, MPConv) else block(x, emb, tokens)
            skips.append(x)
        for block, takes in zip(self.dec, self.dec_takes_skip):
            if takes:
                x = mp_cat(x, skips.pop(), t=cfg.concat_balance)
            x = block(x, emb, tokens)
        x = self.out_conv(x, gain=self.out_gain)
        return _unfold(x, cfg.patch) if cfg.patch > 1 else x


def _fold(x: torch.Tensor, p: int) -> torch.Tensor:
    """Space-to-depth: N×C×(S₁…S_d) → N×(C·p^d)×(S₁/p…S_d/p), each p^d block of cells becoming channels (as
    pixel_unshuffle does for pictures, for 1, 2 or 3 axes). Reshapes only: traceable and exact."""
    n, c, *size = x.shape
    d = len(size)
    x = x.reshape(n, c, *[v for s in size for v in (s // p, p)])
    order = [0, 1, *[3 + 2 * i for i in range(d)], *[2 + 2 * i for i in range(d)]]
    return x.permute(order).reshape(n, c * p**d, *[s // p for s in size])


def _unfold(x: torch.Tensor, p: int) -> torch.Tensor:
    """Depth-to-space, the inverse of :func:`_fold`."""
    n, cf, *size = x.shape
    d = len(size)
    c = cf // p**d
    x = x.reshape(n, c, *([p] * d), *size)
    order = [0, 1, *[v for i in range(d) for v in (2 + d + i, 2 + i)]]
    return x.permute(order).reshape(n, c, *[s * p for s in size])


def inflate_image_weights(image_state: dict, image_config: dict, net: UNet) -> dict:
    """A state dict for the factorised clip network ``net`` that paints every frame as the picture network of
    ``image_state`` / ``image_config`` (a UNetConfig dict, dims=2) paints a picture: its spatial weights are the
    picture network's (3×3 kernels become 1×3×3), its temporal convolutions and attention keep ``net``'s own
    initial weights behind gains of 0, and the input columns of conditioning channels the picture network lacks
    (``cond_channels``: given frames and their mask) start at 0. The clip network must otherwise have the picture
    network's settings (channels, levels, attention, text); anything else is one BadParameter line.

    Video Diffusion Models (Ho et al. 2022) and Make-A-Video (Singer et al. 2022) start clip networks from picture
    networks the same way: the frames are good from the first step, and training learns the motion."""
    cfg = net.config
    if not cfg.factorized:
        raise BadParameter("inflate: the target network is not a factorised clip network (dims=3, factorized)")
    image = dict(image_config)
    if int(image.get("dims", 2)) != 2 or int(image.get("cond_channels", 0)):
        raise BadParameter("inflate: the source is not a picture network (dims=2, no conditioning picture)")
    mine = cfg.to_dict()
    skip = {"dims", "factorized", "cond_channels", "resolution", "extra", "dropout", "clip_act", "channels_last"}
    differ = sorted(k for k in mine if k not in skip and k in image and _norm(image[k]) != _norm(mine[k]))
    if differ:
        raise BadParameter(f"inflate: the picture network differs from the clip network in {', '.join(differ)}")
    own = net.state_dict()
    out = {}
    for key, target in own.items():
        src_key = key.replace(".space.weight", ".conv.weight")
        if ".time." in key or ".time_attn." in key or key.endswith(("time_gain", "time_attn_gain")):
            out[key] = target.clone()  # temporal: the clip network's own start, gated by a gain of 0
            continue
        if src_key not in image_state:
            raise BadParameter(f"inflate: the picture weights have no {src_key}")
        w = image_state[src_key].to(target.dtype)
        if key == "enc.0.weight":  # [x, (cond), ones] columns: the picture network has no cond columns
            full = torch.zeros_like(target)
            c_in = cfg.in_channels
            full[:, :c_in] = w[:, :c_in].unsqueeze(2)
            full[:, -1:] = w[:, c_in:c_in + 1].unsqueeze(2)
            w = full
        elif w.ndim + 1 == target.ndim and w.ndim >= 3:
            w = w.unsqueeze(2)  # a 2-D kernel becomes a 1×k×k one
        if w.shape != target.shape:
            raise BadParameter(f"inflate: {key} has shape {tuple(w.shape)} in the picture network, "
                               f"{tuple(target.shape)} in the clip network")
        out[key] = w
    return out


def _norm(v):
    return [_norm(x) for x in v] if isinstance(v, (list, tuple)) else v
