"""Explain: paint one picture and show how it came about — the x_t / x̂_0 strip, the animation, the σ schedule and,
for langevin and adaptive, the corrector plot (`noisebrush explain`'s files, written into the gallery)."""
from __future__ import annotations

import time

import gradio as gr

from noisebrush.apps.studio.core import Studio
from noisebrush.io.outputs import slug
from noisebrush.paint.explain import explain
from noisebrush.apps.studio.tabs.common import (painting_event, model_widgets, page_errors, sampler_choices, session_of,
                                                 stream)
from noisebrush.checks import number

__all__ = ["build", "explain_job"]


def explain_job(studio: Studio, session: str, *, prompt, model="builtin", sampler=None, steps=None, cfg=3.0, seed=-1,
                negative=""):
    """Check the form, then start the job (result: {"strip", "gif", "schedule", ["correctors"], …} → paths)."""

    prompt = studio.prompt(prompt)
    negative = studio.prompt(negative, "negative")
    steps = None if steps in (None, "", 0) else studio.bounded("steps", steps, 1, "steps")
    number("cfg", cfg, 0, 30)
    seed = studio.seed(seed)
    sampler = sampler or None
    pipe, lock = studio.models.get(model)
    pipe.check(prompt, steps=steps, seed=seed, n=1, sampler=sampler, cfg=float(cfg), negative=negative or None)
    folder = studio.settings.gallery / "explain" / f"{slug(prompt or 'image')}-s{seed}"

    def work(callback):
        files = explain(pipe, prompt, seed=seed, steps=steps, sampler=sampler, cfg=float(cfg), out_dir=folder,
                        callback=callback, negative=negative or None)
        studio.saved(p for k, p in files.items() if k in ("strip", "gif", "picture"))
        return files

    return studio.start(session, work, lock=lock), seed


def build(studio: Studio) -> dict:
    c: dict = {}
    with gr.Row():
        with gr.Column(scale=1):
            c["prompt"] = gr.Textbox(label="prompt", max_length=studio.settings.limits.prompt, elem_id="explain-prompt")
            c["negative"] = gr.Textbox(label="negative prompt", max_length=studio.settings.limits.prompt)
            c["model"], _, _, _ = model_widgets(studio, loras=False)
            with gr.Row():
                c["sampler"] = gr.Dropdown([""] + sampler_choices(), value="", label="sampler (langevin, adaptive: "
                                                                                     "corrector plot)")
                c["steps"] = gr.Slider(0, studio.settings.limits.steps, value=0, step=1, label="steps (0: model's)")
            with gr.Row():
                c["cfg"] = gr.Slider(0, 15, value=3.0, step=0.25, label="guidance (cfg)")
                c["seed"] = gr.Number(-1, precision=0, label="seed (-1 = random)", minimum=-1)
            with gr.Row():
                go = gr.Button("Explain", variant="primary", elem_id="explain-go")
                stop = gr.Button("Stop")
        with gr.Column(scale=2):
            c["preview"] = gr.Image(label="live preview (x̂₀)", type="pil", format="png", interactive=False,
                                    height=200)
            c["strip"] = gr.Image(label="x_t and x̂₀ along the way", type="filepath", interactive=False,
                                  elem_id="explain-strip")
            with gr.Row():
                c["gif"] = gr.Image(label="the process", type="filepath", interactive=False, height=260)
                c["schedule"] = gr.Image(label="σ schedule", type="filepath", interactive=False, height=260)
                c["correctors"] = gr.Image(label="corrector (langevin / adaptive)", type="filepath",
                                           interactive=False, height=260, visible=False)
            c["info"] = gr.Markdown(elem_id="explain-info")

    @page_errors
    def run(prompt, negative, model, sampler, steps, cfg, seed, request: gr.Request):
        t = time.perf_counter()
        job, seed = explain_job(studio, session_of(request), prompt=prompt, model=model, sampler=sampler, steps=steps,
                                cfg=cfg, seed=seed, negative=negative)
        note = f"explaining (seed {seed}) …"
        yield None, None, None, None, gr.Image(visible=False), note

        def done(files):
            corr = files.get("correctors")
            return (gr.skip(), str(files["strip"]), str(files["gif"]), str(files["schedule"]),
                    gr.Image(value=str(corr) if corr else None, visible=corr is not None),
                    f"explained (seed {seed}) in {time.perf_counter() - t:.1f} s → gallery: "
                    f"`{files['strip'].parent.name}/`")
        yield from stream(studio, request, job, done=done,
                          idle=lambda p: (p, gr.skip(), gr.skip(), gr.skip(), gr.skip(), note))

    ev = painting_event(studio, go, stop, run, [c[k] for k in ("prompt", "negative", "model", "sampler", "steps",
                                                                "cfg", "seed")],
                        [c["preview"], c["strip"], c["gif"], c["schedule"], c["correctors"], c["info"]],
                        api_name="explain")
    c["event"] = ev  # the app refreshes the gallery after it
    return c
