"""Animations: a list of pictures → GIF (Pillow) and MP4 (H.264 through imageio-ffmpeg's bundled ffmpeg).

    save_gif(frames, "morph.gif", fps=12)
    save_mp4(frames, "morph.mp4", fps=12)

Frames are enlarged by pixel repetition (``zoom``) so a 32-pixel picture stays sharp in a player; MP4 frames are
padded to multiples of 16 (H.264's macroblock). Both are written to a temporary file and renamed.
"""
from __future__ import annotations

from pathlib import Path

import imageio.v2 as iio2
import imageio.v3 as iio
import numpy as np
import torch

from noisebrush.checks import number, whole
from noisebrush.errors import BadParameter
from noisebrush.io.atomic import atomic_path
from noisebrush.io.images import to_uint8

__all__ = ["frames_uint8", "save_gif", "save_mp4"]


def frames_uint8(frames, zoom: int = 1) -> np.ndarray:
    """F×H×W×3 uint8 from an F×3×H×W tensor in [-1, 1] or a list of PIL images, enlarged ``zoom`` times."""
    whole("zoom", zoom, 1, 64)
    if torch.is_tensor(frames):
        a = to_uint8(frames).permute(0, 2, 3, 1).numpy()
    else:
        a = np.stack([np.asarray(f.convert("RGB")) for f in frames])
    if a.ndim != 4 or a.shape[0] < 1:
        raise BadParameter("frames: need at least one picture")
    if zoom > 1:
        a = a.repeat(zoom, axis=1).repeat(zoom, axis=2)
    return np.ascontiguousarray(a)


def _check_fps(fps) -> float:
    return number("fps", fps, 0.1, 60)


def save_gif(frames, path, *, fps: float = 12.0, zoom: int = 1, loop: bool = True) -> Path:
    """An endless (``loop``) or once-played GIF at ``fps`` frames per second (delays of whole milliseconds, ≥ 20)."""
    a = frames_uint8(frames, zoom)
    ms = max(20, round(1000 / _check_fps(fps)))
    path = Path(path)
    with atomic_path(path, suffix=".gif") as tmp:
        iio.imwrite(tmp, a, extension=".gif", plugin="pillow", loop=0 if loop else 1,
                    duration=[ms] * len(a) if len(a) > 1 else ms)
    return path


def save_mp4(frames, path, *, fps: float = 12.0, zoom: int = 1, quality: int = 8) -> Path:
    """H.264 (yuv420p, plays everywhere). Needs imageio-ffmpeg (a dependency; it bundles ffmpeg)."""
    a = frames_uint8(frames, zoom)
    f, h, w, _ = a.shape
    ph, pw = -h % 16, -w % 16
    if ph or pw:
        a = np.pad(a, ((0, 0), (0, ph), (0, pw), (0, 0)), mode="edge")
    path = Path(path)
    with atomic_path(path, suffix=".mp4") as tmp:
        writer = iio2.get_writer(str(tmp), format="FFMPEG", mode="I", fps=_check_fps(fps), codec="libx264",
                                 quality=quality, pixelformat="yuv420p", macro_block_size=16,
                                 ffmpeg_log_level="error")
        try:
            for frame in a:
                writer.append_data(frame)
        finally:
            writer.close()
    return path
