"""``noisebrush rate`` and ``noisebrush prefs``: teach noisebrush what you like (see :mod:`noisebrush.workflows.preference`).

    noisebrush rate outputs/a-flower-s3.png outputs/a-flower-s4.png up
    noisebrush rate outputs/a-grid-s9.png down
    noisebrush prefs              # how many ratings, where they are
    noisebrush prefs fit          # fit the preference, report its accuracy, save it
    noisebrush prefs clear --yes  # forget every rating

Every command takes ``--db FILE`` (default ``$NOISEBRUSH_HOME/ratings.sqlite``; ``NOISEBRUSH_HOME`` is
``~/.noisebrush`` unless set).

Lazy imports: noisebrush.workflows.preference imports torch, so it is imported inside the commands: `noisebrush
--help` takes 0.3 s without torch and 3.5 s with it at the top of any command module.
"""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from noisebrush.apps.cli.app import DB_HELP, app
from noisebrush.errors import BadParameter, UserError

_VERDICTS = {"up": True, "down": False}


def _store(db: Optional[Path]):
    from noisebrush.workflows.preference import RatingStore  # lazy: torch (see the module docstring)

    return RatingStore(db)


def _counts(c: dict) -> str:
    stale = f", {c['stale']} from another feature network (ignored)" if c["stale"] else ""
    return f"{c['up']} up, {c['down']} down{stale}"


@app.command()
def rate(args: List[str] = typer.Argument(..., metavar="IMAGE... up|down",
                                          help="one or more pictures, then 'up' (you like them) or 'down'"),
         db: Optional[Path] = typer.Option(None, "--db", help=DB_HELP)):
    """Rate pictures up or down; `noisebrush paint --best-of N` and `--prefer S` paint more of what you like."""
    if len(args) < 2:
        raise BadParameter("rate: name one or more pictures, then up or down (e.g. noisebrush rate a.png up)")
    *images, verdict = args
    if verdict.lower() not in _VERDICTS:
        raise BadParameter(f"rate: the last word must be up or down, got {verdict!r}")
    up = _VERDICTS[verdict.lower()]
    from noisebrush.workflows.preference import as_pixels  # lazy: torch

    paths = [Path(p) for p in images]
    for p in paths:  # every file is read before any rating is stored
        as_pixels(p)
    store = _store(db)
    for p in paths:
        store.rate(p, up)
    typer.echo(f"rated {len(paths)} picture{'s' * (len(paths) != 1)} {verdict.lower()} → {store.path} "
               f"({_counts(store.count())})")


@app.command()
def prefs(action: str = typer.Argument("show", help="show, fit or clear"),
          db: Optional[Path] = typer.Option(None, "--db", help=DB_HELP),
          yes: bool = typer.Option(False, "--yes", help="clear: really delete every rating")):
    """Your ratings: show how many, fit the preference model (and say how accurate it is), or clear them."""
    from noisebrush.workflows.preference import load_preference  # lazy: torch

    if action not in ("show", "fit", "clear"):
        raise BadParameter(f"prefs: show, fit or clear, got {action!r}")
    store = _store(db)
    c = store.count()
    if action == "show":
        typer.echo(f"{store.path}: {c['total']} rating{'s' * (c['total'] != 1)} ({_counts(c)})")
        if c["up"] and c["down"]:
            typer.echo("fit the preference with: noisebrush prefs fit")
        else:
            typer.echo("rate pictures up and down to learn a preference: noisebrush rate IMAGE... up|down")
        return
    if action == "clear":
        if not yes:
            raise UserError(f"prefs clear: this deletes all {c['total']} ratings in {store.path}; add --yes")
        n = store.clear()
        typer.echo(f"deleted {n} rating{'s' * (n != 1)} from {store.path}")
        return
    model = load_preference(store)
    m = model.meta
    cv = (f", cross-validated {m['cv_accuracy']:.0%} ({m['cv_folds']}-fold)" if m.get("cv_accuracy") is not None
          else " (too few ratings of one kind to cross-validate)")
    typer.echo(f"fitted on {m['n_up'] + m['n_down']} ratings ({m['n_up']} up, {m['n_down']} down): "
               f"accuracy {m['train_accuracy']:.0%} on them{cv} (balanced)")
    typer.echo(f"preference {model.hash} → {model.path}")
    typer.echo("paint with it: noisebrush paint PROMPT --best-of 8, or --prefer 1")
