"""Data: the built-in procedural art set and the user's own image folders.

Both return items as dicts: ``image`` (float32 3×H×W in [-1, 1]), ``caption``, ``label``, ``index``
(ProceduralArt adds ``attrs``, ImageFolder adds ``path``).
"""
from noisebrush.data.folder import ImageFolder
from noisebrush.data.procedural import ATTRIBUTES, COLOURS, FAMILIES, ProceduralArt, decode_attrs

__all__ = ["ATTRIBUTES", "COLOURS", "FAMILIES", "ImageFolder", "ProceduralArt", "decode_attrs"]
