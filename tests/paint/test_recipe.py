"""Clips and volumes through the pipeline end to end, recipes that paint them again (noisebrush.paint.recipe), the
model folder's own schedule, and the file checks a replay makes.

The clip and volume models are tiny random-weight UNets (all gains switched on, so the network shapes every step)
written as model folders by _model_fixture.write_model; the image model is the tiny trained label model."""
import json
import math
import shutil

import pytest
import torch

import noisebrush
from _model_fixture import one_thread, tiny_model, write_model
from noisebrush.diffusion import karras
from noisebrush.errors import BadParameter, UserError
from noisebrush.paint import recipe as recipes
from noisebrush.paint.modality import Clip, Image, Volume
from noisebrush.paint.options import PaintOptions


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    with one_thread():
        yield


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    return write_model(tmp_path_factory.mktemp("clip") / "model", factorized=True, condition="label",
                       classes=["up", "down"], frames=4)


@pytest.fixture(scope="module")
def volume_dir(tmp_path_factory):
    return write_model(tmp_path_factory.mktemp("volume") / "model", factorized=False)


@pytest.fixture(scope="module")
def label_dir(tmp_path_factory):
    return tiny_model(tmp_path_factory, "label")


# -- clips and volumes end to end -----------------------------------------------------------------------------------

def test_a_clip_paints_with_frames_other_than_height_and_replays(clip_dir):
    pipe = noisebrush.load(clip_dir, device="cpu")
    assert isinstance(pipe.modality, Clip) and pipe.modality.default == (4, 8, 8)
    clips, recs = pipe.generate("up", steps=3, seed=5, n=2, cfg=2.0, size=(3, 8, 16), sampler="euler")
    assert clips.shape == (2, 3, 3, 8, 16) and clips.abs().max() <= 1 and clips.std() > 0
    assert (recs[0]["frames"], recs[0]["height"], recs[0]["width"], recs[1]["seed"]) == (3, 8, 16, 6)
    json.dumps(recs)  # a recipe is plain JSON
    again, recs2 = recipes.replay(noisebrush.load(recs[1]["model"], device="cpu"), recs[1])
    assert torch.equal(again[0], clips[1]) and recs2 == [recs[1]]
    frames = pipe.modality.decode(clips)
    assert len(frames) == 2 and len(frames[0]) == 3 and frames[0][0].size == (16, 8)


def test_a_clip_at_the_default_size(clip_dir):
    pipe = noisebrush.load(clip_dir, device="cpu")
    clips, recs = pipe.generate(label="down", steps=2, size=8)  # an int sets height and width; 4 frames
    assert clips.shape == (1, 3, 4, 8, 8) and recs[0]["frames"] == 4
    (frames,) = pipe(label="down", steps=2, size=8)  # calling the pipeline decodes: a list of PIL frames per clip
    assert len(frames) == 4 and frames[0].size == (8, 8)


def test_a_volume_paints_and_replays(volume_dir):
    pipe = noisebrush.load(volume_dir, device="cpu")
    assert isinstance(pipe.modality, Volume)
    vols, recs = pipe.generate(steps=3, seed=1, size=(8, 8, 16))
    assert vols.shape == (1, 3, 8, 8, 16) and vols.std() > 0
    assert {k: recs[0][k] for k in ("depth", "height", "width")} == {"depth": 8, "height": 8, "width": 16}
    again, _ = recipes.replay(pipe, recs[0])
    assert torch.equal(again, vols)
    default, _ = pipe.generate(steps=1)
    assert default.shape == (1, 3, 8, 8, 8)  # 8³: the model's resolution on every axis


@pytest.mark.parametrize("size, axis", [((3, 5, 8), "height"), ((0, 8, 8), "frames"), ((4, 8), None), (7, None),
                                        ((4, 8, 8 * 8 + 2), "width")])
def test_a_bad_size_per_axis_is_one_line(clip_dir, size, axis):
    pipe = noisebrush.load(clip_dir, device="cpu")
    with pytest.raises(BadParameter) as e:
        pipe.generate("up", steps=1, size=size)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(f"size ({axis})" if axis else "size:"), msg


def test_edits_say_they_are_for_images(clip_dir, tmp_path):
    pipe = noisebrush.load(clip_dir, device="cpu")
    with pytest.raises(UserError, match="image models only"):
        pipe.vary(torch.zeros(1, 3, 8, 8), "up", steps=1)
    with pytest.raises(UserError, match="image models only"):
        pipe.morph("up", to_prompt="down", steps=1, frames=2)


# -- typed options and the model's schedule -------------------------------------------------------------------------

def test_check_returns_typed_options(label_dir):
    pipe = noisebrush.load(label_dir, device="cpu")
    o = pipe.check("shapes", seed=3, n=2)
    assert isinstance(o, PaintOptions) and isinstance(pipe.modality, Image)
    assert (o.steps, o.sampler, o.size, o.seeds, o.cfg) == (20, "dpmpp_2m", (16, 16), (3, 4), 3.0)
    assert torch.equal(o.sigmas(), karras(20, sigma_min=0.002, sigma_max=80.0))
    with pytest.raises(Exception):
        o.steps = 3  # frozen


@pytest.mark.parametrize("kwargs, name", [
    (dict(steps=10_001), "steps"), (dict(n=10_001), "n"), (dict(cfg=100.5), "cfg"), (dict(size=16 * 8 + 4), "size"),
    (dict(seed=2 ** 64), "seed"), (dict(sigma_max=1e6), "sigma_min/sigma_max"), (dict(size=(16, 19)), "size"),
])
def test_bounds(label_dir, kwargs, name):
    pipe = noisebrush.load(label_dir, device="cpu")
    with pytest.raises(BadParameter) as e:
        pipe.check("shapes", **kwargs)
    assert str(e.value).startswith(name) and "\n" not in str(e.value)


def test_builtin_schedule_is_the_cli_default():
    """The built-in model records dpmpp_2m at 10 steps and ships their learned levels: the model's defaults and the
    CLI's explicit --sampler dpmpp_2m --steps 10 give the same options, hence the same pictures; --steps 20 paints
    on Karras' schedule (ρ 7), the default before the learned levels shipped."""
    pipe = noisebrush.load("builtin", device="cpu")
    mine, cli = pipe.check("a red sun"), pipe.check("a red sun", steps=10, sampler="dpmpp_2m")
    assert mine == cli and (mine.schedule, mine.sampler, mine.steps) == ("learned", "dpmpp_2m", 10)
    assert mine.sigmas()[0] == 80.0 and mine.sigmas()[-1] == 0.0 and len(mine.sigmas()) == 11
    old = pipe.check("a red sun", steps=20)
    assert (old.schedule, old.rho) == ("karras", 7.0)
    assert torch.equal(old.sigmas(), karras(20, sigma_min=0.002, sigma_max=80.0))


def _with_schedule(src, dst, **sched):
    shutil.copytree(src, dst)
    conf = json.loads((dst / "config.json").read_text())
    conf["schedule"] = {**(conf.get("schedule") or {}), **sched}
    (dst / "config.json").write_text(json.dumps(conf))
    return dst


def test_the_model_folder_names_sampler_steps_and_schedule(label_dir, tmp_path):
    model = _with_schedule(label_dir, tmp_path / "m", kind="exponential", sampler="euler", steps=3, sigma_max=10.0)
    pipe = noisebrush.load(model, device="cpu")
    seen = []
    images, recs = pipe.generate("shapes", seed=2, callback=seen.append)
    assert (recs[0]["sampler"], recs[0]["steps"], len(seen)) == ("euler", 3, 3)
    assert math.isclose(seen[1].sigma, math.sqrt(10.0 * 0.002), rel_tol=1e-6)  # evenly spaced in log σ
    same, _ = pipe.generate("shapes", seed=2, sampler="euler", steps=3)
    assert torch.equal(images, same)
    other, recs = pipe.generate("shapes", seed=2, sampler="heun", steps=2)  # explicit values win
    assert (recs[0]["sampler"], recs[0]["steps"]) == ("heun", 2)


def test_rho_comes_from_the_model_folder(label_dir, tmp_path):
    pipe = noisebrush.load(_with_schedule(label_dir, tmp_path / "m", rho=3.0), device="cpu")
    o = pipe.check("shapes", steps=4)
    assert o.rho == 3.0 and torch.equal(o.sigmas(), karras(4, sigma_min=0.002, sigma_max=80.0, rho=3.0))


@pytest.mark.parametrize("sched, word", [(dict(kind="cosine-ish"), "cosine-ish"), (dict(sampler="nope"), "nope"),
                                         (dict(rho=-1), "rho"), (dict(steps=0), "steps")])
def test_a_bad_schedule_is_one_line_at_load(label_dir, tmp_path, sched, word):
    model = _with_schedule(label_dir, tmp_path / "m", **sched)
    with pytest.raises(UserError) as e:
        noisebrush.load(model, device="cpu")
    msg = str(e.value)
    assert "\n" not in msg and "config.json" in msg and word in msg, msg


# -- replaying image recipes and the checks around it -------------------------------------------------------------

def test_image_recipes_replay_bit_identically(label_dir):
    pipe = noisebrush.load(label_dir, device="cpu")
    images, recs = pipe.generate("rings", steps=3, seed=7, n=2, sampler="dpmpp_2m", size=(16, 24))
    assert (recs[1]["width"], recs[1]["height"]) == (24, 16)
    again, recs2 = recipes.replay(pipe, recs[1])
    assert torch.equal(again[0], images[1]) and recs2[0] == recs[1]


def test_vary_recipe_replays_and_checks_its_source(label_dir, tmp_path):
    from noisebrush.io.images import to_pil

    pipe = noisebrush.load(label_dir, device="cpu")
    pic, _ = pipe.generate("rings", steps=2, seed=1)
    src = tmp_path / "src.png"
    to_pil(pic[0]).save(src)
    images, recs = pipe.vary(src, "rings", strength=0.5, steps=4, seed=3, n=1)
    again, _ = recipes.replay(pipe, recs[0], where="x.png", search=[tmp_path])
    assert torch.equal(again, images)
    to_pil(-pic[0]).save(src)
    with pytest.raises(UserError, match="x.png: .*src.png has changed"):
        recipes.replay(pipe, recs[0], where="x.png", search=[tmp_path])
    src.unlink()
    with pytest.raises(UserError, match="not there"):
        recipes.replay(pipe, recs[0], where="x.png", search=[tmp_path])


def _edit_pictures(pipe, folder):
    """A source picture and a mask in ``folder``, and an inpainting of them (1 step) → (images, recipe)."""
    from PIL import Image as PILImage
    from noisebrush.io.images import to_pil

    pic, _ = pipe.generate("rings", steps=1, seed=1)
    folder.mkdir(parents=True, exist_ok=True)
    to_pil(pic[0]).save(folder / "source.png")
    mask = PILImage.new("L", (16, 16))
    mask.paste(255, (4, 4, 12, 12))
    mask.save(folder / "hole.png")
    images, (rec,) = pipe.inpaint(folder / "source.png", folder / "hole.png", "rings", steps=2, jump_length=1,
                                  jumps=1, n=1)
    return images, rec


def test_edit_recipes_name_their_files_without_folders(label_dir, tmp_path):
    """Issue 12 point 10: a shared picture does not reveal folders (0.1 stored absolute paths)."""
    pipe = noisebrush.load(label_dir, device="cpu")
    _, rec = _edit_pictures(pipe, tmp_path / "private" / "folder")
    assert rec["source"] == "source.png" and rec["mask"] == "hole.png"
    assert "private" not in json.dumps(rec)
    _, (vrec,) = pipe.vary(tmp_path / "private" / "folder" / "source.png", "rings", steps=1, n=1)
    assert vrec["source"] == "source.png"


def test_replay_finds_sources_next_to_the_picture_in_the_current_folder_or_given(label_dir, tmp_path, monkeypatch):
    from noisebrush.io.png import save_png

    pipe = noisebrush.load(label_dir, device="cpu")
    images, rec = _edit_pictures(pipe, tmp_path / "made")
    made = tmp_path / "made"
    # next to the picture: `where` is the PNG's path
    shared = tmp_path / "shared"
    shared.mkdir()
    png = save_png(PILImageOf(images), shared / "out.png", rec)
    for name in ("source.png", "hole.png"):
        shutil.copy(made / name, shared / name)
    monkeypatch.chdir(tmp_path)
    again, _ = recipes.replay(pipe, rec, where=str(png))
    assert torch.equal(again, images)
    # in the current folder
    for name in ("source.png", "hole.png"):
        (shared / name).unlink()
    monkeypatch.chdir(made)
    again, _ = recipes.replay(pipe, rec, where=str(png))
    assert torch.equal(again, images)
    # nowhere: one line that says where it looked and what to pass
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError, match=r"out.png: was painted from 'source.png', which is not there .*--source FILE"):
        recipes.replay(pipe, rec, where=str(png))
    # given, as `reproduce --source/--mask` passes them; a wrong file is refused by its hash
    again, _ = recipes.replay(pipe, rec, where=str(png), files={"source": made / "source.png",
                                                                "mask": made / "hole.png"})
    assert torch.equal(again, images)
    with pytest.raises(UserError, match=r"--mask .*source.png: not the mask .*out.png was painted from"):
        recipes.replay(pipe, rec, where=str(png), files={"source": made / "source.png", "mask": made / "source.png"})
    with pytest.raises(UserError, match=r"--source .*nothing.png: no such file"):
        recipes.replay(pipe, rec, where=str(png), files={"source": tmp_path / "nothing.png"})


def test_old_recipes_with_absolute_paths_still_replay(label_dir, tmp_path, monkeypatch):
    pipe = noisebrush.load(label_dir, device="cpu")
    images, rec = _edit_pictures(pipe, tmp_path / "made")
    old = {**rec, "source": str((tmp_path / "made" / "source.png").resolve()),
           "mask": str((tmp_path / "made" / "hole.png").resolve())}
    monkeypatch.chdir(tmp_path)
    again, _ = recipes.replay(pipe, old, where="old.png")
    assert torch.equal(again, images)
    # the folder moved: the name is looked for next to the picture
    moved = tmp_path / "moved"
    shutil.move(tmp_path / "made", moved)
    (moved / "old.png").write_bytes(b"")
    again, _ = recipes.replay(pipe, old, where=str(moved / "old.png"))
    assert torch.equal(again, images)


def PILImageOf(images):
    from noisebrush.io.images import to_pil

    return to_pil(images[0])


def test_incomplete_or_unknown_recipes_are_one_line(label_dir):
    pipe = noisebrush.load(label_dir, device="cpu")
    _, (rec,) = pipe.generate("rings", steps=1)
    for bad in ({k: v for k, v in rec.items() if k != "steps"}, {**rec, "width": "wide"}, {**rec, "mode": "dream"},
                {**rec, "seed": None}):
        with pytest.raises(UserError) as e:
            recipes.replay(pipe, bad, where="p.png")
        assert str(e.value).startswith("p.png: ") and "\n" not in str(e.value)


def test_pictures_of_a_recipe():
    rec = {"prompt": "a", "steps": 1}
    assert recipes.pictures(rec) == [rec]
    assert recipes.pictures({"sheet": {"cols": 2}, "images": [rec, rec]}) == [rec, rec]
    for bad in ({"mode": "morph"}, {"sheet": {}, "images": []}, "text"):
        with pytest.raises(UserError):
            recipes.pictures(bad, where="s.png")


def test_load_pipeline_checks_model_and_loras(label_dir, tmp_path):
    pipe = noisebrush.load(label_dir, device="cpu")
    _, (rec,) = pipe.generate("rings", steps=1)
    assert recipes.load_pipeline(rec, device="cpu").hash == pipe.hash
    with pytest.raises(UserError, match="model weights 0000000000.*--model"):
        recipes.load_pipeline({**rec, "model_hash": "0000000000"}, device="cpu", where="f.png")
    with pytest.raises(UserError, match="names no model"):
        recipes.load_pipeline({**rec, "model": None})
    lora = tmp_path / "style.safetensors"
    lora.write_bytes(b"not really a lora")
    with pytest.raises(UserError, match="has changed"):
        recipes.lora_files({"lora": [{"file": str(lora), "hash": "0123456789", "weight": 0.5}]})
    with pytest.raises(UserError, match="not there any more"):
        recipes.lora_files({"lora": [{"file": str(tmp_path / "gone.safetensors")}]})
    assert recipes.lora_files({"lora": [{"file": str(lora), "weight": 0.5}]}) == [(lora, 0.5)]
    assert recipes.lora_files(rec) is None


def test_prompts_of_recipes_before_weighting_are_read_literally():
    """A recipe written before ``(word:1.3)`` weights painted parentheses literally: replay escapes them; a recipe
    written since records ``prompt_syntax`` and replays the prompt as typed."""
    from noisebrush.nets.text import parse_weights
    from noisebrush.paint.recipe import _options

    old = {"prompt": "a (red) sun \\ moon", "steps": 4, "seed": 1, "cfg": 3.0}
    read = _options(old)["prompt"]
    assert parse_weights(read, "prompt") == parse_weights("a \\(red\\) sun \\\\ moon", "prompt")
    assert _options({**old, "prompt_syntax": "weights"})["prompt"] == "a (red) sun \\ moon"
    assert _options({**old, "prompt": "a red sun"})["prompt"] == "a red sun"
