"""LoRA adapters for noisebrush's UNet, through peft, and the small file they are saved in.

    from noisebrush.nets.lora import add_lora, adapter_tensors, save_lora, apply_loras, parse_lora_spec

    add_lora(net, rank=8)                       # peft injects a LoraMPConv around every targeted MPConv
    ...train: only the adapters require grad...
    save_lora("mystyle.safetensors", adapter_tensors(net), rank=8, alpha=8, unet_config=..., base_name=...,
              base_hash=...)

    pipe = noisebrush.load("builtin")
    apply_loras(pipe.net, pipe.config, pipe.hash, [parse_lora_spec("mystyle.safetensors:0.8")])

**What a LoRA changes.** :class:`noisebrush.nets.mp.MPConv` normalises its *stored* weight per output channel on
every forward pass (forced weight normalisation). The low-rank delta is added to the stored weight, before that
normalisation: a layer computes ``MPConv(W + Σ s·B·A)`` with ``s = alpha / rank`` (times the user's weight when
merging). Consequences:

* merging is exact: ``W ← W + w·s·B·A`` makes the plain network compute what the adapted one computes (the same
  float operations in the same order, so at w = 1 the outputs are bit-identical to the peft-wrapped network's);
* several LoRAs add up in weight space (``W + w₁Δ₁ + w₂Δ₂``), and weight 0 leaves a network unchanged;
* a delta can only turn a layer's weight, never scale it (the normalisation removes any change of norm), which is
  what forced weight normalisation wants anyway: magnitudes stay controlled, so adapters never need projecting.

A is the flattened kernel's low-rank input map (rank × in·k), B the output map (out × rank), as in peft's Linear.

**Which layers (``DEFAULT_TARGETS``).** Every convolution of the residual blocks (both 3×3 convolutions and the
1×1 skips), self-attention (qkv, proj), cross-attention to the text (q, kv, proj), the last convolution (colour
out: a palette lives there) and the pooled-text embedding ``emb_text`` (how a new token word enters the global
embedding). Not adapted: the noise-level embedding and the per-block ``emb_linear`` modulations — they carry the
σ-dependence a style has no reason to change — nor the scalar gains and the learned null token; nor the first
convolution ``enc.0``: ``UNet.forward`` tells it from the blocks by ``isinstance(block, MPConv)``, which a peft
wrapper is not (it would be 800 numbers). At rank 8 the built-in model's adapters hold 0.61 M numbers: 1.2 MB in
float16.

**The file.** One ``.safetensors``: ``NAME.lora_A`` / ``NAME.lora_B`` for each adapted module ``NAME`` (module paths
of the plain UNet, float16), and string metadata ``format`` (``noisebrush.nets.lora/1``), ``base_model``, ``base_hash``,
``unet`` (the base network's config, JSON), ``rank``, ``alpha``, ``targets`` (JSON list of module names),
``token``, ``provenance`` (JSON: how it was trained). Nothing is pickled. A file made for another architecture is
refused; one made for the same architecture but other weights (another hash) is merged with a warning.
"""
from __future__ import annotations

import json
import logging
import math
import re
import warnings
from pathlib import Path
from typing import Any, Optional

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from noisebrush.checks import number, whole
from noisebrush.errors import BadParameter, UserError
from noisebrush.io.atomic import atomic_path
from noisebrush.io.hashing import file_sha256
from noisebrush.nets.mp import MPConv
from noisebrush.nets.unet import UNetConfig
from noisebrush.seeding import generator

__all__ = ["LORA_FORMAT", "DEFAULT_RANK", "DEFAULT_TARGETS", "lora_config", "add_lora",
           "adapter_tensors", "load_adapters_", "save_lora", "read_lora", "parse_lora_spec", "apply_loras",
           "file_hash", "target_names"]

log = logging.getLogger("noisebrush.nets.lora")

LORA_FORMAT = "noisebrush.nets.lora/1"
DEFAULT_RANK = 8
# module paths of the plain UNet (peft matches a string pattern with re.fullmatch on each module's path)
DEFAULT_TARGETS = r"out_conv|emb_text|.*\.(conv|space|time|conv_skip|qkv|proj|q|kv)"
ADAPTER = "default"


# -- the peft layer -------------------------------------------------------------------------------------------------

def _peft():
    try:
        from peft.tuners.lora import LoraLayer  # lazy: importing peft costs ~7 s; painting without LoRAs never needs it
    except ImportError as e:  # pragma: no cover - peft is a dependency
        raise UserError(f"LoRA needs peft ({e}); install it with: pip install peft") from None
    return LoraLayer


def _layer_class():
    """LoraMPConv, built on first use (peft is imported lazily: painting without LoRAs never needs it)."""
    global _LoraMPConv
    if _LoraMPConv is not None:
        return _LoraMPConv
    LoraLayer = _peft()
    from peft.tuners.tuners_utils import check_adapters_to_merge  # lazy: peft (see _peft)

    class LoraMPConv(torch.nn.Module, LoraLayer):
        """peft LoRA layer around an :class:`MPConv`: the delta B·A·s is added to the stored weight before the
        MPConv's own normalisation (see the module docstring)."""

        adapter_layer_names = ("lora_A", "lora_B")

        def __init__(self, base_layer, adapter_name: str, config=None, r: int = 0, lora_alpha: int = 1, **kwargs):
            super().__init__()
            LoraLayer.__init__(self, base_layer, **kwargs)
            self._active_adapter = adapter_name
            self.update_layer(adapter_name, r, lora_alpha=lora_alpha, config=config, **kwargs)

        def _get_in_out_features(self, module):
            w = module.weight
            return w[0].numel(), w.shape[0]

        def get_delta_weight(self, adapter: str) -> torch.Tensor:
            a, b = self.lora_A[adapter].weight, self.lora_B[adapter].weight
            shape = self.get_base_layer().weight.shape
            return (b.float() @ a.float()).reshape(shape) * self.scaling[adapter]

        def merge(self, safe_merge: bool = False, adapter_names: Optional[list[str]] = None) -> None:
            for name in check_adapters_to_merge(self, adapter_names):
                if name not in self.lora_A:
                    continue
                w = self.get_base_layer().weight
                merged = w.data + self.get_delta_weight(name).to(w.dtype)
                if safe_merge and not torch.isfinite(merged).all():
                    raise ValueError(f"NaNs detected in the merged weights of adapter {name}")
                w.data = merged
                self.merged_adapters.append(name)
                self.get_base_layer().refresh_bake()

        def unmerge(self) -> None:
            while self.merged_adapters:
                name = self.merged_adapters.pop()
                if name in self.lora_A:
                    w = self.get_base_layer().weight
                    w.data = w.data - self.get_delta_weight(name).to(w.dtype)
                    self.get_base_layer().refresh_bake()

        def forward(self, x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
            base = self.get_base_layer()
            if self.disable_adapters:
                if self.merged:
                    self.unmerge()
                return base(x, *args, **kwargs)
            active = [a for a in self.active_adapters if a in self.lora_A]
            if self.merged or not active:
                return base(x, *args, **kwargs)
            w = base.weight
            for a in active:
                w = w + self.get_delta_weight(a)
            return torch.func.functional_call(base, {"weight": w}, (x, *args), kwargs)

        def __repr__(self) -> str:
            return "lora." + super().__repr__()

    LoraMPConv.__module__ = __name__
    LoraMPConv.__qualname__ = "LoraMPConv"
    _LoraMPConv = LoraMPConv
    return LoraMPConv


_LoraMPConv = None


def __getattr__(name):  # ``from noisebrush.nets.lora import LoraMPConv`` builds the class (and imports peft) on demand
    if name == "LoraMPConv":
        return _layer_class()
    raise AttributeError(name)


def _check_rank(rank, alpha):
    rank = whole("rank", rank, 1, 1024)
    return rank, number("alpha", rank if alpha is None else alpha, 0, above=True)


def lora_config(rank: int = DEFAULT_RANK, alpha: float | None = None, targets: str | list[str] = DEFAULT_TARGETS):
    """A peft ``LoraConfig`` for the UNet with :class:`LoraMPConv` registered for MPConv."""
    rank, alpha = _check_rank(rank, alpha)
    _peft()
    from peft import LoraConfig  # lazy: peft (see _peft)

    cfg = LoraConfig(r=rank, lora_alpha=alpha, target_modules=targets, lora_dropout=0.0, bias="none",
                     init_lora_weights=False)
    cfg._register_custom_module({MPConv: _layer_class()})
    return cfg


def target_names(net: torch.nn.Module, targets: str | list[str] = DEFAULT_TARGETS) -> list[str]:
    """Paths of the MPConv modules of ``net`` that ``targets`` adapts (in module order)."""
    out = []
    for name, m in net.named_modules():
        if not isinstance(m, MPConv):
            continue
        if isinstance(targets, str):
            hit = re.fullmatch(targets, name) is not None
        else:
            hit = any(name == t or name.endswith("." + t) for t in targets)
        if hit:
            out.append(name)
    return out


def add_lora(net: torch.nn.Module, rank: int = DEFAULT_RANK, alpha: float | None = None, *,
             targets: str | list[str] = DEFAULT_TARGETS, seed: int = 0) -> torch.nn.Module:
    """Inject LoRA adapters into ``net`` in place (through ``peft.inject_adapter_in_model``) and return it.

    Only the adapters require grad afterwards. A is drawn like peft's default (uniform with bound 1/√fan_in, i.e.
    kaiming-uniform with a = √5) but from a generator seeded by (seed, module index); B is zero, so the adapted
    network starts out computing exactly what the base computes. An MPConv's stored weight has unit RMS, so B·A
    starts small against it (by ~√(3·fan_in) more than in an ordinary network); Adam's steps are large relative to
    A's small entries and make up for it, which is why LoRA trains at a larger learning rate than full fine-tuning
    (:data:`noisebrush.workflows.finetune.DEFAULTS`).
    """
    from peft import inject_adapter_in_model  # lazy: peft (see _peft)

    if not target_names(net, targets):
        raise BadParameter("targets: no module of this network matches")
    cfg = lora_config(rank, alpha, targets)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # peft notes that it does not know this (non-transformers) model
        inject_adapter_in_model(cfg, net, adapter_name=ADAPTER)
    cls = _layer_class()
    with torch.no_grad():
        for k, (name, m) in enumerate((n, m) for n, m in net.named_modules() if isinstance(m, cls)):
            a = m.lora_A[ADAPTER].weight
            bound = 1 / math.sqrt(a.shape[1])
            a.copy_((torch.rand(a.shape, generator=generator(seed, k, 0x10A)) * 2 - 1) * bound)
            m.lora_B[ADAPTER].weight.zero_()
    return net


def adapter_tensors(net: torch.nn.Module) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """{module path: (A, B)} of every LoraMPConv in ``net`` (detached CPU float32 copies)."""
    cls = _layer_class()
    out = {}
    for name, m in net.named_modules():
        if isinstance(m, cls) and ADAPTER in m.lora_A:
            out[name] = (m.lora_A[ADAPTER].weight.detach().float().cpu().clone(),
                         m.lora_B[ADAPTER].weight.detach().float().cpu().clone())
    return out


def load_adapters_(net: torch.nn.Module, tensors: dict[str, tuple[torch.Tensor, torch.Tensor]]) -> None:
    """Copy (A, B) pairs into the LoraMPConv layers of a peft-wrapped ``net`` (same names and shapes)."""
    cls = _layer_class()
    mods = {n: m for n, m in net.named_modules() if isinstance(m, cls)}
    if set(mods) != set(tensors):
        raise BadParameter("adapters: the LoRA adapts other modules than this network has")
    with torch.no_grad():
        for name, (a, b) in tensors.items():
            mods[name].lora_A[ADAPTER].weight.copy_(a)
            mods[name].lora_B[ADAPTER].weight.copy_(b)


# -- the file -------------------------------------------------------------------------------------------------------

def file_hash(path) -> str:
    """The short hash a recipe records for a LoRA file (first 10 hex digits of its SHA-256)."""
    return file_sha256(path)[:10]


def save_lora(path, adapters: dict[str, tuple[torch.Tensor, torch.Tensor]], *, rank: int, alpha: float,
              unet_config: dict, base_name: str, base_hash: str, token: str | None = None,
              provenance: dict | None = None) -> Path:
    """Write the LoRA file atomically (float16 tensors + string metadata). Returns its path."""
    rank, alpha = _check_rank(rank, alpha)
    tensors = {}
    for name, (a, b) in adapters.items():
        for key, t in ((f"{name}.lora_A", a), (f"{name}.lora_B", b)):
            h = t.detach().to(torch.float16).contiguous().cpu()
            if not torch.isfinite(h).all():
                raise UserError(f"LoRA: adapter {key} is not finite in float16 (training diverged?)")
            tensors[key] = h
    meta = {"format": LORA_FORMAT, "base_model": str(base_name), "base_hash": str(base_hash),
            "unet": json.dumps(unet_config, sort_keys=True), "rank": str(rank), "alpha": repr(float(alpha)),
            "targets": json.dumps(list(adapters)), "token": token or "",
            "provenance": json.dumps(provenance or {}, sort_keys=True)}
    path = Path(path)
    with atomic_path(path) as tmp:
        save_file(tensors, tmp, metadata=meta)
    return path


def read_lora(path) -> dict:
    """Read and check a LoRA file → {"path", "meta", "adapters": {name: (A, B)}, "rank", "alpha", "hash"}.
    Anything wrong is a one-line UserError naming the file."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: no such LoRA file (--lora)")
    if not path.is_file():
        raise UserError(f"{path}: not a file (--lora wants a .safetensors LoRA file)")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            raw = {k: f.get_tensor(k) for k in f.keys()}
    except (OSError, SafetensorError, ValueError, RuntimeError) as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise UserError(f"{path}: not a readable LoRA file ({first})") from None
    fmt = meta.get("format")
    if not isinstance(fmt, str) or not fmt.startswith("noisebrush.nets.lora/"):
        raise UserError(f"{path}: not a noisebrush LoRA (format {fmt!r}, expected {LORA_FORMAT!r})")
    try:
        version = int(fmt.split("/", 1)[1])
    except ValueError:
        raise UserError(f"{path}: unknown LoRA format {fmt!r}") from None
    if version > 1:
        raise UserError(f"{path}: made by a newer noisebrush (LoRA format version {version}); upgrade noisebrush")
    try:
        rank, alpha = int(meta["rank"]), float(meta["alpha"])
        unet = json.loads(meta["unet"])
        _check_rank(rank, alpha)
        if not isinstance(unet, dict):
            raise ValueError("unet is not an object")
    except (KeyError, ValueError, TypeError, OverflowError, UserError) as e:
        raise UserError(f"{path}: damaged LoRA metadata ({e})") from None
    except RecursionError:
        raise UserError(f"{path}: damaged LoRA metadata (unet nested too deeply)") from None
    adapters: dict[str, list] = {}
    for key, t in raw.items():
        name, _, part = key.rpartition(".")
        if part not in ("lora_A", "lora_B") or not name:
            raise UserError(f"{path}: unexpected tensor {key!r} in a LoRA file")
        adapters.setdefault(name, [None, None])[0 if part == "lora_A" else 1] = t
    out = {}
    for name, (a, b) in adapters.items():
        if a is None or b is None or a.ndim != 2 or b.ndim != 2 or a.shape[0] != rank or b.shape[1] != rank \
                or not a.is_floating_point() or not b.is_floating_point():
            raise UserError(f"{path}: damaged LoRA (adapter {name} is incomplete or not rank {rank})")
        out[name] = (a.float(), b.float())
    if not out:
        raise UserError(f"{path}: a LoRA file without adapters")
    return {"path": path, "meta": meta, "adapters": out, "rank": rank, "alpha": alpha, "unet": unet,
            "hash": file_hash(path)}


def _is_file(text: str) -> bool:
    try:
        return Path(text).is_file()
    except (OSError, ValueError):  # a name the file system cannot hold
        return False


def parse_lora_spec(text: str) -> tuple[Path, float]:
    """``FILE`` or ``FILE:WEIGHT`` → (path, weight); weight 1.0 by default. The text is split at the last ':'
    only when what follows it is a number, so a path with a ':' in it still works. When what follows is not a number
    but the part before it is an existing file, or names a file (it has a suffix) while what follows has no folder
    separator, the weight is the problem: ``--lora FILE:abc: the weight after ':' must be a number``."""
    if not isinstance(text, str) or not text.strip():
        raise BadParameter(f"--lora: FILE or FILE:WEIGHT, got {text!r}")
    head, sep, tail = text.rpartition(":")
    if sep and head:
        try:
            weight = float(tail)
        except ValueError:
            if _is_file(text):
                return Path(text), 1.0
            if _is_file(head) or (Path(head).suffix and not any(c in tail for c in "/\\")):
                shown = text if text.isprintable() else repr(text)  # one line, whatever the text holds
                raise BadParameter(f"--lora {shown}: the weight after ':' must be a number, got {tail!r}") from None
            return Path(text), 1.0
        if not math.isfinite(weight):
            raise BadParameter(f"--lora: the weight after ':' must be a finite number, got {tail!r}")
        return Path(head), weight
    if sep and not head:
        raise BadParameter(f"--lora: FILE or FILE:WEIGHT, got {text!r}")
    return Path(text), 1.0


def apply_loras(net: torch.nn.Module, model_config: dict, model_hash: str,
                specs: list[tuple[Path, float]]) -> list[dict]:
    """Merge each LoRA file into ``net`` (a plain UNet with its base weights) in place: W ← W + w·(α/r)·B·A.

    Every file is read and checked before anything is merged, so a bad one leaves ``net`` untouched. Returns one
    JSON-able dict per LoRA: file (absolute path), weight, hash (sha256, 10 hex), rank, alpha, token, base_model,
    base_hash. A LoRA for another architecture is refused; one for other weights of the same architecture is merged
    with a warning on the ``noisebrush.nets.lora`` logger.
    """
    loaded = []
    mods = dict(net.named_modules())
    for path, weight in specs:
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight):
            raise BadParameter(f"--lora: the weight of {path} must be a finite number, got {weight!r}")
        lo = read_lora(path)
        meta = lo["meta"]
        if not UNetConfig.same(lo["unet"], model_config.get("unet") or {}):
            raise UserError(f"{path}: a LoRA for another network (made for {meta.get('base_model') or '?'}); it "
                            f"does not fit this model")
        for name, (a, b) in lo["adapters"].items():
            m = mods.get(name)
            if not isinstance(m, MPConv) or m.weight[0].numel() != a.shape[1] or m.weight.shape[0] != b.shape[0]:
                raise UserError(f"{path}: adapter {name} does not fit this network")
        if meta.get("base_hash") and meta.get("base_hash") != model_hash:
            log.warning("%s: made for %s (weights %s), this model's weights are %s; merging anyway", path,
                        meta.get("base_model"), meta.get("base_hash"), model_hash)
        loaded.append((lo, float(weight)))
    out = []
    with torch.no_grad():
        for lo, weight in loaded:
            scale = lo["alpha"] / lo["rank"]
            for name, (a, b) in lo["adapters"].items():
                w = mods[name].weight
                delta = (b.to(w.device) @ a.to(w.device)).reshape(w.shape) * (scale * weight)
                w.data = w.data + delta.to(w.dtype)
                mods[name].refresh_bake()
            meta = lo["meta"]
            out.append({"file": str(Path(lo["path"]).resolve()), "weight": weight, "hash": lo["hash"],
                        "rank": lo["rank"], "alpha": lo["alpha"], "token": meta.get("token") or None,
                        "base_model": meta.get("base_model"), "base_hash": meta.get("base_hash")})
    return out
