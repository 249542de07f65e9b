"""Train: a folder of your pictures (dropped into the page), a preset and a budget → a model of your own, trained
in a separate process (`noisebrush train` / `noisebrush finetune`) so the page stays responsive and a crash cannot
take the server down; a live loss plot, the newest preview grid, the ETA; Stop checkpoints, Resume continues; the
finished model appears in every model list."""
from __future__ import annotations

from pathlib import Path

import gradio as gr

from noisebrush.apps.studio.core import Studio
from noisebrush.io.atomic import atomic_path
from noisebrush.io.outputs import slug
from noisebrush.apps.studio.tabs.common import page_errors
from noisebrush.apps.studio.training import PRESETS, TrainingJob, loss_plot
from noisebrush.errors import BadParameter

__all__ = ["build", "save_dataset"]

CAPTION_BYTES = 4096
MAX_FILES = 2000


def _name(studio: Studio, name: str, what: str) -> str:

    value = studio.prompt(name, what)
    if not value:
        raise BadParameter(f"{what}: give it a name")
    return slug(value, 40)


def save_dataset(studio: Studio, name: str, files) -> Path:
    """Dropped files → ``uploads/datasets/NAME/``: each picture checked by the safe reader and kept as a PNG of what
    it decoded to, each ``.txt`` caption (beside a picture of the same stem) kept as one short line."""
    files = list(files or [])
    if not files:
        raise BadParameter("pictures: drop some pictures (and optional .txt captions) first")
    if len(files) > MAX_FILES:
        raise BadParameter(f"pictures: {len(files)} files, above the studio's limit of {MAX_FILES}")
    folder = studio.settings.datasets / _name(studio, name, "dataset name")
    pictures, captions = {}, {}
    for f in files:
        p = Path(f)
        if p.suffix.lower() == ".txt":
            if p.stat().st_size > CAPTION_BYTES:
                raise BadParameter(f"{p.name}: a caption of {p.stat().st_size} bytes, above {CAPTION_BYTES}")
            captions[p.stem] = " ".join(p.read_text(encoding="utf-8", errors="replace").split())
        else:
            pictures[p.stem] = studio.upload(p, p.name)  # every file is checked before anything is written
    if not pictures:
        raise BadParameter("pictures: no picture among the dropped files")

    folder.mkdir(parents=True, exist_ok=True)
    for stem, pic in pictures.items():
        with atomic_path(folder / f"{stem}.png", suffix=".png") as tmp:
            pic.save(tmp, format="PNG")
        if stem in captions:
            with atomic_path(folder / f"{stem}.txt", suffix=".txt") as tmp:
                Path(tmp).write_text(captions[stem] + "\n", encoding="utf-8")
    return folder


def _about(preset: str) -> str:
    p = PRESETS.get(preset)
    return f"*{p['about']}*" if p else ""


def _datasets(studio: Studio) -> list[str]:
    root = studio.settings.datasets
    return sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")) if root.is_dir() else []


def _runs(studio: Studio) -> list[str]:
    root = studio.settings.runs
    return sorted((p.name for p in root.iterdir() if (p / "studio-job.json").is_file()),
                  key=lambda n: -(root / n / "studio-job.json").stat().st_mtime) if root.is_dir() else []


def build(studio: Studio) -> dict:
    c: dict = {}
    jobs: dict[str, TrainingJob] = {}

    def job_of(run: str) -> TrainingJob:
        if not run or run not in _runs(studio):
            raise BadParameter("run: choose a run from the list")
        if run not in jobs:
            jobs[run] = TrainingJob.attach(studio.settings.runs / run)
        return jobs[run]

    with gr.Row():
        with gr.Column(scale=1):
            gr.Markdown("**1. your pictures** (a folder's worth: drop them all, with optional `.txt` captions)")
            c["files"] = gr.File(file_count="multiple", file_types=["image", ".txt"], label="pictures",
                                 elem_id="train-files", height=120)
            with gr.Row():
                c["dataset_name"] = gr.Textbox(label="name this set", scale=2)
                keep = gr.Button("keep them", scale=1)
            c["dataset"] = gr.Dropdown(_datasets(studio), label="picture set", elem_id="train-dataset")
            gr.Markdown("**2. what to train**")
            c["preset"] = gr.Radio(list(PRESETS), value="lora", label="preset", elem_id="train-preset")
            c["about"] = gr.Markdown(_about("lora"))
            c["base"] = gr.Dropdown(studio.models.names(), value="builtin", label="base model (finetune, lora)")
            c["steps"] = gr.Slider(10, 20000, value=PRESETS["lora"]["steps"], step=10,
                                   label="budget (optimizer steps)", elem_id="train-steps")
            c["run_name"] = gr.Textbox(label="run name", elem_id="train-run-name")
            with gr.Row():
                start = gr.Button("Start", variant="primary", elem_id="train-start")
                stop = gr.Button("Stop (keeps a checkpoint)", elem_id="train-stop")
                resume = gr.Button("Resume", elem_id="train-resume")
        with gr.Column(scale=1):
            c["run"] = gr.Dropdown(_runs(studio), label="run", elem_id="train-run")
            c["status"] = gr.Markdown(elem_id="train-status")
            c["plot"] = gr.Plot(label="loss")
            c["preview"] = gr.Image(label="newest preview", type="filepath", interactive=False, height=260)
            c["log"] = gr.Textbox(label="log", lines=6, interactive=False)
    timer = gr.Timer(2.0)

    @page_errors
    def kept(files, name):
        folder = save_dataset(studio, name, files)
        return gr.Dropdown(choices=_datasets(studio), value=folder.name), f"kept {folder.name}"
    keep.click(kept, [c["files"], c["dataset_name"]], [c["dataset"], c["status"]], api_name=False)

    c["preset"].change(lambda p: (_about(p), PRESETS[p]["steps"]) if p in PRESETS else (gr.skip(), gr.skip()),
                       c["preset"], [c["about"], c["steps"]], api_name=False)

    @page_errors
    def begin(dataset, base, preset, steps, name):
        if not dataset or dataset not in _datasets(studio):
            raise BadParameter("picture set: keep some pictures first, or choose a set")
        if preset not in PRESETS:
            raise BadParameter(f"preset: one of {', '.join(PRESETS)}")
        kind = PRESETS[preset]["kind"]
        run = _name(studio, name or f"{dataset}-{preset}", "run name")
        job = TrainingJob.start(kind, studio.settings.datasets / dataset, studio.settings.runs / run,
                                preset=preset, steps=int(steps),
                                base=studio.models.path(base) if kind == "finetune" else "builtin")
        jobs[run] = job
        return gr.Dropdown(choices=_runs(studio), value=run), f"started **{run}** ({preset}, {int(steps)} steps)"
    start.click(begin, [c["dataset"], c["base"], c["preset"], c["steps"], c["run_name"]],
                [c["run"], c["status"]], api_name=False)

    @page_errors
    def halt(run):
        job_of(run).stop()
        return show(run)
    @page_errors
    def again(run):
        job_of(run).resume()
        return show(run)

    def show(run):
        if not run:
            return "no run chosen", None, None, ""
        try:
            st = job_of(run).status()
        except Exception as e:  # a run folder damaged by hand: say so in the panel, keep the page alive
            return f"**{run}**: {e}", None, None, ""
        eta = f", about {st['eta'] / 60:.1f} min left" if st.get("eta") and st["state"] == "running" else ""
        lines = [f"**{run}**: {st['state']}, step {st.get('step') or 0} of {st.get('total') or '?'}{eta}"]
        if st.get("error"):
            lines.append(f"error: {st['error']}")
        if st.get("model"):
            lines.append(f"model: `{Path(st['model']).relative_to(studio.settings.models).as_posix()}` "
                         "(in every model list now; press ↻ there)")
        plot = loss_plot(st) if st.get("losses") else None
        return ("\n\n".join(lines), plot,
                str(st["preview"]) if st.get("preview") else None, "\n".join(st.get("log") or []))
    outs = [c["status"], c["plot"], c["preview"], c["log"]]
    stop.click(halt, c["run"], outs, api_name=False)
    resume.click(again, c["run"], outs, api_name=False)
    c["run"].change(show, c["run"], outs, api_name=False)
    timer.tick(show, c["run"], outs, api_name=False, queue=False)
    return c
