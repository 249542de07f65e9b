"""What every tab shares: turning user errors into one line in the page, streaming a job's previews, the
painting queue's name, and the form widgets that several tabs show (model, sampler, seed)."""
from __future__ import annotations

import functools
import inspect
import sys
import traceback

import gradio as gr

from noisebrush.apps.studio.core import Cancelled, Studio
from noisebrush.diffusion.samplers import SAMPLERS
from noisebrush.errors import UserError

__all__ = ["PAINTING", "painting_event", "run_buttons", "results_column", "page_errors", "stream", "session_of",
           "model_widgets", "seed_widgets", "sampler_choices", "gallery_items"]

# every event that paints shares this queue: `Limits.jobs` of them run at once, `Limits.queue` may wait
PAINTING = "painting"


def _say(e: BaseException):
    if isinstance(e, UserError):
        return gr.Error(str(e).splitlines()[0] if str(e) else type(e).__name__, print_exception=False)
    if isinstance(e, gr.Error):
        return e
    traceback.print_exception(e, file=sys.stderr)
    return gr.Error(f"internal error ({type(e).__name__}); the studio's log has the details", print_exception=False)


def page_errors(fn):
    """A user error (bad value, unreadable upload …) becomes one line in the page; anything else is logged in full
    on the server and shown as one line. Works for plain functions and generators (streaming handlers)."""
    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def gen(*args, **kwargs):
            try:
                yield from fn(*args, **kwargs)
            except Cancelled:
                gr.Info("stopped")
            except Exception as e:
                raise _say(e) from None
        return gen

    @functools.wraps(fn)
    def plain(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Cancelled:
            gr.Info("stopped")
            return None
        except Exception as e:
            raise _say(e) from None
    return plain


def session_of(request: gr.Request | None) -> str:
    return getattr(request, "session_hash", None) or "local"


def stream(studio: Studio, request, job, *, idle, done):
    """Yield the page's outputs while ``job`` runs: ``idle(preview)`` for each preview, ``done(result)`` once."""
    session = session_of(request)
    try:
        for kind, value in job.events():
            if kind == "preview":
                yield idle(value)
            else:
                yield done(value)
    finally:
        studio.finished(session, job)


def sampler_choices() -> list[str]:
    return list(SAMPLERS)


def gallery_items(paths, recipes=None) -> list[tuple[str, str]]:
    recipes = recipes or [None] * len(paths)
    out = []
    for p, r in zip(paths, recipes):
        caption = f"seed {r['seed']}" if isinstance(r, dict) and "seed" in r else str(p.name)
        out.append((str(p), caption))
    return out


def model_widgets(studio: Studio, *, loras: bool = True):
    """Model dropdown (+ a refresh button, LoRA picker and weight). Returns (model, lora, lora_weight, refresh)."""
    with gr.Row():
        model = gr.Dropdown(studio.models.names(), value="builtin", label="model", scale=3, elem_id=None)
        refresh = gr.Button("↻", scale=0, min_width=40)
    lora = weight = None
    if loras:
        with gr.Row():
            lora = gr.Dropdown(studio.models.loras(), value=[], multiselect=True, label="LoRAs", scale=3)
            weight = gr.Slider(0.0, 2.0, value=1.0, step=0.05, label="LoRA weight", scale=1)

    def again():
        return (gr.Dropdown(choices=studio.models.names()),) + ((gr.Dropdown(choices=studio.models.loras()),)
                                                                if loras else ())
    refresh.click(again, None, [model] + ([lora] if loras else []))
    return model, lora, weight, refresh


def seed_widgets():
    """Seed (-1 = random) with "random" and "reuse last" buttons. Returns (seed, dice, reuse, last_seed state)."""
    last = gr.State(None)
    with gr.Row():
        seed = gr.Number(value=-1, precision=0, label="seed (-1 = random)", scale=3, minimum=-1)
        dice = gr.Button("random", scale=0, min_width=60)
        reuse = gr.Button("reuse last", scale=0, min_width=60)
    dice.click(lambda: -1, None, seed)
    reuse.click(lambda s: s if s is not None else -1, last, seed)
    return seed, dice, reuse, last


def painting_event(studio: Studio, go, stop, fn, inputs, outputs, *, api_name: str):
    """``go`` runs the painting handler ``fn`` in the painting queue (``Limits.jobs`` at once); ``stop`` cancels it
    (gradio's event, and our job at its next step). Returns the event (the app refreshes the gallery after it)."""
    ev = go.click(fn, inputs, outputs, concurrency_id=PAINTING, concurrency_limit=studio.settings.limits.jobs,
                  api_name=api_name)

    def halt(request: gr.Request):
        studio.cancel(session_of(request))
    stop.click(halt, None, None, cancels=[ev], queue=False, api_name=False)
    return ev


def run_buttons(key: str, label: str):
    """The go and Stop buttons of a painting tab (ids ``KEY-go``, ``KEY-stop``)."""
    with gr.Row():
        go = gr.Button(label, variant="primary", elem_id=f"{key}-go")
        stop = gr.Button("Stop", elem_id=f"{key}-stop")
    return go, stop


def results_column(key: str, label: str) -> dict:
    """A painting tab's outputs: the live x̂₀ preview, the pictures and a line about them (ids ``KEY-preview``,
    ``KEY-result``, ``KEY-info``). Call inside the column that holds them."""
    return {"preview": gr.Image(label="live preview (x̂₀)", type="pil", format="png", interactive=False,
                                elem_id=f"{key}-preview", height=300),
            "result": gr.Gallery(label=label, columns=4, height=300, elem_id=f"{key}-result", format="png"),
            "info": gr.Markdown(elem_id=f"{key}-info")}
