"""Where computations run: device choice, thread count, the fast-bf16 probe and a hardware name.

    dev = pick_device("auto")                 # cuda, then mps, then cpu
    dtype = fast_dtype(dev)                   # torch.bfloat16 where the device runs it natively, else None

Every choice of precision goes through :func:`cpu_bf16_fast` / :func:`fast_dtype`: on a CPU without native bf16
(AVX2 only) bf16 is emulated and runs about 100× slower than float32, so nothing may assume it.
"""
from __future__ import annotations

import os
import platform

import torch

from noisebrush.errors import BadParameter, UserError

__all__ = ["pick_device", "use_all_cores", "has_accelerator", "cpu_bf16_fast", "fast_dtype", "hardware_name"]


def pick_device(device: str | torch.device | None = None) -> torch.device:
    """``None``/"auto" → cuda, then mps, then cpu; anything else is checked (one clear line if unusable)."""
    if isinstance(device, torch.device):
        return device
    if device in (None, "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise BadParameter(f"device: unknown {device!r}; use cpu, cuda, cuda:N or mps") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserError("device: cuda was asked for but this torch sees no CUDA GPU")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise UserError("device: mps was asked for but is not available here")
    return dev


def use_all_cores() -> None:
    """One torch thread per core this process may run on, unless the user chose (OMP_NUM_THREADS)."""
    if os.environ.get("OMP_NUM_THREADS"):
        return
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cores = os.cpu_count() or 1
    if torch.get_num_threads() != cores:
        torch.set_num_threads(cores)


def has_accelerator() -> bool:
    """A CUDA (or XPU) device is present."""
    return torch.cuda.is_available() or (hasattr(torch, "xpu") and torch.xpu.is_available())


def cpu_bf16_fast() -> bool:
    """This CPU runs bf16 natively (oneDNN reports AVX-512 bf16 / AMX); False where bf16 would be emulated."""
    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except Exception:  # pragma: no cover - older builds
        return False


def fast_dtype(device: torch.device) -> torch.dtype | None:
    """bf16 where ``device`` runs it fast (CUDA, or a CPU with native bf16), else None (stay in float32)."""
    if device.type == "cuda" or (device.type == "cpu" and cpu_bf16_fast()):
        return torch.bfloat16
    return None


def hardware_name(device: torch.device) -> str:
    """A short description of the hardware behind ``device`` (recorded in a model's provenance)."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{platform.processor() or platform.machine()} ({os.cpu_count()} CPUs)"
