"""Train the domain feature network (:mod:`noisebrush.eval.features`) on ProceduralArt's attributes.

    python -m noisebrush.eval.train_features                      # writes src/noisebrush/eval/featnet
    python -m noisebrush.eval.train_features --out /tmp/f --n 4000 --epochs 1   # a quick one
    python -m noisebrush.eval.train_features --resolution 128 --n 40000 --epochs 4 --blur-max 0.5   # the 128 px net

It learns every attribute at once (one cross-entropy per head; attributes that do not apply are ignored) on the
first ``--n`` items of the built-in set (seed 0, the set the built-in model trains on) and reports accuracy on
items of another seed, which it never saw. Generated pictures are a little blurred and noisy compared with the
renders, so training pictures get a random Gaussian blur (σ up to 1 px at 32 px, scaled with ``--resolution``: up
to 4 px at 128, the same blur relative to the picture; ``--blur-max`` sets another bound) and Gaussian noise (σ up
to 0.1) — the net must read a picture's content, not its render's exact pixels. A net that must also judge detail
(the 128 px one, which judges super-resolution) is trained with ``--blur-max 0.5``: blur-invariant features would
score a bicubic upscale as good as the real picture. ``--resolution`` (default 32) is the side of the pictures it
trains on and reads (above 32 a stride-2 stem brings them down to 32, see :class:`FeatureNet`). All randomness
comes from ``--seed``.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time

import torch
import torch.nn.functional as F

from noisebrush.data.procedural import ATTRIBUTES, ProceduralArt
from noisebrush.devices import emulated
from noisebrush.eval.features import FEATNET128_DIR, FEATNET_DIR, FeatureNet, save_feature_net

__all__ = ["train_feature_net", "attribute_table", "augment"]


def attribute_table(ds: ProceduralArt, n: int) -> torch.Tensor:
    """n × len(ATTRIBUTES) attribute indices (-1 where one does not apply)."""
    return torch.tensor([ds.scene(i).attr_indices() for i in range(n)], dtype=torch.long)


def _blur(x: torch.Tensor, sigma: torch.Tensor, radius: int = 2) -> torch.Tensor:
    """Per-picture separable Gaussian blur (2·radius + 1 taps) with standard deviations ``sigma`` (N,), in pixels."""
    t = torch.arange(-radius, radius + 1, dtype=x.dtype)
    k = torch.exp(-0.5 * (t[None] / sigma.clamp_min(1e-3)[:, None]) ** 2)
    k = k / k.sum(1, keepdim=True)  # N × taps
    n, c, h, w = x.shape
    y = x.reshape(1, n * c, h, w)
    kk = k.repeat_interleave(c, 0)
    y = F.conv2d(F.pad(y, (radius, radius, 0, 0), mode="replicate"), kk[:, None, None, :], groups=n * c)
    y = F.conv2d(F.pad(y, (0, 0, radius, radius), mode="replicate"), kk[:, None, :, None], groups=n * c)
    return y.reshape(n, c, h, w)


def augment(x: torch.Tensor, g: torch.Generator, blur_max: float | None = None) -> torch.Tensor:
    """Random blur and noise. By default the blur's σ (and its kernel's reach) scale with the picture's side, so that
    at any resolution it is the same blur relative to the picture: σ up to 1 px at 32 px, up to 4 px at 128.
    ``blur_max`` (pixels) sets the largest σ instead; 0 trains a net that tells a blurred picture from a sharp one."""
    n = x.shape[0]
    scale = max(x.shape[-1] / 32, 1.0) if blur_max is None else float(blur_max)
    blur = torch.rand(n, generator=g) * scale
    if scale > 0:
        x = torch.where((blur > 0.3 * scale)[:, None, None, None],
                        _blur(x, blur, radius=max(1, math.ceil(2 * scale))), x)
    noise = torch.rand(n, 1, 1, 1, generator=g) * 0.1
    x = x + noise * torch.randn(x.shape, generator=g)
    flip = torch.rand(n, generator=g) < 0.0  # no flips: left/right is an attribute
    return torch.where(flip[:, None, None, None], x.flip(-1), x).clamp(-1, 1)


def head_accuracy(pred: dict[str, torch.Tensor], table: torch.Tensor, names) -> dict[str, float]:
    """Accuracy of each head (``names``, the table's column order) over the items where its attribute applies
    (table ≥ 0); NaN where it applies to none."""
    out = {}
    for j, name in enumerate(names):
        m = table[:, j] >= 0
        out[name] = float((pred[name][m] == table[m, j]).float().mean()) if m.any() else float("nan")
    return out


def fit_heads(net, n: int, inputs, table: torch.Tensor, names, *, epochs: int, batch: int, lr: float, seed: int,
              progress, unit: str, half: bool = True) -> None:
    """Train a judge's heads with cross-entropy (a head whose attribute no item of a batch states is left out of
    that batch's loss): AdamW with a one-cycle LR over ``epochs`` passes of ``n`` items in a seeded order;
    ``inputs(idx, g)`` makes the batch of item indices ``idx`` (augmented with the generator ``g``), ``table`` is
    N × heads of value indices (-1: not stated) in ``names`` order. ``half``: bf16 autocast on the CPU where it
    runs natively (float32 on a CPU that would emulate it, and from the first step whose bf16 gradient is not
    finite, said through ``progress``); the net is left in train mode."""
    half = half and not emulated(torch.bfloat16)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    per_epoch = max(n // batch, 1)  # fewer items than a batch: one batch of all of them an epoch
    steps = epochs * per_epoch
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=max(steps, 1), pct_start=0.1)
    g = torch.Generator().manual_seed(seed)
    net.train()
    step = 0
    t0 = time.perf_counter()
    # half: bf16 autocast, until a step's gradient is not finite (seen on a CPU with AVX-512 BF16 but no AMX: the
    # shape judge's last 2³ convolution got a NaN weight gradient), then float32; False: float32 throughout
    for epoch in range(epochs):
        order = torch.randperm(n, generator=g)
        for b in range(per_epoch):
            idx = order[b * batch:(b + 1) * batch]
            x = inputs(idx, g)
            for _ in range(2):
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=half):
                    _, logits = net(x)
                loss = sum(F.cross_entropy(logits[k].float(), table[idx, j], ignore_index=-1)
                           for j, k in enumerate(names) if (table[idx, j] >= 0).any())
                opt.zero_grad(set_to_none=True)
                loss.backward()
                finite = bool(torch.isfinite(loss)) and all(torch.isfinite(p.grad).all() for p in net.parameters()
                                                            if p.grad is not None)
                if finite or not half:
                    break
                half = False
                progress("bf16 gave a non-finite gradient on this CPU: training in float32 from here")
            opt.step()
            sched.step()
            step += 1
            if step % 50 == 0 or step == steps:
                el = time.perf_counter() - t0
                progress(f"epoch {epoch + 1}/{epochs} step {step}/{steps} loss {loss.item():.3f} "
                         f"({step * batch / el:.0f} {unit}/s, {el / step * (steps - step):.0f} s left)")


def train_feature_net(n: int = 30000, epochs: int = 3, batch: int = 128, lr: float = 2e-3, seed: int = 0,
                      val: int = 2000, progress=print, resolution: int = 32,
                      workers: int = 2, blur_max: float | None = None) -> tuple[FeatureNet, dict]:
    """Train a ``resolution`` px feature net on items 0..n-1 of the built-in set; ``workers`` processes render the
    data (the pictures are the same with any number); ``blur_max`` as in :func:`augment`."""
    torch.manual_seed(seed)
    heads = {k: len(v) for k, v in ATTRIBUTES.items()}
    net = FeatureNet(heads, resolution=resolution)
    ds = ProceduralArt(resolution, size=max(n, 1), seed=0)
    held = ProceduralArt(resolution, size=max(val, 1), seed=12345)
    t0 = time.perf_counter()
    # kept as uint8 (60000 pictures at 128 px are 2.9 GB so, 12 GB as float) and made float a batch at a time
    images = ds.cache_uint8(n, workers=workers)
    table = attribute_table(ds, n)
    val_images = held.cache_uint8(val, workers=workers).float() / 127.5 - 1
    val_table = attribute_table(held, val)
    progress(f"rendered {n} + {val} pictures in {time.perf_counter() - t0:.0f} s")
    t0 = time.perf_counter()

    def inputs(idx, g):
        return augment(images[idx].float() / 127.5 - 1, g, blur_max).contiguous(memory_format=torch.channels_last)

    fit_heads(net, n, inputs, table, list(ATTRIBUTES), epochs=epochs, batch=batch, lr=lr, seed=seed,
              progress=progress, unit="img")
    net.eval()
    acc = head_accuracy(net.predict(val_images), val_table, ATTRIBUTES)
    report = {"resolution": net.resolution, "blur_max": blur_max, "train_items": n, "epochs": epochs, "batch": batch, "lr": lr, "seed": seed,
              "train_seconds": round(time.perf_counter() - t0, 1),
              "held_out": {"items": val, "data_seed": 12345, "accuracy": {k: round(v, 4) for k, v in acc.items()}}}
    return net.requires_grad_(False), report


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m noisebrush.eval.train_features", description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=None, help="where to write it (default: the shipped folder of its resolution, "
                    "src/noisebrush/eval/featnet at 32 px, featnet128 at 128 px; needed at any other resolution)")
    ap.add_argument("--n", type=int, default=60000, help="training pictures (ProceduralArt items 0..n-1)")
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--val", type=int, default=2000, help="held-out pictures (another data seed)")
    ap.add_argument("--resolution", type=int, default=32,
                    help="side of the pictures it trains on and reads (32, 64, 128; others are resized to it)")
    ap.add_argument("--workers", type=int, default=2, help="processes that render the training pictures")
    ap.add_argument("--blur-max", type=float, default=None,
                    help="largest blur σ of the augmentation, in pixels (default: resolution / 32; 0: none, so the "
                    "net's features tell blurred pictures from sharp ones)")
    a = ap.parse_args(argv)
    for name in ("n", "epochs", "batch", "val", "workers"):
        if getattr(a, name) < 1:
            print(f"error: --{name}: a whole number ≥ 1", file=sys.stderr)
            return 2
    if not (a.lr > 0 and math.isfinite(a.lr)):
        print("error: --lr: a positive number", file=sys.stderr)
        return 2
    if a.blur_max is not None and not 0 <= a.blur_max <= 16:
        print("error: --blur-max: a blur σ in pixels, 0 to 16", file=sys.stderr)
        return 2
    if not 8 <= a.resolution <= 1024:
        print("error: --resolution: a side in pixels, 8 to 1024", file=sys.stderr)
        return 2
    if a.out is None:
        shipped = {32: FEATNET_DIR, 128: FEATNET128_DIR}
        if a.resolution not in shipped:
            print(f"error: --out: needed at --resolution {a.resolution} (only 32 and 128 px nets ship)",
                  file=sys.stderr)
            return 2
        a.out = str(shipped[a.resolution])
    net, report = train_feature_net(a.n, a.epochs, a.batch, a.lr, a.seed, a.val,
                                    progress=lambda s: print(s, file=sys.stderr), resolution=a.resolution,
                                    workers=a.workers, blur_max=a.blur_max)
    command = "python -m noisebrush.eval.train_features " + " ".join(argv if argv is not None else sys.argv[1:])
    path = save_feature_net(net, a.out, {"provenance": {**report, "command": command.strip()}})
    print(json.dumps(report["held_out"]["accuracy"]))
    print(f"feature network → {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
