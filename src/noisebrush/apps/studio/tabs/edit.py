"""Edit: vary, inpaint (a mask drawn with a brush on the picture), outpaint (margins) and upscale a picture that
was dropped in or sent from the gallery. The work is `noisebrush vary/inpaint/outpaint/upscale`'s; a picture whose
short side is the model's size × 2 or × 4 is edited through the cascade, as the CLI does."""
from __future__ import annotations

import hashlib
import time
from pathlib import Path

import numpy as np
import gradio as gr
from PIL import Image

from noisebrush.apps.studio.core import Studio
from noisebrush.io import outputs
from noisebrush.io.atomic import atomic_path
from noisebrush.io.images import to_pil
from noisebrush.io.png import read_picture
from noisebrush.paint.cascade import upscale_image
from noisebrush.apps.studio.tabs.common import (gallery_items, model_widgets, page_errors, painting_event,
                                                results_column, run_buttons, sampler_choices, seed_widgets, session_of,
                                                stream)
from noisebrush.checks import number, whole
from noisebrush.errors import BadParameter

__all__ = ["build", "edit_job", "source_in_gallery", "mask_from_layers", "MODES"]

MODES = ("vary", "inpaint", "outpaint", "upscale")
MASK_SIDE = 384  # the picture is shown this large (pixel-repeated) to draw the mask on


def source_in_gallery(studio: Studio, path, origin: str | None, pic: Image.Image) -> Path:
    """The file an edit reads, inside the gallery (so `noisebrush reproduce` finds it next to the results): the
    gallery picture it was sent from, or the dropped file — decoded once by the safe reader to check it, then kept
    byte for byte (its recipe too) as ``source-SHA.EXT``, one file per distinct upload. ``pic``: the dropped file
    as the safe reader decoded it (:meth:`Studio.upload`)."""
    if origin:
        return studio.gallery.resolve(origin)
    data = Path(path).read_bytes()
    with Image.open(path) as im:  # the header only: the safe reader above has decoded it already
        ext = {"PNG": ".png", "JPEG": ".jpg", "WEBP": ".webp"}.get(im.format or "", None)

    name = f"source-{hashlib.sha256(data).hexdigest()[:12]}"
    if ext is None:  # another format: kept as the PNG of what the safe reader decoded
        target = studio.settings.gallery / f"{name}.png"
        if not target.exists():
            with atomic_path(target, suffix=".png") as tmp:
                pic.save(tmp, format="PNG")
    else:
        target = studio.settings.gallery / f"{name}{ext}"
        if not target.exists():
            with atomic_path(target, suffix=ext) as tmp:
                Path(tmp).write_bytes(data)
    studio.gallery.add(target)
    return target


def mask_from_layers(editor, size: tuple[int, int]) -> Image.Image:
    """The white-where-repainted mask (PIL "L", ``size`` = (width, height)) from what the brush drew on the
    editor's layers: a picture pixel is repainted when a quarter or more of its enlarged block was painted."""
    layers = (editor or {}).get("layers") or []
    alpha = None
    for layer in layers:
        if layer is None:
            continue
        a = np.asarray(layer.convert("RGBA"))[..., 3] > 0
        alpha = a if alpha is None else (alpha | a if alpha.shape == a.shape else alpha)
    if alpha is None or not alpha.any():
        raise BadParameter("mask: paint over the part to repaint with the brush first")
    m = Image.fromarray(alpha.astype(np.uint8) * 255, "L").resize(size, Image.BOX)
    return m.point(lambda v: 255 if v >= 64 else 0)


def keep_mask(studio: Studio, mask: Image.Image) -> Path:
    """The drawn mask kept in the gallery as ``mask-SHA.png`` (one file per distinct mask): the inpaint recipe names
    it, so `noisebrush reproduce` (and the gallery's Repaint) can paint the picture again."""
    data = np.asarray(mask.convert("L"))
    target = studio.settings.gallery / f"mask-{hashlib.sha256(data.tobytes()).hexdigest()[:12]}.png"
    if not target.exists():
        with atomic_path(target, suffix=".png") as tmp:
            mask.convert("L").save(tmp, format="PNG")
    return target


def edit_job(studio: Studio, session: str, *, mode, picture, origin=None, editor=None, prompt="", negative="",
             model="builtin", loras=(), lora_weight=1.0, sampler=None, steps=None, cfg=3.0, seed=-1, n=1,
             strength=0.6, jumps=3, jump_length=0, margins=(8, 8, 8, 8), scale=2):
    """Check the form, then start the edit job (result: (paths, recipes)). Returns (job, seed)."""

    if mode not in MODES:
        raise BadParameter(f"mode: one of {', '.join(MODES)}, got {mode!r}")
    pic = studio.upload(studio.gallery.resolve(origin) if origin else picture, "picture")
    width, height = pic.size
    if max(width, height) > 4 * studio.settings.limits.size:
        raise BadParameter(f"picture: {width}×{height}, above the studio's {4 * studio.settings.limits.size} px for "
                           f"an edit (upscale or crop it first)")
    source = source_in_gallery(studio, picture, origin, pic)  # only once the picture is known to be usable
    prompt = studio.prompt(prompt) or _own_prompt(source)
    negative = studio.prompt(negative, "negative")
    n = studio.bounded("n", n, 1, "n")
    steps = None if steps in (None, "", 0) else studio.bounded("steps", steps, 1, "steps")
    number("cfg", cfg, 0, 30)
    seed = studio.seed(seed)
    sampler = sampler or None
    loras = tuple((f, float(lora_weight)) for f in (loras or ()))
    base, lock = studio.models.get(model, loras)
    short = min(width, height)
    ratio = short // base.resolution if short % base.resolution == 0 else 0
    pipe = studio.models.get(model, loras, short)[0] if ratio in (2, 4) else base
    common = dict(steps=steps, seed=seed, n=n, cfg=float(cfg), negative=negative or None)
    if mode == "vary":
        number("strength", strength, 0.0, 1.0)

        def run(cb):
            return pipe.vary(source, prompt, strength=float(strength), sampler=sampler, callback=cb, **common)
    elif mode == "inpaint":
        mask = keep_mask(studio, mask_from_layers(editor, (width, height)))
        jl = None if not jump_length else whole("jump length", int(jump_length), 1, 100)
        jumps = whole("jumps", int(jumps), 1, 10)

        def run(cb):
            return pipe.inpaint(source, mask, prompt, jump_length=jl, jumps=jumps, callback=cb, **common)
    elif mode == "outpaint":
        left, top, right, bottom = (whole(name, int(v or 0), 0, 4 * max(width, height))
                                    for name, v in zip(("left", "top", "right", "bottom"), margins))
        if not (left or top or right or bottom):
            raise BadParameter("margins: give at least one side to paint beyond")
        jl = None if not jump_length else whole("jump length", int(jump_length), 1, 100)
        jumps = whole("jumps", int(jumps), 1, 10)

        def run(cb):
            return pipe.outpaint(source, (left, top, right, bottom), prompt, jump_length=jl, jumps=jumps,
                                 callback=cb, **common)
    else:
        scale = int(scale)
        if scale not in (2, 4):
            raise BadParameter(f"scale: 2 or 4, got {scale}")
        if short * scale > studio.settings.limits.size * 4:
            raise BadParameter(f"scale: {short} px × {scale} is above the studio's limit")
        stages = studio.models.stages(short, short * scale) if short in (32, 64) else None
        if stages is None:
            raise BadParameter(f"picture: the built-in stages upscale 32 or 64 px pictures, this one is {short} px")

        def run(cb):
            x, rec = upscale_image(source, scale=scale, prompt=prompt, stages=stages, seed=seed, callback=cb,
                                   negative=negative or None)
            return x, [{**rec, "seed": seed}]

    def work(callback):
        images, recipes = run(callback)
        pics = to_pil(images)
        pics = pics if isinstance(pics, list) else [pics]
        paths = outputs.save_pictures(pics, recipes, studio.settings.gallery,
                                      f"{outputs.slug(source.stem)}-{mode}")
        return studio.saved(paths), recipes

    return studio.start(session, work, lock=lock), seed


def _own_prompt(source: Path) -> str:
    """The prompt the picture's own recipe names, or "" (as the CLI's edits do)."""

    _, recipe = read_picture(source)
    return str(recipe.get("prompt", "")) if recipe and "sheet" not in recipe else ""


def show_for_mask(pic: Image.Image | None) -> dict | None:
    """The editor's value for a picture: the picture pixel-repeated to about :data:`MASK_SIDE`, no strokes yet."""
    if pic is None:
        return None
    z = max(1, MASK_SIDE // max(pic.size))
    big = pic.resize((pic.width * z, pic.height * z), Image.NEAREST)
    return {"background": big, "layers": [], "composite": big}


def build(studio: Studio) -> dict:
    c: dict = {}
    c["origin"] = gr.State(None)  # the gallery picture this edit started from (relative path), if any
    with gr.Row():
        with gr.Column(scale=1):
            c["upload"] = gr.File(label="drop a picture (or send one from the gallery)", file_types=["image"],
                                  elem_id="edit-upload", height=90)
            c["picture"] = gr.State(None)  # the file the edit reads (an upload or a gallery picture)
            c["mode"] = gr.Radio(list(MODES), value="vary", label="what to do", elem_id="edit-mode")
            c["mask"] = gr.ImageEditor(label="mask: paint over what to repaint (inpaint)", type="pil",
                                       sources=[], layers=False, transforms=[], format="png", elem_id="edit-mask",
                                       brush=gr.Brush(colors=["#ff00ff"], color_mode="fixed", default_size=24),
                                       height=420)
            c["prompt"] = gr.Textbox(label="prompt (blank: the picture's own)",
                                     max_length=studio.settings.limits.prompt,
                                     elem_id="edit-prompt")
            c["negative"] = gr.Textbox(label="negative prompt", max_length=studio.settings.limits.prompt)
            with gr.Row():
                c["strength"] = gr.Slider(0, 1, value=0.6, step=0.05, label="strength (vary)")
                c["n"] = gr.Slider(1, studio.settings.limits.n, value=2, step=1, label="pictures")
            with gr.Row():
                c["jumps"] = gr.Slider(1, 10, value=3, step=1, label="jumps (inpaint/outpaint)")
                c["jump_length"] = gr.Slider(0, 20, value=0, step=1, label="jump length (0: default)")
            with gr.Row():
                c["left"] = gr.Number(8, precision=0, label="left", minimum=0)
                c["top"] = gr.Number(8, precision=0, label="top", minimum=0)
                c["right"] = gr.Number(8, precision=0, label="right", minimum=0)
                c["bottom"] = gr.Number(8, precision=0, label="bottom", minimum=0)
            c["scale"] = gr.Radio([2, 4], value=2, label="upscale ×")
            c["model"], c["lora"], c["lora_weight"], _ = model_widgets(studio)
            with gr.Row():
                c["sampler"] = gr.Dropdown([""] + sampler_choices(), value="", label="sampler (vary)")
                c["steps"] = gr.Slider(0, studio.settings.limits.steps, value=0, step=1, label="steps (0: model's)")
            c["cfg"] = gr.Slider(0, 15, value=3.0, step=0.25, label="guidance (cfg)")
            c["seed"], _, _, c["last_seed"] = seed_widgets()
            go, stop = run_buttons("edit", "Run")
        with gr.Column(scale=1):
            c.update(results_column("edit", "results"))

    @page_errors
    def dropped(path):
        if path is None:
            return None, None, None
        pic = studio.upload(path, "picture")  # a bad upload is one line in the page, before any painting
        return path, None, show_for_mask(pic)
    c["upload"].upload(dropped, c["upload"], [c["picture"], c["origin"], c["mask"]], api_name=False)

    @page_errors
    def run(mode, picture, origin, mask, prompt, negative, model, lora, lora_weight, sampler, steps, cfg, seed, n,
            strength, jumps, jump_length, left, top, right, bottom, scale, request: gr.Request):
        t = time.perf_counter()
        job, seed = edit_job(studio, session_of(request), mode=mode, picture=picture, origin=origin, editor=mask,
                             prompt=prompt, negative=negative, model=model, loras=lora or (), lora_weight=lora_weight,
                             sampler=sampler, steps=steps, cfg=cfg, seed=seed, n=n, strength=strength, jumps=jumps,
                             jump_length=jump_length, margins=(left, top, right, bottom), scale=scale)
        note = f"{mode} … (seed {seed})"
        yield None, None, note, seed

        def done(result):
            paths, recipes = result
            return (gr.skip(), gallery_items(paths, recipes),
                    f"{mode}: {len(paths)} picture{'s' * (len(paths) != 1)} (seed {seed}) in "
                    f"{time.perf_counter() - t:.1f} s → gallery: " + ", ".join(f"`{p.name}`" for p in paths), seed)
        yield from stream(studio, request, job, idle=lambda p: (p, gr.skip(), note, seed), done=done)

    inputs = [c[k] for k in ("mode", "picture", "origin", "mask", "prompt", "negative", "model", "lora", "lora_weight",
                             "sampler", "steps", "cfg", "seed", "n", "strength", "jumps", "jump_length", "left", "top",
                             "right", "bottom", "scale")]
    ev = painting_event(studio, go, stop, run, inputs, [c["preview"], c["result"], c["info"], c["last_seed"]],
                        api_name="edit")
    c["event"] = ev  # the app refreshes the gallery after it
    return c
