"""PNGs that carry their own recipe.

Every picture noisebrush writes holds two text chunks:

* ``noisebrush`` — the full recipe as JSON (prompt, sampler, steps, CFG scale, seed, size, σ range, model name
  and weights hash, noisebrush version), which ``noisebrush reproduce`` paints again;
* ``parameters`` — the same in the AUTOMATIC1111 layout (``prompt`` newline ``Steps: 20, Sampler: …, CFG scale: …,
  Seed: …, Size: WxH, Model hash: …, Model: …, Version: …``), so other tools' "PNG info" readers show it.

    save_png(image, "out/sun.png", recipe)
    recipe = read_recipe("out/sun.png")              # a UserError if it carries none
    picture, recipe = read_picture("any.png")         # RGB, and its recipe or None
"""
from __future__ import annotations

import json
from pathlib import Path

from PIL import Image, PngImagePlugin, UnidentifiedImageError

from noisebrush.errors import UserError
from noisebrush.io.atomic import atomic_path

__all__ = ["save_png", "read_recipe", "read_picture", "a1111_parameters", "RECIPE_KEY"]

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
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
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
