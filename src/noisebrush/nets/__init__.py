"""Denoiser networks: the magnitude-preserving UNet over 1–3 spatial dims, and the frozen text encoder.

:mod:`noisebrush.nets.registry` maps the network named in a model folder's config.json to its class
(``registry.build(config)``); a new network joins with ``registry.register(name, cls, config_cls)``.

``noisebrush.nets.text`` loads sentence-transformers only when a TextEncoder is first used.
"""
from noisebrush.nets import registry
from noisebrush.nets.unet import UNet, UNetConfig

__all__ = ["UNet", "UNetConfig", "registry"]
