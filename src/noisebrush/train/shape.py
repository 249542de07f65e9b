"""The shape objective: text → 3-D shape as diffusion on truncated signed-distance grids (issue 17).

    noisebrush train --task shape --config configs/shape.toml --out ~/noisebrush-runs/shape

:class:`ShapeObjective` is :class:`~noisebrush.train.objectives.EDMObjective` — the same EDM loss, loop,
checkpoints, exact resume and N processes — on a volumetric UNet (``dims = 3``, not factorised; ``patch = 2``
folds each 2×2×2 block of cells into channels so a 32³ grid costs what a 16³ one does) over
:class:`~noisebrush.data.shapes.ProceduralShapes`: every sample is a 1×R×R×R grid (sdf / 0.2 in [-1, 1]) and its
caption, drawn from the sample stream like the pictures. Grids are computed as they are needed (about 8 ms a
32³ shape on one core, against a training step of a second or more), so nothing is cached. Previews are shaded
views of the sampled grids (:func:`noisebrush.io.render3d.render_grid`), one per sample.
"""
from __future__ import annotations

import numpy as np
import torch

from noisebrush.data.shapes import TRUNCATION, ProceduralShapes
from noisebrush.io.render3d import render_grid
from noisebrush.nets.unet import UNetConfig
from noisebrush.train.objectives import EDMObjective

__all__ = ["ShapeObjective", "PREVIEW_SIZE"]

PREVIEW_SIZE = 64  # pixels of a preview's shaded view


class ShapeObjective(EDMObjective):
    """EDM on ProceduralShapes' grids, text-conditioned (see the module docstring). ``dataset``: the shapes
    (default: ProceduralShapes of the config's resolution and data_size, seed 0)."""

    def _prepare_data(self) -> None:
        if self.dataset is None:
            self.dataset = ProceduralShapes(resolution=self.cfg.resolution, size=self.cfg.data_size, seed=0)
        super()._prepare_data()
        self._cache_images = False

    def _image(self, index: int, epoch: int) -> dict:
        s = self.dataset.shape(index)
        grid = self.dataset.grid(index)
        return {"image": torch.from_numpy(grid)[None], "caption": s.caption, "index": index}

    def _network_config(self) -> UNetConfig:
        cfg = self.cfg
        return UNetConfig.from_dict({"resolution": cfg.resolution, **cfg.model, **self._cond_dims(), "dims": 3,
                                     "in_channels": 1})

    def run_info(self) -> dict:
        return {**super().run_info(), "task": "shape"}

    @torch.no_grad()
    def sample(self, n: int = 16, steps: int | None = None, seeds=None) -> torch.Tensor:
        """Shaded views (N×3×P×P in [-1, 1]) of the grids the EMA network paints for the preview captions."""
        grids = super().sample(n, steps, seeds)
        views = [render_grid(g[0].numpy(), size=PREVIEW_SIZE, scale=TRUNCATION) for g in grids]
        return torch.from_numpy(np.stack(views)).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)

    def model_config(self) -> dict:
        return {**super().model_config(), "task": "shape", "shape": {"truncation": TRUNCATION}}
