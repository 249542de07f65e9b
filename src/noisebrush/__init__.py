"""noisebrush: make art with diffusion models.

    import noisebrush
    pipe = noisebrush.load("builtin")
    pipe("a red sun over purple mountains", steps=20, seed=7, n=4)   # → PIL images

The engine lives in :mod:`noisebrush.diffusion`, networks in :mod:`noisebrush.nets`, data in :mod:`noisebrush.data`,
training in :mod:`noisebrush.train`; the command line is ``noisebrush --help``.
"""

__version__ = "0.1.0"

from noisebrush.errors import UserError

__all__ = ["UserError", "__version__", "load"]


def load(model="builtin", *, device=None, lora=None):
    """Load the built-in model or a model folder for painting (see :mod:`noisebrush.paint.pipeline`); ``lora``: LoRA
    files to merge in ("FILE" or "FILE:weight", several add up)."""
    from noisebrush.paint.pipeline import load as _load

    return _load(model, device=device, lora=lora)
