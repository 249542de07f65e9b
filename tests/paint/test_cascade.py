"""Super-resolution stages and cascades (noisebrush.paint.upscale, noisebrush.paint.cascade) on tiny model folders
made by really training (2 steps): a 16 px label base model and 16 px scale-2 stages, with and without text."""
import shutil

import pytest
import torch

import noisebrush
from _model_fixture import one_thread, tiny_model, tiny_sr_model
from noisebrush.data.superres import downsample
from noisebrush.errors import BadParameter, UserError
from noisebrush.io.png import read_recipe, save_png
from noisebrush.io.images import to_pil
from noisebrush.paint import recipe as recipes
from noisebrush.paint.cascade import BUILTIN_STAGES, Cascade, Stage, replay_stages, stage_names, upscale_image
from noisebrush.paint.upscale import STAGE_TAG, upscale


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    with one_thread():
        yield


@pytest.fixture(scope="module")
def sr_pipe(tmp_path_factory):
    return noisebrush.load(tiny_sr_model(tmp_path_factory, "none"))


@pytest.fixture(scope="module")
def sr_text_pipe(tmp_path_factory):
    return noisebrush.load(tiny_sr_model(tmp_path_factory, "text"))


@pytest.fixture(scope="module")
def base_pipe(tmp_path_factory):
    return noisebrush.load(tiny_model(tmp_path_factory, "label"))


def _low(n=2, size=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand((n, 3, size, size), generator=g) * 2 - 1


def test_a_stage_is_loaded_as_one(sr_pipe):
    assert sr_pipe.task == "sr" and sr_pipe.scale == 2
    assert sr_pipe.superres["sampling_aug"] == pytest.approx(0.05)
    with pytest.raises(UserError, match="super-resolution stage"):
        sr_pipe.generate("", n=1)


def test_upscale_doubles_the_size_and_records_the_stage(sr_pipe):
    big, recs = sr_pipe.upscale(_low(), seed=5, steps=3)
    assert big.shape == (2, 3, 16, 16) and big.min() >= -1 and big.max() <= 1
    assert [r["seed"] for r in recs] == [5, 6]
    r = recs[0]
    assert (r["width"], r["height"], r["steps"], r["sr_aug"], r["cfg"]) == (16, 16, 3, 0.05, 1.0)
    assert r["model_hash"] == sr_pipe.hash and "prompt" not in r  # a stage without text records no prompt


def test_a_picture_does_not_depend_on_its_batch(sr_pipe):
    low = _low(3)
    together, _ = upscale(sr_pipe, low, seed=10, steps=3)
    alone, _ = upscale(sr_pipe, low[1:2], seed=11, steps=3)
    assert torch.equal(together[1:2], alone)


def test_the_augmentation_changes_the_picture_and_is_bounded(sr_pipe):
    low = _low(1)
    a, _ = upscale(sr_pipe, low, seed=1, steps=3, aug=0.0)
    b, _ = upscale(sr_pipe, low, seed=1, steps=3, aug=0.3)
    assert not torch.equal(a, b)
    with pytest.raises(BadParameter, match="sr_aug"):
        upscale(sr_pipe, low, aug=1.5)


def test_odd_sizes_are_padded_and_cut_back(sr_pipe):
    big, recs = upscale(sr_pipe, _low(1, size=6)[..., :5], seed=0, steps=2)
    assert big.shape == (1, 3, 12, 10) and (recs[0]["width"], recs[0]["height"]) == (10, 12)


def test_text_stage_reads_the_prompt(sr_text_pipe):
    low = _low(1)
    a, recs = upscale(sr_text_pipe, low, "a red circle", seed=2, steps=3, cfg=2.0)
    b, _ = upscale(sr_text_pipe, low, "a blue square", seed=2, steps=3, cfg=2.0)
    assert recs[0]["prompt"] == "a red circle" and recs[0]["cfg"] == 2.0
    assert not torch.equal(a, b)
    c, _ = upscale(sr_text_pipe, low, "a red circle", seed=2, steps=3, cfg=2.0, negative="dark")  # negative: same keys
    assert not torch.equal(a, c)


def test_stage_noise_is_its_own(sr_pipe):
    """The stage's generator mixes in a tag and the size, so it does not replay the base's noise."""
    from noisebrush.seeding import generator

    g = generator(3, STAGE_TAG, 16)
    assert not torch.equal(torch.randn(4, generator=g), torch.randn(4, generator=torch.Generator().manual_seed(3)))


def test_stage_names_double_to_the_size():
    assert stage_names(32, 64) == [BUILTIN_STAGES[64]]
    assert stage_names(32, 128) == [BUILTIN_STAGES[64], BUILTIN_STAGES[128]]
    assert stage_names(64, 128) == [BUILTIN_STAGES[128]]
    assert stage_names(128, 256) == [BUILTIN_STAGES[128]]
    for bad in (48, 96, 16):
        with pytest.raises(BadParameter, match="doubling"):
            stage_names(32, bad)


def test_cascade_paints_at_the_last_stages_size(base_pipe, sr_pipe):
    casc = Cascade(base_pipe, [Stage(sr_pipe, steps=2), Stage(sr_pipe, steps=2, aug=0.1)])
    assert casc.resolution == 64 and casc.sizes() == [32, 64]
    steps = []
    images, recs = casc.generate("rings", seed=3, n=2, steps=3, callback=lambda i: steps.append((i.step, i.steps)))
    assert images.shape == (2, 3, 64, 64)
    assert steps[-1] == (casc.total_steps(3, 2) - 1, casc.total_steps(3, 2)) == (10, 11)
    r = recs[1]
    assert (r["width"], r["seed"]) == (16, 4)  # the base painting's own recipe...
    assert [(s["width"], s["sr_aug"], s["seed"]) for s in r["stages"]] == [(32, 0.05, 4), (64, 0.1, 4)]  # ...+ stages
    alone, _ = casc.generate("rings", seed=4, n=1, steps=3)
    assert torch.equal(alone, images[1:])


def test_cascade_refuses_what_it_cannot_paint(base_pipe, sr_pipe):
    with pytest.raises(UserError, match="not a super-resolution stage"):
        Cascade(base_pipe, [base_pipe])
    with pytest.raises(UserError, match="is a super-resolution stage"):
        Cascade(sr_pipe, [sr_pipe])
    casc = Cascade(base_pipe, [sr_pipe])
    with pytest.raises(BadParameter, match="paints 32 px"):
        casc.check("rings", size=64)
    with pytest.raises(BadParameter, match="sr_aug"):
        Stage(sr_pipe, aug=2.0)


def test_a_cascaded_recipe_replays_pixel_for_pixel(base_pipe, sr_pipe, tmp_path):
    casc = Cascade(base_pipe, [Stage(sr_pipe, steps=2)])
    images, recs = casc.generate("rings", seed=8, n=1, steps=3)
    again, rec_again = recipes.replay(base_pipe, recs[0])
    assert torch.equal(again, images) and rec_again[0] == recs[0]
    changed = dict(recs[0], stages=[dict(recs[0]["stages"][0], model_hash="0000000000")])
    with pytest.raises(UserError, match="stage 1 was painted with weights"):
        recipes.replay(base_pipe, changed)
    with pytest.raises(UserError, match="'stages' is not a list"):
        replay_stages(images, "x")


def test_upscale_image_from_a_file_replays(sr_pipe, tmp_path):
    low = _low(1)
    src = tmp_path / "small.png"
    save_png(to_pil(low[0]), src, {"prompt": "whatever"})
    x, rec = upscale_image(src, scale=4, stages=[sr_pipe, sr_pipe], seed=2, steps=2)
    assert x.shape == (1, 3, 32, 32) and rec["mode"] == "upscale" and len(rec["stages"]) == 2
    assert rec["source"] == "small.png" and len(rec["source_sha256"]) == 16
    again, recs = recipes.replay(sr_pipe, rec, where=str(tmp_path / "big.png"), search=[tmp_path])
    assert torch.equal(again, x) and recs[0]["stages"] == rec["stages"]
    with pytest.raises(BadParameter, match="scale"):
        upscale_image(src, scale=3, stages=[sr_pipe])


def test_variations_at_full_size_go_through_the_base(base_pipe, sr_pipe, tmp_path):
    casc = Cascade(base_pipe, [Stage(sr_pipe, steps=2)])
    big, _ = casc.generate("rings", seed=1, n=1, steps=3)
    src = tmp_path / "big.png"
    save_png(to_pil(big[0]), src, {})
    images, recs = casc.vary(src, "rings", seed=4, n=2, strength=0.5, steps=4)
    assert images.shape == (2, 3, 32, 32)
    r = recs[0]
    assert (r["mode"], r["base_scale"], r["source"], r["width"]) == ("vary", 2, "big.png", 16)
    again, rec_again = recipes.replay(base_pipe, recs[1], where=str(src))
    assert torch.equal(again, images[1:]) and rec_again[0] == recs[1]
    with pytest.raises(BadParameter, match="multiples of"):
        casc.vary(torch.zeros(1, 3, 30, 30), "rings")


def test_inpainting_at_full_size_keeps_the_known_pixels_and_replays(base_pipe, sr_pipe, tmp_path):
    casc = Cascade(base_pipe, [Stage(sr_pipe, steps=2)])
    big, _ = casc.generate("rings", seed=1, n=1, steps=3)
    src, mask = tmp_path / "big.png", tmp_path / "mask.png"
    save_png(to_pil(big[0]), src, {})
    from PIL import Image
    m = Image.new("L", (32, 32), 0)
    m.paste(255, (4, 6, 13, 20))  # not aligned to the 2×2 blocks of the base
    m.save(mask)
    images, recs = casc.inpaint(src, mask, "rings", seed=2, n=2, steps=4, jumps=1)
    assert images.shape == (2, 3, 32, 32)
    original, _ = __import__("noisebrush.paint.upscale", fromlist=["as_pictures"]).as_pictures(src)
    keep = torch.ones(32, 32, dtype=torch.bool)
    keep[6:20, 4:13] = False
    assert torch.equal(images[:, :, keep], original.expand(2, -1, -1, -1)[:, :, keep])
    assert not torch.equal(images[:, :, ~keep], original.expand(2, -1, -1, -1)[:, :, ~keep])
    r = recs[1]
    assert (r["mode"], r["mask"], r["base_scale"], r["sampler"]) == ("inpaint", "mask.png", 2, "repaint")
    again, _ = recipes.replay(base_pipe, r, where=str(src))
    assert torch.equal(again, images[1:])
    with pytest.raises(BadParameter, match="nothing to repaint"):
        Image.new("L", (32, 32), 0).save(tmp_path / "black.png")
        casc.inpaint(src, tmp_path / "black.png", "rings")


def test_outpainting_at_full_size_keeps_the_picture_and_replays(base_pipe, sr_pipe, tmp_path):
    casc = Cascade(base_pipe, [Stage(sr_pipe, steps=2)])
    big, _ = casc.generate("rings", seed=1, n=1, steps=3)
    src = tmp_path / "big.png"
    save_png(to_pil(big[0]), src, {})
    images, recs = casc.outpaint(src, (8, 0, 0, 8), "rings", seed=3, n=1, steps=4, jumps=1)
    assert images.shape == (1, 3, 40, 40)
    original, _ = __import__("noisebrush.paint.upscale", fromlist=["as_pictures"]).as_pictures(src)
    assert torch.equal(images[..., 0:32, 8:40], original)
    assert recs[0]["extend"] == [4, 0, 0, 4] and recs[0]["extend_full"] == [8, 0, 0, 8]
    again, _ = recipes.replay(base_pipe, recs[0], where=str(src))
    assert torch.equal(again, images)
    with pytest.raises(BadParameter, match="multiple of 2"):
        casc.outpaint(src, (3, 0, 0, 0), "rings")


def test_morph_frames_are_upscaled_with_one_seed(base_pipe, sr_pipe):
    casc = Cascade(base_pipe, [Stage(sr_pipe, steps=2)])
    seen = []
    frames, recipe = casc.morph("rings", to_prompt="swirl", seed=1, frames=3, steps=3,
                                callback=lambda i: seen.append((i.step, i.steps)))
    assert frames.shape == (3, 3, 32, 32) and recipe["mode"] == "morph" and recipe["stages"][0]["seed"] == 1
    assert seen[-1] == (3 * 3 + 3 * 2 - 1, 3 * 3 + 3 * 2)  # one bar through the base frames and the stages
    first, _ = casc.generate("rings", seed=1, n=1, steps=3)
    assert torch.equal(frames[:1], first)  # frame 0 is the painting of the first prompt and seed, upscaled
