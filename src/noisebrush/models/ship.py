"""Ship a trained model folder as the package's built-in model.

    python -m noisebrush.models.ship runs/builtin/model            # → src/noisebrush/models/builtin/

The weights are stored in float16 (the network is evaluated in float32 after loading; its weights are unit-RMS, so
float16 keeps them to about 1e-3 relative), which keeps the default network (6.75 M parameters) at 13.5 MB, under the
16 MB the package allows. config.json keeps the training provenance and records the conversion.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from noisebrush.errors import BadParameter, UserError
from noisebrush.io.atomic import atomic_path, atomic_write_text
from noisebrush.paint.pipeline import BUILTIN, read_model_config, resolve_model

LIMIT_MB = 16.0


def ship(src, dest=BUILTIN, dtype: str = "float16") -> Path:
    src = resolve_model(src)
    conf = read_model_config(src)
    dt = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}.get(dtype)
    if dt is None:
        raise BadParameter(f"dtype: float16, bfloat16 or float32; got {dtype!r}")
    state = load_file(str(src / "model.safetensors"))
    small = {k: (v.to(dt) if v.is_floating_point() else v).contiguous() for k, v in state.items()}
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    with atomic_path(dest / "model.safetensors") as tmp:
        save_file(small, tmp)
    size = (dest / "model.safetensors").stat().st_size / 2**20
    if size > LIMIT_MB:
        raise UserError(f"{dest / 'model.safetensors'} is {size:.1f} MB, over the {LIMIT_MB:.0f} MB limit")
    conf = dict(conf)
    conf.setdefault("provenance", {})["shipped"] = {"from": str(src), "weights_dtype": dtype,
                                                    "size_mb": round(size, 2)}
    atomic_write_text(dest / "config.json", json.dumps(conf, indent=2))
    return dest


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m noisebrush.models.ship", description=__doc__.split("\n\n")[0])
    ap.add_argument("model", help="a model folder written by the trainer (RUN/model)")
    ap.add_argument("--dest", default=str(BUILTIN))
    ap.add_argument("--dtype", default="float16")
    args = ap.parse_args(argv)
    try:
        dest = ship(args.model, args.dest, args.dtype)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"shipped {args.model} → {dest} ({(dest / 'model.safetensors').stat().st_size / 2**20:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
