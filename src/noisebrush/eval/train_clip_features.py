"""Train the clip judge (:mod:`noisebrush.eval.clip_features`) on ProceduralClips' attributes and motion.

    python -m noisebrush.eval.train_clip_features                  # writes src/noisebrush/eval/clipnet
    python -m noisebrush.eval.train_clip_features --out /tmp/c --n 500 --epochs 1 --val 100   # a quick one

It learns every picture attribute and every motion attribute (kind, direction, speed) at once, one cross-entropy
per head, ignoring the ones that do not apply to a clip, on the first ``--n`` clips of the built-in clip set
(seed 0, the set the animation model trains on), and reports the accuracy of each head on ``--val`` clips of
another data seed (1), which it never saw; the shipped config.json records it (``heldout_accuracy``) with the
command, n, epochs and seconds. Generated clips are a little blurred and noisy compared with the renders, so every
training clip gets a random Gaussian blur (σ up to 1 px) and Gaussian noise (σ up to 0.1), drawn once per clip
and so the same for all its frames (:func:`noisebrush.eval.train_features.augment` on the clip seen as one picture
of 3·T channels): a blur that changed from frame to frame would be flicker the net should not learn to ignore.
Clips are never flipped or reversed (directions are attributes). All randomness comes from ``--seed``.

The spatial blocks start from the shipped picture judge's first three stages (``--init featnet``, the default):
then the picture attributes are read from the start and training spends its steps on motion, which a net from
random weights (``--init none``) reaches far later on the same budget.

Runs on the CPU, bfloat16 autocast, on as many threads as torch is given (the shipped net: one).
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time

import torch

from noisebrush.data.clips import ProceduralClips, make_clip
from noisebrush.eval.clip_features import CLIPNET_DIR, ClipFeatureNet, default_heads, save_clip_features
from noisebrush.eval.features import load_feature_net
from noisebrush.eval.train_features import augment, fit_heads, head_accuracy

__all__ = ["train_clip_features", "label_table", "augment_clips", "heldout_accuracy", "HELDOUT_SEED"]

HELDOUT_SEED = 1  # the data seed of the held-out clips (training uses seed 0)


def label_table(seed: int, n: int) -> torch.Tensor:
    """n × (len(ATTRIBUTES) + len(MOTION_ATTRIBUTES)) value indices of clips 0..n-1 of the clip set ``seed``, in
    :func:`~noisebrush.eval.clip_features.default_heads` order; -1 where an attribute does not apply."""
    rows = []
    for i in range(n):
        clip = make_clip(seed, i)
        rows.append(clip.attr_indices() + clip.motion_indices())
    return torch.tensor(rows, dtype=torch.long).reshape(n, len(default_heads()))


def augment_clips(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Blur and noise as :func:`~noisebrush.eval.train_features.augment` does for pictures, with one blur σ and one
    noise σ per clip (N×C×T×H×W), the same for all its frames; the noise itself is drawn per pixel and frame."""
    n, c, t, h, w = x.shape
    return augment(x.reshape(n, c * t, h, w), g).reshape(n, c, t, h, w)


def heldout_accuracy(net: ClipFeatureNet, clips: torch.Tensor, table: torch.Tensor) -> dict[str, float]:
    """Accuracy of each head over the clips where its attribute applies (NaN where it applies to none)."""
    return head_accuracy(net.predict(clips), table, default_heads())


def _to_float(u8: torch.Tensor) -> torch.Tensor:
    return u8.float() / 127.5 - 1


def train_clip_features(n: int = 16000, epochs: int = 1, batch: int = 32, lr: float = 3e-3, seed: int = 0,
                        frames: int = 16, val: int = 1000, workers: int = 2, init: str = "featnet",
                        progress=print) -> tuple[ClipFeatureNet, dict]:
    """Train a clip feature net on clips 0..n-1 of ProceduralClips(seed=0) of ``frames`` frames and measure it on
    ``val`` clips of :data:`HELDOUT_SEED`; ``workers`` (1 or 2) processes render the clips (the clips are the same
    with any number). ``init``: "featnet" starts the spatial blocks from the shipped picture judge
    (:meth:`ClipFeatureNet.init_from_pictures`), "none" from random weights. Returns the net (eval mode) and a
    report."""
    if init not in ("featnet", "none"):
        raise ValueError(f"init: 'featnet' or 'none', not {init!r}")
    torch.manual_seed(seed)
    heads = default_heads()
    net = ClipFeatureNet(heads)
    if init == "featnet":
        net.init_from_pictures(load_feature_net())
    t0 = time.perf_counter()
    clips = ProceduralClips(32, frames, size=n, seed=0).cache_uint8(n, workers=workers)
    table = label_table(0, n)
    val_clips = _to_float(ProceduralClips(32, frames, size=val, seed=HELDOUT_SEED).cache_uint8(val, workers=workers))
    val_table = label_table(HELDOUT_SEED, val)
    render_seconds = time.perf_counter() - t0
    progress(f"rendered {n} + {val} clips in {render_seconds:.0f} s")
    t0 = time.perf_counter()

    def inputs(idx, g):
        return augment_clips(_to_float(clips[idx]), g).contiguous(memory_format=torch.channels_last_3d)

    fit_heads(net, n, inputs, table, list(heads), epochs=epochs, batch=batch, lr=lr, seed=seed, progress=progress,
              unit="clips")
    train_seconds = time.perf_counter() - t0
    net.eval().requires_grad_(False)
    acc = heldout_accuracy(net, val_clips, val_table)
    report = {"n": n, "epochs": epochs, "frames": frames, "batch": batch, "lr": lr, "seed": seed, "init": init,
              "heldout": {"clips": val, "data_seed": HELDOUT_SEED},
              "heldout_accuracy": {k: round(v, 4) for k, v in acc.items()},
              "seconds": {"render": round(render_seconds, 1), "train": round(train_seconds, 1),
                          "threads": torch.get_num_threads()}}
    return net, report


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m noisebrush.eval.train_clip_features",
                                 description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(CLIPNET_DIR), help="where to write it (default: the shipped folder, "
                    "src/noisebrush/eval/clipnet)")
    ap.add_argument("--n", type=int, default=16000, help="training clips (ProceduralClips items 0..n-1, seed 0)")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--frames", type=int, default=16, help="frames per training clip")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--seed", type=int, default=0, help="initial weights, order and augmentation")
    ap.add_argument("--val", type=int, default=1000, help=f"held-out clips (data seed {HELDOUT_SEED})")
    ap.add_argument("--workers", type=int, default=2, help="processes that render the clips (1 or 2)")
    ap.add_argument("--init", choices=("featnet", "none"), default="featnet",
                    help="start the spatial blocks from the shipped picture judge (default) or from random weights")
    a = ap.parse_args(argv)
    for name in ("n", "epochs", "batch", "val"):
        if getattr(a, name) < 1:
            print(f"error: --{name}: a whole number ≥ 1", file=sys.stderr)
            return 2
    if not 2 <= a.frames <= 256:
        print("error: --frames: a whole number, 2 to 256", file=sys.stderr)
        return 2
    if a.workers not in (1, 2):
        print("error: --workers: 1 or 2", file=sys.stderr)
        return 2
    if not (a.lr > 0 and math.isfinite(a.lr)):
        print("error: --lr: a positive number", file=sys.stderr)
        return 2
    net, report = train_clip_features(a.n, a.epochs, a.batch, a.lr, a.seed, a.frames, a.val, a.workers,
                                      a.init, progress=lambda s: print(s, file=sys.stderr))
    command = "python -m noisebrush.eval.train_clip_features " + " ".join(argv if argv is not None else sys.argv[1:])
    acc = report.pop("heldout_accuracy")
    path = save_clip_features(net, a.out, {"heldout_accuracy": acc,
                                           "provenance": {**report, "command": command.strip()}})
    print(json.dumps(acc))
    print(f"clip feature network → {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
