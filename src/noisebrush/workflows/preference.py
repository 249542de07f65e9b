"""A learned preference: rate pictures up or down, fit a model of what you like, and paint more of it.

    noisebrush rate outputs/a-flower-s3.png up          # or: down; the PNG's recipe is stored with the rating
    noisebrush prefs fit                                # fits, reports accuracy, saves the model by its hash
    noisebrush paint "a flower" --best-of 8             # paint 8 candidates per picture, keep the best-liked
    noisebrush paint "a flower" --prefer 1              # steer every step towards what you like

    from noisebrush.workflows.preference import RatingStore, PreferenceGuide, best_of, load_preference
    store = RatingStore()                               # $NOISEBRUSH_HOME/ratings.sqlite (~/.noisebrush/…)
    store.rate("outputs/a-flower-s3.png", up=True)
    model = load_preference(store)                      # fit on every rating, saved under preference/<hash>
    images, recipes = best_of(pipe, "a flower", n=4, best_of=8, seed=0, model=model)
    images, recipes = pipe.generate("a flower", guidance=[PreferenceGuide(model, scale=1.0)])

**What is stored.** A rating is one row of a SQLite table: the picture's SHA-256 (of its RGB pixels, so the same
picture is the same row whether it comes from a PNG, a PIL image or a tensor; rating it again replaces the rating),
the file it came from, +1 or -1, the recipe the PNG carries (when it carries one), the picture's 256-d feature vector
from the domain feature network (:mod:`noisebrush.eval.features`, float32) with that network's weights hash, and
when it was rated.

**The model.** L2-regularised logistic regression, classes weighted equally (a user who rates mostly ups still gets
a balanced model), fitted by L-BFGS in float64 (deterministic). Its inputs are the feature network's 47 attribute
probabilities (a softmax per attribute head: family, colour, colour2, shape, …, computed from the stored feature
vector) and the 256-d feature vector itself, both standardised, the 256-d part shrunk ten-fold (a 100× stronger prior
on its weights): with 50 ratings, 256 free directions overfit, while "likes warm colours" or "likes flowers" is one
direction among the attribute probabilities; the embedding still catches tastes the attributes do not name. The
regularisation is chosen from a small grid by stratified k-fold cross-validation (k ≤ 5); the cross-validated
accuracy at that choice is what ``prefs fit`` reports. Its score is the logit of "you would rate this up". It is
saved as one safetensors file (mean, scale, weights, bias; JSON metadata in the header) named by a hash of its
content, under ``$NOISEBRUSH_HOME/preference/``, so a recipe that names the hash finds it again.

**As guidance** (:class:`PreferenceGuide`) the loss on x̂_0 is −score, differentiated through the feature network.
The raw gradient fools the network (faint speckle flips its reading of a colour) instead of changing the picture,
so the step is low-passed to an 8×8 field, normalised per picture (RMS 1 per pixel, times the model's probability
that you would *not* like it), and applied only between σ = 40 and σ = 0.5: the model paints the last details
itself. ``scale`` is the RMS change per pixel (in [-1, 1] units) one step makes to x̂_0; 0.5–1 are useful values.

**Best of N** (:func:`best_of`) paints N candidates per picture and keeps the best-scored one; candidate j of picture
i gets seed ``seed + i·N + j``, so all candidates are one ``generate`` call and the winner's own recipe (its seed)
paints it again with ``pipe.generate`` alone.

**Does it work?** ``python -m noisebrush.bench preference`` simulates a user who likes warm colours and rates 50
pictures from colour-free prompts. With the built-in model (400 prompts per arm), the share of warm pictures goes
from 0.32 to 0.60–0.63 with ``--best-of 8`` (capped by how often any of the 8 candidates is warm), 0.67–0.82 with
``--prefer 1``, and 0.85–0.96 with both (``--prefer 1 --best-of 4``), over four simulated users.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
import os
import sqlite3
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
import torch
import torch.nn.functional as F

from noisebrush import __version__
from noisebrush.errors import BadParameter, UserError
from noisebrush.eval.features import FEATNET_DIR, load_feature_net
from noisebrush.io.atomic import atomic_path
from noisebrush.io.images import to_uint8
from noisebrush.io.model_folder import weights_hash
from noisebrush.io.png import read_picture
from noisebrush.paint.guides import Guide, register_guide

__all__ = ["RatingStore", "PreferenceModel", "PreferenceGuide", "best_of", "best_seeds", "load_preference", "home",
           "default_db", "preference_dir", "guide_from_recipe", "as_pixels", "pixel_hash", "PREFERENCE_FORMAT"]

PREFERENCE_FORMAT = "noisebrush.workflows.preference/1"
_DB_VERSION = 1
_LAMBDAS = (1e-3, 1e-2, 1e-1, 1.0, 10.0)
EMBEDDING_WEIGHT = 0.1  # the 256-d embedding's share next to the attribute probabilities (see the docstring)


# -- where things live -----------------------------------------------------------------------------------------------
def home() -> Path:
    """``$NOISEBRUSH_HOME``, default ``~/.noisebrush``."""
    h = os.environ.get("NOISEBRUSH_HOME")
    return Path(h).expanduser() if h else Path.home() / ".noisebrush"


def default_db() -> Path:
    return home() / "ratings.sqlite"


def preference_dir() -> Path:
    return home() / "preference"


def _featnet():

    return load_feature_net()


@lru_cache(maxsize=1)
def _featnet_hash() -> str:

    return weights_hash(FEATNET_DIR)


# -- pictures --------------------------------------------------------------------------------------------------------
def as_pixels(image) -> tuple[torch.Tensor, Path | None, dict | None]:
    """A path, PIL image or [-1, 1] tensor (3×H×W or 1×3×H×W) → (uint8 3×H×W, file or None, recipe or None)."""
    if isinstance(image, (str, Path)):
        path = Path(image)
        rgb, recipe = read_picture(path)
        if recipe is not None and "sheet" in recipe and "images" in recipe:
            raise UserError(f"{path}: is a contact sheet of {len(recipe['images'])} pictures; rate the single "
                            f"pictures instead")
        return torch.from_numpy(np.asarray(rgb).copy()).permute(2, 0, 1).contiguous(), path, recipe
    if isinstance(image, Image.Image):
        return torch.from_numpy(np.asarray(image.convert("RGB")).copy()).permute(2, 0, 1).contiguous(), None, None
    if torch.is_tensor(image):
        x = image.detach()
        if x.ndim == 4 and x.shape[0] == 1:
            x = x[0]
        if x.ndim != 3 or x.shape[0] != 3:
            raise BadParameter(f"image: a 3×H×W tensor in [-1, 1], got shape {tuple(image.shape)}")
        return to_uint8(x), None, None
    raise BadParameter(f"image: a file, a PIL image or a tensor, got {type(image).__name__}")


def pixel_hash(pixels: torch.Tensor) -> str:
    """The SHA-256 a rating is keyed by: of the picture's size and its uint8 RGB pixels (3×H×W, from
    :func:`as_pixels`), so the same picture has the same hash whatever file or object it came from."""
    h = hashlib.sha256(f"{pixels.shape[1]}x{pixels.shape[2]}:".encode())
    h.update(pixels.permute(1, 2, 0).contiguous().numpy().tobytes())
    return h.hexdigest()


def _to_float(pixels: torch.Tensor) -> torch.Tensor:
    return pixels.to(torch.float32) / 127.5 - 1


# -- the ratings -----------------------------------------------------------------------------------------------------
_SCHEMA = """
CREATE TABLE IF NOT EXISTS ratings (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    sha256 TEXT NOT NULL UNIQUE,
    path TEXT,
    rating INTEGER NOT NULL CHECK (rating IN (-1, 1)),
    recipe TEXT,
    features BLOB NOT NULL,
    dim INTEGER NOT NULL,
    featnet TEXT NOT NULL,
    width INTEGER,
    height INTEGER,
    rated_at TEXT NOT NULL
)
"""
_COLUMNS = {"id", "sha256", "path", "rating", "recipe", "features", "dim", "featnet", "width", "height", "rated_at"}


class RatingStore:
    """Ratings in a SQLite file (default ``$NOISEBRUSH_HOME/ratings.sqlite``); see the module docstring."""

    def __init__(self, path=None):
        self.path = Path(path).expanduser() if path is not None else default_db()
        if self.path.exists() and not self.path.is_file():
            raise UserError(f"{self.path}: not a file (a ratings database is a SQLite file)")
        self._checked = False

    # one short-lived connection per call: nothing stays open, several processes may rate at once
    def _connect(self, create: bool) -> sqlite3.Connection | None:
        if not self.path.exists():
            if not create:
                return None
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise UserError(f"{self.path}: cannot create the ratings database here ({e})") from None
        try:
            con = sqlite3.connect(str(self.path), timeout=10)
            version = con.execute("PRAGMA user_version").fetchone()[0]
            if version > _DB_VERSION:
                con.close()
                raise UserError(f"{self.path}: made by a newer noisebrush (ratings format {version}); this one reads "
                                f"format {_DB_VERSION}")
            tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            if "ratings" in tables:
                cols = {r[1] for r in con.execute("PRAGMA table_info(ratings)")}
                if not _COLUMNS <= cols:
                    con.close()
                    raise UserError(f"{self.path}: not a noisebrush ratings database (its 'ratings' table lacks "
                                    f"{sorted(_COLUMNS - cols)})")
            elif create:
                if tables - {"sqlite_sequence"}:
                    con.close()
                    raise UserError(f"{self.path}: a SQLite database of something else (tables {sorted(tables)}); "
                                    f"pass another --db")
                with con:
                    con.execute(_SCHEMA)
                    con.execute(f"PRAGMA user_version = {_DB_VERSION}")
            else:
                con.close()
                return None
        except sqlite3.Error as e:
            raise UserError(f"{self.path}: not a readable ratings database ({e})") from None
        return con

    def _query(self, sql: str, args=(), *, create: bool = False, write: bool = False) -> list:
        con = self._connect(create or write)
        if con is None:
            return []
        try:
            if write:
                with con:
                    cur = con.execute(sql, args)
                    return [cur.lastrowid]
            return con.execute(sql, args).fetchall()
        except sqlite3.Error as e:
            raise UserError(f"{self.path}: ratings database error ({e})") from None
        finally:
            con.close()

    # -- public -----------------------------------------------------------------------------------------------------
    def rate(self, image, up: bool, recipe: dict | None = None) -> int:
        """Store (or replace) the rating of ``image`` (a file, PIL image or [-1, 1] tensor); returns the row id.

        A file's own recipe (the one a noisebrush PNG carries) is stored unless ``recipe`` is given."""
        if not isinstance(up, bool):
            raise BadParameter(f"up: True (up) or False (down), got {up!r}")
        if recipe is not None and not isinstance(recipe, dict):
            raise BadParameter(f"recipe: a dict, got {type(recipe).__name__}")
        pixels, path, own = as_pixels(image)
        recipe = recipe if recipe is not None else own
        feats = _featnet().features(_to_float(pixels)[None])[0].to(torch.float32)
        now = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        sha = pixel_hash(pixels)
        self._query(
            "INSERT INTO ratings (sha256, path, rating, recipe, features, dim, featnet, width, height, rated_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(sha256) DO UPDATE SET rating = excluded.rating, "
            "path = COALESCE(excluded.path, ratings.path), recipe = COALESCE(excluded.recipe, ratings.recipe), "
            "features = excluded.features, dim = excluded.dim, featnet = excluded.featnet, "
            "rated_at = excluded.rated_at",
            (sha, str(path.resolve()) if path is not None else None, 1 if up else -1,
             json.dumps(recipe, sort_keys=True) if recipe is not None else None,
             feats.numpy().tobytes(), int(feats.numel()), _featnet_hash(), int(pixels.shape[2]),
             int(pixels.shape[1]), now), write=True)
        return int(self._query("SELECT id FROM ratings WHERE sha256 = ?", (sha,))[0][0])

    def ratings(self) -> list[dict]:
        """Every rating, oldest first: id, sha256, path, rating (+1/-1), recipe (dict or None), rated_at."""
        rows = self._query("SELECT id, sha256, path, rating, recipe, rated_at FROM ratings ORDER BY id")
        out = []
        for id_, sha, path, rating, recipe, at in rows:
            try:
                rec = json.loads(recipe) if recipe else None
            except json.JSONDecodeError:
                rec = None
            out.append({"id": id_, "sha256": sha, "path": path, "rating": rating, "recipe": rec, "rated_at": at})
        return out

    def features_and_labels(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(N×D float64 features, N labels in {+1., -1.}) of the ratings made with the current feature network
        (ratings from another one are skipped: their features mean something else)."""
        rows = self._query("SELECT features, dim, rating FROM ratings WHERE featnet = ? ORDER BY id",
                           (_featnet_hash(),))
        if not rows:
            return torch.zeros(0, 0, dtype=torch.float64), torch.zeros(0, dtype=torch.float64)
        feats, labels = [], []
        for blob, dim, rating in rows:
            v = torch.frombuffer(bytearray(blob), dtype=torch.float32)
            if v.numel() != dim:
                raise UserError(f"{self.path}: a damaged rating (features of {v.numel()} numbers, expected {dim})")
            feats.append(v.double())
            labels.append(float(rating))
        if len({f.numel() for f in feats}) != 1:
            raise UserError(f"{self.path}: ratings with features of different sizes")
        return torch.stack(feats), torch.tensor(labels, dtype=torch.float64)

    def count(self) -> dict:
        """{"up": …, "down": …, "total": …, "stale": ratings made with another feature network}."""
        rows = self._query("SELECT rating, featnet = ?, COUNT(*) FROM ratings GROUP BY rating, featnet = ?",
                           (_featnet_hash(), _featnet_hash()))
        c = {"up": 0, "down": 0, "total": 0, "stale": 0}
        for rating, current, k in rows:
            c["total"] += k
            if not current:
                c["stale"] += k
            else:
                c["up" if rating > 0 else "down"] += k
        return c

    def clear(self) -> int:
        """Delete every rating; returns how many there were."""
        n = self.count()["total"]
        if self.path.exists():
            self._query("DELETE FROM ratings", write=True)
        return n


# -- the model -------------------------------------------------------------------------------------------------------
def _fit_logistic(z: torch.Tensor, y: torch.Tensor, lam: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Class-balanced, L2-regularised logistic regression (float64, L-BFGS): minimises
    Σ_i c_i·log(1 + exp(−y_i (w·z_i + b))) / Σ_i c_i + λ/2 |w|², with c_i = 1 / (size of i's class)."""
    n_up, n_down = float((y > 0).sum()), float((y < 0).sum())
    c = torch.where(y > 0, 1 / n_up, 1 / n_down)
    c = c / c.sum()
    w = torch.zeros(z.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros((), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=1, max_iter=500, tolerance_grad=1e-10, tolerance_change=1e-12,
                            history_size=20, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = (c * torch.nn.functional.softplus(-y * (z @ w + b))).sum() + 0.5 * lam * (w * w).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    return w.detach(), b.detach()


def _standardise(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and scale. The scale is the standard deviation shrunk towards the typical one (√(var + mean var / 10)),
    so a feature that barely moved in the few rated pictures cannot blow up on a new one."""
    mean = x.mean(0)
    var = x.var(0, unbiased=False) if x.shape[0] > 1 else torch.zeros_like(mean)
    floor = float(var.mean()) / 10 if float(var.mean()) > 0 else 1.0
    return mean, (var + floor).sqrt()


def _expand(features: torch.Tensor, attributes: bool) -> torch.Tensor:
    """The model's inputs: the embedding, followed (``attributes``) by the feature network's attribute
    probabilities computed from it by its linear heads (differentiable)."""
    if not attributes:
        return features.to(torch.float64)
    net = _featnet()
    if features.shape[-1] != net.dim:
        raise BadParameter(f"features: {net.dim} numbers per picture (the feature network's), got "
                           f"{features.shape[-1]}")
    f32 = features.to(torch.float32)
    probs = [torch.softmax(head(f32), -1) for head in net.heads.values()]
    return torch.cat([features.to(torch.float64), *[p.to(torch.float64) for p in probs]], -1)


def _balanced_accuracy(logit: torch.Tensor, y: torch.Tensor) -> float:
    pred = torch.where(logit >= 0, 1.0, -1.0).to(y.dtype)
    accs = [float((pred[y == s] == s).double().mean()) for s in (1.0, -1.0) if bool((y == s).any())]
    return sum(accs) / len(accs)


def _folds(y: torch.Tensor, k: int) -> list[torch.Tensor]:
    """Stratified, deterministic: the i-th up and the i-th down go to fold i mod k."""
    fold = torch.empty(len(y), dtype=torch.long)
    for s in (1.0, -1.0):
        idx = (y == s).nonzero().flatten()
        fold[idx] = torch.arange(len(idx)) % k
    return [fold == i for i in range(k)]


class PreferenceModel:
    """A fitted preference: ``score(images)`` is the logit of "would be rated up". Build with :meth:`fit`."""

    def __init__(self, mean: torch.Tensor, scale: torch.Tensor, w: torch.Tensor, b: torch.Tensor, meta: dict):
        # fresh, aligned copies: a loaded file's tensors may sit at other alignments, and BLAS sums in another order
        self.mean, self.scale = mean.double().clone(), scale.double().clone()
        self.w, self.b = w.double().clone(), b.double().reshape(()).clone()
        self.meta = dict(meta)
        self.path: Path | None = None

    # -- fitting ----------------------------------------------------------------------------------------------------
    @classmethod
    def fit(cls, features: torch.Tensor, labels: torch.Tensor, *, lam: float | None = None,
            attributes: bool = True, featnet: str | None = None) -> "PreferenceModel":
        """Fit on N×D feature-network embeddings with labels ±1 (or booleans). ``lam``: the L2 strength; default:
        chosen by cross-validation from 1e-3 … 10. ``attributes=False``: the embedding alone (any D), without the
        attribute probabilities. Needs at least one up and one down."""
        x = torch.as_tensor(features, dtype=torch.float64)
        y = torch.as_tensor(labels)
        y = torch.where(y.bool() if y.dtype == torch.bool else y > 0, 1.0, -1.0).to(torch.float64)
        if x.ndim != 2 or x.shape[0] != y.shape[0]:
            raise BadParameter(f"features: N×D with one label each, got {tuple(x.shape)} and {tuple(y.shape)}")
        n_up, n_down = int((y > 0).sum()), int((y < 0).sum())
        if n_up == 0 or n_down == 0:
            raise UserError(f"a preference needs at least one picture rated up and one rated down; there "
                            f"{'are' if n_up + n_down != 1 else 'is'} {n_up} up and {n_down} down "
                            f"(rate more: noisebrush rate IMAGE up|down)")
        if not bool(torch.isfinite(x).all()):
            raise UserError("features: not finite (a damaged ratings database?)")
        dim = x.shape[1]
        x = _expand(x, attributes)
        shrink = torch.ones(x.shape[1], dtype=torch.float64)
        if attributes:
            shrink[:dim] = EMBEDDING_WEIGHT

        def standardise(v):  # the embedding and the probabilities each get their own variance floor
            parts = [_standardise(v[:, :dim]), _standardise(v[:, dim:])] if attributes else [_standardise(v)]
            return torch.cat([m for m, _ in parts]), torch.cat([s for _, s in parts]) / shrink
        k = min(5, n_up, n_down)
        cv = {}
        if k >= 2:
            for lmb in _LAMBDAS if lam is None else (float(lam),):
                logits = torch.empty_like(y)
                for test in _folds(y, k):
                    mean, scale = standardise(x[~test])
                    w, b = _fit_logistic((x[~test] - mean) / scale, y[~test], lmb)
                    logits[test] = ((x[test] - mean) / scale) @ w + b
                # balanced accuracy first, then the balanced log-loss, then the stronger regularisation
                c = torch.where(y > 0, 0.5 / n_up, 0.5 / n_down)
                nll = float((c * torch.nn.functional.softplus(-y * logits)).sum())
                cv[lmb] = (_balanced_accuracy(logits, y), nll)
            best = max(cv, key=lambda lmb: (round(cv[lmb][0], 9), -round(cv[lmb][1], 9), lmb))
        else:
            best = float(lam) if lam is not None else 1.0
        if lam is not None:
            best = float(lam)
        mean, scale = standardise(x)
        w, b = _fit_logistic((x - mean) / scale, y, best)
        train_acc = _balanced_accuracy(((x - mean) / scale) @ w + b, y)

        meta = {"format": PREFERENCE_FORMAT, "featnet": featnet or _featnet_hash(), "dim": dim,
                "attributes": bool(attributes), "embedding_weight": EMBEDDING_WEIGHT if attributes else 1.0,
                "n_up": n_up, "n_down": n_down,
                "lambda": best, "train_accuracy": train_acc, "cv_accuracy": cv[best][0] if best in cv else None,
                "cv_folds": k if best in cv else 0, "noisebrush": __version__}
        return cls(mean, scale, w, b, meta)

    @classmethod
    def fit_store(cls, store: "RatingStore", **kw) -> "PreferenceModel":
        x, y = store.features_and_labels()
        if x.shape[0] == 0:
            stale = store.count()["stale"]
            more = f" ({stale} were made with another feature network)" if stale else ""
            raise UserError(f"{store.path}: no ratings to learn from{more}; rate pictures first: "
                            f"noisebrush rate IMAGE up|down")
        return cls.fit(x, y, **kw)

    # -- identity ---------------------------------------------------------------------------------------------------
    def _tensors(self) -> dict:
        return {"mean": self.mean.contiguous(), "scale": self.scale.contiguous(), "w": self.w.contiguous(),
                "b": self.b.reshape(1).contiguous()}

    @property
    def hash(self) -> str:
        """First 10 hex digits of the SHA-256 of the weights and the feature network's hash."""
        h = hashlib.sha256(str(self.meta.get("featnet")).encode())
        for k, v in self._tensors().items():
            h.update(k.encode())
            h.update(v.numpy().tobytes())
        return h.hexdigest()[:10]

    # -- scoring ----------------------------------------------------------------------------------------------------
    def _check_featnet(self):
        if self.meta.get("featnet") != _featnet_hash():
            raise UserError(f"preference {self.hash}: fitted on features of feature network "
                            f"{self.meta.get('featnet')}, but this noisebrush has {_featnet_hash()}; fit it again "
                            f"(noisebrush prefs fit)")

    def score_features(self, features: torch.Tensor) -> torch.Tensor:
        """Logits of N×D feature-network embeddings (differentiable)."""
        z = _expand(features, bool(self.meta.get("attributes", False)))
        if z.shape[-1] != self.mean.numel():
            raise BadParameter(f"features: this preference takes {self.meta.get('dim')} numbers per picture, got "
                               f"{features.shape[-1]}")
        return ((z - self.mean) / self.scale) @ self.w + self.b

    def score(self, images: torch.Tensor, *, grad: bool = False) -> torch.Tensor:
        """Logit of "would be rated up" for N×3×H×W pictures in [-1, 1] (float64, shape [N]). ``grad=True``:
        differentiable in ``images`` (through the feature network's forward pass)."""
        self._check_featnet()
        net = _featnet()
        if images.ndim == 3:
            images = images[None]
        if not grad:
            return self.score_features(net.features(images.detach()))
        feats, _ = net(images)  # FeatureNet.forward: resize + clamp to [-1, 1], body, pooled feature
        return self.score_features(feats.double())

    def probability(self, images: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.score(images))

    # -- files ------------------------------------------------------------------------------------------------------
    def save(self, path=None) -> Path:
        """Write one safetensors file (default ``$NOISEBRUSH_HOME/preference/<hash>.safetensors``), atomically."""


        path = Path(path) if path is not None else preference_dir() / f"{self.hash}.safetensors"
        try:
            with atomic_path(path, suffix=".safetensors") as tmp:
                save_file(self._tensors(), str(tmp), metadata={"format": PREFERENCE_FORMAT, "hash": self.hash,
                                                               "meta": json.dumps(self.meta, sort_keys=True)})
        except OSError as e:
            raise UserError(f"{path}: cannot write the preference model ({e})") from None
        self.path = path
        return path

    @classmethod
    def load(cls, path) -> "PreferenceModel":
        """Read a file written by :meth:`save`, or find a hash under ``$NOISEBRUSH_HOME/preference/``."""

        p = Path(path)
        if not p.is_file() and isinstance(path, str) and len(path) == 10 and all(c in "0123456789abcdef"
                                                                                 for c in path):
            p = preference_dir() / f"{path}.safetensors"
        if not p.is_file():
            raise UserError(f"{path}: no such preference model")
        try:
            with safe_open(str(p), framework="pt") as f:
                head = f.metadata() or {}
                t = {k: f.get_tensor(k) for k in f.keys()}
        except (OSError, SafetensorError, ValueError) as e:
            raise UserError(f"{p}: not a readable preference model ({e})") from None
        if head.get("format") != PREFERENCE_FORMAT:
            raise UserError(f"{p}: not a noisebrush preference model (format {head.get('format')!r}, expected "
                            f"{PREFERENCE_FORMAT!r})")
        try:
            meta = json.loads(head.get("meta", "{}"))
            model = cls(t["mean"], t["scale"], t["w"], t["b"], meta)
        except (KeyError, json.JSONDecodeError, RuntimeError) as e:
            raise UserError(f"{p}: incomplete preference model ({e})") from None
        d = model.mean.numel()
        if any(v.numel() != d for v in (model.scale, model.w)) or model.b.numel() != 1:
            raise UserError(f"{p}: inconsistent preference model (tensor sizes differ)")
        if head.get("hash") and head["hash"] != model.hash:
            raise UserError(f"{p}: damaged preference model (its content hash is {model.hash}, the file says "
                            f"{head['hash']})")
        model.path = p
        return model

    def saved(self) -> Path:
        """Where this model is saved (saving it under its hash first if it is not)."""
        return self.path if self.path is not None and self.path.is_file() else self.save()

    def __repr__(self) -> str:
        m = self.meta
        return (f"PreferenceModel({self.hash}: {m.get('n_up')} up, {m.get('n_down')} down, "
                f"cv accuracy {m.get('cv_accuracy')})")


def load_preference(store: "RatingStore | str | Path | None" = None, **fit_kw) -> PreferenceModel:
    """Fit a preference on every rating in ``store`` (default: the default database) and save it by its hash."""
    store = store if isinstance(store, RatingStore) else RatingStore(store)
    model = PreferenceModel.fit_store(store, **fit_kw)
    model.save()
    return model


# -- guidance --------------------------------------------------------------------------------------------------------
@register_guide
class PreferenceGuide(Guide):
    """Steer painting towards a :class:`PreferenceModel`: loss = −score(x̂_0), differentiated through the feature
    network (see the module docstring).

    The step is made so that it changes what the picture shows rather than fooling the feature network, which a
    raw pixel gradient does within a few steps (faint high-frequency speckle that flips its reading of the colour):

    * the gradient is low-passed to a ``grid``×``grid`` field (8×8 by default: 4-pixel cells at 32 px) and
      rescaled per picture to an RMS of 1 per pixel times the model's probability that the picture would be rated
      *down* (one already liked is left nearly alone). ``scale`` is then the RMS change per pixel (in [-1, 1] units)
      one step makes to x̂_0: 0.5–1 are useful, above 2 colours turn garish;
    * ``weight(σ)`` is 1 for ``sigma_stop`` ≤ σ ≤ ``sigma_start`` (default 0.5…40) and 0 outside: above, x̂_0 is
      still the mean picture; below, the model paints the last details itself, which also washes out what the
      guide left that is not a real picture.

    ``per_picture`` (default) runs the feature network on one picture at a time so a guided picture never depends
    on its batch; the benchmark turns it off for speed."""

    name = "preference"

    def __init__(self, model: PreferenceModel, scale: float = 1.0, *, sigma_start: float = 40.0,
                 sigma_stop: float = 0.5, grid: int = 8, per_picture: bool = True):
        if not isinstance(model, PreferenceModel):
            raise BadParameter(f"model: a PreferenceModel, got {type(model).__name__}")
        try:
            scale, sigma_start, sigma_stop = float(scale), float(sigma_start), float(sigma_stop)
        except (TypeError, ValueError):
            raise BadParameter(f"scale, sigma_start, sigma_stop: numbers, got {scale!r}, {sigma_start!r}, "
                               f"{sigma_stop!r}") from None
        if not (math.isfinite(scale) and scale >= 0):
            raise BadParameter(f"scale: a number ≥ 0, got {scale}")
        if not 0 <= sigma_stop < sigma_start:
            raise BadParameter(f"sigma_stop, sigma_start: need 0 ≤ sigma_stop < sigma_start, got {sigma_stop}, "
                               f"{sigma_start}")
        if isinstance(grid, bool) or not isinstance(grid, int) or grid < 1:
            raise BadParameter(f"grid: a whole number ≥ 1, got {grid!r}")
        model._check_featnet()
        self.model, self.scale = model, scale
        self.sigma_start, self.sigma_stop, self.grid = sigma_start, sigma_stop, grid
        self.per_picture = per_picture
        self.path = model.saved()  # so the recipe can name a file that exists

    def loss(self, x0: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        return -self.model.score(x0, grad=True).to(x0.dtype)

    def weight(self, sigma: torch.Tensor) -> torch.Tensor:
        s = sigma.to(torch.float64)
        return ((s >= self.sigma_stop) & (s <= self.sigma_start)).to(torch.float64)

    def gradient(self, x0: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:

        on = self.weight(sigma.reshape(-1).expand(x0.shape[0]) if sigma.numel() == 1 else sigma.reshape(-1)) > 0
        out = torch.zeros_like(x0, dtype=torch.float32)
        if not bool(on.any()):
            return out  # no feature-network passes where the weight is 0 anyway
        idx = on.nonzero().flatten()
        parts = idx.split(1) if self.per_picture else (idx,)
        for ix in parts:
            with torch.enable_grad():
                x = x0[ix].detach().to(torch.float32).requires_grad_(True)
                loss = -self.model.score(x, grad=True)
                (g,) = torch.autograd.grad(loss.sum(), x)
            if self.grid < min(g.shape[-2:]):
                g = F.interpolate(F.adaptive_avg_pool2d(g, self.grid), size=g.shape[-2:], mode="bilinear",
                                  align_corners=False)
            rms = g.flatten(1).pow(2).mean(1).sqrt().clamp_min(1e-12)
            not_liked = torch.sigmoid(loss.detach()).to(g.dtype)  # 1 − P(up)
            out[ix] = g * (not_liked / rms).reshape(-1, *([1] * (g.ndim - 1)))
        return out

    def recipe(self) -> dict:
        return {"preference": self.model.hash, "path": str(self.path), "sigma_start": self.sigma_start,
                "sigma_stop": self.sigma_stop, "grid": self.grid}

    @classmethod
    def from_recipe(cls, entry: dict) -> "PreferenceGuide":
        """What :func:`noisebrush.paint.guides.guides_from_recipe` calls; see :func:`guide_from_recipe`."""
        return guide_from_recipe(entry)


def guide_from_recipe(entry: dict) -> PreferenceGuide:
    """Rebuild the guide a recipe's ``guidance`` entry describes (by its saved file, else its hash)."""
    if not isinstance(entry, dict) or entry.get("name") != "preference":
        raise UserError(f"not a preference guidance entry: {entry!r}")
    model = None
    for where in (entry.get("path"), entry.get("preference")):
        if where:
            try:
                model = PreferenceModel.load(where)
                break
            except UserError:
                continue
    if model is None:
        raise UserError(f"preference {entry.get('preference')}: its model file is gone "
                        f"({entry.get('path')}); it cannot be painted again")
    if entry.get("preference") and model.hash != entry["preference"]:
        raise UserError(f"{model.path}: holds preference {model.hash}, the recipe names {entry['preference']}")
    try:
        return PreferenceGuide(model, float(entry.get("scale", 1.0)), sigma_start=float(entry.get("sigma_start", 40)),
                               sigma_stop=float(entry.get("sigma_stop", 0.5)), grid=int(entry.get("grid", 8)))
    except (TypeError, ValueError) as e:
        raise UserError(f"preference {entry.get('preference')}: a damaged guidance entry ({e})") from None


# -- best of N -------------------------------------------------------------------------------------------------------
def best_seeds(seed: int, n: int, best_of: int) -> list[list[int]]:
    """The candidate seeds of each picture: picture i, candidate j → ``seed + i·best_of + j``."""
    return [[seed + i * best_of + j for j in range(best_of)] for i in range(n)]


def best_of(pipe, prompt: str = "", *, n: int = 1, best_of: int = 4, seed: int = 0, model: PreferenceModel,
            **generate_kwargs) -> tuple[torch.Tensor, list[dict]]:
    """Paint ``best_of`` candidates for each of ``n`` pictures and keep the best-scored one of each.

    Candidate j of picture i has seed ``seed + i·best_of + j`` (all ``n·best_of`` are one ``pipe.generate`` call
    with seed ``seed``). Returns n pictures and their recipes: the winner's own recipe (its seed paints it again with
    ``pipe.generate`` alone, guidance included) plus ``"best_of": {"n", "preference", "score", "scores"}``.
    ``generate_kwargs`` go to ``pipe.generate`` (steps, sampler, cfg, guidance, callback, …)."""
    for name, v, lo in (("n", n, 1), ("best_of", best_of, 1), ("seed", seed, 0)):
        if isinstance(v, bool) or not isinstance(v, int) or v < lo:
            raise BadParameter(f"{name}: a whole number ≥ {lo}, got {v!r}")
    if not isinstance(model, PreferenceModel):
        raise BadParameter(f"model: a PreferenceModel, got {type(model).__name__}")
    if "n" in generate_kwargs or "seed" in generate_kwargs:
        raise BadParameter("best_of: pass n and seed as its own arguments")
    images, recipes = pipe.generate(prompt, n=n * best_of, seed=seed, **generate_kwargs)
    scores = model.score(images)
    out, outr = [], []
    for i in range(n):
        sl = scores[i * best_of:(i + 1) * best_of]
        j = int(torch.argmax(sl))  # the first of equals
        k = i * best_of + j
        out.append(images[k])
        outr.append({**recipes[k], "best_of": {"n": best_of, "preference": model.hash, "score": float(scores[k]),
                                                "scores": [round(float(s), 4) for s in sl]}})
    return torch.stack(out), outr
