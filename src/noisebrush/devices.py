"""Where computations run: device choice, thread count, the fast-bf16 probe, a hardware name and free memory.

    dev = pick_device("auto")                 # cuda, then mps, then cpu
    dtype = fast_dtype(dev)                   # torch.bfloat16 where the device runs it natively, else None
    free, where = free_memory(dev)            # bytes a request may use, and "this machine has 21 GB free"

**Free memory** is what a new request may allocate before the machine runs out: on a CPU, the kernel's
``MemAvailable`` (``/proc/meminfo``; else ``os.sysconf``), lowered to what a cgroup (container) limit leaves; on a
CUDA device, its free memory plus what torch's allocator holds unused. ``NOISEBRUSH_MEMORY_LIMIT`` ("8G", "500M",
"1.5GB", "2GiB" or bytes) replaces the measurement (:data:`MEMORY_LIMIT_ENV`).

Every choice of precision goes through :func:`cpu_bf16_fast` / :func:`fast_dtype`: on a CPU without native bf16
(AVX2 only) bf16 is emulated and runs about 100× slower than float32, so nothing may assume it. What a CPU offers
is recorded with what it made — model provenance and benchmark reports — by :func:`cpu_features`; a benchmark asks
:func:`emulated` before it times a dtype.
"""
from __future__ import annotations

import os
import platform

import torch

from noisebrush.errors import BadParameter, UserError

__all__ = ["pick_device", "use_all_cores", "has_accelerator", "cpu_bf16_fast", "fast_dtype", "hardware_name",
           "cpu_features", "emulated", "CPU_FLAGS",
           "MEMORY_LIMIT_ENV", "parse_bytes", "format_bytes", "free_memory"]

MEMORY_LIMIT_ENV = "NOISEBRUSH_MEMORY_LIMIT"
_UNITS = {"": 1, "B": 1, "K": 10**3, "KB": 10**3, "KIB": 2**10, "M": 10**6, "MB": 10**6, "MIB": 2**20,
          "G": 10**9, "GB": 10**9, "GIB": 2**30, "T": 10**12, "TB": 10**12, "TIB": 2**40}


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


# the CPU flags that decide how fast noisebrush's dtypes run: AVX2/FMA (float32), AVX-512, and native bf16
# (AVX-512 BF16, AMX); recorded by cpu_features
CPU_FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16")


def cpu_features(cpuinfo: str = "/proc/cpuinfo") -> dict:
    """What this CPU offers for the dtypes noisebrush runs: ``model`` (its name), ``flags`` (those of
    :data:`CPU_FLAGS` it has, from ``cpuinfo``; None where that file cannot be read, e.g. not Linux) and
    ``bf16_native`` (:func:`cpu_bf16_fast`, oneDNN's answer: the one precision choices follow)."""
    model, flags = platform.processor() or platform.machine(), None
    try:
        text = open(cpuinfo, encoding="utf-8", errors="replace").read()
    except OSError:
        text = None
    if text is not None:
        have: set[str] = set()
        for line in text.splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key == "model name" and value.strip():
                model = value.strip()
            elif key == "flags":
                have.update(value.split())
        flags = [f for f in CPU_FLAGS if f in have]
    return {"model": model, "flags": flags, "bf16_native": cpu_bf16_fast()}


def emulated(dtype: torch.dtype, device: torch.device | str = "cpu") -> bool:
    """``dtype`` would be emulated on ``device`` — bf16 (or float16) on a CPU without native support, where it runs
    orders of magnitude slower than float32: a benchmark labels it and does not time it. float32 never is."""
    dev = torch.device(device)
    if dev.type != "cpu" or dtype in (torch.float32, torch.float64):
        return False
    if dtype == torch.bfloat16:
        return not cpu_bf16_fast()
    if dtype == torch.float16:
        try:
            return not bool(torch.ops.mkldnn._is_mkldnn_fp16_supported())
        except Exception:  # pragma: no cover - older builds
            return True
    return False


def hardware_name(device: torch.device) -> str:
    """A short description of the hardware behind ``device`` (recorded in a model's provenance)."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{platform.processor() or platform.machine()} ({os.cpu_count()} CPUs)"


def parse_bytes(text: str, name: str = MEMORY_LIMIT_ENV) -> int:
    """"8G", "500M", "1.5GB", "2GiB", "1000000" → bytes (K/M/G/T are powers of 1000, KiB/MiB/GiB/TiB of 1024).
    BadParameter naming ``name`` for anything else."""
    t = str(text).strip().upper().replace(" ", "")
    num = t.rstrip("KMGTIB")
    unit = t[len(num):]
    try:
        value = float(num)
    except ValueError:
        value = float("nan")
    if unit not in _UNITS or not (value > 0 and value * _UNITS[unit] < 2**63):
        raise BadParameter(f"{name}: a size such as 8G, 500M or 1.5GB, got {text!r}")
    return int(value * _UNITS[unit])


def format_bytes(n: float) -> str:
    """Bytes for a message: "38 GB", "2.5 GB", "750 MB", "12 kB"."""
    for unit, k in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= k:
            v = n / k
            return f"{v:.1f} {unit}" if v < 10 else f"{v:.0f} {unit}"
    return f"{int(n)} bytes"


def _meminfo_available() -> int | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - not POSIX
        return None


def _cgroup_left() -> int | None:
    """What this process's cgroup (v2 or v1) still allows, or None when it sets no limit."""
    for limit_file, usage_file in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                                   ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
                                    "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        try:
            with open(limit_file) as f:
                raw = f.read().strip()
            if raw == "max":
                return None
            limit = int(raw)
            with open(usage_file) as f:
                used = int(f.read().strip())
        except (OSError, ValueError):
            continue
        if limit >= 2**60:  # v1's "no limit"
            return None
        return max(0, limit - used)
    return None


def free_memory(device: torch.device | str = "cpu") -> tuple[int | None, str]:
    """(bytes a new request may use on ``device``, the words for a message). ``NOISEBRUSH_MEMORY_LIMIT``, when set,
    is the answer; otherwise see the module docstring. ``None`` bytes: unknown (no check possible)."""
    given = os.environ.get(MEMORY_LIMIT_ENV)
    if given:
        limit = parse_bytes(given)
        return limit, f"{MEMORY_LIMIT_ENV} is {format_bytes(limit)}"
    dev = torch.device(device)
    if dev.type == "cuda" and torch.cuda.is_available():
        free, _total = torch.cuda.mem_get_info(dev)
        spare = torch.cuda.memory_reserved(dev) - torch.cuda.memory_allocated(dev)
        return free + spare, f"{dev} has {format_bytes(free + spare)} free"
    if dev.type != "cpu":
        return None, f"{dev}'s free memory is unknown"
    avail = _meminfo_available()
    left = _cgroup_left()
    if avail is None and left is None:
        return None, "this machine's free memory is unknown"
    free = min(v for v in (avail, left) if v is not None)
    return free, f"this machine has {format_bytes(free)} free"
