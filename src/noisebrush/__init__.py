"""noisebrush: make art with diffusion models.

    import noisebrush
    pipe = noisebrush.load("builtin")
    pipe("a red sun over purple mountains", steps=20, seed=7, n=4)   # → PIL images

The engine lives in :mod:`noisebrush.diffusion`, networks in :mod:`noisebrush.nets` (the registry of network names
in :mod:`noisebrush.nets.registry`), data in :mod:`noisebrush.data`, model folders in
:mod:`noisebrush.io.model_folder`, training in :mod:`noisebrush.train`, painting in :mod:`noisebrush.paint`; the
command line is ``noisebrush --help``.
"""

__version__ = "0.1.0"

from noisebrush.errors import UserError

__all__ = ["UserError", "__version__", "load"]


def load(model="builtin", *, device=None, lora=None):
    """Load the built-in model or a model folder for painting (see :mod:`noisebrush.paint.pipeline`); ``lora``: LoRA
    files to merge in ("FILE" or "FILE:weight", several add up)."""
    # `import noisebrush` (the CLI's --help, the errors module) must stay instant (0.02 s)
    from noisebrush.paint.pipeline import load as _load  # lazy: torch and the networks take about 4 s

    return _load(model, device=device, lora=lora)
