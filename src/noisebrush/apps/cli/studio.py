"""``noisebrush studio``: the web studio (gradio) on this machine — paint, edit, morph, explain, gallery, training.

    noisebrush studio                                  # http://127.0.0.1:7860/, pictures in ./outputs
    noisebrush studio --gallery ~/art --port 8000
    noisebrush studio --listen --auth-file ~/.noisebrush/studio-users   # others on the network, with accounts

It serves on 127.0.0.1 unless ``--listen``; ``--listen`` without ``--auth``/``--auth-file`` is refused unless
``--insecure``. Everything is checked before the server starts.

Lazy imports: gradio (~7 s) and torch are imported inside the command, after the studio's environment is set
(gradio reads it when imported).
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from noisebrush.apps.cli.app import DB_HELP, DEVICE, app
from noisebrush.checks import whole

__all__ = ["studio"]


@app.command()
def studio(port: int = typer.Option(7860, "--port", help="the port to serve on"),
           listen: bool = typer.Option(False, "--listen", help="serve on every network interface (0.0.0.0), not "
                                                               "only this machine; needs --auth or --auth-file"),
           auth: Optional[str] = typer.Option(None, "--auth", help="USER:PASS: sign-in needed to use the studio"),
           auth_file: Optional[Path] = typer.Option(None, "--auth-file", help="a file of USER:PASS lines"),
           insecure: bool = typer.Option(False, "--insecure", help="allow --listen without accounts (anyone on "
                                                                   "your network can paint, train and read the "
                                                                   "gallery)"),
           gallery: Path = typer.Option(Path("outputs"), "--gallery", help="the pictures' folder (the CLI's "
                                                                           "default --out, so its pictures show too)"),
           home: Optional[Path] = typer.Option(None, "--home", help="models/ and uploads/ (default: "
                                                                    "$NOISEBRUSH_HOME/studio)"),
           queue: int = typer.Option(16, "--queue", help="painting jobs that may wait; one more is told the queue "
                                                         "is full"),
           jobs: int = typer.Option(1, "--jobs", help="painting jobs that run at once (a model is never used by "
                                                      "two at once)"),
           origin: list[str] = typer.Option([], "--origin", help="another origin allowed to POST, e.g. the "
                                                                 "https:// address of a proxy in front"),
           db: Optional[Path] = typer.Option(None, "--db", help=DB_HELP),
           device: str = DEVICE):
    """Open the web studio: paint with a live preview, edit, morph, explain, a gallery with ratings, training."""
    from noisebrush.apps.studio.core import Limits, Settings  # lazy: the ratings store imports torch
    from noisebrush.apps.studio.safety import check_exposure, parse_auth
    from noisebrush.apps.studio.server import serve  # lazy: gradio, after the environment is set
    from noisebrush.io.outputs import check_folder  # lazy: torch
    from noisebrush.workflows.preference import home as noisebrush_home  # lazy: torch

    whole("--port", port, 1, 65535)
    users = parse_auth(auth, auth_file)
    host = check_exposure(None, listen, users, insecure)
    check_folder(gallery, what="--gallery")
    home = home if home is not None else noisebrush_home() / "studio"
    check_folder(home, what="--home")
    settings = Settings(gallery=gallery, home=home, device=device, ratings=db,
                        limits=Limits(queue=queue, jobs=jobs).checked())
    serve(settings, port=port, host=host, users=users, allowed_origins=origin)
