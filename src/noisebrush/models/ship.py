"""Ship a trained model folder as one of the package's built-in models.

    python -m noisebrush.models.ship runs/builtin/model            # → src/noisebrush/models/builtin/
    python -m noisebrush.models.ship runs/sr64/model --name builtin-sr64 --steps 12   # a super-resolution stage

The weights are stored in float16 (the network is evaluated in float32 after loading; its weights are unit-RMS, so
float16 keeps them to about 1e-3 relative), which keeps the built-in network (8.2 M parameters) at 15.7 MiB, under the
16 MiB the package allows for one model; the picture cascade (the base and its super-resolution stages) stays under
32 MiB, and every built-in model together (with the animation and shape models) under 64 MiB. ``--steps`` / ``--sampler`` set the sampling defaults the folder records (``schedule``), chosen by
measurement after training (the shipped config says so). config.json keeps the training provenance and records the conversion; a model trained
from the built-in one also keeps the provenance of the stages before it.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from noisebrush.errors import BadParameter, UserError
from noisebrush.io import model_folder
from noisebrush.io.model_folder import BUILTIN, BUILTIN_MODELS

LIMIT_MB = 16.0          # one built-in model
CASCADE_LIMIT_MB = 32.0  # the picture cascade: the base and its super-resolution stages (issue 15)
TOTAL_LIMIT_MB = 64.0    # every built-in model together
CASCADE = ("builtin", "builtin-sr64", "builtin-sr128")


def shipped_mb(names=None) -> float:
    """MiB of weights of the built-in models ``names`` (default: every one) in the package."""
    paths = [BUILTIN_MODELS[n] for n in names] if names is not None else BUILTIN_MODELS.values()
    return sum((p / "model.safetensors").stat().st_size for p in paths
               if (p / "model.safetensors").is_file()) / 2**20


def ship(src, dest=BUILTIN, dtype: str = "float16", *, steps: int | None = None, sampler: str | None = None,
         base: str | None = None) -> Path:
    """Copy the model folder ``src`` to ``dest`` with its floating weights in ``dtype``; returns ``dest``. ``steps``
    and ``sampler``: the sampling defaults to record instead of the trained ones. ``base``: a model the weights
    were trained from with part of them kept exactly (``train_only``; a picture model inflated into a clip network
    counts): only the tensors that differ from it are written, and config.json names it with its weights hash
    (:func:`noisebrush.nets.registry.load_weights` completes the folder when it is loaded).

    Raises UserError when the weights come out over ``LIMIT_MB``, or all built-in models over ``TOTAL_LIMIT_MB``
    (``dest`` then has no config.json)."""
    src = model_folder.resolve(src)
    conf = model_folder.read_config(src)
    dest = Path(dest)
    earlier = _earlier_stages(conf.get("provenance") or {}, src)
    dt = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}.get(dtype)
    if dt is None:
        raise BadParameter(f"dtype: float16, bfloat16 or float32; got {dtype!r}")
    # the weights first, to learn their size; config.json (which records it) completes the folder
    state = model_folder.read_weights(src)
    if base is not None:
        from noisebrush.nets import registry  # lazy: only --base needs the network; shipping loads no model code

        net = registry.build(conf, source=src / "config.json")
        kept = registry.base_weights(base, net)
        same = [k for k, v in state.items() if k in kept and torch.equal(kept[k], v.to(torch.float32))]
        if not same:
            raise UserError(f"{src}: no weight is the same as in {base}; ship it without --base")
        state = {k: v for k, v in state.items() if k not in same}
        conf = {**conf, "base": {"model": str(base), "hash": model_folder.weights_hash(model_folder.resolve(base))}}
    model_folder.write_weights(dest, state, dtype=dt)
    size = (dest / "model.safetensors").stat().st_size / 2**20
    if size > LIMIT_MB:
        raise UserError(f"{dest / 'model.safetensors'} is {size:.1f} MB, over the {LIMIT_MB:.0f} MB limit")
    if dest.parent == BUILTIN.parent and shipped_mb(CASCADE) > CASCADE_LIMIT_MB:
        raise UserError(f"the picture cascade ({', '.join(CASCADE)}) comes to {shipped_mb(CASCADE):.1f} MB, over "
                        f"the {CASCADE_LIMIT_MB:.0f} MB limit")
    if dest.parent == BUILTIN.parent and shipped_mb() > TOTAL_LIMIT_MB:
        raise UserError(f"the built-in models come to {shipped_mb():.1f} MB, over the {TOTAL_LIMIT_MB:.0f} MB limit")
    conf = dict(conf)
    if steps is not None or sampler is not None:
        sched = dict(conf.get("schedule") or {})
        trained = {k: sched.get(k) for k in ("sampler", "steps")}
        sched.update({k: v for k, v in (("steps", steps), ("sampler", sampler)) if v is not None})
        conf["schedule"] = sched
        conf.setdefault("provenance", {})["schedule_chosen"] = {"trained": trained, "shipped": {
            "sampler": sched.get("sampler"), "steps": sched.get("steps")}}
    prov = conf.setdefault("provenance", {})
    if earlier:
        prov["init_provenance"] = earlier
    prov["shipped"] = {"from": str(src), "weights_dtype": dtype, "size_mb": round(size, 2)}
    model_folder.write_config(dest, conf)
    return dest


def _earlier_stages(prov: dict, src: Path) -> dict | None:
    """The provenance of the model a run started from, when that was the built-in model: a later stage of the
    built-in model then carries every earlier stage with it (``init_provenance``, nested once per stage).

    Read before the new weights replace the built-in ones; shipping the same run again keeps the chain it had."""
    init = prov.get("init")
    started = next((p for n, p in BUILTIN_MODELS.items() if init in (n, str(p))), None)
    if "init_provenance" in prov or started is None:
        return None
    try:
        old = model_folder.read_config(started).get("provenance") or None
    except UserError:
        return None
    if old and old.get("shipped", {}).get("from") == str(src):  # this run is already the built-in model
        old = old.get("init_provenance")
    return old


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m noisebrush.models.ship", description=__doc__.split("\n\n")[0])
    ap.add_argument("model", help="a model folder written by the trainer (RUN/model)")
    ap.add_argument("--dest", default=None, help="a folder (default: the built-in model --name names)")
    ap.add_argument("--name", default="builtin", choices=sorted(BUILTIN_MODELS))
    ap.add_argument("--dtype", default="float16")
    ap.add_argument("--steps", type=int, default=None, help="sampling steps to record (default: the trained ones)")
    ap.add_argument("--sampler", default=None, help="sampler to record (default: the trained one)")
    ap.add_argument("--base", default=None, help="write only the weights that differ from this model (a run with "
                                                 "train_only, e.g. builtin-video on builtin)")
    args = ap.parse_args(argv)
    try:
        dest = ship(args.model, args.dest or BUILTIN_MODELS[args.name], args.dtype, steps=args.steps,
                    sampler=args.sampler, base=args.base)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"shipped {args.model} → {dest} ({(dest / 'model.safetensors').stat().st_size / 2**20:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
