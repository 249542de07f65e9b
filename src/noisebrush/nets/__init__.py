"""Denoiser networks: the magnitude-preserving UNet over 1–3 spatial dims, and the frozen text encoder.

``noisebrush.nets.text`` loads sentence-transformers only when a TextEncoder is first used.
"""
from noisebrush.nets.unet import UNet, UNetConfig

__all__ = ["UNet", "UNetConfig"]
