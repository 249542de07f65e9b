"""Paint: a prompt → pictures, with x̂_0 streaming into the preview while the sampler runs, and Stop.

The work is `noisebrush paint`'s: the same Pipeline (or cascade above the model's size), guides and preference, and
the pictures go into the gallery folder through ``io/outputs`` with their recipes.
"""
from __future__ import annotations

import time

import gradio as gr

from noisebrush.apps.cli.app import PALETTE_SCALE
from noisebrush.apps.cli.common import guides_from_flags
from noisebrush.apps.studio.core import Studio
from noisebrush.io import outputs
from noisebrush.workflows.preference import best_of as pick_best, load_preference
from noisebrush.apps.studio.tabs.common import (gallery_items, model_widgets, page_errors, painting_event,
                                                results_column, run_buttons, sampler_choices, seed_widgets, session_of,
                                                stream)
from noisebrush.checks import number

__all__ = ["build", "paint_job", "FORM"]

# the Paint form's fields, in the order `build` returns them (PNG info and the gallery fill them by name)
FORM = ("prompt", "negative", "size", "model", "sampler", "steps", "cfg", "seed", "n")


def paint_job(studio: Studio, session: str, *, prompt, negative="", size=32, model="builtin", loras=(), lora_weight=1.0,
              sampler=None, steps=None, cfg=3.0, seed=-1, n=1, palette="", palette_scale=PALETTE_SCALE, best_of=1,
              prefer=0.0, previews=True):
    """Check the form, then start a job that paints and saves into the gallery. Returns (job, seed). The job's
    result is (paths, recipes)."""

    prompt = studio.prompt(prompt)
    negative = studio.prompt(negative, "negative")
    size = studio.bounded("size", size, 8, "size")
    n = studio.bounded("n", n, 1, "n")
    steps = None if steps in (None, "", 0) else studio.bounded("steps", steps, 1, "steps")
    best_of = studio.bounded("best of", best_of, 1, "n")
    number("cfg", cfg, 0, 30)
    number("prefer", prefer, 0, 5)
    number("LoRA weight", lora_weight, 0, 2)
    seed = studio.seed(seed)
    sampler = sampler or None
    preference = None
    if best_of > 1 or prefer > 0:

        preference = load_preference(studio.ratings)
    palette = (palette or "").strip() or None
    guides = guides_from_flags(palette, float(palette_scale) if palette else PALETTE_SCALE, float(prefer), preference)
    loras = tuple((f, float(lora_weight)) for f in (loras or ()))
    base, lock = studio.models.get(model, loras)
    pipe, _ = studio.models.get(model, loras, size) if size > base.resolution else (base, lock)
    own = size if pipe is base and size != base.resolution else None  # a size the model paints itself
    pipe.check(prompt, steps=steps, seed=seed, n=n, sampler=sampler, cfg=float(cfg), negative=negative or None,
               size=own)
    gallery = studio.settings.gallery

    def work(callback):
        if best_of > 1:
        
            images, recipes = pick_best(base, prompt, n=n, best_of=best_of, seed=seed, model=preference, steps=steps,
                                        sampler=sampler, cfg=float(cfg), guidance=guides or None,
                                        negative=negative or None, size=own, callback=callback)
            if pipe is not base:
                images, recipes = pipe.finish(images, recipes, prompt, negative=negative or None, callback=callback)
        else:
            images, recipes = pipe.generate(prompt, steps=steps, seed=seed, n=n, sampler=sampler, cfg=float(cfg),
                                            callback=callback, guidance=guides or None, negative=negative or None,
                                            size=own)
        pics = pipe.modality.preview(images)
        paths = outputs.save_pictures(pics, recipes, gallery, outputs.slug(prompt or "image"))
        return studio.saved(paths), recipes

    return studio.start(session, work, lock=lock, previews=previews), seed


def build(studio: Studio) -> dict:
    """The Paint tab; returns its components by name (the form fields of :data:`FORM` among them)."""
    c: dict = {}
    with gr.Row():
        with gr.Column(scale=1):
            c["prompt"] = gr.Textbox(label="prompt", lines=2, max_length=studio.settings.limits.prompt,
                                     placeholder="a red sun over purple mountains", elem_id="paint-prompt")
            c["negative"] = gr.Textbox(label="negative prompt", max_length=studio.settings.limits.prompt)
            with gr.Row():
                c["size"] = gr.Dropdown([32, 64, 128], value=32, label="size (px)", elem_id="paint-size")
                c["n"] = gr.Slider(1, studio.settings.limits.n, value=4, step=1, label="pictures")
            c["model"], c["lora"], c["lora_weight"], _ = model_widgets(studio)
            with gr.Row():
                c["sampler"] = gr.Dropdown([""] + sampler_choices(), value="", label="sampler (blank: the model's)")
                c["steps"] = gr.Slider(0, studio.settings.limits.steps, value=0, step=1,
                                       label="steps (0: the model's)")
            c["cfg"] = gr.Slider(0, 15, value=3.0, step=0.25, label="guidance (cfg)")
            c["seed"], _, _, c["last_seed"] = seed_widgets()
            with gr.Accordion("palette and taste", open=False):
                with gr.Row():
                    c["palette"] = gr.Textbox(label="palette (hex colours, comma-separated)", scale=3)
                    c["colour"] = gr.ColorPicker(value="#aa3300", label="pick", scale=1)
                    add = gr.Button("+ add colour", scale=1)
                c["palette_scale"] = gr.Slider(0, 1, value=PALETTE_SCALE, step=0.05, label="palette pull")
                with gr.Row():
                    c["best_of"] = gr.Slider(1, studio.settings.limits.n, value=1, step=1,
                                             label="best of N (by your ratings)")
                    c["prefer"] = gr.Slider(0, 2, value=0.0, step=0.1, label="prefer what you like (guidance)")
            go, stop = run_buttons("paint", "Paint")
        with gr.Column(scale=1):
            c.update(results_column("paint", "pictures"))

    add.click(lambda p, col: ",".join(x for x in [p.strip() if p else "", col] if x), [c["palette"], c["colour"]],
              c["palette"])

    @page_errors
    def run(prompt, negative, size, model, lora, lora_weight, sampler, steps, cfg, seed, n, palette, palette_scale,
            best_of, prefer, request: gr.Request):
        t = time.perf_counter()
        session = session_of(request)
        job, seed = paint_job(studio, session, prompt=prompt, negative=negative, size=int(size), model=model,
                              loras=lora or (), lora_weight=lora_weight, sampler=sampler, steps=steps, cfg=cfg,
                              seed=seed, n=n, palette=palette, palette_scale=palette_scale, best_of=best_of,
                              prefer=prefer)
        note = f"painting {int(n)} picture{'s' * (int(n) != 1)} (seed {seed}) …"
        yield None, None, note, seed

        def idle(preview):
            return preview, gr.skip(), note, seed

        def done(result):
            paths, recipes = result
            took = time.perf_counter() - t
            first = f"; first preview after {job.first_preview:.2f} s" if job.first_preview is not None else ""
            info = (f"painted {len(paths)} picture{'s' * (len(paths) != 1)} (seed {seed}) in {took:.1f} s{first} "
                    f"→ gallery: " + ", ".join(f"`{p.name}`" for p in paths))
            return gr.skip(), gallery_items(paths, recipes), info, seed
        yield from stream(studio, request, job, idle=idle, done=done)

    inputs = [c[k] for k in ("prompt", "negative", "size", "model", "lora", "lora_weight", "sampler", "steps", "cfg",
                             "seed", "n", "palette", "palette_scale", "best_of", "prefer")]
    ev = painting_event(studio, go, stop, run, inputs, [c["preview"], c["result"], c["info"], c["last_seed"]],
                        api_name="paint")
    c["event"] = ev  # the app refreshes the gallery after it
    return c
