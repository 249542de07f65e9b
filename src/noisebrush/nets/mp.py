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

    conv = MPConv(64, 128, (3, 3))
    y = conv(x, gain=1.0)           # training: the weight is normalised on every call
    project_weights_(net)           # after each optimizer step
    bake_weights_(net.eval())       # inference: normalise once (bit-identical outputs; train() unbakes)
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["normalize", "mp_silu", "mp_sum", "mp_cat", "MPConv", "MPFourier", "resample", "project_weights_",
           "bake_weights_"]

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


def _version(t: torch.Tensor) -> int:
    """PyTorch's count of in-place changes to ``t`` (inference tensors keep none: -1)."""
    return -1 if t.is_inference() else t._version


class MPConv(torch.nn.Module):
    """Convolution (kernel of 1–3 sizes) or linear layer (empty kernel) with forced weight normalisation.

    **Baking for inference.** Every forward pass computes the weight it convolves with from the stored one:
    ``normalize(W) · gain / √fan_in`` (EDM2 eq. 17 and the magnitude-preserving gain), cast to the input's dtype.
    :meth:`bake` lets an inference-only module compute that once: the first forward after ``bake()`` keeps the
    weight it computed for its (gain, dtype) and later ones reuse that very tensor, so a baked module's outputs are
    bit-identical to an unbaked one's. The baked weight is used only when it cannot be stale or steal a gradient:

    * in eval mode only; ``train()`` unbakes (call ``bake()`` again after training);
    * never when autograd would want the weight's gradient (grad enabled and the weight or a tensor gain requires
      grad) or under ``torch.compile`` / ``torch.export`` tracing (they see the plain computation);
    * only while ``weight`` is the tensor it was baked from: ``load_state_dict``, ``.to()`` / ``.half()``,
      :meth:`project_` and the LoRA merges of :mod:`noisebrush.nets.lora` refresh the bake, and any other in-place
      change of the parameter (its version counter moves) or replacement of it (``torch.func.functional_call``, a
      new ``.data``) makes forward fall back to the plain computation. Writing through ``weight.data`` in place
      bypasses PyTorch's version counter: call :meth:`refresh_bake` after doing that.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel: tuple[int, ...] = ()):
        super().__init__()
        self.out_channels = out_channels
        self.kernel = tuple(kernel)
        self.weight = torch.nn.Parameter(normalize(torch.randn(out_channels, in_channels, *self.kernel)))
        self._baked: dict | None = None          # (gain key, dtype) -> (gain, weight); None: not baked
        self._baked_from: torch.Tensor | None = None  # the stored weight when baked (held: its address stays unique)
        self._baked_version = 0

    # -- baking ---------------------------------------------------------------------------------------------------
    @property
    def baked(self) -> bool:
        """True between :meth:`bake` and :meth:`unbake` (or ``train()``)."""
        return self._baked is not None

    def bake(self) -> "MPConv":
        """Reuse the normalised, gain-folded weight in eval-mode forwards (see the class docstring). Returns self."""
        self._baked = {}
        self._baked_from = self.weight.detach()
        self._baked_version = _version(self.weight)
        return self

    def unbake(self) -> "MPConv":
        """Drop the baked weight: every forward normalises the stored weight again. Returns self."""
        self._baked = None
        self._baked_from = None
        return self

    def refresh_bake(self) -> None:
        """Call after changing the stored weight on purpose (through ``.data``): re-bake if the module is baked."""
        if self._baked is not None:
            self.bake()

    def train(self, mode: bool = True) -> "MPConv":
        if mode:
            self.unbake()
        return super().train(mode)

    def _apply(self, fn, recurse=True):
        out = super()._apply(fn, recurse)
        self.refresh_bake()
        return out

    def _load_from_state_dict(self, *args, **kwargs):
        super()._load_from_state_dict(*args, **kwargs)
        self.refresh_bake()

    def _bake_usable(self, gain) -> bool:
        if self._baked is None or self.training or torch.compiler.is_compiling():
            return False
        w = self.weight
        if torch.is_grad_enabled() and (w.requires_grad or getattr(gain, "requires_grad", False)):
            return False
        src = self._baked_from
        return (_version(w) == self._baked_version and w.data_ptr() == src.data_ptr() and w.dtype == src.dtype
                and w.shape == src.shape)

    def _baked_weight(self, gain, dtype: torch.dtype, autocast: bool) -> torch.Tensor:
        if isinstance(gain, torch.Tensor):  # a learned gain: the same tensor, unchanged since
            key = (id(gain), _version(gain), gain.data_ptr(), dtype, autocast)
        else:
            key = (float(gain), dtype, autocast)
        hit = self._baked.get(key)
        if hit is None:
            # exactly what the plain forward computes, kept outside autograd and inference mode
            with torch.inference_mode(False), torch.no_grad():
                hit = (gain, self._weight(gain, dtype, autocast))
            self._baked[key] = hit
        return hit[1]

    # -- the layer ------------------------------------------------------------------------------------------------
    @torch.no_grad()
    def project_(self) -> None:
        """Reset the stored weight to unit RMS per output channel (call after each optimizer step). A frozen weight
        (``requires_grad`` off: a run that trains part of a network) is left exactly as it is."""
        if not self.weight.requires_grad:
            return
        self.weight.copy_(normalize(self.weight.to(torch.float32)))
        self.refresh_bake()

    def _weight(self, gain, dtype: torch.dtype, autocast: bool) -> torch.Tensor:
        """The weight a forward pass uses: forced weight normalisation (EDM2 eq. 17) times gain / √fan_in."""
        w = normalize(self.weight.to(torch.float32))
        w = w * (gain / math.sqrt(w[0].numel()))
        return w.to(dtype) if not autocast else w

    def forward(self, x: torch.Tensor, gain=1.0) -> torch.Tensor:
        autocast = torch.is_autocast_enabled(x.device.type)
        if self._bake_usable(gain):
            w = self._baked_weight(gain, x.dtype, autocast)
        else:
            w = self._weight(gain, x.dtype, autocast)
        if not self.kernel:
            return F.linear(x, w)
        pad = [k // 2 for k in self.kernel]
        return _CONV[len(self.kernel)](x, w, padding=pad)


def project_weights_(module: torch.nn.Module) -> None:
    """Project every MPConv weight in ``module`` back to unit RMS (forced weight normalisation)."""
    for m in module.modules():
        if isinstance(m, MPConv):
            m.project_()


def bake_weights_(module: torch.nn.Module, bake: bool = True) -> None:
    """Bake (or with ``bake=False`` unbake) every MPConv in ``module``; see :class:`MPConv`."""
    for m in module.modules():
        if isinstance(m, MPConv):
            m.bake() if bake else m.unbake()


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
