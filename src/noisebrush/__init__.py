"""noisebrush: make art with diffusion models.

The engine lives in :mod:`noisebrush.diffusion`; see ``python -m noisebrush.bench samplers --quick``.
"""

__version__ = "0.1.0"

from noisebrush.errors import UserError

__all__ = ["UserError", "__version__"]
