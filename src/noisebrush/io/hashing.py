"""The SHA-256 of a file, read in 1 MiB chunks: model weights, LoRA files and the pictures an edit started from are
named in recipes by a prefix of it (``file_sha256(path)[:10]``)."""
from __future__ import annotations

import hashlib

__all__ = ["file_sha256"]


def file_sha256(path) -> str:
    """The full hex SHA-256 of the file at ``path``."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
