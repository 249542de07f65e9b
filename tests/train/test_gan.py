"""Diffusion GANs on the one loop (noisebrush.train.gan): DDGAN, Diffusion-GAN and the plain GAN train, log their
own columns, export a model folder the Pipeline paints with its own sampler, start from a diffusion model's weights,
and check their settings. (Exact resume after SIGKILL and two processes: tests/train/test_loop.py.)"""
import csv
import json

import pytest
import torch

from noisebrush.errors import BadParameter, UserError
from noisebrush.train import Trainer
from noisebrush.train.config import merge_for_resume
from noisebrush.train.gan import GAN_LOG, GANObjective

DISC = dict(channels=8, channel_mult=[1, 2, 2])


def _gan(make_config, name="gan", **kw):
    return make_config(name, **{**dict(method="ddgan", disc=DISC, steps=4, log_every=2, r1_every=2), **kw})


def _rows(run):
    with open(run / "log.csv", newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("method, steps", [("ddgan", 4), ("ddgan", 2), ("diffusion-gan", 1), ("gan", 1)])
def test_each_method_trains_logs_and_exports_a_model_that_paints(make_config, method, steps):
    import noisebrush
    from _model_fixture import one_thread

    cfg = _gan(make_config, method, method=method, gan_steps=steps if method == "ddgan" else 4, ada_every=2,
               ada_kimg=0.05)
    tr = Trainer(cfg)
    assert isinstance(tr.objective, GANObjective) and list(tr.parts) == ["model", "disc"]
    assert tr.net_config.latent_dim == cfg.latent_dim == 64
    assert tr.objective.disc_config.in_channels == (3 if method == "diffusion-gan" else 6)
    before = {k: v.clone() for k, v in tr.parts["disc"].net.state_dict().items()}
    path = tr.fit()
    assert tr.skipped == 0
    assert any(not torch.equal(v, before[k]) for k, v in tr.parts["disc"].net.state_dict().items())
    rows = _rows(tr.out)
    assert [int(r["step"]) for r in rows] == [2, 4] and set(GAN_LOG) <= set(rows[0])
    for r in rows:
        assert 0 <= float(r["d_real"]) <= 1 and 0 <= float(r["d_fake"]) <= 1 and float(r["d_loss"]) > 0
        assert float(r["g_loss"]) > 0 and float(r["loss"]) == float(r["d_loss"])  # the log's loss is D's
        assert float(r["r1"]) >= 0
        assert (r["ada_t"] != "") == (method == "diffusion-gan")
    conf = json.loads((path / "config.json").read_text())
    assert conf["method"] == method and conf["gan"] == {"steps": steps, "latent": 64}
    assert conf["schedule"]["kind"] == "ddgan" and conf["schedule"]["sampler"] == "gan"
    assert conf["schedule"]["steps"] == steps and conf["unet"]["latent_dim"] == 64
    assert "disc" not in json.dumps(conf["unet"])  # only the generator is exported
    with one_thread():
        pipe = noisebrush.load(str(path))
        x, rec = pipe.generate("flower", seed=5, n=2)
        alone, _ = pipe.generate("flower", seed=6)
    assert pipe.is_gan and x.shape == (2, 3, 16, 16) and torch.equal(x[1:], alone)
    assert rec[0]["sampler"] == "gan" and rec[0]["steps"] == steps and rec[0]["cfg"] == 1.0
    samples = tr.sample(4)
    assert samples.shape == (4, 3, 16, 16) and samples.abs().max() <= 1


def test_diffusion_gan_moves_its_depth_with_the_discriminators_confidence(make_config):
    tr = Trainer(_gan(make_config, method="diffusion-gan", ada_every=2, ada_kimg=0.1, ada_t_min=5, ada_t_max=50,
                      batch_size=8))
    obj = tr.objective
    move = 8 * 2 / (0.1 * 1000) * 1000  # batch × every / (kimg × 1000) × 1000 levels = 160: clamped to the bounds
    obj._signs, obj._sign_n = 7.0, 8  # r_d = 0.875 > 0.6: D is sure of the real pictures → deeper
    assert obj.step_done(2) == {"r_d": 0.875} and obj.ada_t == 50.0
    obj._signs, obj._sign_n = -2.0, 8  # r_d < 0.6 → shallower
    obj.step_done(4)
    assert obj.ada_t == 5.0 and move > 45
    assert obj.step_done(5) == {}  # only every ada_every steps
    assert obj.state() == {"ada_t": 5.0, "signs": 0.0, "sign_n": 0}
    obj.load_state({"ada_t": 17.0, "signs": 1.0, "sign_n": 3})
    assert obj.ada_t == 17.0
    b = tr.batch(range(16))  # t drawn from {0 … round(T)} with p ∝ t + 1
    assert b["t"].min() >= 0 and b["t"].max() <= 17


def test_ddgan_draws_every_step_of_its_chain(make_config):
    tr = Trainer(_gan(make_config, gan_steps=4, batch_size=8))
    b = tr.batch(range(400))
    assert set(b["t"].tolist()) == {1, 2, 3, 4} and b["z"].shape == (400, 64)
    assert not b["cond"]["drop"].any()  # a GAN trains every sample with its condition
    again = tr.batch(range(398, 402))
    assert torch.equal(again["t"][:2], b["t"][398:]) and torch.equal(again["z"][:2], b["z"][398:])


def test_a_generator_starts_from_a_diffusion_models_weights(make_config, tmp_path):
    diffusion = Trainer(make_config("diffusion", steps=2)).fit()
    tr = Trainer(_gan(make_config, "from-diffusion", init=str(diffusion)))
    from noisebrush.io import model_folder

    want = model_folder.read_weights(diffusion)
    got = tr.parts["model"].net.state_dict()
    for k, v in want.items():
        assert torch.equal(got[k], v.to(torch.float32)), k
    assert {k for k in got if k not in want} == {"emb_latent.weight", "latent_gain"}
    assert float(got["latent_gain"]) == 0.0  # so the generator starts as the denoiser
    with pytest.raises(UserError, match="another network"):
        Trainer(_gan(make_config, "other", init=str(diffusion), model=dict(channels=16)))


@pytest.mark.parametrize("kw, match", [
    (dict(method="vae"), "method: one of diffusion, ddgan, diffusion-gan, gan"),
    (dict(gan_steps=9), "gan_steps: from 1 to 8"),
    (dict(gan_steps=0), "gan_steps"),
    (dict(latent_dim=0), "latent_dim"),
    (dict(d_lr=0.0), "d_lr"),
    (dict(r1=-1.0), "r1"),
    (dict(ada_target=1.0), "ada_target"),
    (dict(ada_t_min=600), "ada_t_min/ada_t_max"),
    (dict(disc=dict(wings=1)), "disc: unknown discriminator config keys: wings"),
    (dict(task="sr"), "method: ddgan trains pictures"),
])
def test_gan_settings_are_checked(make_config, kw, match):
    with pytest.raises(BadParameter, match=match):
        _gan(make_config, **kw)


def test_each_method_has_its_own_optimiser_defaults(make_config):
    assert make_config(lr=None).lr == 1e-2 and make_config(lr=None).betas == (0.9, 0.99)
    gan = _gan(make_config, lr=None)
    assert gan.lr == 2e-3 and gan.betas == (0.5, 0.9)
    assert _gan(make_config, lr=5e-4, betas=[0.0, 0.99]).betas == (0.0, 0.99)


def test_a_resumed_run_keeps_its_method(make_config):
    run = _gan(make_config).to_dict()
    with pytest.raises(BadParameter, match="method: the run was trained with \"ddgan\""):
        merge_for_resume(run, {"method": "gan"})
    assert merge_for_resume(run, {"steps": 9})["method"] == "ddgan"


def test_a_gan_trains_on_a_folder_of_pictures(make_config, tmp_path):
    from noisebrush.bench.finetune import make_style_folder

    folder = make_style_folder(tmp_path / "pictures", n=6, resolution=16, captions=False)
    tr = Trainer(_gan(make_config, "folder", data=str(folder), condition="auto", steps=2))
    assert tr.condition == "none" and len(tr.dataset) == 6
    path = tr.fit()
    conf = json.loads((path / "config.json").read_text())
    assert conf["method"] == "ddgan" and conf["condition"] == "none" and tr.skipped == 0
