"""noisebrush: make art with diffusion models.

    import noisebrush
    pipe = noisebrush.load("builtin")
    images = pipe("a red sun over purple mountains", steps=20, seed=7, n=4)   # → PIL images, each with its recipe
    noisebrush.save(images[0], "sun.png")              # a PNG that `noisebrush info` / `reproduce` read
    tensors, recipes = pipe.generate("a red sun", seed=7, n=4)                # → N×3×H×W in [-1, 1], recipe dicts
    big = noisebrush.cascade("builtin", size=128)("a red sun", seed=7)       # 128 px through super-resolution

The engine lives in :mod:`noisebrush.diffusion`, networks in :mod:`noisebrush.nets` (the registry of network names
in :mod:`noisebrush.nets.registry`), data in :mod:`noisebrush.data`, model folders in
:mod:`noisebrush.io.model_folder`, training in :mod:`noisebrush.train`, painting in :mod:`noisebrush.paint`; the
command line is ``noisebrush --help``.
"""

__version__ = "0.1.0"

import json
from pathlib import Path

from noisebrush.errors import BadParameter, UserError

__all__ = ["UserError", "__version__", "load", "cascade", "save"]


def load(model="builtin", *, device=None, lora=None, runtime: str = "torch", onnx=None):
    """Load the built-in model or a model folder for painting (see :mod:`noisebrush.paint.pipeline`); ``lora``: LoRA
    files to merge in ("FILE" or "FILE:weight", several add up); ``runtime="onnx"``: run the network in ONNX Runtime
    (``onnx``: a graph from ``noisebrush export``; default: this model's fp32 graph, exported once into a cache)."""
    # `import noisebrush` (the CLI's --help, the errors module) must stay instant (0.02 s)
    from noisebrush.paint.pipeline import load as _load  # lazy: torch and the networks take about 4 s

    return _load(model, device=device, lora=lora, runtime=runtime, onnx=onnx)


def cascade(base="builtin", *, size: int = 128, stages=None, device=None, lora=None, **stage_options):
    """Paint at ``size`` px through super-resolution stages: ``base`` (a model folder or "builtin") paints at its own
    size and the stages (default: the built-in ones) upscale (see :mod:`noisebrush.paint.cascade`)."""
    from noisebrush.paint.cascade import cascade as _cascade  # lazy: torch and the networks take about 4 s

    return _cascade(base, size=size, stages=stages, device=device, lora=lora, **stage_options)


def save(image, path, recipe: dict | None = None):
    """Write a picture from ``pipe(...)`` as a PNG that carries its recipe (the ``noisebrush`` text chunk, as every
    picture the CLI writes), so ``noisebrush info`` shows and ``noisebrush reproduce`` repaints it. The recipe is
    ``image.info["noisebrush"]`` (attached by the Pipeline; Pillow's own ``image.save`` drops it) unless given.
    Returns the path; overwrites like Pillow does."""
    from noisebrush.io.png import RECIPE_KEY, save_png  # lazy: Pillow; `import noisebrush` stays instant

    if not hasattr(image, "save") or not isinstance(getattr(image, "info", None), dict):
        raise BadParameter(f"image: a PIL image from pipe(...), got {type(image).__name__}")
    if recipe is None:
        text = image.info.get(RECIPE_KEY)
        try:
            recipe = json.loads(text) if isinstance(text, str) else text
        except (ValueError, RecursionError):
            recipe = None
        if not isinstance(recipe, dict) or not recipe:
            raise BadParameter("image: carries no noisebrush recipe (image.info['noisebrush']); pass recipe=")
    elif not isinstance(recipe, dict):
        raise BadParameter(f"recipe: a dict (a recipe from pipe.generate), got {type(recipe).__name__}")
    if Path(path).suffix.lower() != ".png":
        raise BadParameter(f"path: {path} — noisebrush.save writes PNG (the recipe lives in a PNG text chunk); "
                           f"name it .png")
    return save_png(image, path, recipe)
