"""Magnitude-preserving building blocks (Karras et al. 2024, "Analyzing and Improving the Training Dynamics of
Diffusion Models", EDM2, section 3 and appendix B).

Every layer is built so that unit-variance inputs give unit-variance outputs at initialisation *and throughout
training*, which removes the need for normalisation layers (no GroupNorm anywhere):

* weights are normalised per output channel on every forward pass, and after every optimizer step the stored
  weight is projected back to unit RMS (:meth:`MPConv.project_`; "forced weight normalisation", EDM2 eq. 17), so the
  optimizer never grows it. EDM2 does the projection at the start of each training forward; doing it right after
  the step instead gives the same sequence of weights, and a forward pass never modifies parameters (so a step the
  trainer skips leaves them exactly as they were);
* SiLU is divided by its output magnitude for unit-normal input (0.596);
* residual sums and skip concatenations are weighted so that their output has unit variance (mp_sum, mp_cat);
* the noise level enters through random Fourier features scaled by √2.

These are written for any number of spatial dimensions (1, 2 or 3): a kernel of length k builds the matching
F.conv1d / conv2d / conv3d, and an empty kernel is a linear layer.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["normalize", "mp_silu", "mp_sum", "mp_cat", "MPConv", "MPFourier", "resample", "project_weights_"]

_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}


def normalize(x: torch.Tensor, dim=None, eps: float = 1e-4) -> torch.Tensor:
    """Scale ``x`` to unit RMS over ``dim`` (default: all but the first dimension)."""
    if dim is None:
        dim = list(range(1, x.ndim))
    norm = torch.linalg.vector_norm(x, dim=dim, keepdim=True, dtype=torch.float32)
    norm = torch.add(eps, norm, alpha=math.sqrt(norm.numel() / x.numel()))
    return x / norm.to(x.dtype)


def mp_silu(x: torch.Tensor) -> torch.Tensor:
    # 0.596 = E[silu(z)²]^½ for z ~ N(0, 1)
    return F.silu(x) / 0.596


def mp_sum(a: torch.Tensor, b: torch.Tensor, t: float = 0.5) -> torch.Tensor:
    """(1-t)·a + t·b, rescaled to unit variance for independent unit-variance a and b."""
    return a.lerp(b, t) / math.sqrt((1 - t) ** 2 + t**2)


def mp_cat(a: torch.Tensor, b: torch.Tensor, dim: int = 1, t: float = 0.5) -> torch.Tensor:
    """Concatenate along ``dim`` with b contributing the share t of the output's energy."""
    na, nb = a.shape[dim], b.shape[dim]
    c = math.sqrt((na + nb) / ((1 - t) ** 2 + t**2))
    return torch.cat([a * (c / math.sqrt(na) * (1 - t)), b * (c / math.sqrt(nb) * t)], dim=dim)


class MPConv(torch.nn.Module):
    """Convolution (kernel of 1–3 sizes) or linear layer (empty kernel) with forced weight normalisation."""

    def __init__(self, in_channels: int, out_channels: int, kernel: tuple[int, ...] = ()):
        super().__init__()
        self.out_channels = out_channels
        self.kernel = tuple(kernel)
        self.weight = torch.nn.Parameter(normalize(torch.randn(out_channels, in_channels, *self.kernel)))

    @torch.no_grad()
    def project_(self) -> None:
        """Reset the stored weight to unit RMS per output channel (call after each optimizer step)."""
        self.weight.copy_(normalize(self.weight.to(torch.float32)))

    def forward(self, x: torch.Tensor, gain=1.0) -> torch.Tensor:
        w = normalize(self.weight.to(torch.float32))
        w = w * (gain / math.sqrt(w[0].numel()))
        w = w.to(x.dtype) if not torch.is_autocast_enabled(x.device.type) else w
        if not self.kernel:
            return F.linear(x, w)
        pad = [k // 2 for k in self.kernel]
        return _CONV[len(self.kernel)](x, w, padding=pad)


def project_weights_(module: torch.nn.Module) -> None:
    """Project every MPConv weight in ``module`` back to unit RMS (forced weight normalisation)."""
    for m in module.modules():
        if isinstance(m, MPConv):
            m.project_()


class MPFourier(torch.nn.Module):
    """Random Fourier features of a scalar (the noise level), unit variance per channel."""

    def __init__(self, channels: int, bandwidth: float = 1.0, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.register_buffer("freqs", 2 * math.pi * torch.randn(channels, generator=g) * bandwidth)
        self.register_buffer("phases", 2 * math.pi * torch.rand(channels, generator=g))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.outer(x.to(torch.float32), self.freqs.to(torch.float32)) + self.phases.to(torch.float32)
        return (y.cos() * math.sqrt(2)).to(x.dtype)


def resample(x: torch.Tensor, mode: str, spatial: int, time_axis: bool = True) -> torch.Tensor:
    """2× box-filter down-sampling or nearest up-sampling over the last ``spatial`` dimensions.

    With ``time_axis=False`` (factorised clips, N×C×T×H×W) the first spatial axis (time) is left alone.
    Both keep unit magnitude for smooth inputs, like EDM2's [1, 1] filter.
    """
    if mode == "keep":
        return x
    factor = [2] * spatial
    if not time_axis:
        factor[0] = 1
    if mode == "down":
        pool = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}[spatial]
        return pool(x, kernel_size=factor, stride=factor)
    if mode == "up":
        return F.interpolate(x, scale_factor=tuple(float(f) for f in factor), mode="nearest")
    raise ValueError(f"resample mode {mode!r}")
