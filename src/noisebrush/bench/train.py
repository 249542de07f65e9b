"""Training throughput: our UNet against diffusers' UNet2DModel at equal FLOPs per image, in bf16 and fp32.

    python -m noisebrush.bench train --json out/bench-train.json     (about 5 minutes on 2 cores)
    python -m noisebrush.bench train --quick                          (about 2 minutes)

What it does, all in one process so machine noise hits both sides alike:

1. measures this machine's matmul peak (2048² bf16 and fp32, best of several);
2. builds our default 32×32 UNet and a diffusers UNet2DModel of the same layout (three levels, attention at 16 and 8
   pixels, two residual blocks per level) whose width is searched so its training FLOPs per image
   (forward + backward, counted with ``torch.utils.flop_counter``) are within 15% of ours;
3. times full training steps (forward, loss, backward, AdamW step) at batch 64, alternating ours and theirs for
   several rounds and taking each side's median. Both get the same treatment: autocast for bf16, channels_last
   memory format (the faster layout for convolutions here; ``--diffusers-contiguous`` to give them NCHW instead);
4. measures peak resident memory of a few training steps of each, in a fresh subprocess per model and precision.

It prints a table and writes JSON with ``ours_img_s``, ``diffusers_img_s``, ``ratio``, ``ours_gflops``,
``bf16_peak_gflops``, ``peak_fraction`` (for bf16 at top level — or the first precision timed — and per precision
under ``precisions``), and ``flops_per_image`` per model.

**Emulated precisions are not timed.** On a CPU without native bf16 (AVX2 only; :func:`noisebrush.devices.emulated`)
a bf16 step runs about 100× slower than float32: the bench would crawl for tens of minutes to measure emulation.
There it skips bf16 — its matmul peak, its steps and its memory runs — and says so in the log, the table and the
JSON (``skipped``: precision → reason; ``bf16_peak_gflops`` None). The default precisions are those the CPU runs
natively (bf16 and fp32, or fp32 alone); ``--quick`` times the fastest of them. The report's ``machine`` records the
CPU's features.
"""
from __future__ import annotations

import statistics
import subprocess
import sys
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from noisebrush.bench.common import BenchParser, comma_choices, finish
from noisebrush.devices import emulated
from noisebrush.errors import BadParameter
from noisebrush.nets.unet import UNet, UNetConfig

PRECISIONS = ("bf16", "fp32")
DTYPES = {"bf16": torch.bfloat16, "fp32": torch.float32}


def native_precisions(asked=PRECISIONS) -> tuple[tuple[str, ...], dict]:
    """(the precisions of ``asked`` this CPU runs natively, {precision: why it is skipped} for the others)."""
    skipped = {p: "emulated on this CPU (no native bf16: AVX-512 BF16 or AMX), not timed" for p in asked
               if emulated(DTYPES[p])}
    return tuple(p for p in asked if p not in skipped), skipped


def matmul_peak(dtype: torch.dtype, n: int = 2048, repeats: int = 6) -> float:
    """Best GFLOP/s of an n×n by n×n matmul."""
    a = torch.randn(n, n, dtype=dtype)
    b = torch.randn(n, n, dtype=dtype)
    a @ b
    best = 0.0
    for _ in range(repeats):
        t = time.perf_counter()
        a @ b
        best = max(best, 2 * n**3 / (time.perf_counter() - t) / 1e9)
    return best


# -- the two models -----------------------------------------------------------------------------------------------
def ours_model(resolution: int = 32):
    torch.manual_seed(0)
    return UNet(UNetConfig(resolution=resolution))


def diffusers_model(width: int, resolution: int = 32, groups: int = 8):
    from diffusers import UNet2DModel  # lazy: a test-only dependency (pyproject's [test] extra)

    torch.manual_seed(0)
    return UNet2DModel(sample_size=resolution, block_out_channels=(width, 2 * width, 2 * width), layers_per_block=2,
                       down_block_types=("DownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D"),
                       up_block_types=("AttnUpBlock2D", "AttnUpBlock2D", "UpBlock2D"),
                       norm_num_groups=groups, attention_head_dim=min(64, 2 * width))


def _forward(kind: str, model, x):
    n = x.shape[0]
    if kind == "ours":
        return model(x, torch.zeros(n))
    return model(x, torch.full((n,), 500, dtype=torch.long)).sample


def _prepare(kind: str, model, channels_last: bool):
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model


def train_step_fn(kind: str, model, batch: int, resolution: int, precision: str, channels_last: bool):
    x = torch.randn(batch, 3, resolution, resolution)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    target = torch.randn_like(x)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    model.train()

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            y = _forward(kind, model, x)
        loss = (y.float() - target).square().mean()
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step


def train_flops(kind: str, model, resolution: int, batch: int = 4) -> float:
    """FLOPs of one training forward + backward per image."""
    x = torch.randn(batch, 3, resolution, resolution)
    with FlopCounterMode(display=False) as fc:
        _forward(kind, model, x).float().square().mean().backward()
    model.zero_grad(set_to_none=True)
    return fc.get_total_flops() / batch


def match_width(target: float, resolution: int) -> tuple[int, float]:
    """The diffusers width (multiple of 8) whose training FLOPs per image are closest to ``target``."""
    best = None
    for width in range(16, 257, 8):
        f = train_flops("diffusers", diffusers_model(width, resolution), resolution, batch=2)
        if best is None or abs(f / target - 1) < abs(best[1] / target - 1):
            best = (width, f)
        if f > target * 1.2:
            break
    return best


_MEMORY_PROBE = """
import threading, time, torch
import psutil
from noisebrush.bench import train as b
proc = psutil.Process()
torch.set_num_threads({threads})
base = proc.memory_info().rss
peak = [base]
done = threading.Event()
def watch():
    while not done.is_set():
        peak[0] = max(peak[0], proc.memory_info().rss)
        time.sleep(0.002)
t = threading.Thread(target=watch, daemon=True)
t.start()
m = b._prepare("{kind}", b.ours_model({resolution}) if "{kind}" == "ours" else b.diffusers_model({width}, {resolution}),
               {channels_last})
s = b.train_step_fn("{kind}", m, {batch}, {resolution}, "{precision}", {channels_last})
for _ in range(3):
    s()
done.set()
t.join()
peak[0] = max(peak[0], proc.memory_info().rss)
print((peak[0] - base) / 2**20)
"""


def peak_memory_mb(kind: str, width: int, precision: str, batch: int, resolution: int, channels_last: bool) -> float:
    """Peak resident-memory growth (MB) while building the model and running 3 training steps, sampled every 2 ms
    in a fresh process (so neither model's allocations hide the other's)."""
    code = _MEMORY_PROBE.format(threads=torch.get_num_threads(), kind=kind, resolution=resolution, width=width,
                                channels_last=channels_last, batch=batch, precision=precision)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def run(batch: int = 64, resolution: int = 32, rounds: int = 3, iters: int = 2, precisions=PRECISIONS,
        diffusers_channels_last: bool = True, memory: bool = True, log=print) -> dict:
    """Time ``precisions`` (see the module docstring); those this CPU would emulate are skipped and said so."""
    precisions, skipped = native_precisions(tuple(precisions))
    for prec, why in skipped.items():
        log(f"{prec}: {why}")
    peaks = {p: (None if emulated(DTYPES[p]) else matmul_peak(DTYPES[p])) for p in PRECISIONS}
    log("matmul peak: " + ", ".join(f"{p} {'emulated, not timed' if v is None else f'{v:.0f} GFLOP/s'}"
                                    for p, v in peaks.items()) + f" ({torch.get_num_threads()} threads)")
    ours = ours_model(resolution)
    f_ours = train_flops("ours", ours, resolution)
    width, f_diff = match_width(f_ours, resolution)
    log(f"training FLOPs per image: ours {f_ours / 1e9:.2f} G, diffusers (width {width}) {f_diff / 1e9:.2f} G "
        f"({100 * (f_diff / f_ours - 1):+.1f}%)")
    theirs = diffusers_model(width, resolution)
    params = {"ours": sum(p.numel() for p in ours.parameters()),
              "diffusers": sum(p.numel() for p in theirs.parameters())}
    result = {"batch": batch, "resolution": resolution, "threads": torch.get_num_threads(),
              "bf16_peak_gflops": peaks["bf16"], "fp32_peak_gflops": peaks["fp32"],
              "flops_per_image": {"ours": f_ours, "diffusers": f_diff}, "params": params,
              "diffusers_width": width, "diffusers_channels_last": diffusers_channels_last, "precisions": {},
              "skipped": skipped}
    models = {"ours": _prepare("ours", ours, True), "diffusers": _prepare("diffusers", theirs, diffusers_channels_last)}
    cl = {"ours": True, "diffusers": diffusers_channels_last}
    for prec in precisions:
        steps = {k: train_step_fn(k, m, batch, resolution, prec, cl[k]) for k, m in models.items()}
        for s in steps.values():  # warm-up: oneDNN primitive creation, allocator
            s()
            s()
        times = {k: [] for k in steps}
        for _ in range(rounds):
            for k, s in steps.items():
                t = time.perf_counter()
                for _ in range(iters):
                    s()
                times[k].append((time.perf_counter() - t) / iters)
        row = {}
        for k in steps:
            sec = statistics.median(times[k])
            flops = result["flops_per_image"][k]
            row[f"{k}_img_s"] = batch / sec
            row[f"{k}_gflops"] = batch * flops / sec / 1e9
            row[f"{k}_peak_fraction"] = row[f"{k}_gflops"] / peaks[prec]
        row["ratio"] = row["ours_img_s"] / row["diffusers_img_s"]
        row["peak_gflops"] = peaks[prec]
        row["peak_fraction"] = row["ours_peak_fraction"]
        if memory:
            for k in steps:
                row[f"{k}_peak_mem_mb"] = peak_memory_mb(k, width, prec, batch, resolution, cl[k])
        result["precisions"][prec] = row
        log(f"{prec}: ours {row['ours_img_s']:.1f} img/s, diffusers {row['diffusers_img_s']:.1f} img/s, "
            f"ratio {row['ratio']:.2f}")
    top = result["precisions"].get("bf16") or next(iter(result["precisions"].values()), {})
    for key in ("ours_img_s", "diffusers_img_s", "ratio", "ours_gflops", "peak_fraction"):
        result[key] = top.get(key)
    return result


def table(result: dict) -> str:
    lines = ["| precision | model | train GFLOP/img | img/s | GFLOP/s | % of matmul peak | peak memory MB |",
             "|---|---|---|---|---|---|---|"]
    for prec, row in result["precisions"].items():
        for k in ("ours", "diffusers"):
            mem = row.get(f"{k}_peak_mem_mb")
            lines.append(f"| {prec} | {k} | {result['flops_per_image'][k] / 1e9:.2f} | {row[f'{k}_img_s']:.1f} | "
                         f"{row[f'{k}_gflops']:.0f} | {100 * row[f'{k}_peak_fraction']:.0f}% | "
                         f"{'' if mem is None else f'{mem:.0f}'} |")
        lines.append(f"| {prec} | **ours / diffusers** | | **{row['ratio']:.2f}×** | | | |")
    for prec, why in (result.get("skipped") or {}).items():
        lines.append(f"| {prec} | — | | {why} | | | |")
    peak = {p: "emulated" if result[f"{p}_peak_gflops"] is None else f"{result[f'{p}_peak_gflops']:.0f}"
            for p in PRECISIONS}
    lines.append(f"\nmatmul peak: bf16 {peak['bf16']}, fp32 {peak['fp32']} GFLOP/s; "
                 f"batch {result['batch']}, {result['resolution']}×{result['resolution']}, {result['threads']} threads; "
                 f"params ours {result['params']['ours'] / 1e6:.2f} M, diffusers {result['params']['diffusers'] / 1e6:.2f} M")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = BenchParser(prog="python -m noisebrush.bench train", description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="one precision (the fastest this CPU runs natively: bf16 "
                                                         "or fp32), fewer rounds, no memory runs")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--resolution", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=None, help="alternating timing rounds (default 3; quick 2)")
    ap.add_argument("--precisions", default=None, help="comma-separated from bf16,fp32 (default: those this CPU "
                                                        "runs natively; an emulated one is skipped and said so)")
    ap.add_argument("--diffusers-contiguous", action="store_true", help="run diffusers in NCHW instead of "
                    "channels_last")
    ap.add_argument("--json", metavar="FILE")
    args = ap.parse_args(argv)
    if args.batch < 1:
        raise BadParameter(f"--batch: must be ≥ 1, got {args.batch}")
    if args.resolution < 8 or args.resolution % 4:
        raise BadParameter(f"--resolution: a multiple of 4, ≥ 8; got {args.resolution}")
    precs = tuple(comma_choices(args.precisions or ",".join(PRECISIONS), "--precisions", PRECISIONS))
    if args.quick and not args.precisions:  # the fastest precision this CPU runs natively; an emulated one is listed
        natives, emulated_ones = native_precisions()
        precs = natives[:1] + tuple(emulated_ones)
    result = run(batch=args.batch, resolution=args.resolution, rounds=args.rounds or (2 if args.quick else 3),
                 precisions=precs, diffusers_channels_last=not args.diffusers_contiguous, memory=not args.quick,
                 log=lambda s: print(s, flush=True))
    print()
    return finish(result, lambda r: print(table(r)), args.json, note="\nwrote {path}")


if __name__ == "__main__":
    sys.exit(main())
