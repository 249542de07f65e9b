"""Training and fine-tuning as a separate process the studio can watch, stop and resume.

    job = TrainingJob.start("train", "~/my-pictures", "runs/mine", preset="sketch")
    job.status()          # {"state": "running", "step": 40, "total": 250, "losses": [(5, 0.91), …], "eta": 80.0, …}
    job.stop()            # Ctrl-C: the step ends, a checkpoint is written; state "stopped"
    job.resume()          # --resume from that checkpoint (steps=… to train longer)
    TrainingJob.attach("runs/mine")          # a restarted studio finds the job again
    loss_plot(job.status())                  # a small matplotlib Figure (Agg)
    models_in("runs")                        # model folders, RUN/model of finished runs among them

**One process per job.** A job is the command line itself, ``python -m noisebrush train …`` or ``… finetune …``
(:mod:`noisebrush.apps.cli.train`, :mod:`noisebrush.apps.cli.finetune`), started with ``subprocess.Popen`` in a new
session (its own process group, so a stop reaches every process of it and the studio's own Ctrl-C reaches none),
stdout and stderr into ``RUN/studio-job.log``, ``PYTHONUNBUFFERED=1``. The studio never trains in its own process:
a crash, a memory blow-up or a hung step cannot take the web server down, and the run is exactly what the same
command typed in a shell would do (the same checks, checkpoints, resume and provenance). Everything is checked
before anything is spawned (:meth:`TrainingJob.start`): the data folder (read with
:class:`noisebrush.data.folder.ImageFolder`, the trainer's own reader), the steps, the preset, every extra option
(a training config is built with :class:`noisebrush.train.config.TrainConfig`), the base model, and that the run
folder is new or empty — each refusal is one :class:`~noisebrush.errors.UserError` line.

**The run folder.** ``RUN/studio-job.json`` (written atomically) holds the job: kind, preset, argv, pid, start
time, state, exit code and earlier attempts (a resume is a new attempt: new argv and pid, the log appended, its
offset recorded so the attempt's error line is its own). The trainer writes its usual run folder beside it
(``log.csv``, ``samples/step-NNNNNNN.png`` previews, ``checkpoints/step-NNNNNNN/``, ``model/`` at the end); a
fine-tune writes ``RUN/model`` (whole network) or ``RUN/lora.safetensors`` (LoRA).

**States.** ``running`` while the process lives; then ``finished`` (exit 0, or — for a job whose end nobody saw,
e.g. after a studio restart — the attempt's log says it finished or its result is newer than its start),
``stopped`` (exit 130, the log's "interrupted" line, or any end after :meth:`~TrainingJob.stop`; a fine-tune
stopped during its closing memorization check has all its steps written and counts as finished), else ``failed``
(with the CLI's one ``error: …`` line, or the last line of a traceback). A pid is only trusted while
``/proc/PID/cmdline`` is still the job's argv (pids are reused).

**Resume.** A training run stopped or failed with a checkpoint restarts with ``noisebrush train --out RUN --resume
--steps N`` (the run's own settings; exact resume, see :mod:`noisebrush.train.loop`); a finished one can be resumed
with more steps (train longer; ``RUN/model`` is exported again). A run stopped before its first step (no checkpoint,
nothing logged) simply starts again. **Fine-tuning cannot resume**: ``noisebrush finetune`` keeps no checkpoints
(:mod:`noisebrush.workflows.finetune`); stopped, it writes the steps done to its result and exits, and
:meth:`~TrainingJob.resume` says so (a whole-network fine-tune can go on as a new job with that model as its base).

**Presets** (:data:`PRESETS`; a preset is ``noisebrush train --set`` values or ``noisebrush finetune`` flags, so it
works without the repository's ``configs/`` folder; ``extra`` overrides any of them):

=========  ==========  =====  ==========================================================================================
preset     kind        steps  intent
=========  ==========  =====  ==========================================================================================
sketch     train       250    a first look in a few minutes on a 2-core CPU: 32 px, the small network of
                              ``configs/own-folder/base32.toml`` (32-64-64 channels, 1 block a level), batch 16
                              (measured 0.38 s a step on one busy core), a preview every 50 steps, short EMA
standard   train       1500   a usable model of a folder in roughly ten to twenty CPU minutes: the same network at
                              ``base32.toml``'s batch 32 (0.41 s a step), three times its 500 measured steps
long       train       1600   the built-in model's network and schedule (``configs/builtin.toml``: 64-128-128
                              channels, 2 blocks a level, batch 32, 1.7 s a step): about an hour or more on a CPU
finetune   finetune    250    the whole network of a base model (builtin by default) on the folder
                              (:data:`noisebrush.workflows.finetune.DEFAULTS`: 250 steps, lr 2.5e-3), → ``RUN/model``
lora       finetune    250    LoRA adapters of rank 8 over the base (1.2 MB for the built-in model; lr 1.5e-2)
                              → ``RUN/lora.safetensors``
=========  ==========  =====  ==========================================================================================

All training presets leave ``condition`` to the trainer (text for a captioned folder, labels for a folder of
subfolders, none otherwise) and ``warmup`` too (steps/10, at most 200: it fits whatever ``steps`` is given); they
keep up to 24 caption tokens, log every few steps (the loss plot) and checkpoint often enough that a crash loses
little (a stop always checkpoints at the end of its step).
"""
from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from noisebrush.checks import LIMITS, number, text, whole
from noisebrush.data.folder import MIN_RESOLUTION, ImageFolder
from noisebrush.errors import BadParameter, UserError
from noisebrush.io import model_folder
from noisebrush.io.atomic import atomic_path, check_writable
from noisebrush.train.checkpoint import latest_checkpoint
from noisebrush.train.config import TrainConfig
from noisebrush.train.plots import read_log
from noisebrush.workflows.finetune_defaults import DEFAULTS as FINETUNE_DEFAULTS

__all__ = ["PRESETS", "KINDS", "STATES", "TrainingJob", "loss_plot", "models_in", "jobs_in", "JOB_FILE", "LOG_FILE"]

JOB_FILE = "studio-job.json"
LOG_FILE = "studio-job.log"
JOB_FORMAT = "noisebrush.studio-job/1"
KINDS = ("train", "finetune")
STATES = ("running", "finished", "failed", "stopped")

_COMMON = {"max_tokens": 24, "lr": 1e-2, "lr_schedule": "cosine", "grad_clip": 1.0, "mixed_precision": "auto",
           "keep_last": 2}
_SMALL_NET = {"model.channels": 32, "model.channel_mult": [1, 2, 2], "model.blocks": 1,
              "model.attn_resolutions": [8], "model.cross_attn_resolutions": [16, 8]}
_BUILTIN_NET = {"model.channels": 64, "model.channel_mult": [1, 2, 2], "model.blocks": 2,
                "model.attn_resolutions": [8], "model.cross_attn_resolutions": [16, 8], "model.dropout": 0.0}

PRESETS: dict[str, dict] = {
    "sketch": {"kind": "train", "steps": 250,
               "about": "a first look in a few minutes: 32 px, a small network",
               "set": {**_COMMON, "resolution": 32, **_SMALL_NET, "batch_size": 16, "ema_decay": 0.99,
                       "log_every": 5, "sample_every": 50, "checkpoint_every": 50}},
    "standard": {"kind": "train", "steps": 1500,
                 "about": "a usable model of a folder in ten to twenty CPU minutes: 32 px, the small network",
                 "set": {**_COMMON, "resolution": 32, **_SMALL_NET, "batch_size": 32, "ema_decay": 0.995,
                         "log_every": 10, "sample_every": 250, "checkpoint_every": 100}},
    "long": {"kind": "train", "steps": 1600,
             "about": "the built-in model's network and schedule: an hour or more on a CPU",
             "set": {**_COMMON, "resolution": 32, **_BUILTIN_NET, "batch_size": 32, "ema_decay": 0.995,
                     "log_every": 10, "sample_every": 250, "checkpoint_every": 100}},
    "finetune": {"kind": "finetune", "steps": FINETUNE_DEFAULTS["full"]["steps"],
                 "about": "fine-tune the whole network of a base model; writes RUN/model",
                 "flags": {}},
    "lora": {"kind": "finetune", "steps": FINETUNE_DEFAULTS["lora"]["steps"],
             "about": "LoRA adapters over a base model (a small file); writes RUN/lora.safetensors",
             "flags": {"lora": True, "rank": 8}},
}
DEFAULT_PRESET = {"train": "sketch", "finetune": "lora"}

# the options of `noisebrush finetune` a job may set through ``extra`` (start() gives --base, --data, --out, --steps)
_FINETUNE_FLAGS = ("token", "rank", "lr", "batch_size", "seed", "prior_preservation", "class_prompt", "prior_weight",
                   "device")
# what start() gives itself: not to be set through ``extra``
_OWN = {"data": "data", "out_dir": "run_dir", "steps": "steps", "resume": "resume()", "base": "base",
        "out": "run_dir", "lora": "preset"}

_TAIL_BYTES = 64 * 1024
_PROGRESS = re.compile(r"^(?P<label>training|fine-tuning) (?P<done>\d+)/(?P<total>\d+) steps\b(?P<rest>.*)$")
_LOSS = re.compile(r"\bloss (?P<v>[-+0-9.eE]+|nan|inf)")
_RATE = re.compile(r"(?P<v>[0-9.]+) (?P<unit>it/s|s/it)")

_SPAWNED: dict[int, subprocess.Popen] = {}  # the processes this studio started (its own children: exit codes)
_SPAWN_LOCK = threading.Lock()


# -- presets and options --------------------------------------------------------------------------------------------

def _preset(kind: str, preset) -> tuple[str, dict]:
    if kind not in KINDS:
        raise BadParameter(f"kind: {' or '.join(repr(k) for k in KINDS)}, got {kind!r}")
    name = DEFAULT_PRESET[kind] if preset is None else preset
    if name not in PRESETS:
        raise BadParameter(f"preset: one of {', '.join(PRESETS)}; got {name!r}")
    p = PRESETS[name]
    if p["kind"] != kind:
        ok = ", ".join(n for n, q in PRESETS.items() if q["kind"] == kind)
        raise BadParameter(f"preset: {name!r} is a {p['kind']} preset; for {kind} choose {ok}")
    return name, p


def _toml(v, name: str) -> str:
    """A value as TOML for ``--set KEY=VALUE`` (what :func:`noisebrush.apps.cli.train.parse_sets` reads back)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        number(name, v)  # finite
        return repr(v)
    if isinstance(v, str):
        text(name, v, one_line=True)
        return json.dumps(v)  # a TOML basic string
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml(x, name) for x in v) + "]"
    raise BadParameter(f"{name}: a number, true/false, text or a list of them, got {v!r}")


def _train_sets(preset: dict, extra: dict) -> dict:
    """The preset's ``--set`` values with ``extra`` on top (keys as for --set: ``lr``, ``model.channels``; a nested
    ``model`` table is flattened)."""
    sets = dict(preset["set"])
    for key, v in extra.items():
        if not isinstance(key, str) or not key:
            raise BadParameter(f"extra: option names are text, got {key!r}")
        if key in _OWN:
            raise BadParameter(f"extra: {key} is given by {_OWN[key]}, not here")
        if key == "model" and isinstance(v, dict):
            sets.update({f"model.{k}": mv for k, mv in v.items()})
        else:
            sets[key] = v
    return sets


def _check_train_config(data: str, run: Path, steps: int, sets: dict) -> None:
    """The training config the command will build, built here first: every name, type and bound (one line)."""
    fields: dict = {"model": {}}
    for key, v in sets.items():
        if key.startswith("model."):
            fields["model"][key[6:]] = v
        else:
            fields[key] = v
        _toml(v, key)  # can be said on a command line
    if "batch_size" in fields:
        whole("batch_size", fields["batch_size"], 1, int(LIMITS["batch_size"].hard))
    TrainConfig.from_dict({**fields, "data": data, "out_dir": str(run), "steps": steps})


def _finetune_flags(preset: dict, extra: dict) -> list[str]:
    """The preset's flags with ``extra`` on top, checked, as command-line words."""
    flags = dict(preset["flags"])
    for key, v in extra.items():
        if key in _OWN:
            raise BadParameter(f"extra: {key} is given by {_OWN[key]}, not here")
        if key not in _FINETUNE_FLAGS:
            raise BadParameter(f"extra: {key!r} is not a fine-tuning option; it has {', '.join(_FINETUNE_FLAGS)}")
        flags[key] = v
    lim = int(LIMITS["batch_size"].hard)
    checks = {"token": lambda v: text("token", v, max_len=200, one_line=True),
              "rank": lambda v: whole("rank", v, 1, 1024), "lr": lambda v: number("lr", v, 0.0, above=True),
              "batch_size": lambda v: whole("batch_size", v, 1, lim), "seed": lambda v: whole("seed", v, 0),
              "prior_preservation": lambda v: _bool("prior_preservation", v),
              "class_prompt": lambda v: text("class_prompt", v, max_len=1000, one_line=True),
              "prior_weight": lambda v: number("prior_weight", v, 0.0),
              "device": lambda v: _choice("device", v, ("auto", "cpu", "cuda", "mps")), "lora": lambda v: v}
    words: list[str] = []
    for key, v in flags.items():
        v = checks[key](v)
        flag = "--" + key.replace("_", "-")
        if isinstance(v, bool):
            words += [flag] if v else []
        else:
            words += [flag, str(v)]
    if "rank" in flags and not flags.get("lora"):
        raise BadParameter("rank: only for the lora preset")
    if not flags.get("prior_preservation") and any(k in flags for k in ("class_prompt", "prior_weight")):
        raise BadParameter("class_prompt, prior_weight: only with prior_preservation")
    return words


def _bool(name: str, v) -> bool:
    if not isinstance(v, bool):
        raise BadParameter(f"{name}: true or false, got {v!r}")
    return v


def _choice(name: str, v, allowed) -> str:
    if v not in allowed:
        raise BadParameter(f"{name}: one of {', '.join(allowed)}; got {v!r}")
    return v


def _scan(data) -> tuple[str, dict]:
    """The data folder, read as the trainer reads it (every picture decoded once, at the smallest size); returns
    its absolute path and the counts. ``builtin`` is the built-in set."""
    if data is None or str(data).strip() == "":
        raise BadParameter("data: a folder of pictures")
    if str(data) == "builtin":
        return "builtin", {"found": None, "used": None, "skipped": 0}
    folder = Path(os.path.expanduser(os.fspath(data))).absolute()
    ds = ImageFolder(folder, resolution=MIN_RESOLUTION, cache=False)  # UserError: missing, not a folder, no pictures
    return str(folder), {"found": ds.found, "used": len(ds), "skipped": len(ds.skipped)}


def _check_run_dir(run_dir) -> Path:
    """The run folder: new, or an empty folder, and writable."""
    if run_dir is None or str(run_dir).strip() == "":
        raise BadParameter("run_dir: a folder for the run")
    run = Path(os.path.expanduser(os.fspath(run_dir))).absolute()
    if run.exists() and not run.is_dir():
        raise UserError(f"{run}: exists and is not a folder (run_dir)")
    if run.is_dir():
        if (run / JOB_FILE).exists():
            raise UserError(f"{run}: already holds a studio job; attach to it and resume it, or choose a new folder")
        if latest_checkpoint(run) is not None or (run / "log.csv").exists() or (run / "model").exists():
            raise UserError(f"{run}: already holds a training run; choose a new folder")
        if any(run.iterdir()):
            raise UserError(f"{run}: is not empty; choose a new folder for the run")
    check_writable(run, what="run_dir", folder=True)
    return run


# -- processes ------------------------------------------------------------------------------------------------------

def _child_env() -> dict:
    """The environment of a job: this one, unbuffered output, this noisebrush first on the path, and no forced
    terminal (the progress display must print plain lines into the log, not a rich bar)."""
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE")}
    env["PYTHONUNBUFFERED"] = "1"
    src = str(Path(__file__).resolve().parents[3])  # the folder holding this noisebrush package
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH", "")) if p)
    return env


def _alive(pid: int, argv: list) -> bool:
    """Whether the job's process still runs: the pid exists, is no zombie and (where /proc tells) still runs the
    job's command line — a pid that was reused is not the job."""
    proc = _SPAWNED.get(pid)
    if proc is not None:
        return proc.poll() is None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process now
        return False
    if not Path("/proc/self").exists():  # no /proc (macOS): the pid is all there is
        return True
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        if fields and fields[0] in ("Z", "X"):  # ended, not yet reaped by its parent
            return False
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        return [c.decode(errors="replace") for c in cmdline if c] == [str(a) for a in argv]
    except (OSError, IndexError):  # gone meanwhile
        return False


def _exit_code(pid: int) -> int | None:
    proc = _SPAWNED.get(pid)
    return None if proc is None else proc.poll()


def _read_from(path: Path, offset: int, limit: int | None = None) -> str:
    """The text of ``path`` from byte ``offset`` (the last ``limit`` bytes of it when given)."""
    try:
        with open(path, "rb") as f:
            size = f.seek(0, os.SEEK_END)
            start = offset if limit is None else max(offset, size - limit)
            f.seek(min(start, size))
            data = f.read()
    except OSError:
        return ""
    text_ = data.decode("utf-8", errors="replace").replace("\r", "\n")
    if limit is not None and start > offset:  # cut mid-line: drop the first, partial line
        text_ = text_.split("\n", 1)[1] if "\n" in text_ else ""
    return text_


def _progress(lines: list[str], kind: str) -> list[dict]:
    """The progress lines of the training stage: step, total, loss, seconds a step."""
    label = "training" if kind == "train" else "fine-tuning"
    out = []
    for line in lines:
        m = _PROGRESS.match(line.strip())
        if not m or m.group("label") != label:
            continue
        rest = m.group("rest")
        if kind == "finetune" and "· training" not in rest:  # class pictures, memorization: other stages
            continue
        loss = _LOSS.search(rest)
        rate = _RATE.search(rest)
        per = None
        if rate and float(rate.group("v")) > 0:
            per = 1 / float(rate.group("v")) if rate.group("unit") == "it/s" else float(rate.group("v"))
        out.append({"step": int(m.group("done")), "total": int(m.group("total")),
                    "loss": float(loss.group("v")) if loss else None, "per_step": per})
    return out


# -- the job --------------------------------------------------------------------------------------------------------

class TrainingJob:
    """A training or fine-tuning process and its run folder; see the module docstring. Make one with
    :meth:`start` or :meth:`attach`."""

    def __init__(self, run_dir: Path, meta: dict):
        self.run_dir = Path(run_dir)
        self.meta = meta
        self._lock = threading.RLock()

    # -- making one -------------------------------------------------------------------------------------------------
    @classmethod
    def start(cls, kind: str, data, run_dir, *, preset: str | None = None, steps: int | None = None,
              base="builtin", extra: dict | None = None) -> "TrainingJob":
        """Check everything, then spawn ``python -m noisebrush train|finetune …`` for ``data`` into ``run_dir``.

        ``kind``: "train" or "finetune"; ``preset``: a name in :data:`PRESETS` of that kind (default sketch / lora);
        ``steps``: optimizer steps (default: the preset's); ``base``: the model a fine-tune starts from ("builtin"
        or a model folder; a training run starts from scratch, so only "builtin"/None is taken there — use
        ``extra={"init": …}`` to start from weights); ``extra``: more options — for train ``--set`` keys
        (``{"lr": 5e-3, "model.channels": 16}``), for finetune the flags of ``noisebrush finetune`` by their
        keyword names (``{"token": "<mine>", "batch_size": 4}``). Refusals are one UserError/BadParameter line and
        nothing is spawned."""
        name, p = _preset(kind, preset)
        if extra is not None and not isinstance(extra, dict):
            raise BadParameter(f"extra: a dict of options, got {extra!r}")
        extra = dict(extra or {})
        key = "train_steps" if kind == "train" else "finetune_steps"
        steps = whole("steps", p["steps"] if steps is None else steps, 1, int(LIMITS[key].hard))
        if kind == "finetune" and str(data) == "builtin":
            raise BadParameter("data: fine-tuning needs a folder of your pictures")
        run = _check_run_dir(run_dir)
        if kind == "train":
            if base not in (None, "builtin"):
                raise BadParameter("base: only for fine-tuning (a training run starts from scratch; "
                                   "extra={'init': …} starts it from a model's weights)")
            sets = _train_sets(p, extra)
            _check_train_config(str(data), run, steps, sets)  # cheap: before the pictures are read
            data_s, pictures = _scan(data)
            result = run / "model"
            args = ["train", "--data", data_s, "--out", str(run), "--steps", str(steps)]
            for k, v in sets.items():
                args += ["--set", f"{k}={_toml(v, k)}"]
            base_s = None
        else:
            words = _finetune_flags(p, extra)
            base_s = "builtin" if base in (None, "builtin") else str(Path(os.path.expanduser(str(base))).absolute())
            if base_s not in model_folder.BUILTIN_MODELS:
                model_folder.read_config(model_folder.resolve(base_s))  # one line: not a model folder
            data_s, pictures = _scan(data)
            result = run / ("lora.safetensors" if p["flags"].get("lora") else "model")
            args = ["finetune", "--base", base_s, "--data", data_s, "--out", str(result), "--steps", str(steps),
                    *words]
        meta = {"format": JOB_FORMAT, "kind": kind, "preset": name, "data": data_s, "base": base_s,
                "steps": steps, "result": str(result), "pictures": pictures, "extra": extra, "history": []}
        job = cls(run, meta)
        run.mkdir(parents=True, exist_ok=True)
        job._spawn(args)
        return job

    @classmethod
    def attach(cls, run_dir) -> "TrainingJob":
        """The job of ``run_dir`` (its ``studio-job.json``), as a restarted studio finds it: still running, or ended
        (the state is settled from the exit evidence the first time it is asked)."""
        run = Path(os.path.expanduser(os.fspath(run_dir))).absolute()
        path = run / JOB_FILE
        if not path.is_file():
            raise UserError(f"{run}: no studio job here (no {JOB_FILE})")
        try:
            meta = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise UserError(f"{path}: unreadable ({getattr(e, 'strerror', None) or e})") from None
        if not isinstance(meta, dict) or meta.get("format") != JOB_FORMAT or meta.get("kind") not in KINDS \
                or not isinstance(meta.get("pid"), int) or not isinstance(meta.get("argv"), list):
            raise UserError(f"{path}: not a studio job file ({JOB_FORMAT})")
        job = cls(run, meta)
        job.status()  # settle the state now
        return job

    # -- the process --------------------------------------------------------------------------------------------------
    def _spawn(self, args: list[str]) -> None:
        """Start one attempt: the command, its log appended, the job file written."""
        argv = [sys.executable, "-m", "noisebrush", *args]
        log = self.run_dir / LOG_FILE
        with open(log, "ab") as f:
            offset = f.tell()
            f.write(f"studio: {time.strftime('%Y-%m-%d %H:%M:%S')} noisebrush {shlex.join(args)}\n".encode())
        with open(log, "ab") as out, _SPAWN_LOCK:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                    env=_child_env(), start_new_session=True)
            _SPAWNED[proc.pid] = proc
        self.meta.update(argv=argv, pid=proc.pid, started_at=time.time(), state="running", exit_code=None,
                         ended_at=None, stop_requested=False, log_offset=offset)
        try:
            self._save()
        except BaseException:
            self._signal(signal.SIGKILL)
            raise

    def _save(self) -> None:
        with atomic_path(self.run_dir / JOB_FILE) as tmp:
            Path(tmp).write_text(json.dumps(self.meta, indent=2), encoding="utf-8")

    def _signal(self, sig) -> None:
        try:
            os.killpg(self.meta["pid"], sig)  # the job's own process group (start_new_session)
        except (ProcessLookupError, PermissionError):
            pass

    def _running(self) -> bool:
        return _alive(self.meta["pid"], self.meta["argv"])

    def _wait(self, seconds: float) -> bool:
        """Wait up to ``seconds`` for the process to end; True when it has."""
        proc = _SPAWNED.get(self.meta["pid"])
        if proc is not None:
            try:
                proc.wait(timeout=max(0.0, seconds))
                return True
            except subprocess.TimeoutExpired:
                return False
        deadline = time.monotonic() + seconds
        while self._running():
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.1)
        return True

    # -- what it says -------------------------------------------------------------------------------------------------
    @property
    def kind(self) -> str:
        return self.meta["kind"]

    @property
    def pid(self) -> int:
        return self.meta["pid"]

    @property
    def result(self) -> Path:
        """Where the trained model goes: ``RUN/model`` (or ``RUN/lora.safetensors``)."""
        return Path(self.meta["result"])

    def _attempt_log(self, limit: int | None = _TAIL_BYTES) -> list[str]:
        return _read_from(self.run_dir / LOG_FILE, int(self.meta.get("log_offset", 0)), limit).split("\n")

    def _result_written(self) -> bool:
        """The result exists and was written during this attempt."""
        r = self.result
        mark = r / "config.json" if r.suffix != ".safetensors" else r
        try:
            return mark.is_file() and mark.stat().st_mtime >= float(self.meta.get("started_at") or 0) - 1
        except OSError:
            return False

    def _settle(self) -> None:
        """The process has ended: its state from the exit code, else from the evidence it left."""
        code = _exit_code(self.meta["pid"])
        lines = self._attempt_log()
        said = "\n".join(lines)
        if re.search(r"^interrupted during the memorization check", said, re.M):
            state = "finished"  # a fine-tune stopped after its last step: the whole result is written
        elif code is not None:
            state = "finished" if code == 0 else "stopped" if code == 130 or self.meta.get("stop_requested") \
                else "failed"
        elif re.search(r"^interrupted", said, re.M):
            state = "stopped"
        elif re.search(r"^(trained \d+ steps?|fine-tuned )", said, re.M) or self._result_written():
            state = "finished"
        elif self.meta.get("stop_requested"):
            state = "stopped"
        else:
            state = "failed"
        self.meta.update(state=state, exit_code=code, ended_at=time.time())
        try:
            self._save()
        except (OSError, UserError):
            pass  # the run folder went away or read-only: the answer stands for this call

    def status(self) -> dict:
        """Where the job stands (see the module docstring for the states):

        ``state``, ``kind``, ``preset``, ``run_dir``, ``step`` and ``total`` (optimizer steps), ``losses``
        [(step, loss)] (training: ``log.csv``; fine-tuning: its progress lines), ``eta`` (seconds of steps left at
        the step rate so far — previews and checkpoints not counted — None when not running or not known yet),
        ``preview`` (the newest ``samples/step-*.png``), ``model`` (the result, once finished; a stopped
        fine-tune's partial result too), ``checkpoint`` (the newest), ``resumable``, ``log`` (the attempt's last
        20 lines), ``exit_code`` (None when not this studio's child or still running), ``error`` (for failed: the
        ``error: …`` line, else the last line), ``pictures`` (found/used/skipped), ``pid``, ``started_at``.
        Paths are strings (or None)."""
        with self._lock:
            if self.meta.get("state") == "running" and not self._running():
                self._settle()
            m, run = self.meta, self.run_dir
            state, kind = m["state"], m["kind"]
            lines = self._attempt_log(None if kind == "finetune" else _TAIL_BYTES)
            prog = _progress(lines, kind)
            step = prog[-1]["step"] if prog else 0
            total = int(m["steps"])
            eta_rate = prog[-1]["per_step"] if prog else None
            if kind == "train":
                losses, rows_rate, last = _train_log(run / "log.csv")
                step = max(step, last)
                eta_rate = rows_rate or eta_rate
            else:
                losses = [(p["step"], p["loss"]) for p in prog if p["loss"] is not None]
            if state == "finished":
                step = max(step, total) if kind == "finetune" else step
            ck = latest_checkpoint(run) if kind == "train" else None
            written = self.result.exists() and (self.result.is_file() or (self.result / "config.json").is_file())
            model = str(self.result) if written and (state == "finished" or (state == "stopped" and
                                                                              kind == "finetune")) else None
            text_lines = [ln for ln in lines if ln.strip()]
            error = None
            if state == "failed":
                errs = [ln for ln in text_lines if ln.startswith("error: ")]
                error = errs[-1][len("error: "):] if errs else (text_lines[-1] if text_lines else
                                                               "the process ended without a word")
            eta = None
            if state == "running" and eta_rate and step:
                eta = max(0, total - step) * eta_rate
            return {"state": state, "kind": kind, "preset": m.get("preset"), "run_dir": str(run), "step": step,
                    "total": total, "losses": losses, "eta": eta, "preview": _newest_preview(run), "model": model,
                    "checkpoint": None if ck is None else str(ck),
                    "resumable": self._resumable(state, ck, step) is None, "log": text_lines[-20:],
                    "exit_code": m.get("exit_code"), "error": error, "pictures": m.get("pictures"),
                    "pid": m["pid"], "started_at": m.get("started_at")}

    def _resumable(self, state: str, ck, step: int, steps: int | None = None) -> str | None:
        """None when :meth:`resume` can go on, else why not (one line)."""
        if state == "running":
            return f"{self.run_dir}: still running; stop it first"
        if self.kind == "finetune":
            done = f"; the steps done are in {self.result}" if self.result.exists() else ""
            return (f"{self.run_dir}: a fine-tune cannot resume (noisebrush finetune keeps no checkpoints{done}); "
                    f"start a new fine-tune" + (" with that model as its base" if done and
                                                self.result.suffix != ".safetensors" else ""))
        if state == "finished" and (steps is None or steps <= step):
            return f"{self.run_dir}: finished at step {step}; give more steps to train longer"
        if ck is None and self._trained_anything():
            return f"{self.run_dir}: nothing to resume: the run stopped without a checkpoint; start a new run"
        return None

    def _trained_anything(self) -> bool:
        return (self.run_dir / "log.csv").exists() or (self.run_dir / "samples").exists()

    # -- stop and resume ----------------------------------------------------------------------------------------------
    def stop(self, timeout: float = 60) -> dict:
        """Stop the job as Ctrl-C does: SIGINT to its process group (training finishes the step, checkpoints and
        exits; a fine-tune writes the steps done), up to ``timeout`` seconds, then SIGTERM and SIGKILL (10 s
        each). The state becomes "stopped"; returns :meth:`status` (``checkpoint``/``resumable`` say what a
        resume has). A job that is not running is left as it is."""
        timeout = number("timeout", timeout, 0.0)
        with self._lock:
            if self.status()["state"] != "running":
                return self.status()
            self.meta["stop_requested"] = True
            self._save()
            self._signal(signal.SIGINT)
            for sig, wait in ((None, timeout), (signal.SIGTERM, 10.0), (signal.SIGKILL, 10.0)):
                if sig is not None:
                    self._signal(sig)
                if self._wait(wait):
                    break
            return self.status()

    def resume(self, steps: int | None = None) -> "TrainingJob":
        """Restart a stopped or failed training run from its latest checkpoint (``noisebrush train --out RUN
        --resume --steps N``; N: ``steps``, default the run's); a finished run resumes only with more ``steps``
        (train longer). A run stopped before its first step starts again. Fine-tuning cannot resume (see the module
        docstring): a UserError says so. Returns the job (now running)."""
        with self._lock:
            st = self.status()
            if steps is not None:
                steps = whole("steps", steps, 1, int(LIMITS["train_steps"].hard))
            ck = latest_checkpoint(self.run_dir) if self.kind == "train" else None
            why = self._resumable(st["state"], ck, st["step"], steps)
            if why is not None:
                raise UserError(why)
            steps = int(self.meta["steps"]) if steps is None else steps
            past = {k: self.meta.get(k) for k in ("argv", "pid", "started_at", "ended_at", "state", "exit_code")}
            self.meta["history"] = [*self.meta.get("history", []), past]
            self.meta["steps"] = steps
            if ck is None:  # nothing was trained: the same command again
                args = list(self.meta["argv"][3:])
                i = args.index("--steps")
                args[i + 1] = str(steps)
            else:
                args = ["train", "--out", str(self.run_dir), "--resume", "--steps", str(steps)]
            self._spawn(args)
            return self


# -- reading the run folder -------------------------------------------------------------------------------------------

def _train_log(path: Path) -> tuple[list, float | None, int]:
    """log.csv → ([(step, loss)], seconds a training step so far (its ``time`` column), last step)."""
    try:
        cols = read_log(path)  # a partial last line (being written) is left out
    except UserError:
        return [], None, 0
    steps, loss = cols["step"], cols["loss"]
    losses = [(int(s), float(v)) for s, v in zip(steps, loss) if v == v]
    rate = None
    if "time" in cols and len(steps) and steps[-1] > 0 and cols["time"][-1] > 0:
        rate = float(cols["time"][-1] / steps[-1])
    return losses, rate, int(steps[-1]) if len(steps) else 0


def _newest_preview(run: Path) -> str | None:
    try:
        found = sorted((run / "samples").glob("step-*.png"))
    except OSError:
        return None
    return str(found[-1]) if found else None


def loss_plot(status: dict) -> Figure:
    """A small loss-vs-step plot of ``status["losses"]`` (log scale when every loss is positive), as a matplotlib
    Figure on the Agg canvas (no pyplot: safe in the studio's threads; gradio's ``gr.Plot`` shows it,
    ``fig.savefig`` writes it). ``noisebrush plot-log`` (:func:`noisebrush.train.plots.plot_log`) is the full
    three-panel plot of a run; this is the studio's glance at the one curve, fine-tunes included (they have no
    log.csv)."""
    fig = Figure(figsize=(5.0, 3.0), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    pts = [(s, v) for s, v in status.get("losses") or [] if v == v and abs(v) != float("inf")]
    if pts:
        xs, ys = zip(*pts)
        ax.plot(xs, ys, color="tab:blue", marker="o" if len(xs) <= 30 else None, ms=3)
        if all(y > 0 for y in ys):
            ax.set_yscale("log")
    else:
        ax.text(0.5, 0.5, "no loss logged yet", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.grid(True, alpha=0.3)
    ax.set_title(f"{status.get('state', '')}: step {status.get('step', 0)} of {status.get('total', '?')}",
                 fontsize=9)
    return fig


_NOT_MODELS = frozenset({"checkpoints", "samples", "tb"})


def _is_model(path: Path) -> bool:
    try:
        model_folder.read_config(model_folder.resolve(str(path.absolute())))
        return True
    except UserError:
        return False


def models_in(folder, *, depth: int = 4) -> list[Path]:
    """The model folders under ``folder`` (``config.json`` + weights, as :mod:`noisebrush.io.model_folder` reads
    them), ``folder`` itself included, ``depth`` levels down — ``RUN/model`` of finished runs and fine-tunes among
    them — sorted by path. A missing folder has none. Checkpoints, previews and hidden folders are not searched."""
    root = Path(os.path.expanduser(os.fspath(folder)))
    found: list[Path] = []

    def visit(d: Path, left: int) -> None:
        if _is_model(d):
            found.append(d)
            return
        if left <= 0:
            return
        try:
            subs = sorted(p for p in d.iterdir() if p.is_dir() and not p.name.startswith(".")
                          and p.name not in _NOT_MODELS)
        except OSError:
            return
        for s in subs:
            visit(s, left - 1)

    if root.is_dir():
        visit(root, depth)
    return found


def jobs_in(folder, *, depth: int = 2) -> list[Path]:
    """The run folders under ``folder`` (``folder`` itself included) that hold a studio job, for
    :meth:`TrainingJob.attach` after a restart; sorted by path."""
    root = Path(os.path.expanduser(os.fspath(folder)))
    if not root.is_dir():
        return []
    found = {p.parent for p in root.glob(JOB_FILE)}
    for level in range(1, depth + 1):
        found.update(p.parent for p in root.glob("/".join(["*"] * level + [JOB_FILE])))
    return sorted(found)
