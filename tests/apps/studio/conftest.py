"""A real studio server for the tests that talk to it over HTTP or drive it in a browser.

The start/stop logic lives in :mod:`noisebrush.bench.launch` (the studio benchmark uses it too); its names
are re-exported here."""
from __future__ import annotations

import pytest

from noisebrush.bench.launch import Server, free_port, rss, start_studio, stop_studio

__all__ = ["Server", "free_port", "rss", "start_studio", "stop_studio"]


@pytest.fixture(scope="module")
def studio_server(tmp_path_factory):
    """One studio per test module (starting one costs ~10 s: gradio and torch imports)."""
    server = start_studio(tmp_path_factory.mktemp("studio"))
    try:
        yield server
    finally:
        stop_studio(server.proc)
