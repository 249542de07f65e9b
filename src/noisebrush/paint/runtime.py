"""A second runtime for painting: the network as an ONNX graph, run by ONNX Runtime on the CPU.

    from noisebrush.paint import runtime
    pipe = noisebrush.load("builtin")                                 # torch
    info = runtime.export(pipe, "builtin.onnx", int8="dynamic")       # the graph + builtin.onnx.json (the sidecar)
    fast = noisebrush.load("builtin", runtime="onnx")                 # the fp32 graph from the cache (exported once)
    fast = noisebrush.load("builtin", runtime="onnx", onnx="builtin.onnx")   # a graph of one's own (int8 here)

**What the graph holds** is the raw network F that :class:`noisebrush.paint.pipeline.Pipeline` runs on its device
(``net(x_in, c_noise, **conditions)``), with a dynamic batch axis (and dynamic spatial and token axes). Everything
around it stays the engine's one implementation: the float64 EDM preconditioning
(:class:`noisebrush.diffusion.EDMPrecond`), classifier-free guidance, whose conditional and unconditional halves are
one batched call (the ``drop`` input marks the unconditional rows: one ORT run per step), guides, samplers, recipes.
So ``--runtime onnx`` changes one function call, and a picture differs from torch's only by the network's float
rounding. The inputs are ``x``, ``c_noise`` and the conditions the model's network takes (``text`` +
``text_mask``, ``labels``, ``vector``, ``low``, ``aug``, ``z``), plus ``drop`` when it takes any; the output is ``F``.

**The sidecar** (``FILE.json`` next to ``FILE``) says what the graph is: :data:`ONNX_FORMAT`, the model's name,
weights hash and merged LoRAs, the inputs, the opset, the quantization, the onnxruntime version and the validation —
the largest absolute difference of the graph's F from PyTorch fp32's on procedural pictures noised at several σ
with conditional and unconditional rows (:func:`validate`). A graph is only run for the weights it was exported
from: a sidecar whose hash (or LoRAs) differ is refused in one line.

**int8** (``int8="dynamic"`` or ``"static"``): onnxruntime's post-training quantization of the fp32 graph (dynamic:
every weight; static: the convolutions, :data:`STATIC_OPS`); static is calibrated by :class:`Calibration` — procedural pictures with their captions, noised at the σ levels the model's
default sampler visits, conditional and unconditional rows together, exactly the inputs painting feeds the network.

The export lives here (paint, layer 4) and not in ``apps/export``: the Pipeline exports its own cached graph for
``runtime="onnx"``, and paint cannot import the apps. ``noisebrush export`` (:mod:`noisebrush.apps.cli.export`)
calls :func:`export`.
"""
from __future__ import annotations

import json
import os
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

from noisebrush.data.procedural import ProceduralArt
from noisebrush.diffusion import edm_coefficients
from noisebrush.errors import BadParameter, UserError
from noisebrush.io.atomic import atomic_path, atomic_write_text
from noisebrush.io.hashing import file_sha256

__all__ = ["RUNTIMES", "INT8", "STATIC_OPS", "ONNX_FORMAT", "OPSET", "export", "validate", "graph_inputs", "OnnxRunner",
           "open_graph", "make_session", "read_sidecar", "sidecar_path", "cache_folder", "cached_graph", "Calibration",
           "check_runtime"]

RUNTIMES = ("torch", "onnx")
INT8 = ("dynamic", "static")
ONNX_FORMAT = "noisebrush.onnx/1"
OPSET = 17
CACHE_ENV = "NOISEBRUSH_CACHE"
VALIDATION_SIGMAS = (80.0, 10.0, 1.0, 0.1, 0.002)  # from pure noise to the last step of the default schedule
# static int8 quantizes the convolutions only: with every MatMul too (attention, the noise-level and text embeddings)
# the built-in model's F moved by up to 2.3 (|F| ≤ 5.4) and its pictures followed 6 % of their prompts (fp32: 69 %);
# convolutions alone moved F by up to 0.83 and ran faster still (137 against 178 ms a guided call, 2 threads)
STATIC_OPS = ("Conv",)
CALIBRATION_PICTURES = 8  # static int8: procedural pictures, each at every σ of the default sampler

_NPTYPE = {"float": np.float32, "bool": np.bool_, "int64": np.int64}


def check_runtime(runtime: str) -> str:
    """``runtime`` if it is one of :data:`RUNTIMES`, else one BadParameter line."""
    if runtime not in RUNTIMES:
        raise BadParameter(f"runtime: one of {', '.join(RUNTIMES)}, got {runtime!r}")
    return runtime


def sidecar_path(graph) -> Path:
    """Where a graph's sidecar lives: ``FILE.json`` beside ``FILE``."""
    graph = Path(graph)
    return graph.with_name(graph.name + ".json")


def cache_folder() -> Path:
    """``$NOISEBRUSH_CACHE/onnx``, default ``~/.cache/noisebrush/onnx``."""
    root = os.environ.get(CACHE_ENV)
    return (Path(root) if root else Path.home() / ".cache" / "noisebrush") / "onnx"


# -- what the graph takes -----------------------------------------------------------------------------------------
def _unet_config(pipe):
    cfg = getattr(pipe.net, "config", None)
    if pipe.config.get("network") != "unet" or cfg is None or not hasattr(cfg, "dims"):
        raise UserError(f"{pipe.name}: its network ({pipe.config.get('network')!r}) cannot be exported; "
                        f"noisebrush exports the UNet of painting models")
    if cfg.factorized:
        raise UserError(f"{pipe.name}: clip networks are not exported yet (the TorchScript exporter writes their "
                        f"temporal attention as a graph ONNX Runtime refuses); paint clips with the torch runtime")
    return cfg


def graph_inputs(pipe) -> list[dict]:
    """The graph's inputs for ``pipe``'s network, in order: name, shape (axis names for the dynamic axes) and type."""
    cfg = _unet_config(pipe)
    space = ["frames", "height", "width"][3 - cfg.dims:] if cfg.dims == 3 and cfg.factorized else \
        ["depth", "height", "width"][3 - cfg.dims:]
    out = [{"name": "x", "shape": ["batch", cfg.in_channels, *space], "type": "float"},
           {"name": "c_noise", "shape": ["batch"], "type": "float"}]
    conditioned = False
    if cfg.text_dim:
        out += [{"name": "text", "shape": ["batch", "tokens", cfg.text_dim], "type": "float"},
                {"name": "text_mask", "shape": ["batch", "tokens"], "type": "bool"}]
        conditioned = True
    if cfg.label_dim:
        out.append({"name": "labels", "shape": ["batch"], "type": "int64"})
        conditioned = True
    if cfg.vector_dim:
        out.append({"name": "vector", "shape": ["batch", cfg.vector_dim], "type": "float"})
        conditioned = True
    if conditioned:
        out.append({"name": "drop", "shape": ["batch"], "type": "bool"})
    if cfg.cond_channels:
        out.append({"name": "low", "shape": ["batch", cfg.cond_channels, *space], "type": "float"})
    if cfg.aug_cond:
        out.append({"name": "aug", "shape": ["batch"], "type": "float"})
    if cfg.latent_dim:
        out.append({"name": "z", "shape": ["batch", cfg.latent_dim], "type": "float"})
    return out


class _Graph(torch.nn.Module):
    """The network with positional inputs in :func:`graph_inputs`' order (what the exporter traces)."""

    def __init__(self, net, names):
        super().__init__()
        self.net, self.names = net, list(names)

    def forward(self, *args):
        x, c_noise, *rest = args
        return self.net(x, c_noise, **dict(zip(self.names[2:], rest)))


# -- realistic inputs: validation and calibration ------------------------------------------------------------------
def _base_size(pipe) -> tuple[int, ...]:
    """The model's own painting size (one value per axis of its modality)."""
    return pipe.modality.check_size(None, warn=False)


def _pictures(pipe, k: int, seed: int) -> tuple[torch.Tensor, list[str], list[int]]:
    """k clean inputs x_0 at the model's size, with captions and labels: procedural pictures for a 3-channel image
    model (what the built-in models learned from), seeded uniform noise in [-1, 1] for any other shape."""
    shape = pipe.modality.shape(_base_size(pipe))
    ds = ProceduralArt(resolution=max(shape[-1], 8), size=60000, seed=0)
    idx = [int(i) for i in torch.randint(60000, (k,), generator=torch.Generator().manual_seed(seed))]
    captions = [ds.caption(i) for i in idx]
    labels = [ds.scene(i).label % max(1, len(pipe.classes)) for i in idx]
    if pipe.modality.kind == "image" and shape[0] == 3 and shape[-1] == shape[-2]:
        x0 = torch.stack([ds[i]["image"] for i in idx])
    else:
        x0 = torch.rand((k, *shape), generator=torch.Generator().manual_seed(seed + 1)) * 2 - 1
    return x0, captions, labels


def _rows(pipe, names: list[str], x0, captions, labels, sigma: float, seed: int) -> dict:
    """Network inputs for the pictures x0 noised to σ, as painting makes them: x_in = c_in·(x_0 + σ·ε), each
    picture twice (its condition, then the same row with ``drop``) when the model takes a condition."""
    k = x0.shape[0]
    g = torch.Generator().manual_seed(seed)
    s = torch.full((k,), float(sigma), dtype=torch.float64)
    _, _, c_in, c_noise = edm_coefficients(s, float(pipe.config["sigma_data"]))
    x = ((x0 + float(sigma) * torch.randn(x0.shape, generator=g)) * c_in.reshape(-1, *[1] * (x0.ndim - 1))).float()
    feeds = {"x": x, "c_noise": c_noise.float()}
    if "text" in names:
        tok, mask = pipe.text_encoder.encode(captions)
        feeds |= {"text": tok, "text_mask": mask}
    if "labels" in names:
        feeds["labels"] = torch.tensor(labels, dtype=torch.long)
    if "vector" in names:
        feeds["vector"] = torch.randn((k, int(pipe.net.config.vector_dim)), generator=g)
    if "low" in names:
        feeds["low"] = torch.rand((k, int(pipe.net.config.cond_channels), *x0.shape[2:]), generator=g) * 2 - 1
    if "aug" in names:
        feeds["aug"] = torch.full((k,), 0.1)
    if "z" in names:
        feeds["z"] = torch.randn((k, int(pipe.net.config.latent_dim)), generator=g)
    if "drop" in names:
        feeds = {n: torch.cat([v, v]) for n, v in feeds.items()}
        feeds["drop"] = torch.cat([torch.zeros(k, dtype=torch.bool), torch.ones(k, dtype=torch.bool)])
    return {n: feeds[n] for n in names}


def make_session(path, threads: int | None = None):
    """An ONNX Runtime session over ``path`` on the CPU provider with ``threads`` intra-op threads (default: as many
    as torch uses); a file ORT cannot load is one UserError line."""
    import onnxruntime as ort  # lazy: onnxruntime loads in ~0.3 s and only this runtime needs it

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = int(threads or torch.get_num_threads())
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3  # errors only: ORT's warnings about unused initialisers are not the user's
    try:
        return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    except Exception as e:  # noqa: BLE001 - ORT raises its own classes: a broken or foreign file is one line
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise UserError(f"{path}: ONNX Runtime cannot load it ({first[:200]})") from None


def _numpy(feeds: dict) -> dict:
    return {k: v.detach().cpu().contiguous().numpy() for k, v in feeds.items()}


@torch.no_grad()
def validate(pipe, graph, *, sigmas=VALIDATION_SIGMAS, pictures: int = 2, seed: int = 0) -> dict:
    """The largest absolute difference of ``graph``'s output F from ``pipe``'s PyTorch fp32 network on ``pictures``
    procedural pictures (conditional and unconditional rows) noised at each of ``sigmas``; the largest |F| beside
    it, for scale."""
    names = [i["name"] for i in graph_inputs(pipe)]
    sess = graph if not isinstance(graph, (str, Path)) else make_session(graph)
    x0, captions, labels = _pictures(pipe, pictures, seed)
    worst, scale, per = 0.0, 0.0, {}
    for j, sigma in enumerate(sigmas):
        feeds = _rows(pipe, names, x0, captions, labels, sigma, seed + 100 + j)
        want = pipe.net(feeds["x"], feeds["c_noise"], **{n: feeds[n] for n in names[2:]}).float().numpy()
        got = sess.run(None, _numpy(feeds))[0]
        d = float(np.abs(got - want).max())
        per[f"{sigma:g}"] = d
        worst, scale = max(worst, d), max(scale, float(np.abs(want).max()))
    return {"max_abs_diff": worst, "max_abs_output": scale, "per_sigma": per, "rows": int(feeds["x"].shape[0]),
            "reference": "torch fp32"}


# -- export --------------------------------------------------------------------------------------------------------
def _fix_transposes(model) -> int:
    """The TorchScript exporter writes scaled_dot_product_attention's key transpose with a negative axis
    (``perm = [0, -1, 1, 2]``), which ONNX forbids and ONNX Runtime refuses to load; rewrite such perms with
    positive axes (the rank is the perm's length). Returns how many were fixed."""
    fixed = 0
    for node in model.graph.node:
        if node.op_type != "Transpose":
            continue
        for a in node.attribute:
            if a.name == "perm" and any(p < 0 for p in a.ints):
                r = len(a.ints)
                perm = [p + r if p < 0 else p for p in a.ints]
                del a.ints[:]
                a.ints.extend(perm)
                fixed += 1
    return fixed


def _export_fp32(pipe, path: Path) -> None:
    """Trace ``pipe``'s network into an fp32 ONNX graph at ``path`` (not atomic: ``path`` is a temporary file)."""
    import onnx  # lazy: only exporting needs it

    inputs = graph_inputs(pipe)
    names = [i["name"] for i in inputs]
    x0, captions, labels = _pictures(pipe, 1, 0)
    example = _rows(pipe, names, x0, captions, labels, 1.0, 0)
    if "drop" not in names:  # an unconditional network: trace at batch 2 all the same (no axis is pinned to 1)
        example = {k: torch.cat([v, v]) for k, v in example.items()}
    dynamic = {i["name"]: {a: ax for a, ax in enumerate(i["shape"]) if isinstance(ax, str)} for i in inputs}
    dynamic["F"] = dict(dynamic["x"])
    net = pipe.net
    was_training, layout = net.training, net.config.channels_last
    net.eval()
    # a memory layout is no value: the graph leaves it to ONNX Runtime (the exporter cannot write 5-D channels_last)
    net.config.channels_last = False
    try:
        with warnings.catch_warnings(), torch.no_grad():
            # the TorchScript exporter is deprecated in favour of the dynamo one, which needs onnxscript; it works
            warnings.simplefilter("ignore")
            torch.onnx.export(_Graph(net, names), tuple(example[n] for n in names), str(path), dynamo=False,
                              opset_version=OPSET, input_names=names, output_names=["F"], dynamic_axes=dynamic,
                              do_constant_folding=True)
    except UserError:
        raise
    except Exception as e:  # noqa: BLE001 - a network the tracer cannot take: one line, not a traceback
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise UserError(f"{pipe.name}: its network could not be exported to ONNX ({first[:200]})") from None
    finally:
        net.train(was_training)
        net.config.channels_last = layout
    model = onnx.load(str(path))
    _fix_transposes(model)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


class Calibration:
    """Static int8's calibration data (an onnxruntime ``CalibrationDataReader``): ``pictures`` procedural pictures
    with their captions (encoded by the model's text encoder) or labels, noised at every σ the model's default
    sampler visits (its schedule, the final 0 left out), each batch with its conditional and unconditional rows —
    the network inputs painting makes. Seeded: the same calibration every time."""

    def __init__(self, pipe, *, pictures: int = CALIBRATION_PICTURES, seed: int = 0, per_batch: int = 8):
        self.names = [i["name"] for i in graph_inputs(pipe)]
        opts = pipe.check("", memory=False, label=0 if pipe.condition == "label" else None)
        self.sigmas = [float(s) for s in opts.sigmas()[:-1]]
        x0, captions, labels = _pictures(pipe, pictures, seed + 7)
        self.batches = []
        for j, sigma in enumerate(self.sigmas):
            for b in range(0, pictures, per_batch):
                sl = slice(b, b + per_batch)
                self.batches.append(_numpy(_rows(pipe, self.names, x0[sl], captions[sl], labels[sl], sigma,
                                                 seed + 1000 * j + b)))
        self.pictures = pictures
        self._it = iter(self.batches)

    def get_next(self):
        return next(self._it, None)

    def rewind(self):
        self._it = iter(self.batches)

    def describe(self) -> dict:
        return {"pictures": self.pictures, "sigmas": self.sigmas, "batches": len(self.batches),
                "data": "ProceduralArt (seeded), conditional + unconditional rows"}


def _quantize(pipe, fp32: Path, out: Path, mode: str) -> dict:
    """int8 ``mode`` ("dynamic" or "static") of the graph ``fp32`` into ``out``; what was done, for the sidecar."""
    from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType,  # lazy: quantizing only
                                          quantize_dynamic, quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process  # lazy: quantizing only

    pre = fp32.with_name(fp32.stem + "-pre.onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quant_pre_process(str(fp32), str(pre), skip_symbolic_shape=True)
        if mode == "dynamic":
            quantize_dynamic(str(pre), str(out), weight_type=QuantType.QInt8, per_channel=False)
            return {"mode": "dynamic", "weights": "int8 per tensor", "activations": "uint8, ranges at run time"}

        class Reader(CalibrationDataReader):  # ORT's reader type, around Calibration
            def __init__(self, cal):
                self.cal = cal

            def get_next(self):
                return self.cal.get_next()

            def rewind(self):
                self.cal.rewind()

        cal = Calibration(pipe)
        quantize_static(str(pre), str(out), Reader(cal), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        op_types_to_quantize=list(STATIC_OPS))
    return {"mode": "static", "weights": "int8 per channel", "activations": "uint8, calibrated (min-max)",
            "format": "QDQ", "ops": list(STATIC_OPS), "calibration": cal.describe()}


def export(pipe, out, *, int8: str | None = None, force: bool = False, say=None) -> dict:
    """Write ``pipe``'s network as an ONNX graph to ``out`` (atomically) with its sidecar ``out.json``
    (:func:`sidecar_path`), validated against PyTorch fp32 (:func:`validate`); ``int8``: "dynamic" or "static"
    quantization of it. An existing ``out`` is refused unless ``force``. Returns the sidecar. ``say``: a function
    that shows one progress line (default: nothing)."""
    import onnxruntime  # lazy: see make_session

    if int8 is not None and int8 not in INT8:
        raise BadParameter(f"int8: one of {', '.join(INT8)}, got {int8!r}")
    out = Path(out)
    if out.suffix.lower() != ".onnx":
        raise BadParameter(f"out: {out} — an ONNX graph is written as FILE.onnx")
    if out.is_dir():
        raise BadParameter(f"out: {out} is a folder")
    if out.exists() and not force:
        raise UserError(f"{out}: exists; pass --force to replace it")
    say = say or (lambda message: None)
    inputs = graph_inputs(pipe)
    with tempfile.TemporaryDirectory(prefix="noisebrush-onnx-") as tmp:
        fp32 = Path(tmp) / "graph.onnx"
        say(f"exporting {pipe.name} to ONNX (opset {OPSET})")
        _export_fp32(pipe, fp32)
        quant = None
        graph = fp32
        if int8 is not None:
            say(f"quantizing to int8 ({int8})")
            graph = Path(tmp) / "int8.onnx"
            try:
                quant = _quantize(pipe, fp32, graph, int8)
            except UserError:
                raise
            except Exception as e:  # noqa: BLE001 - ORT's quantizer on a graph it cannot take: one line
                first = str(e).splitlines()[0] if str(e) else type(e).__name__
                raise UserError(f"{pipe.name}: int8 {int8} quantization failed ({first[:200]})") from None
        say("validating against PyTorch fp32")
        check = validate(pipe, graph)
        sidecar = {"format": ONNX_FORMAT, "file": out.name, "model": pipe.name, "model_hash": pipe.hash,
                   "lora": [dict(d) for d in pipe.loras], "network": pipe.config.get("network"),
                   "graph": "raw network F(x_in, c_noise | conditions); preconditioning and guidance stay in "
                            "noisebrush (one batched call per guided step)",
                   "inputs": inputs, "output": {"name": "F", "shape": inputs[0]["shape"], "type": "float"},
                   "opset": OPSET, "quantization": quant, "validation": check,
                   "onnxruntime": onnxruntime.__version__, "torch": torch.__version__,
                   "sha256": file_sha256(graph)}
        with atomic_path(out) as tmp_out:
            os.replace(graph, tmp_out)
    atomic_write_text(sidecar_path(out), json.dumps(sidecar, indent=2))
    return sidecar


# -- running a graph -------------------------------------------------------------------------------------------------
def read_sidecar(graph) -> dict:
    """The sidecar of ``graph`` (a UserError line when the graph or its sidecar is missing or not ours)."""
    graph = Path(graph)
    if not graph.is_file():
        raise UserError(f"{graph}: no such ONNX graph")
    side = sidecar_path(graph)
    try:
        info = json.loads(side.read_text())
    except FileNotFoundError:
        raise UserError(f"{graph}: has no sidecar {side.name} (write graphs with `noisebrush export`)") from None
    except (OSError, ValueError, RecursionError) as e:
        raise UserError(f"{side}: cannot be read ({e})") from None
    if not isinstance(info, dict) or info.get("format") != ONNX_FORMAT:
        raise UserError(f"{side}: is not a noisebrush ONNX sidecar ({ONNX_FORMAT})")
    return info


def _check_fits(pipe, graph: Path, info: dict) -> None:
    """One UserError line unless the sidecar describes a graph of ``pipe``'s weights (and merged LoRAs) and
    inputs."""
    if info.get("model_hash") != pipe.hash:
        raise UserError(f"{graph}: was exported from model weights {info.get('model_hash')}, but {pipe.name} has "
                        f"{pipe.hash}; export this model's graph (`noisebrush export`)")
    theirs = [(d.get("file"), d.get("weight"), d.get("hash")) for d in info.get("lora") or []]
    ours = [(d.get("file"), d.get("weight"), d.get("hash")) for d in pipe.loras]
    if theirs != ours:
        raise UserError(f"{graph}: was exported with other LoRAs merged ({len(theirs)}) than this pipeline's "
                        f"({len(ours)})")
    if info.get("inputs") != graph_inputs(pipe):
        raise UserError(f"{graph}: its inputs are not this network's")


class OnnxRunner(torch.nn.Module):
    """Runs the network as an ONNX Runtime session: the Pipeline's runner for ``runtime="onnx"`` (where the torch
    runtime has ``_OnDevice``). Takes and returns what the network does: ``forward(x_in, c_noise, **conditions)``
    → F as float32 on the CPU. A missing ``drop`` is all False and a missing ``aug`` 0, as the network reads
    them."""

    def __init__(self, session, info: dict, path: Path):
        super().__init__()
        self.session, self.info, self.path = session, info, Path(path)
        self.inputs = [(i["name"], i["type"]) for i in info["inputs"]]
        self.device = torch.device("cpu")

    def forward(self, x, c_noise, **cond):
        n = x.shape[0]
        given = {"x": x, "c_noise": torch.as_tensor(c_noise).reshape(-1).expand(n), **cond}
        unknown = sorted(k for k, v in given.items() if v is not None and k not in dict(self.inputs))
        if unknown:
            raise BadParameter(f"{self.path.name}: the graph takes no {', '.join(unknown)}")
        feeds = {}
        for name, kind in self.inputs:
            v = given.get(name)
            if v is None:
                if name not in ("drop", "aug"):
                    raise BadParameter(f"{self.path.name}: the graph needs {name!r}")
                v = torch.zeros(n, dtype=torch.bool if name == "drop" else torch.float32)
            v = torch.as_tensor(v)
            if name == "aug":
                v = v.reshape(-1).expand(n)
            feeds[name] = np.ascontiguousarray(v.detach().cpu().numpy(), dtype=_NPTYPE[kind])
        return torch.from_numpy(self.session.run(None, feeds)[0]).to(torch.float32)


def open_graph(pipe, graph) -> OnnxRunner:
    """An :class:`OnnxRunner` over ``graph`` for ``pipe``, its sidecar checked against the pipeline's weights."""
    graph = Path(graph)
    info = read_sidecar(graph)
    _check_fits(pipe, graph, info)
    return OnnxRunner(make_session(graph), info, graph)


def _cache_key(pipe) -> str:
    """The cached graph's name: the weights hash, and a hash of the merged LoRAs when there are any."""
    if not pipe.loras:
        return pipe.hash
    import hashlib  # lazy: only LoRA-merged pipelines need it

    text = json.dumps([[d.get("file"), d.get("weight"), d.get("hash")] for d in pipe.loras])
    return f"{pipe.hash}-lora-{hashlib.sha256(text.encode()).hexdigest()[:10]}"


def _stderr(message: str) -> None:
    print(message, file=sys.stderr)


def cached_graph(pipe, *, say=_stderr) -> Path:
    """The fp32 graph of ``pipe``'s weights in :func:`cache_folder` (``HASH.onnx``), exported the first time (said
    in one line through ``say``); a cached graph whose sidecar does not fit is exported again."""
    path = cache_folder() / f"{_cache_key(pipe)}.onnx"
    if path.is_file() and sidecar_path(path).is_file():
        try:
            _check_fits(pipe, path, read_sidecar(path))
            return path
        except UserError:
            pass
    info = export(pipe, path, force=True)
    say(f"exported {pipe.name}'s network to {path} (once per weights; max difference from torch fp32 "
        f"{info['validation']['max_abs_diff']:.2g})")
    return path
