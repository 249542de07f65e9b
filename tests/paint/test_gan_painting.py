"""Painting with a diffusion GAN's model folder: the Pipeline takes its sampler, steps and noise levels from the
folder, paints each picture the same whatever its batch, records and replays recipes, varies pictures along the
posterior chain, feeds the evaluation's batched painting, and refuses what needs a diffusion model in one line."""
import json
import shutil

import pytest
import torch

import noisebrush
from _model_fixture import TINY_NET, one_thread, train_tiny
from noisebrush.errors import BadParameter, NoisebrushWarning, UserError
from noisebrush.paint.recipe import replay

DISC = dict(channels=8, channel_mult=[1, 2, 2])


@pytest.fixture(scope="module")
def gan_dir(tmp_path_factory):
    with one_thread():
        return train_tiny(tmp_path_factory.mktemp("gan-run"), "label", steps=2, method="ddgan", disc=DISC,
                          model=dict(TINY_NET))


@pytest.fixture()
def pipe(gan_dir):
    with one_thread():
        yield noisebrush.load(str(gan_dir))


def test_the_folder_says_how_it_paints(pipe):
    assert pipe.is_gan and pipe.method == "ddgan" and pipe.latent == 64
    assert (pipe.schedule.kind, pipe.schedule.sampler, pipe.schedule.steps) == ("ddgan", "gan", 4)
    opts = pipe.check("flower")
    assert opts.sampler == "gan" and opts.steps == 4 and opts.cfg == 1.0
    assert opts.sigmas()[0] == pytest.approx(152.1669702839464) and float(opts.sigmas()[-1]) == 0.0


def test_a_picture_is_the_same_in_any_batch_and_replays(pipe):
    alone, (rec,) = pipe.generate("flower", seed=8)
    batch, recs = pipe.generate("flower", seed=7, n=3)
    assert torch.equal(alone[0], batch[1]) and not torch.equal(batch[0], batch[1])
    assert rec["sampler"] == "gan" and rec["steps"] == 4 and rec["cfg"] == 1.0 and rec["seed"] == 8
    again, _ = replay(pipe, json.loads(json.dumps(rec)))
    assert torch.equal(again, alone)


def test_guidance_and_negatives_do_not_apply(pipe):
    with pytest.warns(NoisebrushWarning, match="paints without guidance: --cfg 5 is ignored"):
        a, (rec,) = pipe.generate("flower", seed=1, cfg=5.0)
    b, _ = pipe.generate("flower", seed=1)
    assert torch.equal(a, b) and rec["cfg"] == 1.0


@pytest.mark.parametrize("kw, match", [
    (dict(steps=3), "exactly 4 steps"), (dict(sampler="dpmpp_2m"), "gan sampler"),
    (dict(sigma_max=40.0), "its own noise levels"),
])
def test_other_steps_samplers_or_levels_are_refused(pipe, kw, match):
    with pytest.raises(BadParameter, match=match):
        pipe.generate("flower", **kw)


def test_variations_walk_the_posterior_chain(pipe):
    x, _ = pipe.generate("flower", seed=2)
    same, _ = pipe.vary(x, "flower", strength=0.0, n=1)
    assert torch.allclose(same, x, atol=1 / 127.5)  # the picture itself, through its 8-bit pixels
    half, recs = pipe.vary(x, "flower", strength=0.5, n=2, seed=3)
    assert half.shape == (2, 3, 16, 16) and not torch.equal(half[0], half[1])
    assert recs[0]["steps"] == 4 and recs[0]["sampler"] == "gan"
    # two of four steps: the variations keep more of the picture than new pictures do
    fresh, _ = pipe.generate("flower", seed=3, n=2)
    assert (half - x).abs().mean() < (fresh - x).abs().mean()


def test_what_needs_a_diffusion_model_is_one_line(pipe):
    x, _ = pipe.generate("flower", seed=2)
    mask = torch.zeros(1, 1, 16, 16)
    mask[..., :8] = 1
    for call, what in ((lambda: pipe.inpaint(x, mask, "flower"), "inpainting"),
                       (lambda: pipe.outpaint(x, (8, 0, 0, 0), "flower"), "outpainting"),
                       (lambda: pipe.morph("flower", to_seed=3), "a morph")):
        with pytest.raises(UserError, match=f"{what} needs a diffusion model; this is a ddgan model"):
            call()


def test_the_evaluations_batched_painting_takes_a_gan(pipe):
    from noisebrush.eval.sampling import sample_batch

    out = sample_batch(pipe, labels=[3, 3], seeds=[8, 9], steps=4, sampler="gan", cfg=1.0, fast=False)
    alone, _ = pipe.generate("flower", seed=8)
    assert out.shape == (2, 3, 16, 16) and torch.allclose(out[0], alone[0], atol=1e-4)


def test_a_folder_that_names_a_gan_without_its_latent_is_one_line(gan_dir, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(gan_dir, bad)
    conf = json.loads((bad / "config.json").read_text())
    del conf["gan"]
    (bad / "config.json").write_text(json.dumps(conf))
    with pytest.raises(UserError, match="needs \"gan\": {\"latent\": N}"):
        noisebrush.load(str(bad))
