"""The gallery: an index over a folder of pictures, searchable, rated, with a trash instead of deletion.

    gallery = Gallery("gallery", ratings=RatingStore())   # made if missing; its index: gallery/.noisebrush/
    gallery.scan()                                       # index new and changed files, forget removed ones
    gallery.add("gallery/a-red-sun-s7.png")              # one file now (the studio, after writing it)
    entries = gallery.query("red sun", model="builtin", rating="up", limit=50)
    gallery.rate(entries[0]["id"], up=False)             # through the RatingStore: `noisebrush rate` sees it too
    where = gallery.delete("a-red-sun-s7.png")           # moved to gallery/.trash/, never removed
    gallery.restore(where.name)                          # back where it was (or a free name beside it)

**What is indexed.** Every ``*.png``, ``*.gif``, ``*.mp4``, ``*.webp`` and ``*.jpg``/``*.jpeg`` under the folder,
recursively, except hidden names (a first ``.``: the index, the trash, and the temporary files ``atomic_path``
writes, ``.NAME.XXXX.tmp.png``), links that resolve outside the folder or onto a hidden name, and links to folders
(not followed: no loops, no file twice). A file is read again only when its (size, mtime_ns) changed, so a scan of
an unchanged folder costs one ``stat`` per file and one query.

**An entry** is a dict: ``id``, ``path`` (relative, POSIX), ``kind``, ``prompt``, ``model`` (the folder's name),
``seed``, ``width``, ``height``, ``mtime`` (seconds), ``recipe`` (dict or None), ``parameters`` (the A1111-style
text: the PNG's own "parameters" chunk, else made from the recipe), ``pixel_sha256`` and ``rating`` (+1, -1, 0).
``kind``: the recipe's ``mode`` (``vary``, ``inpaint``, ``outpaint``, ``morph``, ``upscale`` …), ``paint`` for a
recipe without one, ``sheet`` for a contact sheet (its recipe lists its pictures; their prompts are all
searchable), ``figure`` for a figure such as a cascade's stages, ``explain`` for the files of an explanation folder
(those ``explain.json`` lists), ``animation`` for a GIF, an MP4 or an animated picture without a recipe (a morph's
GIF and MP4 take the recipe of the ``-strip.png`` beside them and are ``morph``), ``picture`` for a still picture
without a recipe (an A1111-style "parameters" chunk still gives its prompt, model and seed), and ``unreadable`` for
a file that cannot be decoded (indexed, never an error).

**Ratings** live in the :class:`~noisebrush.workflows.preference.RatingStore` (the one ``noisebrush rate`` writes,
``$NOISEBRUSH_HOME/ratings.sqlite`` unless another is given), keyed by the pixels' hash
(:func:`~noisebrush.workflows.preference.pixel_hash`), which the index keeps for every still picture. They are read
at query time, so a rating given on the command line shows here at once.

**Paths.** Every method that takes a path inside the gallery goes through :meth:`Gallery.resolve`, which refuses
(one UserError line, ``… is outside the gallery``) absolute paths, ``..``, NUL bytes, hidden names and links that
lead out. The index is SQLite (``PRAGMA user_version`` = its format, WAL journal, one short-lived connection per
call with a 10 s busy timeout: the studio's threads and a CLI may use it at once); a file there that is not a
gallery index is one UserError line and is left alone. Deleting moves the file into ``.trash/`` under a free name
with a hidden JSON note of where it was (``.trash/.NAME.json``); nothing is ever removed for good here.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import re
import sqlite3
import stat
from pathlib import Path, PurePosixPath

from PIL import Image

from noisebrush.checks import whole
from noisebrush.errors import BadParameter, UserError
from noisebrush.io.atomic import atomic_write_text
from noisebrush.io.outputs import free_path
from noisebrush.io.png import RECIPE_KEY, a1111_parameters, parse_a1111, read_recipe
from noisebrush.workflows.preference import RatingStore, as_pixels, pixel_hash

__all__ = ["Gallery", "SUFFIXES", "RATINGS", "GALLERY_FORMAT"]

SUFFIXES = (".png", ".gif", ".mp4", ".webp", ".jpg", ".jpeg")
STILL = (".png", ".webp", ".jpg", ".jpeg", ".gif")  # formats Pillow reads; one frame → a still picture
RATINGS = ("up", "down", "unrated", "rated")
GALLERY_FORMAT = 1
_META, _TRASH = ".noisebrush", ".trash"
_MODE = re.compile(r"[a-z][a-z0-9_]{0,23}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_EXPLAIN_BYTES = 10_000_000

_SCHEMA = """
CREATE TABLE entries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    path TEXT NOT NULL UNIQUE,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    kind TEXT NOT NULL,
    prompt TEXT,
    search TEXT NOT NULL DEFAULT '',
    model TEXT,
    seed TEXT,
    width INTEGER,
    height INTEGER,
    recipe TEXT,
    parameters TEXT,
    pixel_sha256 TEXT
);
CREATE INDEX entries_newest ON entries (mtime_ns DESC, id DESC);
CREATE INDEX entries_model ON entries (model);
"""
_COLUMNS = ("path", "size", "mtime_ns", "kind", "prompt", "search", "model", "seed", "width", "height", "recipe",
            "parameters", "pixel_sha256")
_UPSERT = (f"INSERT INTO entries ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))}) "
           f"ON CONFLICT(path) DO UPDATE SET " + ", ".join(f"{c} = excluded.{c}" for c in _COLUMNS[1:]))
_SELECT = "SELECT e.id, e.path, e.kind, e.prompt, e.model, e.seed, e.width, e.height, e.mtime_ns, e.recipe, " \
          "e.parameters, e.pixel_sha256"


def _show(path) -> str:
    """A path for a one-line message: control characters (NUL, newlines) escaped."""
    text = os.fsdecode(path) if isinstance(path, (bytes, os.PathLike)) else str(path)
    return _CONTROL.sub(lambda m: repr(m.group())[1:-1], text)


def _text(v) -> str | None:
    return v if isinstance(v, str) and v else None


def _whole(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _describe(recipe: dict) -> dict:
    """kind, prompt, search text, model and seed from a recipe (any JSON object: a damaged one gives less)."""
    images = recipe.get("images")
    if "sheet" in recipe and isinstance(images, list):
        kind = "sheet"
    elif recipe.get("figure") is not None:
        kind = "figure"
    elif isinstance(recipe.get("mode"), str) and _MODE.fullmatch(recipe["mode"]):
        kind = recipe["mode"]
    else:
        kind = "paint"
    stages = recipe.get("stages")
    first = stages[0] if isinstance(stages, list) and stages and isinstance(stages[0], dict) else {}
    model = _text(recipe.get("model")) or _text(first.get("model"))
    seed = recipe.get("seed") if _whole(recipe.get("seed")) else first.get("seed")
    prompt = _text(recipe.get("prompt"))
    said = [prompt, _text(recipe.get("to_prompt"))]
    if kind == "sheet":
        said += [_text(r.get("prompt")) for r in images if isinstance(r, dict)]
    return {"kind": kind, "prompt": prompt, "search": "\n".join(dict.fromkeys(s for s in said if s)).casefold(),
            "model": Path(model).name or model if model else None, "seed": str(seed) if _whole(seed) else None}


def _parameters_text(text: dict, recipe: dict | None) -> str | None:
    params = text.get("parameters")
    if isinstance(params, str) and params:
        return params
    if recipe is not None:
        try:
            return a1111_parameters(recipe)
        except Exception:  # noqa: BLE001 - a damaged recipe shows no "PNG info", it does not stop the index
            return None
    return None


class Gallery:
    """The index of one gallery folder; see the module docstring. ``ratings``: the RatingStore whose ratings are
    shown and given (default: the one ``noisebrush rate`` uses)."""

    def __init__(self, folder, ratings: RatingStore | None = None):
        folder = Path(os.fspath(folder)).expanduser()
        if os.path.lexists(folder) and not folder.is_dir():
            raise UserError(f"{_show(folder)}: is not a folder (a gallery is a folder of pictures)")
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise UserError(f"{_show(folder)}: cannot make the gallery folder here ({e.strerror or e})") from None
        self.folder = folder
        self.root = folder.resolve()
        self.index = self.root / _META / "gallery.sqlite"
        self.trash_dir = self.root / _TRASH
        self.ratings = ratings if ratings is not None else RatingStore()
        with self._db():
            pass

    # -- the index ------------------------------------------------------------------------------------------------
    def _open(self) -> sqlite3.Connection:
        meta = self.index.parent
        try:
            meta.mkdir(exist_ok=True)
        except OSError as e:
            raise UserError(f"{_show(meta)}: cannot make the gallery's index folder ({e.strerror or e})") from None
        if os.path.lexists(self.index) and not self.index.is_file():
            raise UserError(f"{_show(self.index)}: is not a file (the gallery's index is a SQLite file)")
        try:
            con = sqlite3.connect(str(self.index), timeout=10)
        except sqlite3.Error as e:
            raise UserError(f"{_show(self.index)}: cannot open the gallery's index ({e})") from None
        try:
            version = con.execute("PRAGMA user_version").fetchone()[0]
            tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if version > GALLERY_FORMAT:
                raise UserError(f"{_show(self.index)}: made by a newer noisebrush (gallery index format {version}); "
                                f"this one reads format {GALLERY_FORMAT}")
            if version == GALLERY_FORMAT and "entries" in tables:
                cols = {r[1] for r in con.execute("PRAGMA table_info(entries)")}
                if not set(_COLUMNS) <= cols:
                    raise UserError(f"{_show(self.index)}: not a gallery index (its 'entries' table lacks "
                                    f"{sorted(set(_COLUMNS) - cols)})")
            elif version == 0 and not tables - {"sqlite_sequence"}:
                con.execute("PRAGMA journal_mode = WAL")
                with con:
                    con.executescript(_SCHEMA + f"PRAGMA user_version = {GALLERY_FORMAT};")
            else:
                raise UserError(f"{_show(self.index)}: a SQLite database of something else (tables "
                                f"{sorted(tables)}); move it away and the gallery builds its index again")
        except sqlite3.Error as e:
            con.close()
            raise UserError(f"{_show(self.index)}: not a readable gallery index ({e}); move it away and the "
                            f"gallery builds its index again") from None
        except BaseException:
            con.close()
            raise
        return con

    @contextlib.contextmanager
    def _db(self):
        """One short-lived connection: committed on success, always closed; SQLite errors as one UserError line."""
        con = self._open()
        try:
            with con:
                yield con
        except sqlite3.Error as e:
            raise UserError(f"{_show(self.index)}: gallery index error ({e})") from None
        finally:
            con.close()

    # -- paths ----------------------------------------------------------------------------------------------------
    def _outside(self, relpath) -> UserError:
        return UserError(f"{_show(relpath) or repr(relpath)}: is outside the gallery ({_show(self.root)})")

    def _clean(self, relpath) -> str:
        """``relpath`` as a POSIX path relative to the gallery, refused when it could lead anywhere else."""
        if isinstance(relpath, bytes) or not isinstance(relpath, (str, os.PathLike)):
            raise self._outside(relpath)
        text = os.fspath(relpath)
        if not isinstance(text, str) or not text or "\x00" in text or os.path.isabs(text) \
                or text.startswith("~"):
            raise self._outside(relpath)
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:  # a name the file system gave as undecodable bytes
            raise self._outside(relpath) from None
        parts = PurePosixPath(text).parts
        if not parts or any(p.startswith(".") for p in parts):  # "..", hidden names (the index, the trash)
            raise self._outside(relpath)
        return "/".join(parts)

    def _inside(self, real: str) -> bool:
        """Whether a resolved path is a visible place inside the gallery (not the folder itself)."""
        try:
            rel = Path(real).relative_to(self.root)
        except ValueError:
            return False
        return bool(rel.parts) and not any(p.startswith(".") for p in rel.parts)

    def resolve(self, relpath) -> Path:
        """The absolute path of ``relpath`` (relative to the gallery; it need not exist yet), or a UserError
        ``… is outside the gallery`` for an absolute path, ``..``, a NUL byte, a hidden name, or a link (anywhere
        on the way) that leads out of the gallery or onto a hidden name."""
        rel = self._clean(relpath)
        path = self.root / rel
        if not self._inside(os.path.realpath(path)):
            raise self._outside(relpath)
        return path

    def _relative(self, path) -> str:
        """A file path (absolute, or relative to the current folder or to the gallery) → its gallery relpath."""
        if isinstance(path, (str, os.PathLike)) and not isinstance(path, bytes) and "\x00" not in os.fspath(path):
            p = Path(os.fspath(path))
            here = Path(os.path.abspath(p))
            if p.is_absolute() or os.path.lexists(here):
                for base in (self.root, Path(os.path.abspath(self.folder))):
                    with contextlib.suppress(ValueError):
                        return self._clean(here.relative_to(base).as_posix())
                with contextlib.suppress(ValueError, OSError):  # a link on the way to the gallery folder
                    return self._clean((here.parent.resolve() / here.name).relative_to(self.root).as_posix())
                if p.is_absolute():
                    raise self._outside(path)
        return self._clean(path)

    def _locate(self, ref) -> tuple[str, Path]:
        """An entry id (int) or a relpath → (relpath, absolute path)."""
        if _whole(ref):
            with self._db() as con:
                row = con.execute("SELECT path FROM entries WHERE id = ?", (ref,)).fetchone()
            if row is None:
                raise UserError(f"gallery entry {ref}: not in the gallery's index (scan again?)")
            ref = row[0]
        return self._clean(ref), self.resolve(ref)

    # -- reading one file -----------------------------------------------------------------------------------------
    def _explain_files(self, folder: Path, cache: dict) -> dict | None:
        """{file name: recipe} of an explanation folder (``explain.json`` lists its files), else None."""
        if folder not in cache:
            doc = None
            with contextlib.suppress(OSError, ValueError, RecursionError):
                j = folder / "explain.json"
                if j.is_file() and j.stat().st_size <= _EXPLAIN_BYTES:
                    doc = json.loads(j.read_text(encoding="utf-8"))
            files = doc.get("files") if isinstance(doc, dict) else None
            recipe = doc.get("recipe") if isinstance(doc, dict) and isinstance(doc.get("recipe"), dict) else None
            cache[folder] = {f: recipe for f in files if isinstance(f, str)} if isinstance(files, list) else None
        return cache[folder]

    def _read(self, rel: str, path: Path, st: os.stat_result, cache: dict) -> tuple:
        """The index row of one file; a file that cannot be decoded is ``unreadable``, never an error."""
        row = dict.fromkeys(_COLUMNS)
        row.update(path=rel, size=st.st_size, mtime_ns=st.st_mtime_ns, search="")
        suffix = path.suffix.lower()
        text, recipe, frames = {}, None, 1
        try:
            if suffix in STILL:
                with Image.open(path) as im:
                    frames = int(getattr(im, "n_frames", 1) or 1)
                    im.load()
                    text = dict(getattr(im, "text", {}) or {})
                    row["width"], row["height"] = im.size
                    # exactly as read_picture (what `noisebrush rate` hashes) converts it
                    rgb = im.convert("RGB") if frames == 1 else None
                if rgb is not None:
                    row["pixel_sha256"] = pixel_hash(as_pixels(rgb)[0])
            raw = text.get(RECIPE_KEY)
            with contextlib.suppress(ValueError, RecursionError):
                recipe = json.loads(raw) if isinstance(raw, str) else None
            recipe = recipe if isinstance(recipe, dict) and recipe else None
        except Exception:  # noqa: BLE001 - anything a damaged or hostile file raises while decoding
            row.update(kind="unreadable", width=None, height=None, pixel_sha256=None)
            return tuple(row[c] for c in _COLUMNS)
        explained = self._explain_files(path.parent, cache)
        if recipe is None and suffix in (".gif", ".mp4"):  # a morph's animation: its strip carries the recipe
            strip = path.with_name(f"{path.stem}-strip.png")
            with contextlib.suppress(Exception):  # noqa: BLE001 - no strip, or an unreadable one: no recipe
                if strip.is_file():
                    borrowed = read_recipe(strip)
                    recipe = borrowed if borrowed.get("mode") == "morph" else None
        if recipe is None and explained is not None and path.name in explained:
            recipe = explained[path.name]
        if recipe is not None:
            row.update(_describe(recipe), recipe=json.dumps(recipe, sort_keys=True))
        else:
            row["kind"] = "animation" if suffix == ".mp4" or frames > 1 else "picture"
            params = text.get("parameters")
            if isinstance(params, str) and params.strip():
                got = parse_a1111(params)
                row.update(prompt=got["prompt"] or None, search=got["prompt"].casefold(),
                           model=got.get("model"), seed=str(got["seed"]) if "seed" in got else None)
        if explained is not None and path.name in explained:
            row["kind"] = "explain"
        row["parameters"] = _parameters_text(text, recipe)
        return tuple(row[c] for c in _COLUMNS)

    def _files(self):
        """(relpath, absolute path, stat) of every file the gallery shows; one stat each (two for a link)."""
        stack = [(self.root, "")]
        while stack:
            folder, prefix = stack.pop()
            try:
                entries = list(os.scandir(folder))
            except OSError:
                continue
            for e in entries:
                name = e.name
                if name.startswith("."):
                    continue
                try:
                    name.encode("utf-8")
                    if e.is_dir(follow_symlinks=False):
                        stack.append((e.path, f"{prefix}{name}/"))
                        continue
                    if os.path.splitext(name)[1].lower() not in SUFFIXES:
                        continue
                    if e.is_symlink():
                        if not self._inside(os.path.realpath(e.path)):
                            continue
                        st = os.stat(e.path)
                    else:
                        st = e.stat(follow_symlinks=False)
                except (OSError, UnicodeEncodeError):
                    continue
                if stat.S_ISREG(st.st_mode):
                    yield f"{prefix}{name}", Path(e.path), st

    # -- public -----------------------------------------------------------------------------------------------------
    def scan(self) -> int:
        """Index new and changed files (by size and mtime_ns), forget the rows of files that are gone; returns the
        number of entries."""
        with self._db() as con:
            known = {p: (size, mtime) for p, size, mtime in con.execute("SELECT path, size, mtime_ns FROM entries")}
        seen, rows, cache = set(), [], {}
        for rel, path, st in self._files():
            seen.add(rel)
            if known.get(rel) != (st.st_size, st.st_mtime_ns):
                rows.append(self._read(rel, path, st, cache))
        gone = [(p,) for p in known.keys() - seen]
        with self._db() as con:
            if rows:
                con.executemany(_UPSERT, rows)
            if gone:
                con.executemany("DELETE FROM entries WHERE path = ?", gone)
            return int(con.execute("SELECT COUNT(*) FROM entries").fetchone()[0])

    def add(self, path) -> dict:
        """Index one file now (absolute, or relative to the current folder or to the gallery) → its entry."""
        rel = self._relative(path)
        where = self.resolve(rel)
        if where.suffix.lower() not in SUFFIXES:
            raise UserError(f"{_show(rel)}: not a kind of file the gallery shows ({', '.join(SUFFIXES)})")
        try:
            st = os.stat(where)
        except OSError:
            raise UserError(f"{_show(rel)}: no such file in the gallery ({_show(self.root)})") from None
        if not stat.S_ISREG(st.st_mode):
            raise UserError(f"{_show(rel)}: not a file")
        row = self._read(rel, where, st, {})
        with self._db() as con:
            con.execute(_UPSERT, row)
        return self._entries("WHERE e.path = ?", (rel,), 1, 0)[0]

    def _entries(self, where: str, args: tuple, limit: int, offset: int) -> list[dict]:
        rated = [(r["sha256"], r["rating"]) for r in self.ratings.ratings()]
        with self._db() as con:
            con.execute("CREATE TEMP TABLE rated (sha TEXT PRIMARY KEY, rating INTEGER NOT NULL)")
            con.executemany("INSERT OR REPLACE INTO temp.rated VALUES (?, ?)", rated)
            rows = con.execute(f"{_SELECT}, COALESCE(r.rating, 0) FROM entries e LEFT JOIN temp.rated r "
                               f"ON r.sha = e.pixel_sha256 {where} ORDER BY e.mtime_ns DESC, e.id DESC "
                               f"LIMIT ? OFFSET ?", (*args, limit, offset)).fetchall()
        out = []
        for id_, path, kind, prompt, model, seed, w, h, mtime_ns, recipe, params, sha, rating in rows:
            try:
                rec = json.loads(recipe) if recipe else None
            except (ValueError, RecursionError):
                rec = None
            out.append({"id": id_, "path": path, "kind": kind, "prompt": prompt, "model": model,
                        "seed": int(seed) if seed is not None else None, "width": w, "height": h,
                        "mtime": mtime_ns / 1e9, "recipe": rec, "parameters": params, "pixel_sha256": sha,
                        "rating": int(rating)})
        return out

    def query(self, words: str = "", model: str | None = None, rating: str | None = None, kind: str | None = None,
              limit: int = 200, offset: int = 0) -> list[dict]:
        """Entries, newest first. ``words``: every whitespace-separated word appears in the prompt (any case);
        ``model``, ``kind``: equal to; ``rating``: ``up``, ``down``, ``rated``, ``unrated`` (None or "": any);
        ``limit`` 1 … 1000, ``offset`` ≥ 0."""
        if words is not None and not isinstance(words, str):
            raise BadParameter(f"words: text, got {words!r}")
        if rating not in (None, "", *RATINGS):
            raise BadParameter(f"rating: one of {', '.join(RATINGS)} (or none), got {rating!r}")
        for name, value in (("model", model), ("kind", kind)):
            if value is not None and not isinstance(value, str):
                raise BadParameter(f"{name}: text, got {value!r}")
        whole("limit", limit, 1, 1000)
        whole("offset", offset, 0)
        where, args = [], []
        for w in (words or "").casefold().split():
            where.append("instr(e.search, ?) > 0")
            args.append(w)
        if model:
            where.append("e.model = ?")
            args.append(model)
        if kind:
            where.append("e.kind = ?")
            args.append(kind)
        if rating:
            where.append({"up": "r.rating = 1", "down": "r.rating = -1", "rated": "r.rating IS NOT NULL",
                          "unrated": "r.rating IS NULL"}[rating])
        return self._entries("WHERE " + " AND ".join(where) if where else "", tuple(args), limit, offset)

    def models(self) -> list[str]:
        """The models of the indexed pictures, for a filter."""
        with self._db() as con:
            rows = con.execute("SELECT DISTINCT model FROM entries WHERE model IS NOT NULL").fetchall()
        return sorted((r[0] for r in rows), key=lambda m: (m.casefold(), m))

    def rate(self, entry_id_or_relpath, up: bool) -> int:
        """Rate a picture up or down in the RatingStore (as ``noisebrush rate`` does) → its rating, +1 or -1."""
        if not isinstance(up, bool):
            raise BadParameter(f"up: True (up) or False (down), got {up!r}")
        rel, path = self._locate(entry_id_or_relpath)
        if not path.is_file():
            raise UserError(f"{_show(rel)}: no such file in the gallery ({_show(self.root)})")
        self.ratings.rate(path, up)
        return 1 if up else -1

    # -- the trash ------------------------------------------------------------------------------------------------
    def _move(self, src: Path, want: Path) -> Path:
        """``src`` moved to ``want`` or a free variant of it; never replaces a file, even one made meanwhile."""
        while True:
            dest = free_path(want)
            try:
                os.link(src, dest, follow_symlinks=False)
            except FileExistsError:
                continue
            except OSError:  # a file system without hard links: a rename onto the name just found free
                try:
                    os.rename(src, dest)
                except OSError as e:
                    raise UserError(f"{_show(src)}: cannot be moved to {_show(dest)} ({e.strerror or e})") from None
                return dest
            try:
                os.unlink(src)
            except OSError as e:
                os.unlink(dest)
                raise UserError(f"{_show(src)}: cannot be moved ({e.strerror or e})") from None
            return dest

    def delete(self, entry_id_or_relpath) -> Path:
        """Move a file into ``.trash/`` (under a free name) and drop its entry → where it is now."""
        rel, path = self._locate(entry_id_or_relpath)
        if not os.path.lexists(path) or path.is_dir():
            raise UserError(f"{_show(rel)}: no such file in the gallery ({_show(self.root)})")
        if path.suffix.lower() not in SUFFIXES:
            raise UserError(f"{_show(rel)}: not a kind of file the gallery shows ({', '.join(SUFFIXES)})")
        try:
            self.trash_dir.mkdir(exist_ok=True)
        except OSError as e:
            raise UserError(f"{_show(self.trash_dir)}: cannot make the gallery's trash ({e.strerror or e})") from None
        dest = self._move(path, self.trash_dir / path.name)
        note = {"path": rel, "deleted": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
        with contextlib.suppress(UserError, OSError):  # without its note, restore puts it at the top of the gallery
            atomic_write_text(self.trash_dir / f".{dest.name}.json", json.dumps(note) + "\n")
        with self._db() as con:
            con.execute("DELETE FROM entries WHERE path = ?", (rel,))
        return dest

    def trash(self) -> list[Path]:
        """The files in the trash, most recently deleted first."""
        if not self.trash_dir.is_dir():
            return []
        found = []
        for e in os.scandir(self.trash_dir):
            if not e.name.startswith(".") and (e.is_symlink() or e.is_file(follow_symlinks=False)):
                note = self.trash_dir / f".{e.name}.json"
                with contextlib.suppress(OSError):
                    found.append(((note if note.exists() else Path(e.path)).lstat().st_mtime_ns, e.name))
        return [self.trash_dir / name for _, name in sorted(found, key=lambda t: (-t[0], t[1]))]

    def restore(self, name) -> Path:
        """Put a trashed file (its name in the trash) back where it was, or under a free name beside that place if
        the name is taken meanwhile (or at the top of the gallery if its note is lost) → where it is now."""
        text = os.fspath(name) if isinstance(name, (str, os.PathLike)) and not isinstance(name, bytes) else None
        if not isinstance(text, str) or not text or "/" in text or "\x00" in text or text.startswith("."):
            raise UserError(f"{_show(name) or repr(name)}: not a name in the gallery's trash")
        src = self.trash_dir / text
        if not os.path.lexists(src) or src.is_dir():
            raise UserError(f"{_show(text)}: not in the gallery's trash ({_show(self.trash_dir)})")
        note = self.trash_dir / f".{text}.json"
        rel = text
        with contextlib.suppress(OSError, ValueError, RecursionError, TypeError, UserError):
            was = json.loads(note.read_text(encoding="utf-8"))["path"]
            self.resolve(was)
            rel = self._clean(was)
        target = self.resolve(rel)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise UserError(f"{_show(target.parent)}: cannot be made again ({e.strerror or e})") from None
        dest = self._move(src, target)
        with contextlib.suppress(OSError):
            note.unlink()
        with contextlib.suppress(UserError):  # back in place even if it cannot be indexed (the next scan tries)
            self.add(dest)
        return dest
