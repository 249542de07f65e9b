"""The typer ``app`` every command module registers on, and the options several commands share.

    from noisebrush.apps.cli.app import app, MODEL, CFG

    @app.command()
    def mine(model: str = MODEL, cfg: float = CFG): ...

Command modules import ``app`` from here, never from the package ``__init__`` (which imports them), so there is no
import loop. ``ARGV`` holds the command line :func:`noisebrush.apps.cli.main` was given (a trained model records it).
"""
from __future__ import annotations

from pathlib import Path

import typer

__all__ = ["app", "ARGV", "PALETTE_SCALE", "LORA_HELP", "DB_HELP", "PALETTE_HELP", "MODEL", "CFG", "PALETTE",
           "PALETTE_SCALE_OPT", "LORA", "OUT", "DEVICE", "JUMP_LENGTH", "JUMPS", "NEGATIVE", "SR_AUG", "SR_STEPS",
           "SR_SAMPLER", "SR_CFG", "STAGES", "CASCADE"]

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  rich_markup_mode=None, help="Make art with diffusion models: paint, vary, inpaint, morph, fine-tune on your "
                       "pictures, teach it your taste, train, reproduce.")

ARGV: list[str] = []  # the command line main() was given (recorded in a trained model's provenance)

PALETTE_SCALE = 0.15  # PaletteGuide's default (see `python -m noisebrush.bench palette`)
LORA_HELP = "a LoRA file from `noisebrush finetune --lora`, optionally with a weight: FILE or FILE:0.7 (repeatable)"
DB_HELP = "ratings database (default: $NOISEBRUSH_HOME/ratings.sqlite; NOISEBRUSH_HOME is ~/.noisebrush unless set)"
PALETTE_HELP = "steer the colours toward these, e.g. '#aa3300,#002255,#e0c080'"

# options the painting-from-a-picture commands share
MODEL = typer.Option("builtin", "--model", "-m", help="'builtin' or a model folder")
CFG = typer.Option(3.0, "--cfg", help="classifier-free guidance scale (1 = none)")
NEGATIVE = typer.Option("", "--negative", help="what to paint away from, e.g. 'murky, dark': guidance pushes away "
                                               "from this text instead of from no prompt (text models, --cfg above 1)")
PALETTE = typer.Option(None, "--palette", help=PALETTE_HELP)
PALETTE_SCALE_OPT = typer.Option(PALETTE_SCALE, "--palette-scale", help="0–1: how far each step pulls a pixel toward "
                                                                       "its palette colour")
LORA = typer.Option([], "--lora", help=LORA_HELP)
OUT = typer.Option(Path("outputs"), "--out", "-o", help="folder for the results")
DEVICE = typer.Option("auto", "--device", help="auto, cpu, cuda or mps")
JUMP_LENGTH = typer.Option(None, "--jump-length", help="RePaint: levels to climb back per jump (default: 4, or "
                                                           "one fewer than --steps when that is smaller)")
JUMPS = typer.Option(3, "--jumps", help="RePaint: passes over each stretch (1 = no resampling)")

# options of the super-resolution stages (painting above a model's size through the cascade; upscale)
SR_AUG = typer.Option(None, "--sr-aug", help="noise added to each stage's input picture, 0–1 (more: the stage "
                                             "repaints more detail and follows the small picture less; default: the "
                                             "stage's own, 0.05 for the built-in)")
SR_STEPS = typer.Option(None, "--sr-steps", help="sampler steps of each super-resolution stage (default: the stage's)")
SR_SAMPLER = typer.Option(None, "--sr-sampler", help="sampler of each super-resolution stage (default: the stage's)")
SR_CFG = typer.Option(1.0, "--sr-cfg", help="guidance scale of text-conditioned stages (1 = none)")
STAGES = typer.Option(None, "--stages", help="super-resolution stages to use, comma-separated model folders or "
                                             "built-in names (default: builtin-sr64, builtin-sr128 as the size needs)")
CASCADE = typer.Option(True, "--cascade/--no-cascade", help="above the model's size, paint at its size and upscale "
                                                            "through super-resolution stages (default), or paint "
                                                            "the whole size with the model itself")
