"""The shape judge: a small 3-D CNN that reads ProceduralShapes' attributes (category, height, width, plan, legs,
arms, handle, roof, crown, fins) from a signed-distance grid — text adherence of the shape model, and the feature
space of distances between sets of shapes (issue 17).

    from noisebrush.eval.shape_features import load_shape_features, train_shape_features
    net = load_shape_features()     # the shipped one (src/noisebrush/eval/shapenet)
    net.predict(grids)              # grids N×1×R×R×R (sdf / 0.2 in [-1, 1]; other sizes are resized to 32³)
    net.features(grids)             # N × 192, float64
    net, report = train_shape_features(n=8000, epochs=4)   # report["held_out"]["accuracy"]: per attribute

    python -m noisebrush.eval.shape_features --out src/noisebrush/eval/shapenet --n 8000 --epochs 4  # the shipped

Grids are computed as they are needed (``noisebrush.data.shapes``); held out are items of another data seed. The
augmentation is a random turn about the vertical axis by a multiple of 90° (the shapes' attributes do not depend
on which side faces the camera) and a little noise.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from functools import lru_cache
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from noisebrush.data.shapes import SHAPE_ATTRIBUTES, ProceduralShapes
from noisebrush.errors import UserError
from noisebrush.eval.features import head_log_probs, read_judge, write_judge
from noisebrush.eval.train_features import fit_heads, head_accuracy

__all__ = ["ShapeFeatureNet", "train_shape_features", "read_shape_features", "load_shape_features", "shape_table",
           "SHAPENET_FORMAT", "SHAPENET_DIR"]

SHAPENET_FORMAT = "noisebrush.shapenet/1"
SHAPENET_DIR = Path(__file__).parent / "shapenet"  # the shipped judge
_RES = 32


def _stage(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv3d(cin, cout, 3, stride=2, padding=1), nn.GroupNorm(8, cout), nn.SiLU(),
                         nn.Conv3d(cout, cout, 3, padding=1), nn.GroupNorm(8, cout), nn.SiLU())


class ShapeFeatureNet(nn.Module):
    """Four stride-2 stages over a 32³ grid (32³ → 2³), pooled to a ``dim``-wide feature, one linear head per
    attribute."""

    def __init__(self, heads: dict[str, int] | None = None, widths=(16, 32, 64, 128), dim: int = 192):
        super().__init__()
        self.heads_spec = dict(heads or {k: len(v) for k, v in SHAPE_ATTRIBUTES.items()})
        self.widths, self.dim = tuple(int(w) for w in widths), int(dim)
        chans = (1, *self.widths)
        self.trunk = nn.Sequential(*[_stage(a, b) for a, b in zip(chans[:-1], chans[1:])])
        self.proj = nn.Linear(self.widths[-1] * 2, self.dim)
        self.heads = nn.ModuleDict({k: nn.Linear(self.dim, v) for k, v in self.heads_spec.items()})

    def config(self) -> dict:
        return {"format": SHAPENET_FORMAT, "heads": self.heads_spec, "widths": list(self.widths), "dim": self.dim}

    @staticmethod
    def _prepare(x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 5 or x.shape[1] != 1:
            raise UserError(f"grids: expected N×1×D×H×W signed-distance grids, got {tuple(x.shape)}")
        x = x.float().clamp(-1, 1)
        if x.shape[-3:] != (_RES, _RES, _RES):
            x = F.interpolate(x, size=(_RES, _RES, _RES), mode="trilinear", align_corners=False)
        return x

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        h = self.trunk(self._prepare(x))
        pooled = torch.cat([h.mean((2, 3, 4)), h.amax((2, 3, 4))], 1)
        return F.silu(self.proj(pooled))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        f = self.embed(x)
        return f, {k: head(f) for k, head in self.heads.items()}

    @torch.no_grad()
    def _batched(self, grids: torch.Tensor, batch: int):
        for i in range(0, grids.shape[0], batch):
            yield self(grids[i:i + batch])

    def features(self, grids: torch.Tensor, batch: int = 64) -> torch.Tensor:
        return torch.cat([f.double() for f, _ in self._batched(grids, batch)]) if len(grids) else \
            torch.zeros(0, self.dim, dtype=torch.float64)

    def log_probs(self, grids: torch.Tensor, batch: int = 64) -> dict[str, torch.Tensor]:
        return head_log_probs(self._batched(grids, batch), self.heads_spec)

    def predict(self, grids: torch.Tensor, batch: int = 64) -> dict[str, torch.Tensor]:
        return {k: v.argmax(1) for k, v in self.log_probs(grids, batch).items()}


def shape_table(ds: ProceduralShapes, n: int) -> torch.Tensor:
    """n × attributes of value indices (-1 where a shape has no such attribute), in SHAPE_ATTRIBUTES order."""
    return torch.tensor([ds.shape(i).attr_indices() for i in range(n)], dtype=torch.long)


def _grids(ds: ProceduralShapes, n: int) -> torch.Tensor:
    return torch.stack([torch.from_numpy(ds.grid(i)) for i in range(n)])[:, None]


def _augment(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """A turn about the vertical (y) axis by k·90° per grid ([z, y, x]: the z and x axes), and a little noise."""
    k = torch.randint(0, 4, (x.shape[0],), generator=g)
    out = torch.stack([torch.rot90(v, int(t), dims=(1, 3)) for v, t in zip(x, k)])
    return (out + 0.03 * torch.randn(out.shape, generator=g)).clamp(-1, 1)


def train_shape_features(n: int = 8000, epochs: int = 4, batch: int = 64, lr: float = 2e-3, seed: int = 0,
                         val: int = 1000, progress=print) -> tuple[ShapeFeatureNet, dict]:
    """Train the judge on shapes 0..n-1 of data seed 0; its accuracy on ``val`` shapes of data seed 1."""
    torch.manual_seed(seed)
    net = ShapeFeatureNet()
    ds, held = ProceduralShapes(_RES, size=max(n, 1), seed=0), ProceduralShapes(_RES, size=max(val, 1), seed=1)
    t0 = time.perf_counter()
    grids, table = _grids(ds, n).half(), shape_table(ds, n)  # float16 keeps 8000 grids in 0.5 GB
    val_grids, val_table = _grids(held, val), shape_table(held, val)
    progress(f"made {n} + {val} grids in {time.perf_counter() - t0:.0f} s")
    t0 = time.perf_counter()
    fit_heads(net, n, lambda idx, g: _augment(grids[idx].float(), g), table, list(SHAPE_ATTRIBUTES), epochs=epochs,
              batch=batch, lr=lr, seed=seed, progress=progress, unit="shapes")
    net.eval()
    acc = head_accuracy(net.predict(val_grids), val_table, SHAPE_ATTRIBUTES)
    report = {"train_items": n, "epochs": epochs, "batch": batch, "lr": lr, "seed": seed,
              "train_seconds": round(time.perf_counter() - t0, 1),
              "held_out": {"items": val, "data_seed": 1, "accuracy": {k: round(v, 4) for k, v in acc.items()}}}
    return net.requires_grad_(False), report


def read_shape_features(path) -> ShapeFeatureNet:
    """The shape judge in the folder ``path``, in eval mode; a one-line UserError if unreadable."""
    conf, state = read_judge(path, SHAPENET_FORMAT, "shape judge")
    net = ShapeFeatureNet(conf["heads"], conf["widths"], conf["dim"])
    net.load_state_dict({k: v.float() for k, v in state.items()})
    return net.eval().requires_grad_(False)


@lru_cache(maxsize=2)
def load_shape_features(path: str | None = None) -> ShapeFeatureNet:
    """The shipped shape judge (or the one in ``path``), in eval mode, cached."""
    p = Path(path) if path else SHAPENET_DIR
    if not (p / "model.safetensors").is_file():
        raise UserError(f"{p}: no shape judge here (train one: python -m noisebrush.eval.shape_features --out {p})")
    return read_shape_features(p)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m noisebrush.eval.shape_features", description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="the folder to write the judge to")
    ap.add_argument("--n", type=int, default=8000, help="training shapes (items 0..n-1 of data seed 0)")
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--val", type=int, default=1000, help="held-out shapes (data seed 1)")
    a = ap.parse_args(argv)
    for name, hi in (("n", 200_000), ("epochs", 100), ("batch", 4096), ("val", 100_000)):
        if not 1 <= getattr(a, name) <= hi:
            print(f"error: --{name}: a whole number from 1 to {hi}", file=sys.stderr)
            return 2
    if not 0 < a.lr <= 1:
        print("error: --lr: a number in (0, 1]", file=sys.stderr)
        return 2
    net, report = train_shape_features(a.n, a.epochs, a.batch, a.lr, a.seed, a.val,
                                       progress=lambda s: print(s, file=sys.stderr))
    command = "python -m noisebrush.eval.shape_features " + " ".join(argv if argv is not None else sys.argv[1:])
    path = write_judge(a.out, net, {**net.config(), "provenance": {**report, "command": command.strip()}},
                       torch.float16)
    print(json.dumps(report["held_out"]["accuracy"]))
    print(f"shape judge → {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
