"""PNGs that carry their own recipe.

Every picture noisebrush writes holds two text chunks:

* ``noisebrush`` — the full recipe as JSON (prompt, sampler, steps, CFG scale, seed, size, σ range, model name
  and weights hash, noisebrush version), which ``noisebrush reproduce`` paints again;
* ``parameters`` — the same in the AUTOMATIC1111 layout (``prompt`` newline ``Steps: 20, Sampler: …, CFG scale: …,
  Seed: …, Size: WxH, Model hash: …, Model: …, Version: …``), so other tools' "PNG info" readers show it.

    save_png(image, "out/sun.png", recipe)
    recipe = read_recipe("out/sun.png")              # a UserError if it carries none
    picture, recipe = read_picture("any.png")         # RGB, and its recipe or None
    fields = parse_a1111(text)                        # any A1111-style "parameters" text → our field names
    fields = read_parameters("any.png")               # a form's fields: the recipe's, else the A1111 chunk's

``parse_a1111`` reads what AUTOMATIC1111 (and the tools that write its layout) put in "parameters": the prompt
line(s), an optional ``Negative prompt:`` line, and a last line of ``Key: value`` pairs (a value with commas is
quoted). Known keys become our fields (``steps``, ``sampler`` by our names, ``cfg``, ``seed``, ``size`` or
``width``/``height``, ``model``); every other key is kept under ``extra``. It never raises: text that is not in
that layout is all prompt.
"""
from __future__ import annotations

import json
import math
import re
from pathlib import Path

from PIL import Image, PngImagePlugin, UnidentifiedImageError

from noisebrush.errors import UserError
from noisebrush.io.atomic import atomic_path

__all__ = ["save_png", "read_recipe", "read_picture", "a1111_parameters", "parse_a1111", "read_parameters",
           "RECIPE_KEY"]

RECIPE_KEY = "noisebrush"


def _short(model):
    """A model folder's name (the JSON chunk keeps the full path for `noisebrush reproduce`)."""
    return Path(model).name if isinstance(model, str) and model else model


def a1111_parameters(recipe: dict) -> str:
    fields = [("Steps", recipe.get("steps")), ("Sampler", recipe.get("sampler")), ("CFG scale", recipe.get("cfg")),
              ("Seed", recipe.get("seed")), ("Size", f"{recipe.get('width')}x{recipe.get('height')}"),
              ("Model hash", recipe.get("model_hash")), ("Model", _short(recipe.get("model"))),
              ("Version", f"noisebrush {recipe.get('noisebrush')}")]
    line = ", ".join(f"{k}: {v}" for k, v in fields if v is not None)
    head = str(recipe.get("prompt", ""))
    if recipe.get("negative"):
        head += f"\nNegative prompt: {recipe['negative']}"
    return f"{head}\n{line}"


def save_png(image: Image.Image, path, recipe: dict) -> Path:
    """Write ``image`` with its recipe, atomically."""
    info = PngImagePlugin.PngInfo()
    info.add_text(RECIPE_KEY, json.dumps(recipe, sort_keys=True))
    info.add_text("parameters", a1111_parameters(recipe))
    path = Path(path)
    with atomic_path(path, suffix=".png") as tmp:
        image.save(tmp, format="PNG", pnginfo=info)
    return path


def _open(path: Path, *, rgb: bool) -> tuple[Image.Image | None, dict]:
    """The picture's text chunks, and the picture itself as RGB when ``rgb``; a clear UserError if unreadable."""
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    try:
        with Image.open(path) as im:
            im.load()
            text = dict(getattr(im, "text", {}) or {})
            picture = im.convert("RGB") if rgb else None
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError, ValueError) as e:
        raise UserError(f"{path}: not a readable image ({e})") from None
    return picture, text


def read_picture(path) -> tuple[Image.Image, dict | None]:
    """Any picture file as RGB, with the recipe it carries, or None when it carries none (or an unreadable one).

    An image that cannot be read is a UserError, as in :func:`read_recipe`.
    """
    path = Path(path)
    picture, text = _open(path, rgb=True)
    try:
        recipe = json.loads(text[RECIPE_KEY]) if RECIPE_KEY in text else None
    except (json.JSONDecodeError, RecursionError):
        recipe = None
    return picture, recipe if isinstance(recipe, dict) and recipe else None


def read_recipe(path) -> dict:
    """The recipe a noisebrush PNG carries; a clear UserError for anything else."""
    path = Path(path)
    _, text = _open(path, rgb=False)
    raw = text.get(RECIPE_KEY)
    if raw is None:
        raise UserError(f"{path}: carries no noisebrush parameters (was it written by noisebrush?)")
    try:
        recipe = json.loads(raw)
    except (json.JSONDecodeError, RecursionError):
        raise UserError(f"{path}: its noisebrush parameters are not valid JSON") from None
    if not isinstance(recipe, dict) or not recipe:
        raise UserError(f"{path}: its noisebrush parameters are empty or not a JSON object")
    return recipe


# -- reading A1111-style "parameters" -----------------------------------------------------------------------------
# Other tools' sampler names → ours (noisebrush.diffusion.samplers.SAMPLERS; io does not import the engine, which
# would load torch, so the names are listed here and a test checks them). Schedule suffixes ("Karras" …) are
# dropped: a model folder records its schedule. SDE and ancestral variants map to our stochastic sampler of the
# nearest order; names with no counterpart (LMS, PLMS, DPM2 …) are not mapped.
_OUR_SAMPLERS = ("euler", "ddim", "heun", "dpmpp_2m", "dpmpp_3m", "ipndm", "ipndm_v", "unipc", "ddpm",
                 "euler_ancestral", "dpmpp_2m_sde", "langevin", "adaptive", "gan")
_SAMPLER_NAMES = {
    "euler a": "euler_ancestral", "euler ancestral": "euler_ancestral", "euler_a": "euler_ancestral",
    "euler": "euler", "heun": "heun", "ddim": "ddim", "ddpm": "ddpm",
    "dpm++ 2m": "dpmpp_2m", "dpmpp_2m": "dpmpp_2m", "dpm++ 3m": "dpmpp_3m", "dpmpp_3m": "dpmpp_3m",
    "ipndm": "ipndm", "ipndm_v": "ipndm_v", "unipc": "unipc",
    "dpm++ 2m sde": "dpmpp_2m_sde", "dpm++ 2m sde gpu": "dpmpp_2m_sde", "dpm++ 2m sde heun": "dpmpp_2m_sde",
    "dpmpp_2m_sde": "dpmpp_2m_sde", "dpmpp_2m_sde_gpu": "dpmpp_2m_sde",
    "dpm++ sde": "dpmpp_2m_sde", "dpm++ sde gpu": "dpmpp_2m_sde", "dpmpp_sde": "dpmpp_2m_sde",
    "dpmpp_sde_gpu": "dpmpp_2m_sde", "dpm++ 3m sde": "dpmpp_2m_sde", "dpmpp_3m_sde": "dpmpp_2m_sde",
    "dpm++ 2s a": "euler_ancestral", "dpmpp_2s_ancestral": "euler_ancestral",
    "dpm adaptive": "adaptive", "langevin": "langevin", "adaptive": "adaptive",
}
_SCHEDULE_SUFFIXES = (" karras", " exponential", " polyexponential", " uniform", " simple", " sgm uniform",
                      " beta", " normal", " automatic")
_KEY = re.compile(r"\w[\w \-/().+']*")
_SIZE = re.compile(r"(\d{1,6})x(\d{1,6})")
_KNOWN_KEYS = {"Steps", "Sampler", "CFG scale", "Seed", "Size", "Model", "Model hash", "Version",
               "Schedule type", "Denoising strength", "Clip skip"}


def _our_sampler(name: str) -> str | None:
    n = " ".join(name.lower().split())
    if n in _OUR_SAMPLERS:
        return n
    if n in _SAMPLER_NAMES:
        return _SAMPLER_NAMES[n]
    for suffix in _SCHEDULE_SUFFIXES:
        if n.endswith(suffix) and n[: -len(suffix)] in _SAMPLER_NAMES:
            return _SAMPLER_NAMES[n[: -len(suffix)]]
    return None


def _unquote(raw: str) -> str:
    try:
        v = json.loads(raw)
    except (ValueError, RecursionError):
        return raw[1:-1]
    return v if isinstance(v, str) else raw[1:-1]


def _pairs(line: str) -> list[tuple[str, str]] | None:
    """``Key: value, Key: "quoted, value", …`` → pairs, or None when ``line`` is not entirely such pairs. Linear in
    the length of the line (no regular expression backtracks over it)."""
    pairs, i, n = [], 0, len(line)
    while i < n:
        j = line.find(":", i)
        if j < 0:
            return None if line[i:].strip() else pairs or None
        key = line[i:j].strip()
        if len(key) > 64 or not _KEY.fullmatch(key):
            return None
        k = j + 1
        while k < n and line[k] == " ":
            k += 1
        if k < n and line[k] == '"':
            m = k + 1
            while m < n and line[m] != '"':
                m += 2 if line[m] == "\\" else 1
            if m >= n:
                return None
            value, m = _unquote(line[k:m + 1]), m + 1
            while m < n and line[m] == " ":
                m += 1
            if m < n and line[m] != ",":
                return None
        else:
            m = line.find(",", k)
            m = n if m < 0 else m
            value = line[k:m].strip()
        pairs.append((key, value))
        i = m + 1
    return pairs or None


def _int(v: str) -> int | None:
    v = v.strip()
    return int(v) if re.fullmatch(r"[+-]?\d{1,30}", v) else None


def parse_a1111(text: str) -> dict:
    """An A1111-style "parameters" text → ``{"prompt", "negative", "extra", …}`` with ``steps`` (int), ``sampler``
    (our name; an unknown one is kept as ``sampler_name`` instead), ``cfg`` (float), ``seed`` (int), ``size`` (int,
    for a square ``WxH``) or ``width``/``height``, and ``model`` when the text has them; ``extra`` holds every other
    key (and a known key whose value could not be read) as text. Never raises: anything not in that layout is the
    prompt. The inverse of :func:`a1111_parameters` for prompt, negative prompt, steps, sampler, CFG scale, seed,
    size and model name."""
    out: dict = {"prompt": "", "negative": "", "extra": {}}
    if not isinstance(text, str):
        return out
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    while len(lines) > 1 and not lines[-1].strip():
        lines.pop()
    pairs = _pairs(lines[-1])
    if pairs is not None and (len(pairs) >= 3 or any(k in _KNOWN_KEYS for k, _ in pairs)):
        lines.pop()
    else:
        pairs = []
    prompt, negative, in_negative = [], [], False
    for line in lines:
        if not in_negative and line.startswith("Negative prompt:"):
            in_negative, line = True, line[len("Negative prompt:"):].lstrip()
        (negative if in_negative else prompt).append(line)
    out["prompt"], out["negative"] = "\n".join(prompt).strip(), "\n".join(negative).strip()
    extra = out["extra"]
    for key, value in pairs:
        if key == "Steps" and _int(value) is not None:
            out["steps"] = _int(value)
        elif key == "Sampler" and value:
            ours = _our_sampler(value)
            if ours is None:
                out.pop("sampler", None)
                out["sampler_name"] = value
            else:
                out.pop("sampler_name", None)
                out["sampler"] = ours
        elif key == "CFG scale" and _is_number(value):
            out["cfg"] = float(value)
        elif key == "Seed" and _int(value) is not None:
            out["seed"] = _int(value)
        elif key == "Size" and _SIZE.fullmatch(value.strip()):
            w, h = (int(x) for x in _SIZE.fullmatch(value.strip()).groups())
            for k in ("size", "width", "height"):
                out.pop(k, None)
            out.update({"size": w} if w == h else {"width": w, "height": h})
        elif key == "Model" and value:
            out["model"] = value
        else:
            extra[key] = value
    return out


def _is_number(v: str) -> bool:
    try:
        return math.isfinite(float(v)) and len(v) < 40
    except (ValueError, OverflowError):
        return False


def _whole(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _recipe_fields(recipe: dict) -> dict:
    """The form fields a noisebrush recipe records (those with a usable value), ``n`` = 1 and the recipe itself."""
    base = recipe
    stages = recipe.get("stages")
    if recipe.get("mode") == "upscale" and isinstance(stages, list) and stages and isinstance(stages[0], dict):
        base = {**stages[0], **{k: v for k, v in recipe.items() if v is not None}}  # an upscale: its first stage
    out: dict = {"prompt": base["prompt"] if isinstance(base.get("prompt"), str) else "",
                 "negative": base["negative"] if isinstance(base.get("negative"), str) else ""}
    if _whole(base.get("steps")):
        out["steps"] = base["steps"]
    if isinstance(base.get("sampler"), str) and base["sampler"]:
        out["sampler"] = base["sampler"]
    cfg = base.get("cfg")
    if isinstance(cfg, (int, float)) and not isinstance(cfg, bool) and math.isfinite(cfg):
        out["cfg"] = float(cfg)
    if _whole(base.get("seed")):
        out["seed"] = base["seed"]
    w, h = base.get("width"), base.get("height")
    if _whole(w) and _whole(h):
        out.update({"size": w} if w == h else {"width": w, "height": h})
    if isinstance(base.get("model"), str) and base["model"]:
        out["model"] = base["model"]
    out["n"] = 1
    out["recipe"] = recipe
    return out


def read_parameters(path) -> dict:
    """The painting parameters a picture carries, as a form's fields: from its noisebrush recipe when it has one
    (``prompt``, ``negative``, ``steps``, ``sampler``, ``cfg``, ``seed``, ``size`` or ``width``/``height``,
    ``model``, ``n`` = 1, and ``recipe``: the whole recipe), else from an A1111-style "parameters" chunk
    (:func:`parse_a1111`). A UserError (one line) if it carries neither or cannot be read."""
    path = Path(path)
    _, text = _open(path, rgb=False)
    raw = text.get(RECIPE_KEY)
    if isinstance(raw, str):
        try:
            recipe = json.loads(raw)
        except (ValueError, RecursionError):
            recipe = None
        if isinstance(recipe, dict) and recipe:
            return _recipe_fields(recipe)
    params = text.get("parameters")
    if isinstance(params, str) and params.strip():
        return parse_a1111(params)
    raise UserError(f"{path}: carries no painting parameters (neither a noisebrush recipe nor A1111-style "
                    f"parameters)")
