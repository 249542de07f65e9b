"""The ``noisebrush`` command line: a thin typer app over the Python API, one module per command group.

    noisebrush paint "a red sun over purple mountains" -n 4 --seed 7            (paint.py)
    noisebrush vary outputs/a-red-sun-s7.png --strength 0.5                      (edit.py: vary, inpaint, outpaint,
    noisebrush inpaint picture.png "a yellow moon" --mask mask.png                morph)
    noisebrush outpaint picture.png --extend 16,0,16,0
    noisebrush morph "a red flower" --to "a blue flower" --seed 1 --to-seed 2
    noisebrush animate "a red circle sliding left slowly on a blue background" --from start.png   (animate.py)
    noisebrush sculpt "a tall round table with three legs" --format glb                          (sculpt.py)
    noisebrush export builtin --format onnx --int8 dynamic                       (export.py)
    noisebrush paint "a red sun" --runtime onnx                                  (paint.py)
    noisebrush tune builtin --nfe 10                                             (tune.py)
    noisebrush info outputs/a-red-sun-s7.png                                     (info.py: info, reproduce,
    noisebrush reproduce outputs/a-red-sun-s7.png                                 samplers, bench)
    noisebrush samplers
    noisebrush bench train --quick
    noisebrush eval builtin --n 500 --json report.json                           (eval.py)
    noisebrush experiment steps                                                  (train.py: experiment, train)
    noisebrush train --config configs/builtin.toml --out runs/mine
    noisebrush explain "a red sun over purple mountains" --seed 7                (explain.py: explain, plot-log)
    noisebrush plot-log runs/mine
    noisebrush finetune --base builtin --data ~/my-style --lora --token "<mystyle>"   (finetune.py)
    noisebrush rate outputs/a-flower-s3.png up; noisebrush prefs fit                  (prefs.py)

The typer ``app`` and the shared options live in :mod:`noisebrush.apps.cli.app`, small shared helpers in
:mod:`noisebrush.apps.cli.common`; this module imports the command modules (which registers their commands, in
the order ``--help`` lists them), the app's own options (``--version``; ``-h`` for ``--help`` everywhere) and
:func:`main`, the entry point. Every user error prints one line (``error: …``) and exits with status 2; Ctrl-C exits
with 130.
"""
from __future__ import annotations

import logging
import sys
import warnings

import typer

try:  # typer ≥ 0.20 carries its own copy of click
    from typer._click import exceptions as _cx
except ImportError:  # pragma: no cover
    from click import exceptions as _cx

# the command modules register their commands on `app` when imported; this order is the order of `--help`
from noisebrush.apps.cli import (paint, edit, animate, sculpt, upscale, export, tune, info, eval, train,  # noqa: F401
                                 explain, finetune, prefs, studio)
from noisebrush import __version__
from noisebrush.apps.cli.app import ARGV, app
from noisebrush.errors import NoisebrushWarning, UserError

__all__ = ["app", "main"]

_NO_ARGS = getattr(_cx, "NoArgsIsHelpError", None) or getattr(_cx, "NoArgsIsHelp")

# `-h` is `--help` on the app and, through click's context inheritance, on every command (`bench` keeps both for
# its own NAME --help)
app.info.context_settings = {**(app.info.context_settings or {}), "help_option_names": ["-h", "--help"]}


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"noisebrush {__version__}")
        raise typer.Exit(0)


@app.callback()
def _app_options(version: bool = typer.Option(False, "--version", is_eager=True, callback=_print_version,
                                              help="print the version (noisebrush X.Y.Z) and exit")) -> None:
    pass


def main(argv: list[str] | None = None) -> int:
    """Entry point: runs the app, turning every user error into one line and exit status 2."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    ARGV[:] = list(sys.argv[1:] if argv is None else argv)
    with warnings.catch_warnings():
        warnings.simplefilter("always", NoisebrushWarning)
        shown = warnings.showwarning
        warnings.showwarning = _show_warning(shown)
        try:
            return _run(argv)
        finally:
            warnings.showwarning = shown


def _show_warning(other):
    """A noisebrush warning as one ``warning: …`` line on stderr; any other warning as Python shows it."""
    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, NoisebrushWarning):
            print(f"warning: {message}", file=sys.stderr)
        else:
            other(message, category, filename, lineno, file, line)
    return show


def _run(argv) -> int:
    try:
        rv = app(args=argv, standalone_mode=False, prog_name="noisebrush")
        return rv if isinstance(rv, int) else 0  # without standalone mode, click returns an Exit's code
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # the disk, not the code: a folder that cannot be written, a full disk
        where = f"{e.filename}: " if e.filename else ""
        print(f"error: {where}{e.strerror or e}", file=sys.stderr)
        return 2
    except _NO_ARGS as e:
        print(e.ctx.get_help() if getattr(e, "ctx", None) else "see noisebrush --help")
        return 0
    except _cx.UsageError as e:
        msg = e.format_message().replace("\n", " ")
        where = f"noisebrush {e.ctx.info_name} --help" if getattr(e, "ctx", None) and e.ctx.parent else \
            "noisebrush --help"
        print(f"error: {msg} (see {where})", file=sys.stderr)
        return 2
    except _cx.ClickException as e:
        print(f"error: {e.format_message()}", file=sys.stderr)
        return 2
    except typer.Exit as e:
        return e.exit_code
    except typer.Abort:
        print("interrupted", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
