"""Morph: from one prompt and seed to another, played in the page as MP4 and GIF (`noisebrush morph`'s work and
files, written into the gallery)."""
from __future__ import annotations

import time

import gradio as gr

from noisebrush.apps.studio.core import Studio
from noisebrush.io.outputs import morph_name, save_animation
from noisebrush.apps.studio.tabs.common import painting_event, model_widgets, page_errors, session_of, stream
from noisebrush.checks import number
from noisebrush.errors import BadParameter

__all__ = ["build", "morph_job"]


def morph_job(studio: Studio, session: str, *, prompt, to_prompt="", seed=-1, to_seed=-1, frames=12, fps=8.0,
              bounce=False, model="builtin", size=32, steps=None, cfg=3.0, negative=""):
    """Check the form, then start the morph job (result: (gif, mp4, strip) paths). Returns (job, seed, to_seed)."""

    prompt = studio.prompt(prompt)
    to_prompt = studio.prompt(to_prompt, "to prompt") or None
    negative = studio.prompt(negative, "negative")
    frames = studio.bounded("frames", frames, 2, "frames")
    size = studio.bounded("size", size, 8, "size")
    steps = None if steps in (None, "", 0) else studio.bounded("steps", steps, 1, "steps")
    fps = number("fps", fps, 0.1, 60)
    number("cfg", cfg, 0, 30)
    seed = studio.seed(seed)
    to_seed = None if to_seed in (None, "", -1) else studio.seed(to_seed)
    if to_prompt in (None, prompt) and to_seed in (None, seed):
        raise BadParameter("to prompt / to seed: give another prompt and/or another seed to morph towards")
    base, lock = studio.models.get(model)
    pipe = studio.models.get(model, (), size)[0] if size > base.resolution else base
    own = size if pipe is base and size != base.resolution else None
    pipe.check(prompt, steps=steps, seed=seed, n=1, cfg=float(cfg), size=own, negative=negative or None)
    zoom = max(1, 256 // size)

    def work(callback):
        pics, recipe = pipe.morph(prompt, to_prompt=to_prompt, seed=seed, to_seed=to_seed, frames=frames, steps=steps,
                                  cfg=float(cfg), size=own, callback=callback, negative=negative or None)
        files = save_animation(pics, recipe, studio.settings.gallery, morph_name(prompt, to_prompt, seed, to_seed),
                               fps=fps, zoom=zoom, bounce=bool(bounce))
        return studio.saved(files)

    return studio.start(session, work, lock=lock), seed, to_seed


def build(studio: Studio) -> dict:
    c: dict = {}
    with gr.Row():
        with gr.Column(scale=1):
            c["prompt"] = gr.Textbox(label="from prompt", max_length=studio.settings.limits.prompt,
                                     elem_id="morph-prompt")
            c["to_prompt"] = gr.Textbox(label="to prompt (blank: the same)", max_length=studio.settings.limits.prompt,
                                        elem_id="morph-to")
            c["negative"] = gr.Textbox(label="negative prompt", max_length=studio.settings.limits.prompt)
            with gr.Row():
                c["seed"] = gr.Number(-1, precision=0, label="from seed (-1 = random)", minimum=-1)
                c["to_seed"] = gr.Number(-1, precision=0, label="to seed (-1 = the same)", minimum=-1)
            with gr.Row():
                c["frames"] = gr.Slider(2, studio.settings.limits.frames, value=12, step=1, label="frames")
                c["fps"] = gr.Slider(1, 30, value=8, step=1, label="frames per second")
                c["bounce"] = gr.Checkbox(False, label="bounce")
            c["model"], _, _, _ = model_widgets(studio, loras=False)
            with gr.Row():
                c["size"] = gr.Dropdown([32, 64, 128], value=32, label="size (px)")
                c["steps"] = gr.Slider(0, studio.settings.limits.steps, value=0, step=1, label="steps (0: model's)")
                c["cfg"] = gr.Slider(0, 15, value=3.0, step=0.25, label="guidance (cfg)")
            with gr.Row():
                go = gr.Button("Morph", variant="primary", elem_id="morph-go")
                stop = gr.Button("Stop")
        with gr.Column(scale=1):
            c["preview"] = gr.Image(label="live preview (x̂₀ of the frames)", type="pil", format="png",
                                    interactive=False, height=200)
            c["video"] = gr.Video(label="MP4", autoplay=True, loop=True, elem_id="morph-video", height=280)
            c["gif"] = gr.Image(label="GIF", type="filepath", interactive=False, elem_id="morph-gif", height=280)
            c["info"] = gr.Markdown(elem_id="morph-info")

    @page_errors
    def run(prompt, to_prompt, negative, seed, to_seed, frames, fps, bounce, model, size, steps, cfg,
            request: gr.Request):
        t = time.perf_counter()
        job, seed, to_seed = morph_job(studio, session_of(request), prompt=prompt, to_prompt=to_prompt, seed=seed,
                                       to_seed=to_seed, frames=frames, fps=fps, bounce=bounce, model=model,
                                       size=int(size), steps=steps, cfg=cfg, negative=negative)
        note = f"morphing {int(frames)} frames …"
        yield None, None, None, note

        def done(files):
            gif, mp4, strip = files
            towards = f" → {to_seed}" if to_seed is not None else ""
            return (gr.skip(), str(mp4), str(gif), f"morph (seed {seed}{towards})"
                    f" in {time.perf_counter() - t:.1f} s → gallery: `{gif.name}`, `{mp4.name}`, `{strip.name}`")
        yield from stream(studio, request, job, idle=lambda p: (p, gr.skip(), gr.skip(), note), done=done)

    inputs = [c[k] for k in ("prompt", "to_prompt", "negative", "seed", "to_seed", "frames", "fps", "bounce", "model",
                             "size", "steps", "cfg")]
    ev = painting_event(studio, go, stop, run, inputs, [c["preview"], c["video"], c["gif"], c["info"]],
                        api_name="morph")
    c["event"] = ev  # the app refreshes the gallery after it
    return c
