"""noisebrush.load / Pipeline on tiny model folders made by really training (2 steps, 16×16 pictures).

The label model is cheap; the text model loads the real MiniLM encoder once (a few seconds).
"""
import json
import math
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

import noisebrush
from _model_fixture import one_thread, tiny_model
from noisebrush.devices import pick_device
from noisebrush.diffusion import DIFFUSION_SAMPLERS
from noisebrush.errors import BadParameter, UserError
from noisebrush.io.model_folder import BUILTIN, MODEL_FORMAT, read_config, resolve, weights_hash
from noisebrush.paint.pipeline import Pipeline, StepInfo

FAMILIES = ("shapes", "mondrian", "landscape", "flower", "rings", "swirl")
RECIPE_KEYS = {"prompt", "sampler", "steps", "cfg", "seed", "width", "height", "model", "model_hash", "noisebrush"}


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    with one_thread():
        yield


@pytest.fixture(scope="module")
def label_dir(tmp_path_factory):
    return tiny_model(tmp_path_factory, "label")


@pytest.fixture(scope="module")
def text_dir(tmp_path_factory):
    return tiny_model(tmp_path_factory, "text")


@pytest.fixture(scope="module")
def label_pipe(label_dir):
    return noisebrush.load(label_dir, device="cpu")


@pytest.fixture(scope="module")
def text_pipe(text_dir):
    return noisebrush.load(str(text_dir), device="cpu")


@pytest.fixture
def model_copy(label_dir, tmp_path):
    """A writable copy of the label model folder."""
    dst = tmp_path / "copy"
    shutil.copytree(label_dir, dst)
    return dst


# -- loading ------------------------------------------------------------------------------------------------------

def test_load_gives_a_pipeline(label_pipe, label_dir):
    p = label_pipe
    assert isinstance(p, Pipeline)
    assert p.condition == "label" and p.classes == list(FAMILIES)
    assert p.resolution == 16 and p.channels == 3 and p.dims == 2
    assert p.name == str(label_dir.resolve())  # recipes name the folder by absolute path
    assert p.hash == weights_hash(label_dir) and len(p.hash) == 10 and int(p.hash, 16) >= 0
    assert p.device == torch.device("cpu")
    assert not any(q.requires_grad for q in p.net.parameters())
    conf = read_config(label_dir)
    assert conf["format"] == MODEL_FORMAT and conf["condition"] == "label"
    assert resolve(str(label_dir)) == label_dir


def test_relative_folder_is_recorded_absolute(label_dir, monkeypatch):
    monkeypatch.chdir(label_dir.parent)
    pipe = noisebrush.load(label_dir.name, device="cpu")
    assert pipe.name == str(label_dir.resolve())
    assert pipe.generate("shapes", steps=1)[1][0]["model"] == str(label_dir.resolve())


def test_text_model_loads(text_pipe):
    assert text_pipe.condition == "text"
    assert text_pipe.config["text_encoder"]["max_tokens"] == 16


# -- generate / __call__ ------------------------------------------------------------------------------------------

def test_generate_shape_range_and_recipes(label_pipe, label_dir):
    images, recipes = label_pipe.generate("shapes", steps=3, seed=4, n=2, cfg=2.0, sampler="euler")
    assert images.shape == (2, 3, 16, 16) and images.dtype == torch.float32
    assert images.device.type == "cpu"
    assert torch.isfinite(images).all()
    assert images.min() >= -1 and images.max() <= 1
    assert len(recipes) == 2
    for rec, seed in zip(recipes, (4, 5)):
        assert RECIPE_KEYS <= set(rec)
        assert rec["prompt"] == "shapes" and rec["sampler"] == "euler" and rec["steps"] == 3
        assert rec["cfg"] == 2.0 and rec["seed"] == seed
        assert rec["width"] == rec["height"] == 16
        assert rec["model"] == str(label_dir.resolve()) and rec["model_hash"] == label_pipe.hash
        assert rec["noisebrush"] == noisebrush.__version__
        json.dumps(rec)  # goes into a PNG text chunk


def test_call_returns_pil_images(label_pipe):
    pics = label_pipe("flower", steps=2, n=2, seed=1)
    assert isinstance(pics, list) and len(pics) == 2
    for p in pics:
        assert isinstance(p, Image.Image) and p.size == (16, 16) and p.mode == "RGB"
    one = label_pipe("flower", steps=2, n=1, seed=1)
    assert isinstance(one, list) and len(one) == 1  # n=1 still gives a list
    assert np.array_equal(np.asarray(one[0]), np.asarray(pics[0]))


@pytest.mark.parametrize("sampler", ["dpmpp_2m", "euler_ancestral"])
def test_batch_invariance_text_cfg(text_pipe, sampler):
    """Seed s alone == seed s at index 1 of a batch started at s-1, bit for bit (text conditioning, CFG 3)."""
    kw = dict(steps=3, sampler=sampler, cfg=3.0)
    alone, rec_alone = text_pipe.generate("a red sun over purple mountains", seed=11, n=1, **kw)
    batch, rec_batch = text_pipe.generate("a red sun over purple mountains", seed=10, n=3, **kw)
    assert torch.equal(alone[0], batch[1])
    assert rec_alone[0] == rec_batch[1]
    # and different seeds give different pictures
    assert not torch.equal(batch[0], batch[1]) and not torch.equal(batch[1], batch[2])


@pytest.mark.parametrize("sampler", sorted(DIFFUSION_SAMPLERS))
def test_batch_invariance_every_sampler(label_pipe, sampler):
    """Every diffusion sampler the CLI offers (the gan sampler: tests/paint/test_gan_painting.py): seed s alone is bit-identical to seed s inside a batch (label model, CFG 2)."""
    kw = dict(steps=2, sampler=sampler, cfg=2.0)
    alone, _ = label_pipe.generate("rings", seed=21, n=1, **kw)
    batch, _ = label_pipe.generate("rings", seed=20, n=3, **kw)
    assert alone.shape == (1, 3, 16, 16)
    assert torch.isfinite(batch).all()
    assert torch.equal(alone[0], batch[1])


def test_same_seed_same_picture_other_prompt_differs(text_pipe):
    a, _ = text_pipe.generate("a red sun", steps=2, seed=3)
    b, _ = text_pipe.generate("a red sun", steps=2, seed=3)
    c, _ = text_pipe.generate("a blue moon", steps=2, seed=3)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_step_callback(label_pipe):
    seen = []
    images, _ = label_pipe.generate("swirl", steps=4, n=2, seed=0, callback=seen.append)
    assert len(seen) == 4
    assert [s.step for s in seen] == [0, 1, 2, 3]
    sigmas = [s.sigma for s in seen]
    assert all(isinstance(s, StepInfo) for s in seen)
    assert all(s.steps == 4 for s in seen)
    assert all(isinstance(v, float) for v in sigmas)
    assert all(a > b for a, b in zip(sigmas, sigmas[1:]))
    assert math.isclose(sigmas[0], 80.0, rel_tol=1e-9)
    for s in seen:
        assert s.x.shape == (2, 3, 16, 16) and s.x0.shape == (2, 3, 16, 16)


def test_callback_does_not_change_the_picture(label_pipe):
    a, _ = label_pipe.generate("swirl", steps=3, seed=9, callback=lambda info: None)
    b, _ = label_pipe.generate("swirl", steps=3, seed=9)
    assert torch.equal(a, b)


def test_to_cpu(label_pipe):
    assert label_pipe.to("cpu") is label_pipe
    assert label_pipe.device == torch.device("cpu")
    assert label_pipe.to(torch.device("cpu")).device.type == "cpu"
    assert all(p.device.type == "cpu" for p in label_pipe.net.parameters())
    with pytest.raises(BadParameter, match="device"):
        label_pipe.to("nonsense")


# -- devices ------------------------------------------------------------------------------------------------------

@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_pick_device_on_a_cpu_machine():
    assert pick_device("auto") == torch.device("cpu")
    assert pick_device(None) == torch.device("cpu")
    assert pick_device("cpu") == torch.device("cpu")
    with pytest.raises(UserError, match="cuda"):
        pick_device("cuda")
    with pytest.raises(UserError, match="cuda"):
        pick_device("cuda:1")
    with pytest.raises(BadParameter, match="device"):
        pick_device("nonsense")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_load_on_missing_cuda_is_a_user_error(label_dir):
    with pytest.raises(UserError, match="cuda"):
        noisebrush.load(label_dir, device="cuda")


# -- label models -------------------------------------------------------------------------------------------------

def test_label_by_prompt_name_or_index(label_pipe):
    kw = dict(steps=2, seed=5, cfg=3.0)
    by_prompt, rec = label_pipe.generate("flower", **kw)
    by_name, _ = label_pipe.generate("", label="flower", **kw)
    by_index, _ = label_pipe.generate("", label=FAMILIES.index("flower"), **kw)
    other, _ = label_pipe.generate("mondrian", **kw)
    assert torch.equal(by_prompt, by_name) and torch.equal(by_name, by_index)
    assert not torch.equal(by_prompt, other)
    assert rec[0]["prompt"] == "flower"


@pytest.mark.parametrize("prompt, label", [("dragon", None), ("", None), ("", "dragon"), ("flower", "dragon"),
                                           ("", 99), ("", -1), ("", len(FAMILIES))])
def test_unknown_label_is_a_bad_parameter(label_pipe, prompt, label):
    with pytest.raises(BadParameter, match="label"):
        label_pipe.generate(prompt, label=label, steps=1)


# -- bad parameters -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, name", [
    (dict(steps=0), "steps"), (dict(steps=-3), "steps"), (dict(steps=2.5), "steps"), (dict(steps="3"), "steps"),
    (dict(n=0), "n"), (dict(n=-1), "n"), (dict(n=1.5), "n"),
    (dict(seed=-1), "seed"), (dict(seed=1.5), "seed"), (dict(seed="7"), "seed"),
    (dict(size=15), "size"), (dict(size=1), "size"), (dict(size=-16), "size"),
    (dict(cfg=-1.0), "cfg"), (dict(cfg=float("nan")), "cfg"),
    (dict(sampler="nope"), "sampler"), (dict(sampler=""), "sampler"),
    (dict(sigma_min=0.0), "sigma_min"), (dict(sigma_min=90.0), "sigma_min"),
    (dict(sigma_min="small"), "sigma_min"),
])
def test_bad_parameters_name_the_parameter(label_pipe, kwargs, name):
    with pytest.raises(BadParameter) as e:
        label_pipe.generate("shapes", **{"steps": 2, **kwargs})
    assert str(e.value).startswith(f"{name}") and "\n" not in str(e.value)


def test_size_zero_is_a_bad_parameter(label_pipe):
    with pytest.raises(BadParameter, match="size"):
        label_pipe.generate("shapes", steps=1, size=0)


def test_other_sizes_work(label_pipe):
    images, recipes = label_pipe.generate("shapes", steps=1, size=24)
    assert images.shape == (1, 3, 24, 24)
    assert recipes[0]["width"] == recipes[0]["height"] == 24


# -- broken model folders -----------------------------------------------------------------------------------------

def _load_error(path) -> str:
    with pytest.raises(UserError) as e:
        noisebrush.load(path, device="cpu")
    msg = str(e.value)
    assert "\n" not in msg and msg.strip() == msg and msg
    return msg


def test_missing_folder(tmp_path):
    assert "no such model folder" in _load_error(tmp_path / "nope")


def test_missing_builtin_or_builtin_loads():
    """'builtin' resolves to the packaged model; until one is shipped it must still be a clean user error."""
    if (BUILTIN / "config.json").is_file():
        assert noisebrush.load("builtin", device="cpu").name == "builtin"
    else:
        assert "builtin" in _load_error("builtin")


def test_a_file_instead_of_a_folder(tmp_path):
    f = tmp_path / "model.safetensors"
    f.write_bytes(b"x")
    assert "not a model folder" in _load_error(f)


def test_folder_without_config(tmp_path, model_copy):
    (model_copy / "config.json").unlink()
    assert "config.json" in _load_error(model_copy)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "not a noisebrush model folder" in _load_error(empty)


def test_folder_without_weights(model_copy):
    (model_copy / "model.safetensors").unlink()
    assert "model.safetensors" in _load_error(model_copy)


def _edit_config(folder, edit):
    conf = json.loads((folder / "config.json").read_text())
    edit(conf)
    (folder / "config.json").write_text(json.dumps(conf))


def test_config_of_another_format(model_copy):
    (model_copy / "config.json").write_text(json.dumps({"format": "something/1"}))
    msg = _load_error(model_copy)
    assert "not a noisebrush model" in msg and "something/1" in msg


@pytest.mark.parametrize("doc", [[1, 2], "text", {"no": "format"}, {"format": 1}])
def test_config_that_is_not_a_model_description(model_copy, doc):
    (model_copy / "config.json").write_text(json.dumps(doc))
    assert "not a noisebrush model" in _load_error(model_copy)


def test_newer_format_version(model_copy):
    _edit_config(model_copy, lambda c: c.update(format="noisebrush.model/2"))
    msg = _load_error(model_copy)
    assert "newer" in msg and "upgrade" in msg


def test_garbled_format_version(model_copy):
    _edit_config(model_copy, lambda c: c.update(format="noisebrush.model/x"))
    assert "unknown model format" in _load_error(model_copy)


def test_broken_json(model_copy):
    (model_copy / "config.json").write_text('{"format": "noisebrush.model/1", ')
    msg = _load_error(model_copy)
    assert "config.json" in msg and "unreadable" in msg


def test_config_missing_a_key(model_copy):
    _edit_config(model_copy, lambda c: c.pop("sigma_data"))
    assert "sigma_data" in _load_error(model_copy)


def test_bad_network_description(model_copy):
    _edit_config(model_copy, lambda c: c["unet"].update(bogus=1))
    msg = _load_error(model_copy)
    assert "bad network description" in msg and "bogus" in msg


def test_folder_without_a_network_name_holds_a_unet(model_copy, label_pipe):
    """Folders written before config.json named its network load as a UNet, painting as before."""
    _edit_config(model_copy, lambda c: c.pop("network"))
    pipe = noisebrush.load(model_copy, device="cpu")
    assert type(pipe.net) is type(label_pipe.net)
    assert torch.equal(pipe.generate("shapes", steps=2)[0], label_pipe.generate("shapes", steps=2)[0])


def test_unknown_network_name(model_copy):
    _edit_config(model_copy, lambda c: c.update({"network": "sr-unet", "sr-unet": c["unet"]}))
    msg = _load_error(model_copy)
    assert "config.json" in msg and "unknown network 'sr-unet'" in msg and "unet" in msg


def test_weights_that_do_not_match_the_config(model_copy):
    _edit_config(model_copy, lambda c: c["unet"].update(channels=16))
    msg = _load_error(model_copy)
    assert "do not fit" in msg and "model.safetensors" in msg


@pytest.mark.parametrize("keep", [0, 5, 0.5])
def test_corrupt_weights(model_copy, keep):
    w = model_copy / "model.safetensors"
    data = w.read_bytes()
    w.write_bytes(data[:int(len(data) * keep)] if isinstance(keep, float) else data[:keep])
    msg = _load_error(model_copy)
    assert "model.safetensors" in msg


def test_sampling_schedule_comes_from_the_model_folder(model_copy):
    _edit_config(model_copy, lambda c: c.update(schedule={**c["schedule"], "sigma_max": 10.0, "sigma_min": 0.01}))
    pipe = noisebrush.load(model_copy, device="cpu")
    seen = []
    _, rec = pipe.generate("shapes", steps=2, callback=seen.append)
    assert math.isclose(seen[0].sigma, 10.0) and rec[0]["sigma_max"] == 10.0 and rec[0]["sigma_min"] == 0.01
    _, rec = pipe.generate("shapes", steps=2, sigma_max=20.0)  # an explicit value wins
    assert rec[0]["sigma_max"] == 20.0 and rec[0]["sigma_min"] == 0.01


def test_bad_schedule_in_config_is_a_user_error(model_copy):
    _edit_config(model_copy, lambda c: c.update(schedule={"sigma_min": "tiny", "sigma_max": 80.0}))
    with pytest.raises(UserError):
        noisebrush.load(model_copy, device="cpu").generate("shapes", steps=1)


def test_weights_hash_follows_the_file(model_copy, label_pipe):
    assert weights_hash(model_copy) == label_pipe.hash
    w = model_copy / "model.safetensors"
    data = bytearray(w.read_bytes())
    data[-1] ^= 1
    w.write_bytes(bytes(data))
    assert weights_hash(model_copy) != label_pipe.hash


def test_generate_passes_stats_only_to_samplers_that_keep_them(label_pipe):
    stats = {}
    with torch.random.fork_rng(devices=[]):
        a, _ = label_pipe.generate("rings", seed=2, steps=3, sampler="langevin", stats=stats)
        b, _ = label_pipe.generate("rings", seed=2, steps=3, sampler="langevin")
    assert set(stats) == {"corrector_steps", "levels", "nfe"} and torch.equal(a, b)
    stats = {"mine": 1}
    label_pipe.generate("rings", seed=2, steps=2, sampler="euler", stats=stats)
    assert stats == {"mine": 1}


# -- input that is ignored is said aloud (issue 12 point 8) ---------------------------------------------------------
@pytest.fixture(scope="module")
def none_pipe(tmp_path_factory):
    return noisebrush.load(tiny_model(tmp_path_factory, "none"), device="cpu")


def _quiet():
    """A context in which any noisebrush warning is an error."""
    import warnings

    from noisebrush.errors import NoisebrushWarning

    ctx = warnings.catch_warnings()
    ctx.__enter__()
    warnings.simplefilter("error", NoisebrushWarning)
    return ctx


def test_unconditional_model_says_it_ignores_prompt_and_cfg(none_pipe):
    from noisebrush.errors import NoisebrushWarning
    from noisebrush.paint import recipe as recipes

    with pytest.warns(NoisebrushWarning, match=r"^this model takes no prompt: 'a red sun' and --cfg are ignored$"):
        x, (rec,) = none_pipe.generate("a red sun", steps=2, cfg=5.0, seed=4)
    assert rec["cfg"] == 1.0  # what was used, not the 5.0 given
    with pytest.warns(NoisebrushWarning, match=r"^this model takes no prompt: --cfg 5 is ignored$"):
        none_pipe.generate("", steps=1, cfg=5.0)
    ctx = _quiet()
    try:  # the defaults and cfg 1 say nothing
        plain, (prec,) = none_pipe.generate("", steps=2, seed=4)
        none_pipe.generate("", steps=1, cfg=1.0)
        assert prec["cfg"] == 1.0 and torch.equal(plain, x)
        # the recipe replays to the same pixels, and so does one written before (which recorded cfg 3.0)
        again, _ = recipes.replay(none_pipe, prec, where="p.png")
        old, _ = recipes.replay(none_pipe, {**prec, "cfg": 3.0}, where="old.png")
    finally:
        ctx.__exit__(None, None, None)
    assert torch.equal(again, x) and torch.equal(old, x)


def test_a_long_prompt_says_how_many_tokens_are_used(text_pipe):
    from noisebrush.errors import NoisebrushWarning

    n = text_pipe.text_encoder.word_pieces("word " * 100)
    with pytest.warns(NoisebrushWarning, match=rf"^prompt: {n} tokens, only the first 14 are used \(the model reads "
                                               r"16 tokens, 2 of them start and end markers\)$"):
        text_pipe.generate("word " * 100, steps=1)
    ctx = _quiet()
    try:
        text_pipe.generate("a red sun", steps=1)
    finally:
        ctx.__exit__(None, None, None)


def test_editing_without_a_prompt_or_a_recipe_says_so(text_pipe, tmp_path):
    from noisebrush.errors import NoisebrushWarning
    from noisebrush.io.images import to_pil
    from noisebrush.io.png import save_png

    pic, (rec,) = text_pipe.generate("a red sun", steps=1)
    to_pil(pic[0]).save(tmp_path / "plain.png")
    with pytest.warns(NoisebrushWarning, match=r"^plain.png has no recipe and no prompt was given: painting without a "
                                               r"prompt$"):
        text_pipe.vary(tmp_path / "plain.png", steps=2, strength=0.5, n=1)
    mask = Image.new("L", (16, 16), 255)
    with pytest.warns(NoisebrushWarning, match="plain.png has no recipe"):
        text_pipe.inpaint(tmp_path / "plain.png", mask, steps=2, jump_length=1, jumps=1, n=1)
    with pytest.warns(NoisebrushWarning, match="plain.png has no recipe"):
        text_pipe.outpaint(tmp_path / "plain.png", (8, 0, 8, 0), steps=2, jump_length=1, jumps=1, n=1)
    save_png(to_pil(pic[0]), tmp_path / "own.png", rec)
    with pytest.warns(NoisebrushWarning, match=r"not with own.png's own 'a red sun'"):
        text_pipe.vary(tmp_path / "own.png", steps=2, strength=0.5, n=1)
    save_png(to_pil(pic[0]), tmp_path / "empty.png", {**rec, "prompt": ""})
    ctx = _quiet()
    try:  # a prompt given, or a picture painted without one: nothing to say
        text_pipe.vary(tmp_path / "plain.png", "a red sun", steps=2, strength=0.5, n=1)
        text_pipe.vary(tmp_path / "empty.png", steps=2, strength=0.5, n=1)
    finally:
        ctx.__exit__(None, None, None)


def test_pictures_from_a_call_carry_their_recipe(label_pipe, tmp_path, capsys):
    from noisebrush.apps.cli import main
    from noisebrush.io.png import read_recipe

    pics = label_pipe("flower", steps=2, n=2, seed=5)
    _, recs = label_pipe.generate("flower", steps=2, n=2, seed=5)
    assert [json.loads(p.info["noisebrush"]) for p in pics] == recs
    path = noisebrush.save(pics[1], tmp_path / "flower.png")
    assert read_recipe(path) == recs[1]
    with Image.open(path) as im:
        assert np.array_equal(np.asarray(im.convert("RGB")), np.asarray(pics[1]))
    capsys.readouterr()
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "flower" in out and "6" in out  # its prompt and its seed (5 + 1)
    with pytest.raises(BadParameter, match="carries no noisebrush recipe"):
        noisebrush.save(Image.new("RGB", (4, 4)), tmp_path / "blank.png")
    with pytest.raises(BadParameter, match="name it .png"):
        noisebrush.save(pics[0], tmp_path / "flower.jpg")
