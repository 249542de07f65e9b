"""Animate: clips from the built-in animation model (or a clip model of one's own) — from a prompt, from a picture
dropped in or sent from the gallery (its first frame kept exactly), between two pictures, longer, looping — played
in the page as MP4 and GIF (`noisebrush animate`'s work and files, written into the gallery)."""
from __future__ import annotations

import time

import gradio as gr

from noisebrush.apps.studio.core import MODEL_VIDEO, Studio
from noisebrush.apps.studio.tabs.common import page_errors, painting_event, session_of, stream
from noisebrush.apps.studio.tabs.edit import source_in_gallery
from noisebrush.checks import number
from noisebrush.errors import BadParameter
from noisebrush.io.outputs import save_animation, slug

__all__ = ["build", "animate_job"]


def animate_job(studio: Studio, session: str, *, prompt, seed=-1, frames=16, fps=8.0, loop=False, first=None,
                last=None, model=MODEL_VIDEO, steps=None, cfg=3.0, negative=""):
    """Check the form, then start the clip job (result: (gif, mp4, strip) paths). ``first``/``last``: uploaded
    files (kept in the gallery, so the strip's recipe finds them). Returns (job, seed)."""
    prompt = studio.prompt(prompt)
    negative = studio.prompt(negative, "negative")
    frames = studio.bounded("frames", frames, 2, "frames")
    steps = None if steps in (None, "", 0) else studio.bounded("steps", steps, 1, "steps")
    fps = number("fps", fps, 0.1, 60)
    number("cfg", cfg, 0, 30)
    seed = studio.seed(seed)
    if model not in studio.models.clip_names():
        raise BadParameter(f"model: {model!r} is not a clip model; choose one from the list")
    pics = {}
    for key, path in (("first", first), ("last", last)):
        if path is not None:
            pic = studio.upload(path, "from picture" if key == "first" else "to picture")
            pics[key] = source_in_gallery(studio, path, None, pic)
    pipe, lock = studio.models.get(model)
    pipe.check(prompt, steps=steps, seed=seed, n=1, cfg=float(cfg), negative=negative or None,
               size=(min(frames, pipe.modality.default[0]), *pipe.modality.default[1:]))

    def work(callback):
        clips, recipes = pipe.animate(prompt, frames=frames, seed=seed, steps=steps, cfg=float(cfg), loop=bool(loop),
                                      negative=negative or None, callback=callback, **pics)
        strip = pipe.modality.preview(clips)[0]
        files = save_animation(clips[0].transpose(0, 1), recipes[0], studio.settings.gallery,
                               f"{slug(prompt or 'clip')}-s{seed}", fps=fps, zoom=8, strip=strip)
        return studio.saved(files)

    return studio.start(session, work, lock=lock), seed


def build(studio: Studio) -> dict:
    c: dict = {}
    limits = studio.settings.limits
    with gr.Row():
        with gr.Column(scale=1):
            c["prompt"] = gr.Textbox(label="prompt: what moves and how", max_length=limits.prompt,
                                     placeholder="a small red circle sliding left slowly on a blue background",
                                     elem_id="animate-prompt")
            c["negative"] = gr.Textbox(label="negative prompt", max_length=limits.prompt)
            with gr.Row():
                c["first"] = gr.File(label="start from a picture (optional)", file_types=["image"], height=90,
                                     elem_id="animate-from")
                c["last"] = gr.File(label="end on a picture (optional, with a start)", file_types=["image"],
                                    height=90, elem_id="animate-to")
            with gr.Row():
                c["seed"] = gr.Number(-1, precision=0, label="seed (-1 = random)", minimum=-1)
                c["frames"] = gr.Slider(2, limits.frames, value=16, step=1, label="frames")
                c["fps"] = gr.Slider(1, 30, value=8, step=1, label="frames per second")
                c["loop"] = gr.Checkbox(False, label="loop")
            with gr.Row():
                names = studio.models.clip_names()
                c["model"] = gr.Dropdown(names, value=names[0], label="clip model", scale=3)
                refresh = gr.Button("↻", scale=0, min_width=40)
            with gr.Row():
                c["steps"] = gr.Slider(0, limits.steps, value=0, step=1, label="steps (0: model's)")
                c["cfg"] = gr.Slider(0, 15, value=3.0, step=0.25, label="guidance (cfg)")
            with gr.Row():
                go = gr.Button("Animate", variant="primary", elem_id="animate-go")
                stop = gr.Button("Stop")
        with gr.Column(scale=1):
            c["preview"] = gr.Image(label="live preview (x̂₀ of the frames)", type="pil", format="png",
                                    interactive=False, height=120)
            c["video"] = gr.Video(label="MP4", autoplay=True, loop=True, elem_id="animate-video", height=280)
            c["gif"] = gr.Image(label="GIF", type="filepath", interactive=False, elem_id="animate-gif", height=280)
            c["info"] = gr.Markdown(elem_id="animate-info")
    refresh.click(lambda: gr.Dropdown(choices=studio.models.clip_names()), None, c["model"])

    @page_errors
    def run(prompt, negative, first, last, seed, frames, fps, loop, model, steps, cfg, request: gr.Request):
        t = time.perf_counter()
        job, seed = animate_job(studio, session_of(request), prompt=prompt, negative=negative, first=first,
                                last=last, seed=seed, frames=frames, fps=fps, loop=loop, model=model, steps=steps,
                                cfg=cfg)
        note = f"animating {int(frames)} frames …"
        yield None, None, None, note

        def done(files):
            gif, mp4, strip = files
            return (gr.skip(), str(mp4), str(gif), f"clip (seed {seed}) in {time.perf_counter() - t:.1f} s → "
                    f"gallery: `{gif.name}`, `{mp4.name}`, `{strip.name}`")
        yield from stream(studio, request, job, idle=lambda p: (p, gr.skip(), gr.skip(), note), done=done)

    inputs = [c[k] for k in ("prompt", "negative", "first", "last", "seed", "frames", "fps", "loop", "model", "steps",
                             "cfg")]
    ev = painting_event(studio, go, stop, run, inputs, [c["preview"], c["video"], c["gif"], c["info"]],
                        api_name="animate")
    c["event"] = ev  # the app refreshes the gallery after it
    return c
