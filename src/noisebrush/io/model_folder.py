"""Model folders: the one place that finds, reads, hashes and writes them.

A model folder holds ``config.json`` (format version, the network's name and description, σ_data, conditioning,
schedule, provenance) and ``model.safetensors`` (the weights). Nothing is unpickled.

    from noisebrush.io import model_folder

    path = model_folder.resolve("builtin")             # or a folder; one clear UserError line if it is not one
    config = model_folder.read_config(path)            # validated config.json
    state = model_folder.read_weights(path)            # {name: tensor}, as stored (the built-in model is float16)
    model_folder.weights_hash(path)                    # "3f9a0c21bd": the short hash recipes record
    model_folder.write("runs/x/model", net.state_dict(), config, dtype=torch.float16)

:func:`write` is the only writer (the trainer's export, fine-tuning and ``ship`` all call it): model.safetensors
first, then config.json, each atomically, and any old config.json is removed just before the new weights land — so
a folder that has a config.json is always complete and consistent, and a failed write leaves no partial folder.
The network itself is built from the config by :func:`noisebrush.nets.registry.build` (this module is below
``nets`` and does not import it).
"""
from __future__ import annotations

import contextlib
import json
import math
import tempfile
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from noisebrush.errors import UserError
from noisebrush.io.atomic import atomic_path, atomic_write_text, check_writable, rescue_folder
from noisebrush.io.hashing import file_sha256

__all__ = ["MODEL_FORMAT", "BUILTIN", "BUILTIN_MODELS", "DEFAULT_NETWORK", "resolve", "read_config", "read_weights", "weights_hash",
           "weights_dtype", "network_name", "network_description", "write", "write_weights", "write_config"]

_FORMAT_VERSION = 1  # what this noisebrush writes, and the newest it reads
MODEL_FORMAT = f"noisebrush.model/{_FORMAT_VERSION}"
BUILTIN = Path(__file__).parent.parent / "models" / "builtin"  # the model shipped in the package
# every model shipped in the package, by the name a recipe records: the base model and the super-resolution stages
BUILTIN_MODELS = {name: BUILTIN.parent / name for name in ("builtin", "builtin-sr64", "builtin-sr128",
                                                            "builtin-video", "builtin-shape")}
DEFAULT_NETWORK = "unet"  # folders written before config.json named its network hold a UNet

_DTYPES = {"F16": torch.float16, "BF16": torch.bfloat16}


def resolve(model) -> Path:
    """"builtin" → the model shipped in the package ("builtin-sr64", "builtin-sr128": its super-resolution stages);
    anything else is a folder holding a model."""
    path = BUILTIN_MODELS.get(str(model)) or Path(model)
    if not path.exists():
        raise UserError(f"{model}: no such model folder")
    if not path.is_dir():
        raise UserError(f"{model}: not a model folder (expected a folder with config.json and model.safetensors)")
    if not (path / "config.json").is_file() or not (path / "model.safetensors").is_file():
        raise UserError(f"{model}: not a noisebrush model folder (config.json and model.safetensors are needed)")
    return path


def network_name(config: dict) -> str:
    """The network a config describes (its ``"network"``; older folders without one hold a ``"unet"``)."""
    return config.get("network") or DEFAULT_NETWORK


def network_description(config: dict) -> dict:
    """The network's settings: the table under its name (``config["unet"]`` for a UNet); {} when there is none."""
    description = config.get(network_name(config))
    return description if isinstance(description, dict) else {}


def read_config(path) -> dict:
    """The model folder's config.json, checked: format and version, σ_data, condition, resolution (and the types of
    classes, text_encoder, frames and depth) and a sane σ range. Raises UserError (one line naming the file) otherwise. The network's name and description are checked
    where the network is built (:func:`noisebrush.nets.registry.build`)."""
    path = Path(path)
    try:
        conf = json.loads((path / "config.json").read_text())
    except (OSError, ValueError) as e:  # ValueError: UnicodeDecodeError, JSONDecodeError
        raise UserError(f"{path / 'config.json'}: unreadable ({e})") from None
    except RecursionError:
        raise UserError(f"{path / 'config.json'}: unreadable (nested too deeply)") from None
    fmt = conf.get("format") if isinstance(conf, dict) else None
    if not isinstance(fmt, str) or not fmt.startswith("noisebrush.model/"):
        raise UserError(f"{path}: not a noisebrush model (config.json format is {fmt!r}, "
                        f"expected {MODEL_FORMAT!r})")
    try:
        version = int(fmt.split("/", 1)[1])
    except ValueError:
        raise UserError(f"{path}: unknown model format {fmt!r}") from None
    if version > _FORMAT_VERSION:
        raise UserError(f"{path}: made by a newer noisebrush (model format version {version}); this one reads "
                        f"version {_FORMAT_VERSION} — upgrade noisebrush")
    name = conf.get("network", DEFAULT_NETWORK)
    if not isinstance(name, str) or not name:
        raise UserError(f"{path / 'config.json'}: 'network' must name a network, got {name!r}")
    for key in ("sigma_data", "condition", "resolution"):
        if key not in conf:
            raise UserError(f"{path / 'config.json'}: missing {key!r}")
    _check_fields(conf, path / "config.json")
    sched = conf.get("schedule")
    if sched is not None:
        lo, hi = (sched.get("sigma_min", 0.002), sched.get("sigma_max", 80.0)) if isinstance(sched, dict) else (0, 0)
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (lo, hi)) or not 0 < lo < hi:
            raise UserError(f"{path / 'config.json'}: 'schedule' needs numbers 0 < sigma_min < sigma_max")
    return conf


CONDITIONS = ("text", "label", "none")  # what a model folder's "condition" may say


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _check_fields(conf: dict, where: Path) -> None:
    """The types of the top-level fields painting reads (σ_data, condition, resolution, classes, text encoder):
    a config.json from anywhere gives one UserError line rather than a TypeError deep inside ``load``."""
    def bad(key, what):
        raise UserError(f"{where}: {key!r} must be {what}, got {conf.get(key)!r:.60}")

    if not _is_number(conf["sigma_data"]) or not conf["sigma_data"] > 0:
        bad("sigma_data", "a number above 0")
    if conf["condition"] not in CONDITIONS:
        bad("condition", " or ".join(CONDITIONS))
    res = conf["resolution"]
    if isinstance(res, bool) or not isinstance(res, int) or not 1 <= res <= 1 << 16:
        bad("resolution", "a whole number of pixels from 1 to 65536")
    classes = conf.get("classes")
    if classes is not None and (not isinstance(classes, list) or not all(isinstance(c, str) for c in classes)):
        bad("classes", "a list of class names or null")
    if conf["condition"] == "label" and not classes:
        bad("classes", "a non-empty list of class names for a label model")
    te = conf.get("text_encoder")
    if te is not None:
        mt = te.get("max_tokens", 16) if isinstance(te, dict) else None
        if isinstance(mt, bool) or not isinstance(mt, int) or not 2 <= mt <= 512:
            bad("text_encoder", "an object whose max_tokens is a whole number from 2 to 512")
    for key in ("frames", "depth"):
        v = conf.get(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 1 << 16):
            bad(key, "a whole number from 1 to 65536")


def read_weights(path) -> dict[str, torch.Tensor]:
    """The tensors of model.safetensors, in the dtype they were stored in."""
    file = Path(path) / "model.safetensors"
    try:
        return load_file(str(file))
    except (OSError, SafetensorError) as e:
        raise UserError(f"{file}: unreadable ({e})") from None


def weights_hash(path) -> str:
    """First 10 hex digits of the SHA-256 of model.safetensors (A1111 shows a short hash too)."""
    return file_sha256(Path(path) / "model.safetensors")[:10]


def weights_dtype(path) -> torch.dtype:
    """The floating-point dtype of a model folder's weights, read from the file's header (the built-in model ships
    float16; trained folders are float32)."""
    file = Path(path) / "model.safetensors"
    try:
        with safe_open(str(file), framework="pt") as f:
            for key in f.keys():
                return _DTYPES.get(f.get_slice(key).get_dtype(), torch.float32)
    except (OSError, SafetensorError) as e:
        raise UserError(f"{file}: unreadable ({e})") from None
    return torch.float32


def write_weights(path, state: dict, *, dtype: torch.dtype | None = None) -> Path:
    """Write ``state`` as ``path/model.safetensors`` (atomically; floating tensors cast to ``dtype`` when given,
    all made contiguous and moved to the CPU). An old config.json is removed just before the new weights replace the
    old ones (a failed write leaves the folder as it was); the folder is incomplete until :func:`write_config` runs.
    Most callers want :func:`write`, which does both."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tensors = {}
    for k, v in state.items():
        v = v.detach()
        if dtype is not None and v.is_floating_point():
            v = v.to(dtype)
        tensors[k] = v.cpu().contiguous()
    with atomic_path(path / "model.safetensors") as tmp:
        save_file(tensors, tmp)
        # the new weights are complete: from here until write_config the folder has no config.json, so a crash
        # leaves "not a model folder" rather than new weights under an old description
        with contextlib.suppress(FileNotFoundError):
            (path / "config.json").unlink()
    return path


def write_config(path, config: dict) -> Path:
    """Write ``path/config.json`` (atomically) with ``"format"`` set to :data:`MODEL_FORMAT`; written after the
    weights, it marks the folder complete."""
    path = Path(path)
    atomic_write_text(path / "config.json", _config_text(config))
    return path


def _config_text(config: dict) -> str:
    conf = dict(config)
    if "format" in conf:
        conf["format"] = MODEL_FORMAT  # keep its place in the file
    else:
        conf = {"format": MODEL_FORMAT, **conf}
    return json.dumps(conf, indent=2)


def write(path, state: dict, config: dict, *, dtype: torch.dtype | None = None, what: str = "the model") -> Path:
    """Write a model folder: ``state`` (a network's state dict; floating tensors cast to ``dtype`` when given) as
    model.safetensors, then ``config`` as config.json (with ``"format"``). Returns the folder. On failure a folder
    this call created is removed again.

    When ``path`` cannot be written (checked just before: the folder went read-only, the disk is full), the same
    model folder is written in the rescue folder (:func:`noisebrush.io.atomic.rescue_folder`) and a UserError names
    both (``what``: the work, in the message), so work at the end of a run is never lost."""
    path = Path(path)
    text = _config_text(config)  # a config JSON cannot hold fails here, before anything is written
    try:
        check_writable(path, what="--out", folder=True)
    except UserError as e:
        kept = Path(tempfile.mkdtemp(prefix=f"{path.name}-", dir=rescue_folder()))
        _write(kept, state, text, dtype)
        raise UserError(f"{path}: cannot be written ({str(e).split('(', 1)[-1].rstrip(')')}); {what} is kept in "
                        f"{kept}") from None
    return _write(path, state, text, dtype)


def _write(path: Path, state: dict, text: str, dtype) -> Path:
    created = not path.exists()
    try:
        write_weights(path, state, dtype=dtype)
        atomic_write_text(path / "config.json", text)
    except BaseException:
        if created:  # leave no half-made folder behind (an existing one keeps its old weights or none)
            with contextlib.suppress(OSError):
                (path / "model.safetensors").unlink()
            with contextlib.suppress(OSError):
                path.rmdir()
        raise
    return path
