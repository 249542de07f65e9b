"""Atomic writes: write to a temporary name in the target's folder, then ``os.replace`` it into place; and the check
that a place can be written at all, made before any work.

A crash or a kill at any moment leaves either the old file or the new one, never half of one. When the target's
folder cannot be written (read-only, no permission, no space), the work is not lost: it goes to a file in the
rescue folder (``$TMPDIR/noisebrush-rescued``) and a :class:`~noisebrush.errors.UserError` names both.

    check_writable("outputs/pictures", what="--out", folder=True)   # before painting: one clear line if not
    with atomic_path("out/model.safetensors") as tmp:
        safetensors.torch.save_file(tensors, tmp)
"""
from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from pathlib import Path

from noisebrush.errors import UserError

__all__ = ["atomic_path", "atomic_write_bytes", "atomic_write_text", "check_writable", "why_not_writable",
           "rescue_folder"]


def rescue_folder() -> Path:
    """Where work goes when its own place cannot be written: ``$TMPDIR/noisebrush-rescued`` (made if missing)."""
    folder = Path(tempfile.gettempdir()) / "noisebrush-rescued"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _why(e: OSError) -> str:
    return e.strerror or errno.errorcode.get(e.errno or 0, str(e))


def check_writable(path, *, what: str, folder: bool = False) -> Path:
    """A UserError naming ``what`` unless ``path`` can be written: a file (``folder=False``) or a folder whose files
    can be made. Missing folders on the way are fine when the nearest one that exists is writable (nothing is made
    here). Probes by making and removing a temporary file, which is what the later write needs (``os.access`` is
    wrong for root and for read-only mounts). Returns ``path`` as a Path."""
    path = Path(path)
    if not folder and path.is_dir():
        raise UserError(f"{path}: is a folder ({what} wants a file name)")
    if folder and path.exists() and not path.is_dir():
        raise UserError(f"{path}: exists and is not a folder ({what})")
    if not folder and path.exists() and not os.access(path, os.W_OK):
        raise UserError(f"{path}: cannot be written ({what}: no permission)")
    base = path if folder else path.parent
    probe = base if str(base) else Path(".")
    while not probe.exists():
        if probe.is_symlink() or probe.parent == probe:  # a dangling link, or nothing of the path exists
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise UserError(f"{probe}: is not a folder, so {path} cannot be made ({what})")
    why = why_not_writable(probe)
    if why is not None:
        raise UserError(f"{probe}: cannot write here ({what}: {why})")
    return path


def why_not_writable(folder) -> str | None:
    """None if a file can be made in the existing ``folder`` (a temporary file is made and removed), else why not
    ("Permission denied", "Read-only file system" …)."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=".noisebrush-write-check-", dir=folder)
    except OSError as e:
        return _why(e)
    os.close(fd)
    os.unlink(tmp)
    return None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path, *, suffix: str = ""):
    """Yield a temporary path next to ``path``; on success it replaces ``path``, on error it is removed.

    If ``path``'s folder cannot be made or written, the temporary file is made in :func:`rescue_folder` instead and,
    once written, a UserError says that ``path`` could not be written and where the work was kept."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{suffix}", dir=path.parent)
        problem = None
    except OSError as e:
        problem = e
        fd, tmp = tempfile.mkstemp(prefix=f"{path.stem}-", suffix=path.suffix or suffix, dir=rescue_folder())
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the permissions open() would
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())  # again: some writers replace the file they were given
        if problem is None:
            os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    if problem is not None:
        raise UserError(f"{path}: cannot be written ({_why(problem)}); the work is kept in {tmp}")


def atomic_write_bytes(path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())


def atomic_write_text(path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))
