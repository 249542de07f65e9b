"""Training checkpoints: safetensors for every tensor, JSON for everything else. Nothing is pickled.

A checkpoint is a folder ``RUN/checkpoints/step-0001200/`` holding

* ``model.safetensors``  the raw (trained) weights
* ``ema.safetensors``    the EMA weights (absent when the network has no EMA)
* ``state.safetensors``  optimizer tensors (Adam moments, step counts) and RNG states
* ``state.json``         everything else: step, counters, data position, optimizer hyper-parameters, LR-scheduler
                         state, EMA update count, Python RNG state, the training config

An objective with several trained networks (a GAN's generator and discriminator) stores its first network as
above and each further one, named NAME, as ``part-NAME.safetensors`` (+ ``part-NAME-ema.safetensors``), its
optimizer tensors under ``part.NAME.optimizer.…`` in ``state.safetensors`` and the rest under ``parts.NAME`` in
``state.json``; :func:`load_checkpoint` returns them as ``doc["parts"][NAME]`` with the same keys as the first.

It is written into a hidden temporary folder and renamed into place, so a run killed at any moment leaves only
complete checkpoints; ``state.json`` is written last inside it. Older checkpoints beyond ``keep_last`` are removed
after the new one is in place.
"""
from __future__ import annotations

import json
import os
import random
import re
import shutil
import tempfile
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from noisebrush.errors import UserError

__all__ = ["save_checkpoint", "load_checkpoint", "list_checkpoints", "latest_checkpoint", "FORMAT"]

FORMAT = "noisebrush.checkpoint/1"
_NAME = re.compile(r"^step-(\d{7,})$")
_PART = re.compile(r"^[a-z0-9_-]+$")


def _tensors(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().contiguous().clone() for k, v in sd.items()}


def _split_optimizer(state: dict, prefix: str = "optimizer.") -> tuple[dict[str, torch.Tensor], dict]:
    tensors, meta = {}, {"state": {}, "param_groups": state["param_groups"]}
    for idx, entry in state["state"].items():
        plain = {}
        for name, v in entry.items():
            if torch.is_tensor(v):
                tensors[f"{prefix}{idx}.{name}"] = v.detach().cpu().contiguous().clone()
            else:
                plain[name] = v
        meta["state"][str(idx)] = plain
    return tensors, meta


def _join_optimizer(tensors: dict[str, torch.Tensor], meta: dict, prefix: str = "optimizer.") -> dict:
    state: dict = {int(k): dict(v) for k, v in meta["state"].items()}
    for key, v in tensors.items():
        if key.startswith(prefix):
            idx, name = key[len(prefix):].split(".", 1)
            state.setdefault(int(idx), {})[name] = v
    groups = []
    for g in meta["param_groups"]:
        g = dict(g)
        if "betas" in g:
            g["betas"] = tuple(g["betas"])
        groups.append(g)
    return {"state": state, "param_groups": groups}


def _jsonable(obj, where: str):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v, f"{where}.{k}") for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v, f"{where}[]") for v in obj]
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if torch.is_tensor(obj) and obj.numel() == 1:
        return obj.item()
    raise TypeError(f"checkpoint: cannot store {type(obj).__name__} at {where} as JSON")


def list_checkpoints(run_dir) -> list[tuple[int, Path]]:
    root = Path(run_dir) / "checkpoints"
    if not root.is_dir():
        return []
    found = []
    for p in root.iterdir():
        m = _NAME.match(p.name)
        if m and (p / "state.json").is_file():
            found.append((int(m.group(1)), p))
    return sorted(found)


def latest_checkpoint(run_dir) -> Path | None:
    found = list_checkpoints(run_dir)
    return found[-1][1] if found else None


def _save_parts(tmp: Path, parts: dict, opt_tensors: dict) -> dict:
    """Write the further networks of a multi-network objective; returns their JSON entries."""
    meta = {}
    for name, p in parts.items():
        if not _PART.match(name) or name == "model":
            raise ValueError(f"checkpoint: part name {name!r} must be lower-case letters, digits, - or _ "
                             f"(and not 'model')")
        save_file(_tensors(p["model"].state_dict()), str(tmp / f"part-{name}.safetensors"))
        if p.get("ema") is not None:
            save_file(_tensors(p["ema"].state_dict()), str(tmp / f"part-{name}-ema.safetensors"))
        tensors, opt_meta = _split_optimizer(p["optimizer"].state_dict(), prefix=f"part.{name}.optimizer.")
        opt_tensors.update(tensors)
        meta[name] = {"optimizer": opt_meta, "scheduler": p["scheduler"].state_dict(),
                      "ema_updates": p["ema"].updates if p.get("ema") is not None else None}
    return meta


def save_checkpoint(run_dir, step: int, *, model: torch.nn.Module, ema, optimizer, scheduler, state: dict,
                    keep_last: int = 3, parts: dict | None = None) -> Path:
    """Write ``RUN/checkpoints/step-{step:07d}`` atomically and prune old ones. Returns its path.

    ``ema`` may be None (a network without an average). ``parts``: further networks of the run,
    ``{NAME: {"model", "ema" (or None), "optimizer", "scheduler"}}`` (see the module docstring)."""
    root = Path(run_dir) / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step-{step:07d}"
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=root))
    try:
        save_file(_tensors(model.state_dict()), str(tmp / "model.safetensors"))
        if ema is not None:
            save_file(_tensors(ema.state_dict()), str(tmp / "ema.safetensors"))
        opt_tensors, opt_meta = _split_optimizer(optimizer.state_dict())
        parts_meta = _save_parts(tmp, parts, opt_tensors) if parts else None
        opt_tensors["rng.torch"] = torch.get_rng_state()
        save_file(opt_tensors, str(tmp / "state.safetensors"))
        doc = {
            "format": FORMAT,
            "step": int(step),
            **state,
            "optimizer": opt_meta,
            "scheduler": scheduler.state_dict(),
            "ema_updates": ema.updates if ema is not None else None,
            "python_random": random.getstate(),
        }
        if parts_meta:
            doc["parts"] = parts_meta
        with open(tmp / "state.json", "w") as f:
            json.dump(_jsonable(doc, "state"), f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        old = None
        if final.exists():  # re-saving the same step: move the old one aside, delete it once the new one is in
            old = root / f".{final.name}.old"
            shutil.rmtree(old, ignore_errors=True)
            os.replace(final, old)
        os.replace(tmp, final)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    for _, p in list_checkpoints(run_dir)[:-keep_last] if keep_last > 0 else []:
        shutil.rmtree(p, ignore_errors=True)
    for p in root.glob(".step-*.tmp"):  # leftovers of a run killed while writing
        shutil.rmtree(p, ignore_errors=True)
    return final


def _load_ema(file: Path, updates) -> dict | None:
    """An EMA's tensors; None for a network saved without an EMA (``ema_updates`` is null then)."""
    return None if updates is None else load_file(str(file))


def load_checkpoint(path) -> dict:
    """Read a checkpoint folder → dict with model, ema, optimizer, scheduler state and the JSON fields."""
    path = Path(path)
    if not (path / "state.json").is_file():
        raise UserError(f"{path}: not a noisebrush checkpoint (no state.json)")
    try:
        with open(path / "state.json") as f:
            doc = json.load(f)
        if doc.get("format") != FORMAT:
            raise UserError(f"{path}: checkpoint format {doc.get('format')!r}, this noisebrush reads {FORMAT!r}")
        tensors = load_file(str(path / "state.safetensors"))
        doc["model"] = load_file(str(path / "model.safetensors"))
        doc["ema"] = _load_ema(path / "ema.safetensors", doc.get("ema_updates"))
        for name, part in (doc.get("parts") or {}).items():
            part["model"] = load_file(str(path / f"part-{name}.safetensors"))
            part["ema"] = _load_ema(path / f"part-{name}-ema.safetensors", part.get("ema_updates"))
            part["optimizer"] = _join_optimizer(tensors, part["optimizer"], prefix=f"part.{name}.optimizer.")
    except (OSError, ValueError, json.JSONDecodeError, SafetensorError) as e:
        raise UserError(f"{path}: unreadable checkpoint ({e})") from None
    doc["optimizer"] = _join_optimizer(tensors, doc["optimizer"])
    doc["rng_torch"] = tensors.get("rng.torch")
    pr = doc.get("python_random")
    if pr is not None:
        doc["python_random"] = (pr[0], tuple(pr[1]), pr[2])
    return doc
