"""Clips from a clip model (issue 16): text → clip, picture → clip with the first frame kept bit for bit,
interpolation, longer clips in windows, loops, replay from the recipe — on a tiny random clip model."""
import numpy as np
import pytest
import torch
from PIL import Image

from _model_fixture import one_thread, write_model
from noisebrush.errors import BadParameter, UserError
from noisebrush.paint.pipeline import load
from noisebrush.paint import recipe as recipes
from noisebrush.paint.animate import _plan

FAST = dict(steps=3, sampler="euler")


@pytest.fixture(scope="module")
def pipe(tmp_path_factory):
    folder = write_model(tmp_path_factory.mktemp("video") / "model", factorized=True, condition="label",
                         classes=["up", "down"], frames=4, given_frames=True)
    with one_thread():
        yield load(folder)


@pytest.fixture(scope="module")
def plain_clip(tmp_path_factory):
    return load(write_model(tmp_path_factory.mktemp("clip") / "model", factorized=True, condition="label",
                            classes=["up", "down"], frames=4))


def _png(path, seed=0):
    a = np.random.default_rng(seed).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    Image.fromarray(a).save(path)
    return a


def _u8(frame):
    return ((frame.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0).numpy()


def test_text_to_clip_is_the_model_length_and_repeats(pipe):
    clips, recs = pipe.animate("up", seed=5, **FAST)
    assert clips.shape == (1, 3, 4, 8, 8)
    assert recs[0]["mode"] == "animate" and recs[0]["frames"] == 4 and recs[0]["seed"] == 5
    again, _ = pipe.animate("up", seed=5, **FAST)
    assert torch.equal(clips, again)
    pair, _ = pipe.animate("up", seed=4, n=2, **FAST)  # clip i uses seed + i, whatever the batch
    assert torch.equal(pair[1], clips[0])
    plain, _ = pipe.generate("up", seed=5, **FAST)  # painting a video model: nothing given
    assert plain.shape == (1, 3, 4, 8, 8) and torch.isfinite(plain).all()


def test_picture_to_clip_keeps_the_first_frame_bit_for_bit(pipe, tmp_path):
    a = _png(tmp_path / "first.png")
    clips, recs = pipe.animate("down", first=tmp_path / "first.png", seed=1, **FAST)
    assert np.array_equal(_u8(clips[0, :, 0]), a)
    assert not np.array_equal(_u8(clips[0, :, 1]), a)  # the rest is painted
    assert recs[0]["source"] == "first.png" and len(recs[0]["source_sha256"]) == 16


def test_interpolation_keeps_both_ends(pipe, tmp_path):
    a, b = _png(tmp_path / "a.png", 1), _png(tmp_path / "b.png", 2)
    clips, recs = pipe.animate("up", first=tmp_path / "a.png", last=tmp_path / "b.png", frames=6, **FAST)
    assert clips.shape[2] == 6
    assert np.array_equal(_u8(clips[0, :, 0]), a) and np.array_equal(_u8(clips[0, :, -1]), b)
    assert recs[0]["to"] == "b.png"


def test_a_picture_of_another_size_is_cropped_and_resized(pipe, tmp_path):
    Image.fromarray(np.full((20, 30, 3), 200, np.uint8)).save(tmp_path / "big.png")
    clips, recs = pipe.animate("up", first=tmp_path / "big.png", **FAST)
    assert recs[0]["source_resized_from"] == [20, 30]
    assert np.array_equal(_u8(clips[0, :, 0]), np.full((8, 8, 3), 200, np.uint8))


def test_longer_clips_paint_windows_that_continue_the_first(pipe):
    short, _ = pipe.animate("up", seed=2, **FAST)
    long, recs = pipe.animate("up", seed=2, frames=9, **FAST)
    assert long.shape[2] == 9 and recs[0]["frames"] == 9
    assert torch.equal(long[:, :, :4], short)  # the first window is the 4-frame clip
    assert _plan(9, 4, False, False, False) == [{"length": 4, "first": False}, {"length": 4, "overlap": 2},
                                                {"length": 4, "overlap": 2}, {"length": 3, "overlap": 2}]


def test_a_loop_adds_frames_that_lead_back_to_the_start(pipe):
    clip, _ = pipe.animate("down", seed=3, **FAST)
    loop, recs = pipe.animate("down", seed=3, loop=True, **FAST)
    assert loop.shape[2] == 4 + 4 - 2 and recs[0]["loop"] is True
    assert torch.equal(loop[:, :, :4], clip)


def test_replay_paints_the_clip_again(pipe, tmp_path):
    _png(tmp_path / "first.png", 3)
    clips, recs = pipe.animate("down", first=tmp_path / "first.png", seed=7, frames=6, loop=True, **FAST)
    again, _ = recipes.replay(pipe, recs[0], where=str(tmp_path / "x-strip.png"), search=[tmp_path])
    assert torch.equal(again, clips)
    (tmp_path / "first.png").write_bytes(b"changed")
    with pytest.raises(UserError, match="changed"):
        recipes.replay(pipe, recs[0], where="x", search=[tmp_path])


def test_bad_requests_are_one_line(pipe, plain_clip, tmp_path):
    _png(tmp_path / "a.png")
    with pytest.raises(BadParameter, match="from"):
        pipe.animate("up", last=tmp_path / "a.png", **FAST)
    with pytest.raises(BadParameter, match="frames"):
        pipe.animate("up", frames=1, **FAST)
    with pytest.raises(UserError, match="not trained with given frames"):
        plain_clip.animate("up", first=tmp_path / "a.png", **FAST)
    with pytest.raises(UserError, match="no such file"):
        pipe.animate("up", first=tmp_path / "missing.png", **FAST)
    picture = load("builtin")
    with pytest.raises(UserError, match="not clips"):
        picture.animate("a red circle", **FAST)


def test_a_clip_model_without_given_frames_paints_text_to_clip(plain_clip):
    clips, _ = plain_clip.animate("up", frames=6, **FAST)
    assert clips.shape == (1, 3, 6, 8, 8)


def test_clips_start_from_noise_correlated_as_the_model_was_trained(pipe, plain_clip):
    from noisebrush.diffusion.noise import SampleNoise
    from noisebrush.paint.animate import frame_noise, start_clip

    assert frame_noise(pipe) == 0.5 and frame_noise(plain_clip) == 0.0
    sig = torch.tensor([80.0, 0.0])
    x = start_clip(pipe, SampleNoise.from_seeds(range(64)), (3, 4, 8, 8), sig)
    corr = float(torch.corrcoef(torch.stack([x[:, :, 0].flatten(), x[:, :, 3].flatten()]))[0, 1])
    assert 0.27 < corr < 0.4  # ρ − (1 − ρ)/(T − 1) = 1/3 for ρ = 0.5, T = 4
    y = start_clip(plain_clip, SampleNoise.from_seeds(range(64)), (3, 4, 8, 8), sig)
    assert abs(float(torch.corrcoef(torch.stack([y[:, :, 0].flatten(), y[:, :, 3].flatten()]))[0, 1])) < 0.1
