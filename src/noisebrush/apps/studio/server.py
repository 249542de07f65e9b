"""Serving the studio: gradio's page mounted on a FastAPI app behind our own ASGI guards, run by uvicorn.

What it protects against (the README's "Studio safety" says the same to users): other machines (loopback unless
``--listen``, and ``--listen`` needs accounts unless ``--insecure``), other web sites driving it from a browser (no
cross-origin POST or websocket, Host checked on loopback against DNS rebinding), files outside its folders (gradio
serves only the gallery and its own upload cache; hidden folders of the gallery are blocked), hostile uploads (the
safe reader, size and pixel limits), runaway requests (bounded parameters, a bounded queue). What it does not:
it speaks plain HTTP (put it behind an HTTPS proxy to cross an untrusted network), accounts all have the same
rights, and a signed-in user can fill the disk within the queue's and the limits' pace.
"""
from __future__ import annotations

import os
import socket
import sys
import threading

from noisebrush.errors import UserError

__all__ = ["prepare_environment", "serve", "make_app", "port_free"]


def prepare_environment(settings) -> None:
    """Before gradio is imported: no analytics or update checks (nothing reaches the network), its upload cache
    inside the studio's uploads folder, Hugging Face offline."""
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["GRADIO_TEMP_DIR"] = str((settings.uploads / ".gradio").absolute())
    os.environ.setdefault("GRADIO_SSR_MODE", "False")


def port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def make_app(studio, *, host: str, users: list, allowed_origins=()):
    """The ASGI app: the page (with gradio's login when ``users``) behind the same-origin and header guards."""
    # lazy: gradio and the pages import after prepare_environment (gradio reads its settings when imported)
    import gradio as gr
    from fastapi import FastAPI  # lazy: as gradio

    from noisebrush.apps.studio.app import CSS, THEME, build  # lazy: imports gradio
    from noisebrush.apps.studio.safety import (LOOPBACK_HOSTS,  # lazy: torch (data.folder)
                                                SameOriginMiddleware, SecurityHeadersMiddleware,
                                               make_auth_check)

    s = studio.settings
    page = build(studio)
    api = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    gallery = s.gallery.absolute()
    api = gr.mount_gradio_app(
        api, page, path="", auth=make_auth_check(users) if users else None,
        auth_message="noisebrush studio" if users else None,
        allowed_paths=[str(gallery)],
        blocked_paths=[str(gallery / ".noisebrush"), str(gallery / ".trash"), str(s.models.absolute()),
                       str(s.datasets.absolute())],
        max_file_size=s.limits.upload_bytes, show_error=True, ssr_mode=False, footer_links=[], theme=THEME, css=CSS,
        mcp_server=False, pwa=False)
    loopback = host in ("127.0.0.1", "localhost", "::1")
    guarded = SameOriginMiddleware(api, allowed_origins=allowed_origins,
                                   allowed_hosts=LOOPBACK_HOSTS if loopback else None)
    outer = SecurityHeadersMiddleware(guarded)
    # gradio's own close() sets these to end the pages' heartbeat streams; serve() does it on Ctrl-C
    outer.stop_events = [r.app.stop_event for r in api.routes if hasattr(getattr(r, "app", None), "stop_event")]
    return outer


def _warm_up(studio) -> None:
    try:
        studio.models.warm_up()
    except Exception as e:  # the first painting job will say what is wrong, in the page
        print(f"warning: the built-in model did not load ahead ({type(e).__name__}: {e})", file=sys.stderr,
              flush=True)


def serve(settings, *, port: int, host: str, users: list, allowed_origins=(), ready=None) -> None:
    """Run the studio until Ctrl-C. ``ready(url)`` is called once it listens."""
    prepare_environment(settings)
    if not port_free(host, port):
        raise UserError(f"--port {port}: already in use on {host} (another studio? pick another --port)")
    # lazy: uvicorn and the studio's pages import gradio (after prepare_environment)
    import uvicorn

    from noisebrush.apps.studio.core import Studio  # lazy: torch, gradio's settings

    studio = Studio(settings)
    app = make_app(studio, host=host, users=users, allowed_origins=allowed_origins)
    # the built-in model loads while the server starts answering (a page that paints at once waits for it)
    threading.Thread(target=_warm_up, args=(studio,), name="noisebrush-warm-up", daemon=True).start()
    # Ctrl-C: open pages (their event streams) get 3 s to close, not forever (uvicorn's default waits for them)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False, lifespan="on",
                            timeout_graceful_shutdown=3)
    server = uvicorn.Server(config)
    url = f"http://{host if ':' not in host else f'[{host}]'}:{port}/"

    async def started():
        print(f"noisebrush studio: {url}  (gallery {settings.gallery}, models {settings.models}; Ctrl-C stops it)",
              flush=True)
        if ready is not None:
            ready(url)

    orig_startup = server.startup

    async def startup(sockets=None):
        await orig_startup(sockets=sockets)
        if server.started:
            await started()
    server.startup = startup
    orig_shutdown = server.shutdown

    async def shutdown(sockets=None):
        for stop in getattr(app, "stop_events", ()):  # open pages' streams end now, so Ctrl-C is prompt
            stop.set()
        await orig_shutdown(sockets=sockets)
    server.shutdown = shutdown
    server.run()
    sys.stdout.flush()
