"""The GPU path, checked end to end: every model type trained a few hundred steps through ``accelerate launch`` on
one accelerator, then painted there, painted again from its recipe, compared with the CPU, and exported to ONNX.

    python -m noisebrush.bench gpu --json docs/bench/gpu-check-h200.json          (on a machine with a GPU)
    python -m noisebrush.bench gpu --device cpu --tiny --steps 2                  (the same checks, in a minute)

For each type (``--types``: image, ddgan, sr, video, shape) it runs ``accelerate launch -m noisebrush train
--config configs/TYPE.toml --steps S`` (the shipped models' own recipes: ``builtin.toml`` for pictures and, with
``method = "ddgan"``, for the DDGAN; ``sr64.toml``, ``video.toml`` from the built-in picture model, ``shape.toml``)
with previews off and one checkpoint at the end, in a fresh process as a user would, and records its steps, seconds,
images a second, last logged loss, precision and the hardware its provenance names. Then, in this process:

* **paint** two pictures (clips, shapes) from a held-out prompt on ``--device`` (a super-resolution stage upscales
  two procedural pictures), timed after one warm-up picture;
* **reproduce**: the first one's recipe replayed on the device (:func:`noisebrush.paint.recipe.replay`; a stage
  upscales again with the same seed) must give the same tensor, bit for bit;
* **device vs CPU**: the same pictures painted on the CPU, the largest and mean absolute pixel difference (float
  rounding of a different device, not a defect, at the size these numbers show);
* **export**: the network exported to ONNX (:func:`noisebrush.paint.runtime.export`, validated against PyTorch on
  the CPU; clips are refused by the exporter and say so) and, when onnxruntime has the CUDA provider, validated again
  through it.

``--tiny`` shrinks every network, data set and batch (for a CPU run in the tests); ``--steps`` sets the steps of every
type. ``--processes N`` launches N processes (one per GPU). The JSON holds every number above per type, the device,
torch and CUDA versions, ONNX Runtime's providers, the machine and the total seconds. A type that fails records its
error's last lines and the check goes on to the next; the exit status is 1 when any failed.
"""
from __future__ import annotations

import csv
import os
import subprocess
import sys
import time
from pathlib import Path

import torch
from rich.table import Table

import noisebrush
from noisebrush.bench.common import BenchParser, cell, check_report_path, comma_choices, finish, table_console
from noisebrush.checks import whole
from noisebrush.data.procedural import ProceduralArt
from noisebrush.errors import UserError
from noisebrush.io import model_folder
from noisebrush.paint.recipe import replay
from noisebrush.paint.runtime import export, validate
from noisebrush.paint.upscale import upscale

TYPES = ("image", "ddgan", "sr", "video", "shape")
CONFIGS = {"image": "builtin.toml", "ddgan": "builtin.toml", "sr": "sr64.toml", "video": "video.toml",
           "shape": "shape.toml"}
# what each type sets on top of its config (a DDGAN is the picture recipe with a GAN's optimiser)
EXTRA = {"ddgan": {"method": "ddgan", "gan_steps": 4, "lr": 2e-3, "betas": [0.5, 0.9], "ema_decay": 0.999}}
TINY_NET = {"channels": 8, "channel_mult": [1, 2], "blocks": 1, "attn_resolutions": [], "cross_attn_resolutions": []}
TINY = {
    "image": {"resolution": 16, "data_size": 16, "batch_size": 4, "model": TINY_NET},
    "ddgan": {"resolution": 16, "data_size": 16, "batch_size": 4, "model": TINY_NET,
              "disc": {"channels": 8, "channel_mult": [1, 2, 2]}},
    "sr": {"resolution": 16, "crop_size": 8, "data_size": 16, "batch_size": 4, "model": TINY_NET},
    "video": {"resolution": 16, "frames": 4, "joint_images": 2, "data_size": 16, "batch_size": 6, "init": "",
              "train_only": [], "model": {**TINY_NET, "dims": 3, "factorized": True}},
    "shape": {"resolution": 16, "data_size": 16, "batch_size": 4,
              "model": {**TINY_NET, "dims": 3, "patch": 2, "attn_resolutions": [4]}},
}
PROMPT = "a small red circle on a blue background"   # a picture, clip or shape of the built-in sets' kind
SHAPE_PROMPT = "a tall round vase"


def configs_folder() -> Path:
    """The repository's ``configs/`` (the check runs from a source checkout, as the GPU machine gets one)."""
    here = Path(__file__).resolve().parents[3] / "configs"
    for folder in (Path.cwd() / "configs", here):
        if (folder / "builtin.toml").is_file():
            return folder
    raise UserError("configs/: not found; run the GPU check from a noisebrush source checkout (its root)")


def _toml_value(v) -> str:
    """A --set value in TOML syntax."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, (list, tuple)):
        return "[" + ",".join(_toml_value(x) for x in v) + "]"
    return repr(v)


def _sets(overrides: dict) -> list[str]:
    """``--set KEY=VALUE`` arguments for the overrides (a nested dict: ``model.KEY``, ``disc.KEY``)."""
    out = []
    for k, v in overrides.items():
        if isinstance(v, dict):
            for kk, vv in v.items():
                out += ["--set", f"{k}.{kk}={_toml_value(vv)}"]
        else:
            out += ["--set", f"{k}={_toml_value(v)}"]
    return out


def train_command(kind: str, run: Path, *, steps: int, device: str, processes: int, tiny: bool,
                  configs: Path) -> list[str]:
    """``accelerate launch … -m noisebrush train …`` for one model type."""
    over = {**EXTRA.get(kind, {}), **(TINY[kind] if tiny else {}), "sample_every": 0, "checkpoint_every": steps,
            "log_every": max(1, min(25, steps // 4)), "keep_last": 1}
    if tiny:
        over.update(warmup=0, mixed_precision="no")
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", str(processes),
              "--num_machines", "1", "--dynamo_backend", "no", "--mixed_precision", "no"]
    if processes > 1:
        launch.append("--multi_gpu")  # without it accelerate starts one process where it finds no config
    if device == "cpu":
        launch.append("--cpu")
    return launch + ["-m", "noisebrush", "train", "--config", str(configs / CONFIGS[kind]), "--out", str(run),
                     "--steps", str(steps), *_sets(over)]


def _last_loss(run: Path) -> float | None:
    try:
        with open(run / "log.csv", newline="") as f:
            rows = list(csv.DictReader(f))
    except OSError:
        return None
    for row in reversed(rows):
        for key in ("loss", "g_loss"):
            if row.get(key) not in (None, ""):
                return float(row[key])
    return None


def _train(kind: str, run: Path, **kw) -> dict:
    cmd = train_command(kind, run, **kw)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-12:])
        raise RuntimeError(f"training exited with {proc.returncode}:\n{tail}")
    prov = model_folder.read_config(run / "model").get("provenance") or {}
    seconds = prov.get("train_seconds")
    return {"steps": prov.get("steps"), "train_seconds": seconds, "wall_seconds": round(wall, 1),
            "images_per_second": prov["images_seen"] / seconds if seconds else None,
            "precision": prov.get("precision"), "hardware": prov.get("hardware"), "processes": prov.get("processes"),
            "last_loss": _last_loss(run)}


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _low_pictures(pipe, n: int = 2) -> torch.Tensor:
    """Procedural pictures at a stage's input size (its resolution / scale), N×3×h×w in [-1, 1]."""
    small = pipe.resolution // pipe.scale
    ds = ProceduralArt(resolution=small, size=1000, seed=7)
    return torch.stack([ds[i]["image"] for i in range(n)])


def _paint(pipe, kind: str, *, seed: int = 0):
    """(pictures, recipes) of the check's painting on ``pipe``."""
    if kind == "sr":
        return upscale(pipe, _low_pictures(pipe), PROMPT, seed=seed)
    return pipe.generate(SHAPE_PROMPT if kind == "shape" else PROMPT, n=2, seed=seed)


def _again(pipe, kind: str, recipes: list[dict]) -> torch.Tensor:
    """The first picture painted again: from its recipe (a stage: the same upscale with the recipe's seed)."""
    if kind == "sr":
        return upscale(pipe, _low_pictures(pipe)[:1], PROMPT, seed=int(recipes[0]["seed"]))[0]
    return replay(pipe, recipes[0])[0]


def _onnx(kind: str, cpu, out: Path) -> dict:
    """``cpu`` (the model loaded on the CPU) exported and validated; again through the CUDA provider if present."""
    try:
        import onnxruntime as ort  # lazy: as paint.runtime (0.3 s), and a GPU machine may lack it: the rest still runs
    except ImportError:
        return {"skipped": "onnxruntime is not installed"}
    providers = list(ort.get_available_providers())
    try:
        side = export(cpu, out / f"{kind}.onnx", force=True)
    except UserError as e:
        return {"exported": False, "why": str(e), "providers": providers}
    res = {"exported": True, "max_abs_diff_cpu_provider": side["validation"]["max_abs_diff"], "providers": providers}
    if "CUDAExecutionProvider" in providers:
        sess = ort.InferenceSession(str(out / f"{kind}.onnx"),
                                    providers=["CUDAExecutionProvider", "CPUExecutionProvider"])
        res["cuda_provider_active"] = sess.get_providers()[0] == "CUDAExecutionProvider"
        res["max_abs_diff_cuda_provider"] = validate(cpu, sess)["max_abs_diff"]
    return res


def check_type(kind: str, out: Path, *, steps: int, device: str, processes: int, tiny: bool, configs: Path,
               log=print) -> dict:
    """Train, paint, reproduce, compare and export one model type (module docstring)."""
    run = out / kind
    row: dict = {"type": kind, "config": CONFIGS[kind]}
    log(f"{kind}: training {steps} steps through accelerate launch ({device})")
    row["train"] = _train(kind, run, steps=steps, device=device, processes=processes, tiny=tiny, configs=configs)
    log(f"{kind}: {row['train']['steps']} steps in {row['train']['train_seconds']} s, loss {row['train']['last_loss']}")
    pipe = noisebrush.load(run / "model", device=device)
    _paint(pipe, kind, seed=100)  # warm-up: kernels, caches
    _sync(device)
    t = time.perf_counter()
    x, recipes = _paint(pipe, kind)
    _sync(device)
    row["seconds_per_picture"] = (time.perf_counter() - t) / x.shape[0]
    row["reproduced_identical"] = bool(torch.equal(_again(pipe, kind, recipes), x[:1]))
    cpu = pipe if device == "cpu" else noisebrush.load(run / "model", device="cpu")
    if cpu is not pipe:
        xc, _ = _paint(cpu, kind)
        d = (x.float() - xc.float()).abs()
        row["vs_cpu_max_abs_diff"], row["vs_cpu_mean_abs_diff"] = float(d.max()), float(d.mean())
    row["onnx"] = _onnx(kind, cpu, out)
    log(f"{kind}: {row['seconds_per_picture']:.3f} s a picture, reproduced {row['reproduced_identical']}, onnx "
        f"{row['onnx'].get('exported')}")
    return row


def run(types, out, *, steps: int, device: str, processes: int = 1, tiny: bool = False, log=print) -> dict:
    configs = configs_folder()
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError("--device cuda: no CUDA device here (--device cpu runs the same checks on the CPU)")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    rows = []
    for kind in types:
        try:
            rows.append(check_type(kind, out, steps=steps, device=device, processes=processes, tiny=tiny,
                                   configs=configs, log=log))
        except Exception as e:  # noqa: BLE001 - one type's failure is recorded; the others still run
            first = str(e).strip() or type(e).__name__
            log(f"{kind}: FAILED: {first}")
            rows.append({"type": kind, "error": first[-2000:]})
    return {"device": torch.cuda.get_device_name(0) if device.startswith("cuda") else "cpu",
            "torch": torch.__version__, "cuda": torch.version.cuda, "steps": steps, "processes": processes,
            "tiny": tiny, "rows": rows, "failed": [r["type"] for r in rows if "error" in r],
            "total_seconds": round(time.perf_counter() - t0, 1)}


def print_table(report: dict) -> None:
    con = table_console()
    t = Table(title=f"GPU path: {report['device']}, {report['steps']} steps each, {report['processes']} process(es)")
    for c in ("type", "steps", "train s", "img/s", "loss", "precision", "s/picture", "reproduced", "vs CPU max",
              "onnx", "onnx CUDA"):
        t.add_column(c, justify="left" if c == "type" else "right")
    for r in report["rows"]:
        if "error" in r:
            t.add_row(r["type"], "FAILED", r["error"].splitlines()[0][:60], *[""] * 8)
            continue
        tr, ox = r["train"], r["onnx"]
        t.add_row(r["type"], str(tr["steps"]), cell(tr["train_seconds"], ".1f"), cell(tr["images_per_second"], ".1f"),
                  cell(tr["last_loss"], ".4f"), str(tr["precision"]), cell(r["seconds_per_picture"], ".3f"),
                  "yes" if r["reproduced_identical"] else "NO", cell(r.get("vs_cpu_max_abs_diff"), ".2g"),
                  cell(ox.get("max_abs_diff_cpu_provider"), ".2g") if ox.get("exported") else "—",
                  cell(ox.get("max_abs_diff_cuda_provider"), ".2g"))
    con.print(t)


def main(argv=None) -> int:
    ap = BenchParser(prog="python -m noisebrush.bench gpu", description=__doc__.split("\n\n")[0])
    ap.add_argument("--types", default=",".join(TYPES), help=f"comma-separated, of {', '.join(TYPES)}")
    ap.add_argument("--steps", type=int, default=200, help="training steps of every type (default 200)")
    ap.add_argument("--device", default="cuda", help="cuda (default) or cpu")
    ap.add_argument("--processes", type=int, default=1, help="processes accelerate launches (one per GPU)")
    ap.add_argument("--tiny", action="store_true", help="tiny networks, data and batches (a CPU run of the checks)")
    ap.add_argument("--out", default="gpu-check", help="folder for the runs and graphs (default ./gpu-check)")
    ap.add_argument("--json", metavar="FILE", help="write the report here")
    args = ap.parse_args(argv)
    types = comma_choices(args.types, "--types", TYPES)
    whole("--steps", args.steps, 1, 100000)
    whole("--processes", args.processes, 1, 64)
    if args.device not in ("cuda", "cpu"):
        ap.error(f"--device: cuda or cpu, got {args.device!r}")
    if args.json:
        check_report_path(args.json)
    report = run(types, args.out, steps=args.steps, device=args.device, processes=args.processes, tiny=args.tiny)
    finish(report, print_table, args.json)
    return 1 if report["failed"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
