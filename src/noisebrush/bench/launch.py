"""A studio in a child process on a free loopback port, for what talks to a real one over HTTP: the studio
benchmark (``python -m noisebrush.bench studio``) and the tests.

    server = start_studio(Path("/tmp/run"), "--queue", "6")   # returns once it answers; gallery/ and home/ inside
    try:
        ...  # server.url, server.gallery, server.proc (rss(server.proc) for its memory)
    finally:
        stop_studio(server.proc)

It is ``noisebrush studio`` itself (``python -m noisebrush studio``), on 127.0.0.1 only, with its own
``NOISEBRUSH_HOME`` inside the folder (so the ratings store of the user is never touched); its output goes to
``studio.log`` in the folder. Nothing here imports gradio or torch.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Server", "free_port", "start_studio", "stop_studio", "rss"]

READY = "noisebrush studio: http"  # the line `serve` prints once it listens


@dataclass
class Server:
    url: str
    port: int
    gallery: Path
    home: Path
    proc: subprocess.Popen
    log: Path


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_studio(folder: Path, *args: str, timeout: float = 120.0, env: dict | None = None) -> Server:
    """``noisebrush studio`` in a child process (its own process group) on a free loopback port, its gallery,
    home and log inside ``folder``, more flags in ``args``; returns once it listens. RuntimeError (with the end of
    its log) when it exits or does not listen within ``timeout`` seconds (then it is stopped)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    gallery, home, log = folder / "gallery", folder / "home", folder / "studio.log"
    env = {**os.environ, "NOISEBRUSH_HOME": str(folder / "nbhome"), "PYTHONUNBUFFERED": "1", **(env or {})}
    cmd = [sys.executable, "-m", "noisebrush", "studio", "--port", str(port), "--gallery", str(gallery),
           "--home", str(home), *args]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                start_new_session=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the studio exited with {proc.returncode}: {log.read_text(errors='replace')[-2000:]}")
        if READY in log.read_text(errors="replace"):
            return Server(f"http://127.0.0.1:{port}/", port, gallery, home, proc, log)
        time.sleep(0.25)
    stop_studio(proc)
    raise RuntimeError(f"the studio did not start in {timeout:.0f} s: {log.read_text(errors='replace')[-2000:]}")


def stop_studio(proc: subprocess.Popen) -> None:
    """Ctrl-C to the studio's process group, then SIGKILL if it has not ended within 20 s."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGINT)
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        except ProcessLookupError:
            proc.wait(10)


def rss(proc: subprocess.Popen) -> int:
    """Resident memory of the studio process and its children, in bytes (0 once it has ended)."""
    import psutil  # lazy: only the benchmark and the tests measure

    try:
        p = psutil.Process(proc.pid)
        total = p.memory_info().rss
        for child in p.children(recursive=True):
            try:
                total += child.memory_info().rss
            except psutil.Error:
                pass
        return total
    except psutil.Error:
        return 0
