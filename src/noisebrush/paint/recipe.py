"""Painting a picture again from its recipe — the dict every painting records (and every PNG noisebrush writes
carries): ``Pipeline.recipe`` builds it; this module checks what it names and replays it.

    from noisebrush.io.png import read_recipe
    from noisebrush.paint import recipe as recipes

    rec = read_recipe("outputs/a-red-sun-s7.png")
    pipe = recipes.load_pipeline(rec, where="a-red-sun-s7.png")      # its model (+ LoRAs), hashes checked
    for one in recipes.pictures(rec, where="a-red-sun-s7.png"):      # a contact sheet lists several
        images, again = recipes.replay(pipe, one, where="a-red-sun-s7.png")

A recipe names its model folder (absolute path, or "builtin") with the first 10 hex digits of the weights' SHA-256,
its LoRA files with theirs, the runtime when it is not torch (``"runtime": "onnx"``, and an ONNX graph given to the
painting by path and hash, :func:`runtime_of`: a replay paints through the same runtime, pixel for pixel), and — for edits — the source picture and mask by file name (no folder: a shared picture
reveals none; 0.1 wrote absolute paths, still read) with a SHA-256 prefix. Sources are looked for next to the picture
and in the current folder, or given (``replay(..., files={"source": ..., "mask": ...})``, the CLI's ``--source`` /
``--mask``); every file is checked before painting, and a missing or changed file is one
:class:`noisebrush.errors.UserError` line that names it. Modes: plain painting (any modality; the size comes back through the model's
:class:`noisebrush.paint.modality.Modality`), ``vary``, ``inpaint`` and ``outpaint`` (images). A morph's strip is
not replayed here (``noisebrush morph`` paints it from the options its recipe lists).

Same recipe, same pixels: :func:`replay` passes exactly the options the painting function recorded — the prompt as
typed (with its ``(word:1.3)`` weights) and the ``negative`` prompt when there was one (absent: none) — so the result
is bit-identical on the same machine (see ``tests/paint/test_recipe_fixtures.py`` for PNGs written by 0.1).
"""
from __future__ import annotations

import contextlib
import math
from pathlib import Path

import torch

from noisebrush.errors import UserError
from noisebrush.io.hashing import file_sha256
from noisebrush.nets.text import escape_weights
from noisebrush.paint import animate, edit, sculpt
from noisebrush.paint.guides import guides_from_recipe
from noisebrush.paint import palette as _palette  # noqa: F401  (registers the palette guide for replays)
from noisebrush.paint.cascade import Cascade, replay_stages, stages_of
from noisebrush.paint.pipeline import Pipeline, load
from noisebrush.paint.runtime import RUNTIMES
from noisebrush.paint.upscale import as_pictures

__all__ = ["pictures", "lora_files", "runtime_of", "source_file", "load_pipeline", "replay", "EDIT_MODES"]

EDIT_MODES = ("vary", "inpaint", "outpaint")
MODES = (*EDIT_MODES, "upscale", "animate", "sculpt")


def pictures(recipe: dict, *, where="recipe") -> list[dict]:
    """The recipes of the pictures a recipe stands for: a contact sheet's list (``"sheet"`` with ``"images"``), else
    the recipe itself. UserError for a morph's strip and for a sheet that lists none."""
    if not isinstance(recipe, dict):
        raise UserError(f"{where}: its recipe is not a set of noisebrush parameters")
    if recipe.get("mode") == "morph":
        raise UserError(f"{where}: is a morph's strip; paint it again with `noisebrush morph` and the options its "
                        f"recipe lists (`noisebrush info {where}`)")
    if recipe.get("figure") == "stages":
        raise UserError(f"{where}: is a figure of a cascade's stages; reproduce the picture itself (the PNG of the "
                        f"same name without -stages)")
    parts = recipe.get("images") if "sheet" in recipe else [recipe]
    if not isinstance(parts, list) or not parts or not all(isinstance(r, dict) for r in parts):
        raise UserError(f"{where}: its contact-sheet recipe lists no pictures")
    return parts


def lora_files(recipe: dict, *, where="recipe") -> list[tuple[Path, float]] | None:
    """The LoRA files a recipe names as ``(path, weight)`` pairs (``None`` when none), each checked against the
    SHA-256 prefix the recipe recorded."""
    specs = []
    named = recipe.get("lora") or []
    if not isinstance(named, list) or not all(isinstance(d, dict) for d in named):
        raise UserError(f"{where}: its recipe's 'lora' is not a list of LoRA files")
    for d in named:
        f = Path(str(d.get("file", "")))
        weight = d.get("weight", 1.0)
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight):
            raise UserError(f"{where}: its recipe gives the LoRA {f} the weight {weight!r:.40}, not a number")
        try:
            there = f.is_file()
        except (OSError, ValueError):  # a name the file system cannot hold
            there = False
        if not there:
            raise UserError(f"{where}: was painted with the LoRA {f}, which is not there any more")
        if d.get("hash") and file_sha256(f)[:10] != d["hash"]:
            raise UserError(f"{where}: the LoRA {f} has changed since the picture was painted")
        specs.append((f, float(weight)))
    return specs or None


def runtime_of(recipe: dict, *, where="recipe") -> tuple[str, Path | None]:
    """(the runtime a recipe was painted with, the ONNX graph file it names or None). Absent: torch (every recipe
    before issue 19). A graph given to the painting is recorded by path and SHA-256 prefix, like a LoRA file, and
    checked here; without one the model's cached fp32 graph is used (:func:`noisebrush.paint.runtime.cached_graph`),
    exported again when missing — the same trace of the same weights."""
    runtime = recipe.get("runtime", "torch")
    if runtime not in RUNTIMES:
        raise UserError(f"{where}: was painted with the runtime {runtime!r:.40}, which this noisebrush does not have")
    named = recipe.get("onnx")
    if runtime != "onnx" or not named:
        return runtime, None
    if not isinstance(named, dict) or not isinstance(named.get("file"), str):
        raise UserError(f"{where}: its recipe's 'onnx' does not name a graph file")
    f = Path(named["file"])
    try:
        there = f.is_file()
    except (OSError, ValueError):
        there = False
    if not there:
        raise UserError(f"{where}: was painted with the ONNX graph {f}, which is not there any more")
    if named.get("hash") and file_sha256(f)[:10] != named["hash"]:
        raise UserError(f"{where}: the ONNX graph {f} has changed since the picture was painted")
    return runtime, f


def _search_folders(where, search) -> list[Path]:
    """Where :func:`source_file` looks for a file by name: ``search`` when given, else the folder of the recipe's
    picture (``where``, when it names a file) and the current folder."""
    if search is not None:
        return [Path(d) for d in search]
    folders = []
    with contextlib.suppress(OSError, ValueError):
        if Path(str(where)).is_file():
            folders.append(Path(str(where)).parent)
    folders.append(Path.cwd())
    return list(dict.fromkeys(folders))


def source_file(recipe: dict, key: str, *, where="recipe", search=None, given=None) -> Path:
    """A file an edit recipe names under ``key`` ("source": its input picture, "mask"), checked against the SHA-256
    prefix it recorded (``key + "_sha256"``).

    Recipes name the file by its name only (0.1 recorded an absolute path). ``given`` (the CLI's ``--source`` /
    ``--mask``) is used when passed; otherwise an absolute path the recipe names is tried first, then the name in
    each folder of ``search`` — by default the folder of the recipe's picture (``where``, when it is a file) and the
    current folder. The first candidate whose SHA-256 prefix matches is the file; one clear UserError otherwise."""
    sha = recipe.get(f"{key}_sha256")
    sha = sha if isinstance(sha, str) and sha else None
    flag = f"--{key}"
    if given is not None:
        f = Path(given)
        if not f.is_file():
            raise UserError(f"{flag} {f}: no such file")
        if sha and file_sha256(f)[:len(sha)] != sha:
            raise UserError(f"{flag} {f}: not the {key} {where} was painted from (its SHA-256 differs)")
        return f
    named = recipe.get(key)
    if not isinstance(named, str) or not named.strip():
        raise UserError(f"{where}: was painted from a picture given in memory; it cannot be painted again")
    candidates = []
    try:
        p = Path(named)
        if p.is_absolute():
            candidates.append(p)
        name = p.name
    except (TypeError, ValueError):
        name = ""
    folders = _search_folders(where, search)
    if name and name not in (".", ".."):
        candidates += [d / name for d in folders]
    changed = None
    for f in dict.fromkeys(candidates):
        try:
            if not f.is_file():
                continue
        except (OSError, ValueError):  # a name the file system cannot hold (a NUL, too long)
            continue
        if not sha or file_sha256(f)[:len(sha)] == sha:
            return f
        changed = changed or f
    if changed is not None:
        raise UserError(f"{where}: {changed} has changed since the picture was painted from it (pass {flag} with the "
                        f"original)")
    looked = ", ".join(str(d) for d in folders)
    raise UserError(f"{where}: was painted from {Path(named).name or named!r}, which is not there (looked in "
                    f"{looked}); pass {flag} FILE")


def load_pipeline(recipe: dict, *, model=None, device=None, where="recipe", hint: str = "--model") -> Pipeline:
    """The pipeline a recipe was painted with: its model folder (or ``model`` instead), its LoRA files merged in,
    and the weights checked against the hash it recorded. ``hint`` says, in the error lines, how the user names
    another model folder (the CLI's ``--model``)."""
    named = recipe.get("model", "builtin")
    if recipe.get("mode") == "upscale":  # an upscaled picture: its first stage stands for the model
        stages = recipe.get("stages")
        first = stages[0] if isinstance(stages, list) and stages and isinstance(stages[0], dict) else {}
        named, recipe = first.get("model"), first
    if model is None and not (isinstance(named, str) and named):
        raise UserError(f"{where}: its recipe names no model; pass {hint}")
    runtime, graph = runtime_of(recipe, where=where)
    pipe = load(model or named, device="cpu" if runtime == "onnx" else device, lora=lora_files(recipe, where=where),
                runtime=runtime, onnx=graph)
    if recipe.get("model_hash") and recipe["model_hash"] != pipe.hash:
        raise UserError(f"{where}: was painted with model weights {recipe['model_hash']}, but "
                        f"{model or named} has {pipe.hash}; pass {hint} with the original folder")
    return pipe


def _name(rec: dict, key: str) -> str:
    """A name the recipe records (a sampler's): text, else TypeError (a replay turns it into one line)."""
    v = rec[key]
    if not isinstance(v, str):
        raise TypeError(f"{key} {v!r:.40} is not a name")
    return v


def _prompt(rec: dict) -> str:
    """The recorded prompt as the pipeline must read it: a recipe written before prompt weighting (it lacks
    ``prompt_syntax``) painted ``(``, ``)`` and ``\\`` literally, so they are escaped to paint the same again."""
    prompt = rec.get("prompt", "")
    if isinstance(prompt, str) and "prompt_syntax" not in rec and any(c in prompt for c in "()\\"):
        return escape_weights(prompt)
    return prompt


def _options(rec: dict) -> dict:
    """The options every mode records, read back (KeyError, TypeError or ValueError when the recipe lacks one)."""
    opts = dict(prompt=_prompt(rec), steps=int(rec["steps"]), seed=int(rec["seed"]), n=1,
                cfg=float(rec["cfg"]), label=rec.get("label"), guidance=guides_from_recipe(rec.get("guidance")) or None)
    if rec.get("negative"):  # absent: none (recipes before negative prompts, and those painted without one)
        opts["negative"] = rec["negative"]
    return opts


def _mode_options(pipe: Pipeline, rec: dict, mode: str | None) -> dict:
    """The keyword arguments of the painting function that made the recipe (mode None: ``generate``)."""
    opts = _options(rec)
    # a learned schedule's σ levels, as recorded (the folder's learned file may have changed since); a recipe
    # without them was painted on the folder's own schedule, and is replayed on it even where a learned one appeared
    levels = rec["sigmas"] if rec.get("sigmas") is not None else False
    if mode is None:
        return opts | {"sampler": _name(rec, "sampler"), "sigma_min": rec.get("sigma_min"),
                       "sigma_max": rec.get("sigma_max"), "size": pipe.modality.size_from_recipe(rec),
                       "sigmas": levels}
    opts["size"] = int(rec["resized_short"]) if rec.get("resized_from") else None
    if mode == "vary":
        return opts | {"strength": float(rec["strength"]), "sampler": _name(rec, "sampler"), "sigmas": levels}
    if mode == "animate":
        opts.pop("size"), opts.pop("guidance")
        return opts | {"sampler": _name(rec, "sampler"), "frames": int(rec["frames"]), "loop": bool(rec.get("loop"))}
    if mode == "sculpt":
        opts.pop("size"), opts.pop("guidance")
        opts |= {"resolution": int(rec["resolution"]), "sigma_min": rec.get("sigma_min"),
                 "sigma_max": rec.get("sigma_max")}
        if rec.get("keep") is not None:
            return opts | {"keep": str(rec["keep"]), "jump_length": int(rec["jump_length"]), "jumps": int(rec["jumps"])}
        opts["sampler"] = _name(rec, "sampler")
        return opts | ({"strength": float(rec["strength"])} if "strength" in rec else {})
    opts |= {"jump_length": int(rec["jump_length"]), "jumps": int(rec["jumps"])}
    return opts | ({"extend": rec["extend"]} if mode == "outpaint" else {})


def replay(pipe: Pipeline, recipe: dict, *, where="recipe", callback=None, search=None,
           files: dict | None = None) -> tuple[torch.Tensor, list[dict]]:
    """Paint one picture again from its recipe → (1×C×(axes) tensor in [-1, 1], [its recipe]), as the painting
    function that made it returned them. Modes: plain (any modality), ``vary``, ``inpaint``, ``outpaint``; the files
    an edit names are found and checked first (:func:`source_file`, with ``search`` and ``files["source"]`` /
    ``files["mask"]`` as its ``given``). ``where`` names the recipe's origin in error lines (and, when it is the
    picture's path, where its source files are looked for); ``callback(StepInfo)`` sees every step."""
    if not isinstance(recipe, dict):
        raise UserError(f"{where}: its recipe is not a set of noisebrush parameters")
    mode = recipe.get("mode")
    if mode is not None and mode not in MODES:
        raise UserError(f"{where}: unknown painting mode {mode!r} in its recipe")
    files = files or {}
    if mode == "upscale" or "stages" in recipe:  # super-resolution stages after the base painting (or a file)
        return _replay_cascade(pipe, recipe, mode, where=where, callback=callback, search=search, files=files)
    try:
        opts = _mode_options(pipe, recipe, mode)
    except (KeyError, TypeError, ValueError, OverflowError) as e:  # ValueError includes BadParameter
        raise UserError(f"{where}: incomplete noisebrush parameters ({e})") from None
    prompt = opts.pop("prompt")
    if mode is None:
        return pipe.generate(prompt, callback=callback, **opts)
    if mode == "sculpt":
        shape = source_file(recipe, "source", where=where, search=search, given=files.get("source")) \
            if recipe.get("source") else None
        return sculpt.sculpt(pipe, prompt, source=shape, callback=callback, **opts)
    if mode == "animate":
        return _replay_animation(pipe, recipe, prompt, opts, where=where, callback=callback, search=search,
                                 files=files)
    source = source_file(recipe, "source", where=where, search=search, given=files.get("source"))
    mask = source_file(recipe, "mask", where=where, search=search, given=files.get("mask")) if mode == "inpaint" \
        else None
    # the edit functions themselves: a replay paints the recorded prompt, even "", without the Pipeline's warning
    if mode == "vary":
        return edit.vary(pipe, source, prompt, callback=callback, **opts)
    if mode == "inpaint":
        return edit.inpaint(pipe, source, mask, prompt, callback=callback, **opts)
    extend = opts.pop("extend")
    return edit.outpaint(pipe, source, extend, prompt, callback=callback, **opts)


def _replay_animation(pipe: Pipeline, recipe: dict, prompt: str, opts: dict, *, where, callback, search, files):
    """A clip painted by :func:`noisebrush.paint.animate.animate`: its pictures (``source``: the first frame,
    ``to``: the last) found and checked, then the same windows painted again."""
    first = source_file(recipe, "source", where=where, search=search, given=files.get("source")) \
        if recipe.get("source") else None
    last = source_file(recipe, "to", where=where, search=search, given=files.get("to")) if recipe.get("to") else None
    return animate.animate(pipe, prompt, first=first, last=last, callback=callback, **opts)


def _replay_cascade(pipe: Pipeline, recipe: dict, mode: str | None, *, where, callback, search, files: dict):
    """A recipe with super-resolution ``"stages"``: the base painting replayed and upscaled; an upscaled file
    (``mode: "upscale"``) upscaled again; an edit at full size (``base_scale``) done again through the cascade its
    stages describe (:class:`noisebrush.paint.cascade.Cascade`, which pastes the known pixels back)."""
    prompt = _prompt(recipe)
    if mode == "upscale":
        source = source_file(recipe, "source", where=where, search=search, given=files.get("source"))
        x, stages = replay_stages(as_pictures(source, "source")[0], recipe["stages"], prompt, where=where,
                                  device=pipe.device, negative=recipe.get("negative"), callback=callback)
        keep = {k: recipe[k] for k in ("mode", "prompt", "source", "source_sha256") if k in recipe}
        return x, [{**keep, "stages": stages, "width": x.shape[-1], "height": x.shape[-2]}]
    casc = Cascade(pipe, stages_of(recipe["stages"], where=where, device=pipe.device))
    base = {k: v for k, v in recipe.items() if k != "stages"}
    if not base.get("base_scale"):  # painted (or edited) at the base's size, then upscaled
        images, again = replay(pipe, base, where=where, callback=callback, search=search, files=files)
        return casc.finish(images, again, prompt, negative=recipe.get("negative"), callback=callback)
    try:
        opts = _mode_options(pipe, base, mode)
    except (KeyError, TypeError, ValueError, OverflowError) as e:
        raise UserError(f"{where}: incomplete noisebrush parameters ({e})") from None
    opts.pop("prompt"), opts.pop("size", None), opts.pop("n", None)
    source = source_file(recipe, "source", where=where, search=search, given=files.get("source"))
    if mode == "vary":
        return casc.vary(source, prompt, n=1, callback=callback, **opts)
    if mode == "inpaint":
        mask = source_file(recipe, "mask", where=where, search=search, given=files.get("mask"))
        return casc.inpaint(source, mask, prompt, n=1, callback=callback, **opts)
    opts.pop("extend", None)
    return casc.outpaint(source, recipe.get("extend_full"), prompt, n=1, callback=callback, **opts)
