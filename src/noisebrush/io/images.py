"""Tensors ↔ pictures: [-1, 1] float tensors to uint8 / PIL, contact-sheet grids, atomic PNG writes.

    save_image(make_grid(images, cols=4), "out/grid.png")
"""
from __future__ import annotations

import math

import numpy as np
import torch
from PIL import Image

from noisebrush.io.atomic import atomic_path

__all__ = ["to_uint8", "to_pil", "make_grid", "save_image"]


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] float (…×C×H×W) → uint8 (…×C×H×W), rounded to nearest."""
    return ((x.detach().to(torch.float32).clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).cpu()


def to_pil(x: torch.Tensor) -> Image.Image | list[Image.Image]:
    """One C×H×W tensor → a PIL image; a batch N×C×H×W → a list."""
    if x.ndim == 4:
        return [to_pil(t) for t in x]
    a = to_uint8(x).permute(1, 2, 0).numpy()
    if a.shape[2] == 1:
        return Image.fromarray(a[:, :, 0], "L")
    return Image.fromarray(np.ascontiguousarray(a[:, :, :3]), "RGB")


def make_grid(images, cols: int | None = None, pad: int = 2, background=(255, 255, 255)) -> Image.Image:
    """Lay out PIL images (or an N×C×H×W tensor in [-1, 1]) as a contact sheet."""
    if isinstance(images, torch.Tensor):
        images = to_pil(images)
        images = images if isinstance(images, list) else [images]
    images = list(images)
    if not images:
        raise ValueError("make_grid: no images")
    cols = cols or math.ceil(math.sqrt(len(images)))
    rows = math.ceil(len(images) / cols)
    w = max(im.width for im in images)
    h = max(im.height for im in images)
    sheet = Image.new("RGB", (cols * w + (cols + 1) * pad, rows * h + (rows + 1) * pad), background)
    for i, im in enumerate(images):
        r, c = divmod(i, cols)
        sheet.paste(im.convert("RGB"), (pad + c * (w + pad), pad + r * (h + pad)))
    return sheet


def save_image(image: Image.Image, path, **png_kwargs) -> None:
    """Write a PNG atomically (temp file + rename)."""
    with atomic_path(path, suffix=".png") as tmp:
        image.save(tmp, format="PNG", **png_kwargs)
