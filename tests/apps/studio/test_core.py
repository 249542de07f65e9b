"""The studio's core without a server: limits, model names, jobs (previews, cancel, errors), and the tabs' pure
pieces (the mask from brush strokes, PNG info → form, dropped picture sets, a painting job end to end)."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from PIL import Image

from noisebrush.apps.studio.core import Cancelled, Job, Limits, Settings, Studio, preview_picture
from noisebrush.errors import BadParameter, UserError


@pytest.fixture()
def studio(tmp_path, monkeypatch):
    monkeypatch.setenv("NOISEBRUSH_HOME", str(tmp_path / "nbhome"))
    return Studio(Settings(gallery=tmp_path / "gallery", home=tmp_path / "home", ratings=tmp_path / "r.sqlite"))


class Info:
    def __init__(self, step, steps, x0):
        self.step, self.steps, self.x0, self.sigma = step, steps, x0, 1.0


def test_limits_are_bounded():
    Limits().checked()
    with pytest.raises(BadParameter, match="queue"):
        Limits(queue=0).checked()
    with pytest.raises(BadParameter, match="jobs"):
        Limits(jobs=100).checked()


def test_folders_made_and_checks(studio, tmp_path):
    for sub in ("gallery", "home/models/runs", "home/uploads/datasets"):
        assert (tmp_path / sub).is_dir()
    assert studio.seed(-1) >= 0 and studio.seed("12") == 12
    with pytest.raises(BadParameter, match="seed"):
        studio.seed("x")
    with pytest.raises(BadParameter, match="prompt: 301 characters"):
        studio.prompt("a" * 301)
    with pytest.raises(BadParameter, match="steps"):
        studio.bounded("steps", 101, 1, "steps")
    with pytest.raises(BadParameter, match="picture: drop a picture first"):
        studio.upload(None, "picture")


def test_model_names_refuse_anything_outside(studio, tmp_path):
    assert studio.models.names() == ["builtin"]
    for bad in ("../x", "/etc", "builtin-sr64", str(tmp_path), "runs/none/model"):
        with pytest.raises(BadParameter, match="model: unknown"):
            studio.models.path(bad)
    with pytest.raises(BadParameter, match="lora: unknown"):
        studio.models.lora_path("../../etc/passwd")


def test_job_streams_previews_then_the_result():
    import torch

    def work(cb):
        for i in range(5):
            cb(Info(i, 5, torch.zeros(2, 3, 8, 8)))
        return "done"
    job = Job(work)
    events = list(job.events())
    assert events[-1] == ("done", "done")
    previews = [v for k, v in events if k == "preview"]
    assert previews and all(isinstance(p, Image.Image) for p in previews)
    assert previews[0].width >= 256  # pixel-repeated so a small picture can be seen
    assert job.first_preview is not None


def test_job_cancel_stops_at_the_next_step():
    import torch

    reached = []
    go = threading.Event()

    def work(cb):
        for i in range(1000):
            cb(Info(i, 1000, torch.zeros(1, 3, 4, 4)))
            reached.append(i)
            go.set()
            time.sleep(0.001)
        return "finished"
    job = Job(work)
    events = job.events()
    assert next(events)[0] == "preview"
    go.wait(5)
    job.cancel()
    with pytest.raises(Cancelled):
        for _ in events:
            pass
    assert len(reached) < 1000


def test_job_errors_reach_the_page_and_the_lock_is_released():
    lock = threading.Lock()

    def work(cb):
        raise UserError("x.png: not a picture")
    with pytest.raises(UserError, match="not a picture"):
        list(Job(work, lock=lock).events())
    assert not lock.locked()


def test_closing_the_stream_cancels_the_worker():
    import torch

    stopped = threading.Event()

    def work(cb):
        try:
            for i in range(10_000):
                cb(Info(i, 10_000, torch.zeros(1, 3, 4, 4)))
                time.sleep(0.001)
        except Cancelled:
            stopped.set()
            raise
    events = Job(work).events()
    next(events)
    events.close()  # the page went away
    assert stopped.wait(5)


def test_preview_picture_grid():
    import torch

    p = preview_picture(torch.zeros(3, 3, 32, 32))
    assert p.width >= 256 and p.width > p.height  # three pictures side by side


def test_mask_from_brush_layers():
    from noisebrush.apps.studio.tabs.edit import mask_from_layers

    layer = Image.new("RGBA", (320, 320), (0, 0, 0, 0))
    layer.paste((255, 0, 255, 255), (0, 0, 100, 100))  # the top-left 10×10 picture pixels
    m = mask_from_layers({"layers": [layer]}, (32, 32))
    a = np.asarray(m)
    assert m.size == (32, 32) and a[:10, :10].min() == 255 and a[11:, 11:].max() == 0
    with pytest.raises(BadParameter, match="mask: paint over"):
        mask_from_layers({"layers": [Image.new("RGBA", (320, 320))]}, (32, 32))
    with pytest.raises(BadParameter, match="mask"):
        mask_from_layers(None, (32, 32))


def test_dropped_picture_set(studio, tmp_path):
    from noisebrush.apps.studio.tabs.train import save_dataset

    src = tmp_path / "src"
    src.mkdir()
    Image.new("RGB", (40, 30), (200, 10, 10)).save(src / "a.jpg")
    (src / "a.txt").write_text("a  red\nsquare")
    (src / "b.png").write_text("not a picture")
    with pytest.raises(UserError, match="b.png"):
        save_dataset(studio, "mine", [src / "a.jpg", src / "a.txt", src / "b.png"])
    assert not (studio.settings.datasets / "mine").exists()  # nothing is written before every file was checked
    folder = save_dataset(studio, "mine", [src / "a.jpg", src / "a.txt"])
    assert (folder / "a.png").is_file() and (folder / "a.txt").read_text() == "a red square\n"
    with pytest.raises(BadParameter, match="dataset name"):
        save_dataset(studio, "", [src / "a.jpg"])


def test_form_values_from_png_info():
    from noisebrush.apps.studio.tabs.gallery import form_values

    assert form_values({"prompt": "a cat", "steps": 20, "seed": None, "extra": {}}) == {"prompt": "a cat",
                                                                                         "steps": 20}


def test_a_painting_job_end_to_end(studio):
    """The Paint tab's job: the built-in model paints into the gallery, with previews and the recipe."""
    from noisebrush.apps.studio.tabs.paint import paint_job
    from noisebrush.io.png import read_recipe

    job, seed = paint_job(studio, "s1", prompt="a red circle", seed=5, n=1, steps=3)
    events = list(job.events())
    paths, recipes = events[-1][1]
    assert seed == 5 and any(k == "preview" for k, _ in events)
    assert len(paths) == 1 and paths[0].parent == studio.settings.gallery
    rec = read_recipe(paths[0])
    assert rec["seed"] == 5 and rec["prompt"] == "a red circle" and rec["steps"] == 3
    assert [e["path"] for e in studio.gallery.query()] == [paths[0].name]
    with pytest.raises(BadParameter, match="n"):
        paint_job(studio, "s1", prompt="x", n=9)
    with pytest.raises(BadParameter, match="size"):
        paint_job(studio, "s1", prompt="x", size=1000)


def test_repaint_from_the_gallery_and_foreign_models_refused(studio, tmp_path):
    from noisebrush.apps.studio.tabs.gallery import recipe_models, repaint
    from noisebrush.apps.studio.tabs.paint import paint_job

    job, _ = paint_job(studio, "s1", prompt="a blue square", seed=3, n=1, steps=3)
    (path,), _ = list(job.events())[-1][1]
    out, same = repaint(studio, path)
    assert same and out.name == f"{path.stem}-again.png" and out.parent == studio.settings.gallery
    for rec in ({"model": str(tmp_path / "elsewhere")}, {"model": "builtin", "stages": [{"model": "/etc"}]},
                {"model": "builtin", "lora": [{"file": "/etc/passwd"}]}):
        with pytest.raises(BadParameter, match="studio's models folder"):
            recipe_models(studio, rec, "x.png")
    recipe_models(studio, {"model": "builtin", "stages": [{"model": "builtin-sr64"}]}, "x.png")


def test_an_inpaint_job_keeps_the_unmasked_pixels_and_its_files(studio, tmp_path):
    """The Edit tab's inpaint: the upload and the drawn mask are kept in the gallery (the recipe names them), and
    every pixel outside the mask comes out as it went in."""
    from noisebrush.apps.studio.tabs.edit import edit_job
    from noisebrush.io.png import read_recipe

    src = tmp_path / "mine.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(src)
    stroke = Image.new("RGBA", (320, 320), (0, 0, 0, 0))
    stroke.paste((255, 0, 255, 255), (100, 100, 200, 200))  # picture pixels 10…19
    job, _ = edit_job(studio, "s1", mode="inpaint", picture=str(src), editor={"layers": [stroke]}, prompt="a moon",
                      seed=2, n=1, steps=4, jumps=1)
    (out,), _ = list(job.events())[-1][1]
    rec = read_recipe(out)
    assert (studio.settings.gallery / rec["source"]).is_file() and (studio.settings.gallery / rec["mask"]).is_file()
    a, b = np.asarray(Image.open(src)), np.asarray(Image.open(out).convert("RGB"))
    keep = np.ones((32, 32), bool)
    keep[10:20, 10:20] = False
    assert (a[keep] == b[keep]).all() and (a[~keep] != b[~keep]).any()


# -- the Animate tab (issue 16) ------------------------------------------------------------------------------------

def test_clip_models_and_clip_previews(studio):
    import torch

    from _model_fixture import write_model

    assert studio.models.clip_names() == ["builtin-video"] and studio.models.path("builtin-video") == "builtin-video"
    write_model(studio.settings.models / "mine", factorized=True, condition="label", classes=["up"], frames=4)
    write_model(studio.settings.models / "cube", factorized=False)
    assert studio.models.clip_names() == ["builtin-video", "mine"]  # a volume model is not a clip model
    strip = preview_picture(torch.zeros(2, 3, 5, 8, 8))
    assert strip.width > 4 * strip.height  # the first clip's five frames side by side


def test_an_animate_job_keeps_the_first_frame_and_writes_its_files(studio, tmp_path):
    import imageio.v3 as iio

    from _model_fixture import one_thread, write_model
    from noisebrush.apps.studio.tabs.animate import animate_job
    from noisebrush.io.png import read_recipe

    write_model(studio.settings.models / "clip", factorized=True, condition="label", classes=["up", "down"],
                frames=4, given_frames=True)
    a = np.random.default_rng(1).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    Image.fromarray(a).save(tmp_path / "start.png")
    with one_thread():
        job, seed = animate_job(studio, "s1", prompt="up", seed=3, frames=6, first=tmp_path / "start.png",
                                model="clip", steps=2)
        events = list(job.events())
    gif, mp4, strip = events[-1][1]
    assert seed == 3 and any(k == "preview" for k, _ in events)
    assert {p.parent for p in (gif, mp4, strip)} == {studio.settings.gallery}
    assert np.array_equal(iio.imread(gif, index=0)[::8, ::8, :3], a)  # zoom 8; the first frame exactly
    rec = read_recipe(strip)
    assert rec["mode"] == "animate" and rec["frames"] == 6 and (studio.settings.gallery / rec["source"]).is_file()
    with pytest.raises(BadParameter, match="not a clip model"):
        animate_job(studio, "s1", prompt="up", model="builtin")
    with pytest.raises(BadParameter, match="frames"):
        animate_job(studio, "s1", prompt="up", model="clip", frames=1000)


# -- the Sculpt tab (issue 17) -------------------------------------------------------------------------------------

def _shape_model(studio, name="vase-maker"):
    from _model_fixture import write_model
    from noisebrush.data.shapes import TRUNCATION

    return write_model(studio.settings.models / name, factorized=False, in_channels=1, resolution=16, task="shape",
                       shape={"truncation": TRUNCATION})


def test_shape_models_and_shape_previews(studio):
    import torch

    from _model_fixture import write_model

    assert studio.models.shape_names() == ["builtin-shape"] and studio.models.path("builtin-shape") == "builtin-shape"
    _shape_model(studio)
    write_model(studio.settings.models / "clip", factorized=True, frames=4)
    assert studio.models.shape_names() == ["builtin-shape", "vase-maker"]  # a clip model is not a shape model
    assert studio.models.clip_names() == ["builtin-video", "clip"]
    g = torch.ones(1, 1, 16, 16, 16)
    g[:, :, 4:12, 4:12, 4:12] = -1  # a cube
    view = preview_picture(g)
    assert view.size == (256, 256) and len(set(view.getdata())) > 10  # shaded, not a flat backdrop


def test_a_sculpt_job_completes_a_dropped_mesh_and_writes_its_files(studio, tmp_path):
    from _model_fixture import one_thread
    from noisebrush.apps.studio.tabs.sculpt import sculpt_job
    from noisebrush.data.shapes import make_shape, sdf_grid
    from noisebrush.io.mesh import grid_to_mesh, read_mesh, write_mesh
    from noisebrush.io.png import read_recipe

    _shape_model(studio)
    scene = next(s for s in map(lambda i: make_shape(3, i), range(60)) if s.category == "cup")
    write_mesh(grid_to_mesh(sdf_grid(scene, 16)), tmp_path / "cup.stl")
    with one_thread():
        job, seed = sculpt_job(studio, "s1", prompt="a cup", seed=4, mesh=tmp_path / "cup.stl", keep="bottom",
                               share=0.5, fmt="obj", model="vase-maker", steps=2)
        events = list(job.events())
    mesh, gif, png, glb = events[-1][1]
    assert seed == 4 and any(k == "preview" for k, _ in events)
    assert {p.parent for p in (mesh, gif, png, glb)} == {studio.settings.gallery}
    assert mesh.suffix == ".obj" and glb.name.endswith(".view.glb") and read_mesh(glb).is_watertight
    rec = read_recipe(png)
    assert rec["keep"] == "bottom:0.5" and rec["mesh"] == mesh.name
    assert (studio.settings.gallery / rec["source"]).is_file()  # the dropped mesh is kept beside, for reproduce


@pytest.mark.parametrize("kw,match", [(dict(model="nope"), "not a shape model"), (dict(fmt="fbx"), "format"),
                                      (dict(keep="sideways"), "keep"), (dict(resolution=48), "resolution")])
def test_bad_sculpt_forms_are_one_line(studio, kw, match):
    from noisebrush.apps.studio.tabs.sculpt import sculpt_job

    _shape_model(studio)
    with pytest.raises(BadParameter, match=match):
        sculpt_job(studio, "s1", prompt="a cup", **{"model": "vase-maker", **kw})


def test_a_broken_mesh_is_refused_before_the_job(studio, tmp_path):
    from noisebrush.apps.studio.tabs.sculpt import sculpt_job

    _shape_model(studio)
    (tmp_path / "bad.ply").write_bytes(b"ply\nnonsense\n")
    with pytest.raises(UserError, match="bad.ply"):
        sculpt_job(studio, "s1", prompt="a cup", mesh=tmp_path / "bad.ply", model="vase-maker")


def test_a_gan_model_in_the_models_folder_paints_with_its_own_sampler(studio):
    """A diffusion GAN (issue 18) trained into the models folder: the Paint tab paints it in its own steps with
    the gan sampler (the form's blank sampler and steps)."""
    from _model_fixture import TINY_NET, one_thread, train_tiny
    from noisebrush.apps.studio.tabs.paint import paint_job
    from noisebrush.io.png import read_recipe

    with one_thread():
        train_tiny(studio.settings.models / "fast", "label", steps=1, method="ddgan", gan_steps=2,
                   disc=dict(channels=8, channel_mult=[1, 2, 2]), model=dict(TINY_NET))
    assert "fast/model" in studio.models.names()
    job, _ = paint_job(studio, "s1", prompt="flower", model="fast/model", size=16, seed=2, n=1)
    (path,), _ = list(job.events())[-1][1]
    rec = read_recipe(path)
    assert rec["sampler"] == "gan" and rec["steps"] == 2 and rec["model"].endswith("fast/model")
