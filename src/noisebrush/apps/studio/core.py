"""The studio's state, shared by every tab: its folders, its limits, the loaded models and the running jobs.

Nothing here imports gradio: the tabs (``apps/studio/tabs/``) are the only modules that draw, and they call the
library through this module exactly as the CLI does (``noisebrush.load``, the Pipeline's edits, ``io/outputs``).

A painting job runs in a worker thread; its sampler callback hands x̂_0 previews to the page's generator and checks
a cancel flag, so Stop ends a job at the next step. One job at a time uses a model (a lock per model); how many jobs
run at once and how many may wait is gradio's queue (``jobs``, ``queue`` in :class:`Limits`).
"""
from __future__ import annotations

import json
import queue
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from noisebrush.apps.studio.gallery import Gallery
from noisebrush.apps.studio.safety import inside, open_upload
from noisebrush.apps.studio.training import models_in
from noisebrush.checks import text, whole
from noisebrush.errors import BadParameter, UserError
from noisebrush.seeding import pick_seed

__all__ = ["Limits", "Settings", "Studio", "Models", "Job", "Cancelled", "MODEL_BUILTIN", "MODEL_VIDEO",
           "MODEL_SHAPE"]

MODEL_BUILTIN = "builtin"
MODEL_VIDEO = "builtin-video"  # the built-in animation model (the Animate tab's default)
MODEL_SHAPE = "builtin-shape"  # the built-in shape model (the Sculpt tab's default)
PREVIEW_SIDE = 256      # previews are pixel-repeated to at least this side, so 32 px pictures can be seen
PREVIEW_EVERY = 0.15    # seconds between two previews sent to the page (the first and the last are always sent)
SHAPE_PREVIEW = 96      # a shape's live view is traced at this side (~0.06 s), then enlarged


@dataclass(frozen=True)
class Limits:
    """What one request may ask for. Every field is bounded (:meth:`checked`); a request beyond it gets one line."""
    steps: int = 100
    n: int = 8
    size: int = 128
    frames: int = 48
    prompt: int = 300                      # characters
    upload_bytes: int = 20 * 2 ** 20
    upload_pixels: int = 4096 * 4096
    queue: int = 16                        # jobs that may wait; one more gets "queue full"
    jobs: int = 1                          # jobs that run at once (each model is used by one job at a time)
    models_cached: int = 2                 # loaded pipelines kept in memory

    def checked(self) -> "Limits":
        bounds = {"steps": (1, 1000), "n": (1, 64), "size": (8, 512), "frames": (2, 240), "prompt": (10, 10_000),
                  "upload_bytes": (1024, 2 ** 31), "upload_pixels": (64, 2 ** 28), "queue": (1, 1000),
                  "jobs": (1, 16), "models_cached": (1, 16)}
        for name, (lo, hi) in bounds.items():
            whole(name.replace("_", "-"), getattr(self, name), lo, hi)
        return self


@dataclass
class Settings:
    """Where the studio keeps things. ``gallery``: the pictures (the CLI's ``--out`` may point there too);
    ``home``: ``models/`` (model folders, LoRAs, training runs under ``models/runs``) and ``uploads/``."""
    gallery: Path
    home: Path
    device: str = "auto"
    ratings: Path | None = None            # the `noisebrush rate` store (default: its own default)
    limits: Limits = field(default_factory=Limits)

    @property
    def models(self) -> Path:
        return self.home / "models"

    @property
    def uploads(self) -> Path:
        return self.home / "uploads"

    @property
    def runs(self) -> Path:
        return self.models / "runs"

    @property
    def datasets(self) -> Path:
        return self.uploads / "datasets"


class Cancelled(Exception):
    """Raised inside a job's sampler callback once Stop was pressed."""


class Models:
    """Model names the page may ask for — ``builtin`` and the model folders under the models folder (finished
    training runs included) — and a small cache of loaded pipelines, each with its own lock."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self._cache: OrderedDict[tuple, tuple] = OrderedDict()
        self._guard = threading.Lock()
        self._loading = threading.Lock()  # one model loads at a time: two pages asking at once load it once

    def names(self) -> list[str]:
        root = self.settings.models
        found = [p.relative_to(root).as_posix() for p in models_in(root)] if root.is_dir() else []
        return [MODEL_BUILTIN] + sorted(found)

    def loras(self) -> list[str]:
        """LoRA adapter files under the models folder (``*.safetensors`` outside model folders)."""
        root = self.settings.models
        if not root.is_dir():
            return []
        folders = {p for p in models_in(root)}
        out = []
        for p in sorted(root.rglob("*.safetensors")):
            if any(part.startswith(".") for part in p.relative_to(root).parts):
                continue
            if p.parent in folders or "checkpoints" in p.relative_to(root).parts:
                continue
            if p.name.startswith("lora") or "lora" in p.parent.name or p.parent == root:
                out.append(p.relative_to(root).as_posix())
        return out

    def clip_names(self) -> list[str]:
        """The clip models the Animate tab offers: the built-in animation model and the clip model folders under
        the models folder (their config.json describes a factorised space-time network)."""
        return [MODEL_VIDEO] + self._of_kind("clip")

    def shape_names(self) -> list[str]:
        """The shape models the Sculpt tab offers: the built-in shape model and the volume model folders under the
        models folder (a 3-D network that is not factorised)."""
        return [MODEL_SHAPE] + self._of_kind("volume")

    def _of_kind(self, kind: str) -> list[str]:
        root = self.settings.models
        return sorted(p.relative_to(root).as_posix() for p in models_in(root) if _network_kind(p) == kind) \
            if root.is_dir() else []

    def path(self, name: str) -> str:
        """``builtin``, ``builtin-video``, ``builtin-shape`` or the absolute folder of a model under the models
        folder; anything else is refused."""
        if name in (MODEL_BUILTIN, MODEL_VIDEO, MODEL_SHAPE):
            return name
        if not isinstance(name, str) or name not in self.names():
            raise BadParameter(f"model: unknown {name!r}; choose one from the list")
        return str(inside(self.settings.models / name, [self.settings.models]))

    def lora_path(self, name: str) -> Path:
        if name not in self.loras():
            raise BadParameter(f"lora: unknown {name!r}; choose one from the list")
        return inside(self.settings.models / name, [self.settings.models])

    def get(self, name: str, loras: tuple = (), size: int | None = None):
        """(pipeline, lock) for model ``name`` with ``loras`` ((file name, weight) pairs) merged, loaded once; with a
        ``size`` above the model's own, the cascade to it through the built-in stages (one lock for the base)."""
        # lazy: noisebrush.load imports torch; the studio's pages are drawn before the first model is needed
        import noisebrush
        from noisebrush.paint.cascade import cascade  # lazy: torch, as above

        key = (name, tuple(loras), None)
        with self._guard:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
        if hit is None:
            with self._loading:
                with self._guard:
                    hit = self._cache.get(key)
                if hit is None:
                    lora = [(self.lora_path(f), float(w)) for f, w in loras] or None
                    pipe = noisebrush.load(self.path(name), device=self.settings.device, lora=lora)
                    with self._guard:
                        hit = self._cache.setdefault(key, (pipe, threading.Lock()))
                        self._trim()
        base, lock = hit
        if size is None or size == base.resolution or base.modality.kind != "image":
            return base, lock
        key = (name, tuple(loras), int(size))
        with self._guard:
            got = self._cache.get(key)
        if got is None:
            got = (cascade(base, size=int(size), device=self.settings.device), lock)
            with self._guard:
                got = self._cache.setdefault(key, got)
                self._trim()
        return got

    def warm_up(self) -> float:
        """Load the built-in model and paint one 1-step picture (the text encoder and the kernels load on first
        use), so the first page's first preview is not a model load. Returns the seconds it took."""
        t = time.perf_counter()
        pipe, lock = self.get(MODEL_BUILTIN)
        with lock:
            pipe.generate("a red sun", steps=1, n=1, seed=0)
        return time.perf_counter() - t

    def stages(self, resolution: int, size: int) -> list:
        """The built-in super-resolution stages from ``resolution`` to ``size`` px, loaded once each."""
        from noisebrush.paint.cascade import load_stage, stage_names  # lazy: torch (see get)

        out = []
        for stage in stage_names(resolution, size):
            key = ("stage", stage, None)
            with self._guard:
                hit = self._cache.get(key)
            if hit is None:
                hit = (load_stage(stage, device=self.settings.device), threading.Lock())
                with self._guard:
                    hit = self._cache.setdefault(key, hit)
            out.append(hit[0])
        return out

    def _trim(self) -> None:
        while len(self._cache) > 2 * self.settings.limits.models_cached + 4:
            self._cache.popitem(last=False)


def _network_kind(folder: Path) -> str | None:
    """"clip" (a factorised 3-D network), "volume" (another 3-D network) or None, from the folder's config.json."""
    try:
        net = json.loads((folder / "config.json").read_text()).get("unet") or {}
    except (OSError, ValueError, AttributeError):
        return None
    if not isinstance(net, dict) or net.get("dims") != 3:
        return None
    return "clip" if net.get("factorized") is True else "volume"


def preview_picture(x0) -> Image.Image:
    """The x̂_0 of a batch (N×3×H×W in [-1, 1]; a clip's N×3×T×H×W shows the first clip's frames side by side; a
    shape's N×1×D×H×W grid, the first shape shaded from the front, :data:`SHAPE_PREVIEW` px) as one picture,
    pixel-repeated so it is at least :data:`PREVIEW_SIDE` wide."""
    # lazy: noisebrush.io imports torch; only a running job makes previews
    from noisebrush.io.images import make_grid, to_pil

    if x0.ndim == 5 and x0.shape[1] == 1:
        from noisebrush.io.render3d import render_grid  # lazy: as above

        view = Image.fromarray(render_grid(x0[0, 0].detach().float().cpu().clamp(-1, 1).numpy(), size=SHAPE_PREVIEW))
        return view.resize((PREVIEW_SIDE, PREVIEW_SIDE), resample=Image.BILINEAR)
    if x0.ndim == 5:
        frames = to_pil(x0[0].detach().float().cpu().clamp(-1, 1).transpose(0, 1))
        frames = frames if isinstance(frames, list) else [frames]
        grid = make_grid(frames, cols=len(frames), pad=1)
        z = max(1, -(-PREVIEW_SIDE // max(grid.width, 1)))
        return grid.resize((grid.width * z, grid.height * z), resample=Image.NEAREST) if z > 1 else grid
    pics = to_pil(x0.detach().float().cpu().clamp(-1, 1))
    pics = pics if isinstance(pics, list) else [pics]
    grid = pics[0] if len(pics) == 1 else make_grid(pics, cols=min(len(pics), 4), pad=1)
    z = max(1, -(-PREVIEW_SIDE // max(grid.width, 1)))  # rounded up: at least PREVIEW_SIDE wide
    return grid.resize((grid.width * z, grid.height * z), resample=Image.NEAREST) if z > 1 else grid


class Job:
    """One painting job: ``work(callback)`` runs in a worker thread; :meth:`events` yields ``("preview", picture)``
    while it runs and ``("done", result)`` at the end, or raises what ``work`` raised (:class:`Cancelled` after
    :meth:`cancel`)."""

    def __init__(self, work, *, lock: threading.Lock | None = None, previews: bool = True):
        self.work, self.lock, self.previews = work, lock, previews
        self._cancel = threading.Event()
        self._events: queue.Queue = queue.Queue()
        self.started = time.perf_counter()
        self.first_preview: float | None = None

    def cancel(self) -> None:
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def callback(self, info) -> None:
        """The sampler callback: stop at this step once cancelled; hand the newest x̂_0 on (throttled)."""
        if self._cancel.is_set():
            raise Cancelled()
        if not self.previews:
            return
        now = time.perf_counter()
        last = info.step + 1 >= info.steps
        if self.first_preview is None or last or now - self._last >= PREVIEW_EVERY:
            self._last = now
            self._events.put(("preview", preview_picture(info.x0)))
            if self.first_preview is None:
                self.first_preview = now - self.started

    def _run(self) -> None:
        self._last = 0.0
        try:
            if self.lock is not None:
                with self.lock:
                    if self._cancel.is_set():
                        raise Cancelled()
                    result = self.work(self.callback)
            else:
                result = self.work(self.callback)
            self._events.put(("done", result))
        except BaseException as e:  # handed to the page's thread, which reports it
            self._events.put(("error", e))

    def events(self):
        thread = threading.Thread(target=self._run, name="noisebrush-job", daemon=True)
        thread.start()
        try:
            while True:
                kind, value = self._events.get()
                if kind == "preview":
                    while not self._events.empty():  # only the newest preview is worth drawing
                        k2, v2 = self._events.get()
                        if k2 != "preview":
                            self._events.put((k2, v2))
                            break
                        value = v2
                    yield kind, value
                elif kind == "done":
                    yield kind, value
                    return
                else:
                    raise value
        finally:
            self.cancel()  # the page went away or Stop was pressed: the worker stops at its next step


class Studio:
    """Everything the tabs share."""

    def __init__(self, settings: Settings):
        settings.limits = settings.limits.checked()
        self.settings = settings
        for folder in (settings.gallery, settings.models, settings.uploads, settings.runs, settings.datasets):
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise UserError(f"{folder}: cannot create the studio's folder here ({e.strerror or e})") from None
        # lazy: the ratings store imports torch (its feature net); the studio needs it from the first page on
        from noisebrush.workflows.preference import RatingStore

        self.ratings = RatingStore(settings.ratings)
        self.gallery = Gallery(settings.gallery, ratings=self.ratings)
        self.models = Models(settings)
        self._jobs: dict[str, set[Job]] = {}
        self._jobs_guard = threading.Lock()

    # -- checks ------------------------------------------------------------------------------------------------------
    def prompt(self, value, name: str = "prompt") -> str:
        value = "" if value is None else " ".join(str(value).split())  # a line break typed in the box is a space
        if len(value) > self.settings.limits.prompt:
            raise BadParameter(f"{name}: {len(value)} characters, above the studio's limit of "
                               f"{self.settings.limits.prompt}")
        return text(name, value, max_len=self.settings.limits.prompt, one_line=True).strip()

    def bounded(self, name: str, value, lo: int, key: str) -> int:
        """A whole number within the studio's limit ``key`` (one line naming ``name`` otherwise)."""
        try:
            v = int(value) if value is not None and float(value) == int(float(value)) else value
        except (TypeError, ValueError):
            v = value
        return whole(name, v, lo, getattr(self.settings.limits, key))

    def seed(self, value) -> int:
        """-1 or empty: a random seed (drawn here, recorded in every picture); else the whole number given."""
        if value is None or value == "" or (isinstance(value, (int, float)) and value < 0):
            return pick_seed(None)
        try:
            v = int(value) if float(value) == int(float(value)) else value
        except (TypeError, ValueError, OverflowError):
            v = value
        return whole("seed", v, 0, 2 ** 63 - 1)

    def upload(self, path, what: str) -> Image.Image:
        """An uploaded picture through the same safe reader as training data, within the upload limits."""
        if path is None:
            raise BadParameter(f"{what}: drop a picture first")
        lim = self.settings.limits
        return open_upload(path, what=what, max_bytes=lim.upload_bytes, max_pixels=lim.upload_pixels)

    # -- jobs --------------------------------------------------------------------------------------------------------
    def start(self, session: str, work, *, lock=None, previews: bool = True) -> Job:
        """A job for the page ``session``; a page (or an API client) may have several (Stop ends them all)."""
        job = Job(work, lock=lock, previews=previews)
        with self._jobs_guard:
            self._jobs.setdefault(session, set()).add(job)
        return job

    def cancel(self, session: str) -> bool:
        """Stop every job of ``session`` at its next step; False if it has none."""
        with self._jobs_guard:
            jobs = list(self._jobs.get(session, ()))
        for job in jobs:
            job.cancel()
        return bool(jobs)

    def finished(self, session: str, job: Job) -> None:
        with self._jobs_guard:
            mine = self._jobs.get(session)
            if mine is not None:
                mine.discard(job)
                if not mine:
                    del self._jobs[session]

    # -- files -------------------------------------------------------------------------------------------------------
    def saved(self, paths) -> list[Path]:
        """Index freshly written files in the gallery; returns them."""
        out = []
        for p in paths:
            self.gallery.add(p)
            out.append(Path(p))
        return out
