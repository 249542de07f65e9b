"""The studio's page: one tab per module of ``apps/studio/tabs/`` over one :class:`~noisebrush.apps.studio.core.Studio`.

A new capability adds its tab here: a module with ``build(studio) -> dict`` of its components (and ``"event"``, the
painting event after which the gallery refreshes), listed in :data:`TABS` in the order the page shows them.
"""
from __future__ import annotations

import gradio as gr

from noisebrush.apps.studio.core import Studio
from noisebrush.apps.studio.tabs import animate, edit, explain, gallery, morph, paint, sculpt, train

__all__ = ["build", "TABS", "THEME", "CSS"]

# (id, title, module): the tabs that paint; Gallery and Train follow (they send to / fill these)
TABS = (("paint", "Paint", paint), ("edit", "Edit", edit), ("morph", "Morph", morph), ("animate", "Animate", animate),
        ("sculpt", "Sculpt", sculpt), ("explain", "Explain", explain))

# system fonts only: a Google font would make every page load reach the network
THEME = gr.themes.Soft(font=[gr.themes.Font("system-ui"), gr.themes.Font("sans-serif")],
                       font_mono=[gr.themes.Font("ui-monospace"), gr.themes.Font("monospace")])
CSS = """
#paint-preview img, #edit-preview img, #gallery-grid img, #paint-result img, #edit-result img {
  image-rendering: pixelated;
}
#gallery-picture img { width: 100%; height: 100%; object-fit: contain; image-rendering: pixelated; }
footer { display: none !important; }
"""


def build(studio: Studio) -> gr.Blocks:
    with gr.Blocks(title="noisebrush studio", analytics_enabled=False) as page:
        gr.Markdown("## noisebrush studio")
        built: dict = {}
        with gr.Tabs(elem_id="tabs") as tabs:
            for key, title, module in TABS:
                with gr.Tab(title, id=key, elem_id=f"tab-{key}"):
                    built[key] = module.build(studio)
            with gr.Tab("Gallery", id="gallery", elem_id="tab-gallery"):
                built["gallery"] = gallery.build(studio, paint=built["paint"], edit=built["edit"], tabs=tabs)
            with gr.Tab("Train", id="train", elem_id="tab-train"):
                built["train"] = train.build(studio)
        refresh = built["gallery"]["refresh"]
        for key, _, _ in TABS:
            built[key]["event"].then(**refresh)
        page.load(**refresh)
    page.queue(max_size=studio.settings.limits.queue, default_concurrency_limit=4)
    return page
