"""Sculpt: shapes from the built-in shape model (or a shape model of one's own) — from a prompt, as variations of a
mesh dropped in, or completing part of one — shown in an interactive 3-D viewer (gradio's Model3D, from the GLB)
with the turntable GIF beside it (`noisebrush sculpt`'s work and files, written into the gallery)."""
from __future__ import annotations

import hashlib
import time
from pathlib import Path

import gradio as gr

from noisebrush.apps.studio.core import MODEL_SHAPE, Studio
from noisebrush.apps.studio.tabs.common import page_errors, painting_event, session_of, stream
from noisebrush.checks import number
from noisebrush.errors import BadParameter
from noisebrush.io.atomic import atomic_write_bytes
from noisebrush.io.mesh import MESH_FORMATS, MESH_SUFFIXES, mesh_bytes, read_mesh
from noisebrush.io.outputs import save_shape, slug
from noisebrush.paint.sculpt import mesh_resolutions, preview, to_mesh, views

__all__ = ["build", "sculpt_job", "KEEP_CHOICES"]

KEEP_CHOICES = ("vary", "bottom", "top", "left", "right", "back", "front")  # what to do with a mesh dropped in


def mesh_in_gallery(studio: Studio, path) -> Path:
    """A dropped mesh, checked (suffix, size, readable, has triangles) and kept byte for byte in the gallery as
    ``source-SHA.EXT`` (one file per distinct upload), so `noisebrush reproduce` finds it next to the results."""
    path = Path(path)
    ext = path.suffix.lower()
    if ext.lstrip(".") not in MESH_SUFFIXES:
        raise BadParameter(f"mesh: a file ending in .{', .'.join(MESH_SUFFIXES)}, got {path.name!r}")
    size = path.stat().st_size
    if size > studio.settings.limits.upload_bytes:
        raise BadParameter(f"mesh: {size} bytes, above the studio's limit of {studio.settings.limits.upload_bytes}")
    read_mesh(path, "mesh")  # a broken file is refused here, before the job
    data = path.read_bytes()
    target = studio.settings.gallery / f"source-{hashlib.sha256(data).hexdigest()[:12]}{ext}"
    if not target.exists():
        atomic_write_bytes(target, data)
    return target


def sculpt_job(studio: Studio, session: str, *, prompt, seed=-1, model=MODEL_SHAPE, mesh=None, keep="vary",
               strength=0.6, share=0.5, resolution=None, fmt="glb", steps=None, cfg=3.0, negative=""):
    """Check the form, then start the shape job (result: (mesh, gif, png, glb) paths; ``glb`` is what the viewer
    shows, the mesh itself when ``fmt`` is glb). Returns (job, seed)."""
    prompt = studio.prompt(prompt)
    negative = studio.prompt(negative, "negative")
    steps = None if steps in (None, "", 0) else studio.bounded("steps", steps, 1, "steps")
    number("cfg", cfg, 0, 30)
    seed = studio.seed(seed)
    if model not in studio.models.shape_names():
        raise BadParameter(f"model: {model!r} is not a shape model; choose one from the list")
    if fmt not in MESH_FORMATS:
        raise BadParameter(f"format: one of {', '.join(MESH_FORMATS)}, got {fmt!r}")
    if keep not in KEEP_CHOICES:
        raise BadParameter(f"keep: one of {', '.join(KEEP_CHOICES)}, got {keep!r}")
    opts: dict = {}
    if mesh is not None:
        opts["source"] = mesh_in_gallery(studio, mesh)
        if keep == "vary":
            opts["strength"] = number("strength", strength, 0.0, 1.0)
        else:
            opts["keep"] = f"{keep}:{number('share', share, 0.05, 0.95):g}"
    resolution = None if resolution in (None, "", 0) else int(resolution)
    pipe, lock = studio.models.get(model)
    pipe.check(prompt, steps=steps, seed=seed, n=1, cfg=float(cfg), negative=negative or None)
    if resolution is not None and resolution not in mesh_resolutions(pipe):
        raise BadParameter(f"resolution: {' or '.join(map(str, mesh_resolutions(pipe)))} for this model, got "
                           f"{resolution}")

    def work(callback):
        grids, recipes = pipe.sculpt(prompt, seed=seed, steps=steps, cfg=float(cfg), negative=negative or None,
                                     resolution=resolution, callback=callback, **opts)
        shape = to_mesh(grids[0], recipes[0]["resolution"])
        if len(shape.faces) == 0:
            raise BadParameter(f"seed {seed}: the field has no surface (nothing to mesh); try another seed")
        files = save_shape(shape, fmt, views(pipe, grids[0], frames=24, size=192), preview(pipe, grids[0], size=192),
                           recipes[0], studio.settings.gallery, f"{slug(prompt or 'shape')}-s{seed}")
        studio.saved(files[1:])  # the GIF and the PNG view (the gallery shows pictures; the mesh lies beside them)
        glb = files[0]
        if fmt != "glb":  # the viewer's copy
            glb = files[0].with_suffix(".view.glb")
            atomic_write_bytes(glb, mesh_bytes(shape, "glb"))
        return (*files, glb)

    return studio.start(session, work, lock=lock), seed


def build(studio: Studio) -> dict:
    c: dict = {}
    limits = studio.settings.limits
    with gr.Row():
        with gr.Column(scale=1):
            c["prompt"] = gr.Textbox(label="prompt: the object", max_length=limits.prompt,
                                     placeholder="a tall round table with three legs", elem_id="sculpt-prompt")
            c["negative"] = gr.Textbox(label="negative prompt", max_length=limits.prompt)
            c["mesh"] = gr.File(label="start from a mesh (optional: obj, ply, stl, glb, gltf, off)",
                                file_types=[f".{s}" for s in MESH_SUFFIXES], height=90, elem_id="sculpt-from")
            with gr.Row():
                c["keep"] = gr.Dropdown(list(KEEP_CHOICES), value="vary", label="with a mesh: vary it, or keep "
                                                                                "one side and complete the rest")
                c["strength"] = gr.Slider(0, 1, value=0.6, step=0.05, label="variation strength")
                c["share"] = gr.Slider(0.05, 0.95, value=0.5, step=0.05, label="share kept")
            with gr.Row():
                c["seed"] = gr.Number(-1, precision=0, label="seed (-1 = random)", minimum=-1)
                c["resolution"] = gr.Radio([0, 64], value=0, label="mesh resolution (0: the model's grid; 64: "
                                                                   "interpolated, smoother)")
                c["format"] = gr.Dropdown(list(MESH_FORMATS), value="glb", label="mesh file")
            with gr.Row():
                names = studio.models.shape_names()
                c["model"] = gr.Dropdown(names, value=names[0], label="shape model", scale=3)
                refresh = gr.Button("↻", scale=0, min_width=40)
            with gr.Row():
                c["steps"] = gr.Slider(0, limits.steps, value=0, step=1, label="steps (0: model's)")
                c["cfg"] = gr.Slider(0, 15, value=3.0, step=0.25, label="guidance (cfg)")
            with gr.Row():
                go = gr.Button("Sculpt", variant="primary", elem_id="sculpt-go")
                stop = gr.Button("Stop")
        with gr.Column(scale=1):
            c["preview"] = gr.Image(label="live preview (x̂₀, shaded)", type="pil", format="png", interactive=False,
                                    height=160)
            c["model3d"] = gr.Model3D(label="mesh (drag to turn)", elem_id="sculpt-model3d", height=320)
            c["gif"] = gr.Image(label="turntable", type="filepath", interactive=False, elem_id="sculpt-gif",
                                height=200)
            c["info"] = gr.Markdown(elem_id="sculpt-info")
    refresh.click(lambda: gr.Dropdown(choices=studio.models.shape_names()), None, c["model"])

    @page_errors
    def run(prompt, negative, mesh, keep, strength, share, seed, resolution, fmt, model, steps, cfg,
            request: gr.Request):
        t = time.perf_counter()
        job, seed = sculpt_job(studio, session_of(request), prompt=prompt, negative=negative, mesh=mesh, keep=keep,
                               strength=strength, share=share, seed=seed, resolution=resolution, fmt=fmt,
                               model=model, steps=steps, cfg=cfg)
        note = "sculpting …"
        yield None, None, None, note

        def done(files):
            mesh_path, gif, png, glb = files
            return (gr.skip(), str(glb), str(gif), f"shape (seed {seed}) in {time.perf_counter() - t:.1f} s → "
                    f"gallery: `{mesh_path.name}`, `{gif.name}`, `{png.name}`")
        yield from stream(studio, request, job, idle=lambda p: (p, gr.skip(), gr.skip(), note), done=done)

    inputs = [c[k] for k in ("prompt", "negative", "mesh", "keep", "strength", "share", "seed", "resolution", "format",
                             "model", "steps", "cfg")]
    ev = painting_event(studio, go, stop, run, inputs, [c["preview"], c["model3d"], c["gif"], c["info"]],
                        api_name="sculpt")
    c["event"] = ev  # the app refreshes the gallery after it
    return c
