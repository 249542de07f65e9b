"""Deterministic seeds from tuples of integers (SplitMix64), so every random draw is a pure function of where it is
used (run seed, step, sample index …) and never of process, batch or history. Python's ``hash`` is not used: it is
salted per process for strings.
"""
from __future__ import annotations

import secrets

import torch

__all__ = ["mix", "generator", "pick_seed"]

_MASK = (1 << 64) - 1


def _splitmix(z: int) -> int:
    z = (z + 0x9E3779B97F4A7C15) & _MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
    return z ^ (z >> 31)


def mix(*values: int) -> int:
    """A 63-bit seed from any number of integers."""
    z = 0x6E6F697365627275  # "noisebru"
    for v in values:
        z = _splitmix(z ^ (int(v) & _MASK))
    return z & ((1 << 63) - 1)


def generator(*values: int) -> torch.Generator:
    return torch.Generator().manual_seed(mix(*values))


def pick_seed(seed: int | None) -> int:
    """``seed``, or a fresh random one (0 ≤ s < 2³¹, from the operating system) when it is None: the front ends'
    default, printed and recorded so the picture can be painted again."""
    return secrets.randbelow(2 ** 31) if seed is None else seed
