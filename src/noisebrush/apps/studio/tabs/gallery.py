"""Gallery: every picture the studio or the CLI wrote into the gallery folder, with its recipe, model and rating;
filters; PNG info (drop any PNG, ours or another A1111-style tool's, and its parameters fill the Paint form);
rate up/down (the store `noisebrush rate` uses); send a picture to Paint or Edit; delete = move to the trash."""
from __future__ import annotations

import json
from pathlib import Path

import gradio as gr
from PIL import Image

from noisebrush.apps.studio.core import Studio
from noisebrush.apps.studio.tabs.common import page_errors, sampler_choices
from noisebrush.apps.studio.tabs.edit import show_for_mask
from noisebrush.apps.studio.tabs.paint import FORM
from noisebrush.apps.studio.tabs.common import PAINTING
from noisebrush.errors import BadParameter
from noisebrush.io.model_folder import BUILTIN_MODELS
from noisebrush.io.outputs import Keeper
from noisebrush.io.png import read_parameters, read_recipe, save_png
from noisebrush.paint import recipe as recipes

__all__ = ["build", "RATINGS", "form_values", "repaint", "recipe_models"]

RATINGS = {"any": None, "liked": "up", "disliked": "down", "unrated": "unrated", "rated": "rated"}


def form_values(fields: dict) -> dict:
    """PNG info / a recipe → the Paint form's values (only what it carries)."""
    out = {}
    for key in FORM:
        if fields.get(key) is not None:
            out[key] = fields[key]
    return out


def recipe_models(studio: Studio, recipe: dict, where: str) -> None:
    """Every model and LoRA a recipe names must be built in or lie in the studio's models folder: a picture's
    recipe (an upload's too) never makes the server read a folder elsewhere."""
    named = [recipe.get("model", "builtin")] + [s.get("model") for s in recipe.get("stages") or []
                                                 if isinstance(s, dict)]
    for r in recipes.pictures(recipe, where=where):
        named += [r.get("model", "builtin")] + [s.get("model") for s in r.get("stages") or [] if isinstance(s, dict)]
    root = studio.settings.models.resolve()
    for m in named:
        if m is None or str(m) in BUILTIN_MODELS:
            continue
        p = Path(str(m)).resolve()
        if not p.is_relative_to(root):
            raise BadParameter(f"{where}: painted with the model {m}, which is not in the studio's models folder")
    for spec in recipe.get("lora") or []:
        f = spec.get("file") if isinstance(spec, dict) else spec[0] if isinstance(spec, (list, tuple)) else spec
        if f is None or not Path(str(f)).resolve().is_relative_to(root):
            raise BadParameter(f"{where}: painted with a LoRA that is not in the studio's models folder")


def repaint(studio: Studio, path: Path) -> tuple[Path, bool]:
    """Paint a gallery picture again from its recipe (what `noisebrush reproduce` does) → (the new file
    ``STEM-again.png`` in the gallery, whether it is pixel-identical)."""
    recipe = read_recipe(path)
    where = str(path)
    if "sheet" in recipe:
        raise BadParameter(f"{path.name}: a contact sheet; repaint one of its pictures")
    recipe_models(studio, recipe, where)
    pipe = recipes.load_pipeline(recipe, device=studio.settings.device, where=where)
    images, again = recipes.replay(pipe, recipe, where=where)
    pic = pipe.modality.preview(images)[0]
    keep = Keeper(studio.settings.gallery)
    out = keep.save(lambda p: save_png(pic, p, again[0]), f"{path.stem}-again.png")
    keep.done()
    studio.gallery.add(out)
    with Image.open(path) as a, Image.open(out) as b:
        same = a.size == b.size and a.convert("RGB").tobytes() == b.convert("RGB").tobytes()
    return out, same


def _caption(e: dict) -> str:
    mark = {1: "♥ ", -1: "✗ "}.get(e.get("rating") or 0, "")
    return f"{mark}{(e.get('prompt') or e['path'])[:60]}"


def build(studio: Studio, *, paint: dict, edit: dict, tabs) -> dict:
    """The Gallery tab. ``paint``/``edit``: those tabs' components (send to); ``tabs``: the gr.Tabs to switch."""
    c: dict = {}
    c["entries"] = gr.State([])
    c["chosen"] = gr.State(None)
    with gr.Row():
        c["words"] = gr.Textbox(label="prompt words", scale=3, elem_id="gallery-words")
        c["model"] = gr.Dropdown(["any"], value="any", label="model", scale=2)
        c["rating"] = gr.Dropdown(list(RATINGS), value="any", label="rating", scale=1)
        c["kind"] = gr.Dropdown(["any", "paint", "vary", "inpaint", "outpaint", "upscale", "morph", "explain",
                                 "picture"], value="any", label="kind", scale=1)
        refresh = gr.Button("↻ refresh", scale=0, elem_id="gallery-refresh")
    with gr.Row():
        with gr.Column(scale=3):
            c["grid"] = gr.Gallery(label="gallery", columns=6, height=520, elem_id="gallery-grid",
                                   allow_preview=False)
        with gr.Column(scale=2):
            c["picture"] = gr.Image(label="picture", type="filepath", interactive=False, height=260,
                                    elem_id="gallery-picture")
            c["info"] = gr.Textbox(label="PNG info", lines=5, interactive=False, elem_id="gallery-info")
            with gr.Row():
                up = gr.Button("♥ like", elem_id="gallery-up", min_width=60)
                down = gr.Button("✗ dislike", elem_id="gallery-down", min_width=60)
                to_paint = gr.Button("→ Paint", elem_id="gallery-to-paint")
                to_edit = gr.Button("→ Edit", elem_id="gallery-to-edit")
            with gr.Row():
                more = gr.Button("paint more like my favourites", elem_id="gallery-more")
                again = gr.Button("repaint (reproduce)", elem_id="gallery-repaint")
                delete = gr.Button("to trash", variant="stop", elem_id="gallery-delete")
            with gr.Accordion("recipe", open=False):
                c["recipe"] = gr.JSON(label="recipe")
            with gr.Accordion("PNG info of any picture", open=False):
                c["drop"] = gr.File(label="drop a PNG (noisebrush, AUTOMATIC1111 …): its parameters fill Paint",
                                    file_types=["image"], elem_id="pnginfo-drop")
            with gr.Accordion("trash", open=False):
                c["trash"] = gr.Dropdown([], label="in the trash")
                restore = gr.Button("restore")
            c["status"] = gr.Markdown(elem_id="gallery-status")

    filters = [c["words"], c["model"], c["rating"], c["kind"]]

    @page_errors
    def show(words, model, rating, kind):
        studio.gallery.scan()
        entries = studio.gallery.query(words=studio.prompt(words, "prompt words"),
                                       model=None if model in (None, "any") else model,
                                       rating=RATINGS.get(rating), kind=None if kind in (None, "any") else kind,
                                       limit=300)
        items = [(str(studio.gallery.resolve(e["path"])), _caption(e)) for e in entries
                 if e.get("kind") not in ("unreadable",)]
        models = ["any"] + studio.gallery.models()
        trash = [p.name for p in studio.gallery.trash()]
        counts = studio.ratings.count()  # the `noisebrush prefs` numbers
        return (items, entries, gr.Dropdown(choices=models), gr.Dropdown(choices=trash),
                f"{len(entries)} picture{'s' * (len(entries) != 1)} · your ratings: {counts['up']} liked, "
                f"{counts['down']} disliked")
    outs = [c["grid"], c["entries"], c["model"], c["trash"], c["status"]]
    c["refresh"] = dict(fn=show, inputs=filters, outputs=outs, api_name=False)
    refresh.click(**c["refresh"])
    c["words"].submit(**c["refresh"])
    for f in filters[1:]:
        f.change(**c["refresh"])

    def pick(entries, evt: gr.SelectData):
        e = entries[evt.index] if entries and 0 <= evt.index < len(entries) else None
        if e is None:
            return None, None, "", None
        return e, str(studio.gallery.resolve(e["path"])), e.get("parameters") or "", e.get("recipe")
    c["grid"].select(pick, c["entries"], [c["chosen"], c["picture"], c["info"], c["recipe"]], api_name=False)

    def need(e):
        if not e:
            raise gr.Error("choose a picture in the gallery first", print_exception=False)
        return e

    def rater(up_):
        @page_errors
        def rate(e, *f):
            e = need(e)
            studio.gallery.rate(e["path"], up_)
            return show(*f)[:2] + (f"rated `{e['path']}` {'up' if up_ else 'down'}",)
        return rate
    up.click(rater(True), [c["chosen"]] + filters, [c["grid"], c["entries"], c["status"]], api_name=False)
    down.click(rater(False), [c["chosen"]] + filters, [c["grid"], c["entries"], c["status"]], api_name=False)

    @page_errors
    def remove(e, *f):
        e = need(e)
        where = studio.gallery.delete(e["path"])
        items, entries, _, trash, _ = show(*f)
        return items, entries, trash, None, None, "", f"moved `{e['path']}` to the trash (`{where.name}`)"
    delete.click(remove, [c["chosen"]] + filters,
                 [c["grid"], c["entries"], c["trash"], c["chosen"], c["picture"], c["info"], c["status"]],
                 api_name=False)

    @page_errors
    def repaint_chosen(e, *f):
        e = need(e)
        out, same = repaint(studio, studio.gallery.resolve(e["path"]))
        items, entries = show(*f)[:2]
        verdict = "pixel-identical to" if same else "**differs** from"
        return items, entries, f"repainted from its recipe: `{out.name}` is {verdict} `{e['path']}`"
    again.click(repaint_chosen, [c["chosen"]] + filters, [c["grid"], c["entries"], c["status"]],
                concurrency_id=PAINTING, concurrency_limit=studio.settings.limits.jobs, api_name=False)

    @page_errors
    def back(name, *f):
        if not name:
            raise gr.Error("choose a file in the trash first", print_exception=False)
        where = studio.gallery.restore(name)
        items, entries, _, trash, _ = show(*f)
        return items, entries, trash, f"restored `{where.name}`"
    restore.click(back, [c["trash"]] + filters, [c["grid"], c["entries"], c["trash"], c["status"]], api_name=False)

    fill = [paint[k] for k in ("prompt", "negative", "steps", "sampler", "cfg", "seed", "size", "model", "n")]

    def to_form(fields: dict, *, switch=True) -> list:
        v = form_values(fields)
        models = studio.models.names()
        out = [gr.update(value=v["prompt"]) if "prompt" in v else gr.skip(),
               gr.update(value=v.get("negative", "")),
               gr.update(value=min(int(v["steps"]), studio.settings.limits.steps)) if "steps" in v else gr.skip(),
               gr.update(value=v["sampler"]) if v.get("sampler") in sampler_choices() else gr.skip(),
               gr.update(value=float(v["cfg"])) if "cfg" in v else gr.skip(),
               gr.update(value=int(v["seed"])) if "seed" in v else gr.skip(),
               gr.update(value=int(v["size"])) if v.get("size") in (32, 64, 128) else gr.skip(),
               gr.update(value=v["model"]) if v.get("model") in models else gr.skip(),
               gr.skip()]
        return out + [gr.Tabs(selected="paint") if switch else gr.skip()]

    @page_errors
    def send_paint(e):
        e = need(e)
        return to_form(read_parameters(studio.gallery.resolve(e["path"])))
    to_paint.click(send_paint, c["chosen"], fill + [tabs], api_name=False)

    @page_errors
    def dropped(path):
        if path is None:
            return [gr.skip()] * (len(fill) + 2)
        studio.upload(path, "PNG info")  # the safe reader first: a bomb or a fake picture is one line
        fields = read_parameters(path)
        return to_form(fields) + [f"PNG info: {json.dumps(form_values(fields))[:300]}"]
    c["drop"].upload(dropped, c["drop"], fill + [tabs, c["status"]], api_name=False)

    @page_errors
    def send_edit(e):
        e = need(e)
        path = studio.gallery.resolve(e["path"])
        pic = studio.upload(path, "picture")
        return str(path), e["path"], show_for_mask(pic), gr.update(value=str(path)), gr.Tabs(selected="edit")
    to_edit.click(send_edit, c["chosen"], [edit["picture"], edit["origin"], edit["mask"], edit["upload"], tabs],
                  api_name=False)

    @page_errors
    def favourites(e):
        e = need(e)
        counts = studio.ratings.count()
        if not counts["up"] or not counts["down"]:
            raise gr.Error("rate a few pictures up and down first (like / dislike): the preference learns from both",
                           print_exception=False)
        fields = read_parameters(studio.gallery.resolve(e["path"]))
        form = to_form({**fields, "seed": -1})
        return form + [gr.update(value=4), gr.update(value=0.5)]
    more.click(favourites, c["chosen"], fill + [tabs, paint["best_of"], paint["prefer"]], api_name=False)
    return c
