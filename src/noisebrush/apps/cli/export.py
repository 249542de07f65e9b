"""``noisebrush export``: a model's network as an ONNX graph (fp32, or int8), validated against PyTorch.

    noisebrush export builtin --format onnx                      # builtin.onnx + builtin.onnx.json
    noisebrush export builtin --format onnx --int8 dynamic --out builtin-int8.onnx
    noisebrush paint "a red sun" --runtime onnx --onnx builtin-int8.onnx

The graph is the raw network with the conditional and unconditional halves of guidance as one batch (see
:mod:`noisebrush.paint.runtime`); the sidecar ``FILE.json`` records the weights hash, inputs, opset, quantization and
the validation, whose largest difference from PyTorch fp32 is printed. The output file is checked before the model
is loaded; an existing one is replaced only with ``--force``.

Lazy imports: the pipeline and the runtime import torch, so they are imported inside the command (see
:mod:`noisebrush.apps.cli.paint`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from noisebrush.apps.cli.app import app
from noisebrush.errors import BadParameter, UserError

__all__ = ["export"]

FORMATS = ("onnx",)
INT8 = ("dynamic", "static")


@app.command()
def export(model: str = typer.Argument(..., help="'builtin' or a model folder"),
           fmt: str = typer.Option("onnx", "--format", help="the graph format: onnx"),
           int8: Optional[str] = typer.Option(None, "--int8", help="quantize to int8: dynamic (weights int8, "
                                                                   "activation ranges at run time) or static "
                                                                   "(calibrated on procedural pictures)"),
           out: Optional[Path] = typer.Option(None, "--out", "-o", help="the .onnx file to write (default: "
                                                                        "NAME.onnx, NAME-int8-MODE.onnx with --int8, "
                                                                        "in this folder)"),
           force: bool = typer.Option(False, "--force", help="replace an existing file")):
    """Export MODEL's network as an ONNX graph (FILE.onnx + FILE.onnx.json), validated against PyTorch fp32;
    `noisebrush paint --runtime onnx --onnx FILE` paints with it."""
    from noisebrush.io.atomic import check_writable  # lazy: torch (see the module docstring)

    if fmt not in FORMATS:
        raise BadParameter(f"--format: one of {', '.join(FORMATS)}, got {fmt!r}")
    if int8 is not None and int8 not in INT8:
        raise BadParameter(f"--int8: dynamic or static, got {int8!r}")
    if out is None:
        stem = Path(model.rstrip("/")).name or "model"
        out = Path(f"{stem}{'-int8-' + int8 if int8 else ''}.onnx")
    if out.suffix.lower() != ".onnx":
        raise BadParameter(f"--out: {out} — name the graph FILE.onnx")
    if out.is_dir():
        raise BadParameter(f"--out: {out} is a folder")
    if out.exists() and not force:
        raise UserError(f"--out: {out} exists; pass --force to replace it")
    check_writable(out, what="--out")  # before the model is loaded and traced

    import noisebrush  # lazy: noisebrush.load imports torch on first use
    from noisebrush.paint.runtime import export as export_graph  # lazy: torch

    pipe = noisebrush.load(model, device="cpu")
    info = export_graph(pipe, out, int8=int8, force=force, say=lambda line: typer.echo(line, err=True))
    check = info["validation"]
    what = f"int8 {int8}" if int8 else "fp32"
    typer.echo(f"wrote {out} ({what}, opset {info['opset']}) and {out.name}.json")
    typer.echo(f"max difference from PyTorch fp32: {check['max_abs_diff']:.3g} (|F| up to "
               f"{check['max_abs_output']:.3g}; {check['rows']} rows at σ "
               f"{', '.join(check['per_sigma'])})")
