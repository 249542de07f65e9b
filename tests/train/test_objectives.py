"""Objectives plug into the one loop: a toy GAN (two networks, two AdamW optimizers, alternating updates) trains,
checkpoints and resumes bit-identically through the same Trainer the EDM objective uses; the sample stream."""
import json

import pytest
import torch
import torch.nn.functional as F

from noisebrush.seeding import generator
from noisebrush.train import EMA, Trainer, make_scheduler
from noisebrush.train.checkpoint import list_checkpoints, load_checkpoint
from noisebrush.train.objectives import Loss, Objective, Part, Phase
from noisebrush.train.stream import SampleStream

LATENT, DIM = 4, 8


class ToyGAN(Objective):
    """A non-saturating GAN (Goodfellow et al. 2014, §3) on 12 points in 8-D: generator and discriminator MLPs."""

    def __init__(self, poison_disc_at=None):
        self.poison_disc_at = poison_disc_at

    def build(self, loop):
        cfg, self.loop = loop.cfg, loop
        self.cfg, self.dev = cfg, loop.acc.device
        self.data = torch.randn(12, DIM, generator=generator(7, 0xDA7A))
        self.stream = SampleStream(len(self.data), cfg.seed, tag=0x6A)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed)
            self.gen = torch.nn.Sequential(torch.nn.Linear(LATENT, 16), torch.nn.ReLU(), torch.nn.Linear(16, DIM))
            self.disc = torch.nn.Sequential(torch.nn.Linear(DIM, 16), torch.nn.Dropout(0.1), torch.nn.LeakyReLU(0.2),
                                            torch.nn.Linear(16, 1))
        parts = {}
        for name, net, lr in (("gen", self.gen, cfg.lr), ("disc", self.disc, 2 * cfg.lr)):
            opt = torch.optim.AdamW(net.parameters(), lr=lr, betas=(0.5, 0.99))
            sched = make_scheduler(opt, "cosine", cfg.steps, warmup=1, final=0.1)
            parts[name] = Part(net, opt, sched, EMA(net, 0.9) if name == "gen" else None, grad_clip=1.0)
        self.parts = parts
        return parts

    def describe(self):
        return {"toy": "gan", "latent": LATENT, "dim": DIM}

    def data_size(self):
        return len(self.data)

    def batch(self, ks):
        real = torch.stack([self.data[self.stream.item(k)[0]] for k in ks])
        z = torch.stack([torch.randn(LATENT, generator=generator(self.cfg.seed, k, 0x2)) for k in ks])
        return {"real": real.to(self.dev), "z": z.to(self.dev)}

    def phases(self, step):
        return [Phase("disc", self.batch, self.disc_loss), Phase("gen", self.batch, self.gen_loss)]

    def disc_loss(self, b, micro, accum):
        d = self.parts["disc"].module
        fake = self.parts["gen"].module(b["z"]).detach()
        per = F.softplus(-d(b["real"])).squeeze(1) + F.softplus(d(fake)).squeeze(1)
        if self.loop.step == self.poison_disc_at:
            per = per * float("nan")
        return Loss(per.mean() / accum, per.detach())

    def gen_loss(self, b, micro, accum):
        per = F.softplus(-self.parts["disc"].module(self.parts["gen"].module(b["z"]))).squeeze(1)
        return Loss(per.mean() / accum, per.detach())

    def model_config(self):
        return {"network": "toy-gan-generator", "latent": LATENT, "dim": DIM}


def _gan_config(make_config, name, **kw):
    return make_config(name, **{**dict(steps=6, batch_size=4, grad_accum=2, lr=1e-2, log_every=1, keep_last=5), **kw})


def _states(tr):
    return {name: ({k: v.clone() for k, v in p.net.state_dict().items()},
                   {k: v.clone() for k, v in p.ema.state_dict().items()} if p.ema else None,
                   {(i, n): v.clone() for i, s in p.optimizer.state_dict()["state"].items() for n, v in s.items()})
            for name, p in tr.parts.items()}


def _assert_same_states(a, b):
    assert a.keys() == b.keys()
    for name in a:
        for x, y in zip(a[name], b[name]):
            assert (x is None) == (y is None)
            if x is not None:
                assert x.keys() == y.keys()
                for k in x:
                    assert torch.equal(x[k], y[k]), (name, k)


def test_a_gan_objective_trains_through_the_loop(make_config, tmp_path):
    obj = ToyGAN()
    tr = Trainer(_gan_config(make_config, "gan"), objective=obj)
    before = _states(tr)
    results = [tr.train_step() for _ in range(3)]
    after = _states(tr)
    for name in ("gen", "disc"):  # both networks learned, each with its own optimizer
        assert any(not torch.equal(v, before[name][0][k]) for k, v in after[name][0].items()), name
        assert int(tr.parts[name].optimizer.state_dict()["state"][0]["step"]) == 3
    assert tr.parts["gen"].ema.updates == 3 and tr.parts["disc"].ema is None
    assert tr.micro == 2 and tr.step == 3 and tr.skipped == 0
    assert all(torch.isfinite(torch.tensor(r.loss)) for r in results)
    # the LRs follow each part's own schedule (the discriminator's base LR is twice the generator's)
    assert tr.parts["disc"].optimizer.param_groups[0]["lr"] == pytest.approx(
        2 * tr.parts["gen"].optimizer.param_groups[0]["lr"])
    # no gradient is left behind in either network between steps
    assert all(p.grad is None for part in tr.parts.values() for p in part.net.parameters())


def test_a_skipped_phase_leaves_only_its_network_untouched(make_config):
    tr = Trainer(_gan_config(make_config, "gan"), objective=ToyGAN(poison_disc_at=2))
    tr.train_step(), tr.train_step()
    before = _states(tr)
    res = tr.train_step()
    after = _states(tr)
    assert res.skipped and tr.skipped == 1
    for x, y in zip(before["disc"], after["disc"]):  # weights and Adam moments of the discriminator
        if x is not None:
            assert all(torch.equal(x[k], y[k]) for k in x)
    assert any(not torch.equal(v, before["gen"][0][k]) for k, v in after["gen"][0].items())  # the generator moved


def test_a_gan_resumes_bit_identically(make_config, tmp_path):
    ref = Trainer(_gan_config(make_config, "ref"), objective=ToyGAN())
    ref_model = ref.fit()

    def crash(step, row):
        if step == 4:
            raise RuntimeError("boom")

    cfg = _gan_config(make_config, "run", checkpoint_every=3)
    with pytest.raises(RuntimeError, match="boom"):
        Trainer(cfg, objective=ToyGAN()).fit(crash)
    run = tmp_path / "run"
    assert [s for s, _ in list_checkpoints(run)] == [3]
    ck = load_checkpoint(run / "checkpoints" / "step-0000003")
    assert set(ck["parts"]) == {"disc"} and ck["parts"]["disc"]["ema"] is None and ck["ema_updates"] == 3

    tr = Trainer(cfg, objective=ToyGAN(), resume=True)
    assert tr.step == 3
    model = tr.fit()
    _assert_same_states(_states(tr), _states(ref))
    for name in ("model.safetensors", "ema.safetensors", "part-disc.safetensors", "state.safetensors"):
        a = (run / "checkpoints" / "step-0000006" / name).read_bytes()
        b = (tmp_path / "ref" / "checkpoints" / "step-0000006" / name).read_bytes()
        assert a == b, name
    assert (model / "model.safetensors").read_bytes() == (ref_model / "model.safetensors").read_bytes()
    conf = json.loads((model / "config.json").read_text())
    assert conf["format"] == "noisebrush.model/1" and conf["network"] == "toy-gan-generator"
    assert conf["provenance"]["steps"] == 6

    with pytest.raises(Exception, match="network differs"):  # another objective's checkpoint
        Trainer(make_config("run", steps=8), resume=True)


# -- the sample stream ------------------------------------------------------------------------------------------------

def test_stream_draws_are_a_function_of_seed_and_sample():
    a, b = SampleStream(10, 3, P_mean=-1.2, P_std=1.2, cond_drop=0.5), SampleStream(10, 3, cond_drop=0.5)
    ks = [37, 2, 19, 2, 0]
    for k in ks:  # any order, any history
        assert a.item(k) == b.item(k)
        sa, na, da = a.draws(k, (3, 4))
        sb, nb, db = b.draws(k, (3, 4))
        assert sa == sb and torch.equal(na, nb) and da == db
    # every epoch is a permutation of the items
    for e in range(3):
        assert sorted(a.item(10 * e + i)[0] for i in range(10)) == list(range(10))
        assert {a.item(10 * e + i)[1] for i in range(10)} == {e}


def test_stream_seeds_with_and_without_a_tag():
    plain, tagged = SampleStream(7, 5), SampleStream(7, 5, tag=0xDA)
    assert torch.equal(plain.permutation(2), torch.randperm(7, generator=generator(5, 2, 0xDA7A)))
    assert torch.equal(tagged.permutation(2), torch.randperm(7, generator=generator(5, 2, 0xDA, 0xDA7A)))
    g = generator(5, 11, 0xDA, 0x5A)
    sigma = float(torch.exp(-1.2 + 1.2 * torch.randn((), generator=g, dtype=torch.float64)))
    noise = torch.randn((2, 2), generator=g)
    s, n, _ = tagged.draws(11, (2, 2))
    assert s == pytest.approx(sigma, rel=1e-15) and torch.equal(n, noise)
    assert not torch.equal(plain.draws(11, (2, 2))[1], n)


def test_checkpoint_part_names_are_checked(tmp_path):
    from noisebrush.train.checkpoint import save_checkpoint

    net = torch.nn.Linear(2, 2)
    opt = torch.optim.AdamW(net.parameters())
    sched = make_scheduler(opt, "constant", 2)
    kw = dict(model=net, ema=None, optimizer=opt, scheduler=sched, state={})
    for bad in ("model", "Disc", "a/b"):
        with pytest.raises(ValueError, match="part name"):
            save_checkpoint(tmp_path, 1, parts={bad: {"model": net, "optimizer": opt, "scheduler": sched}}, **kw)
    path = save_checkpoint(tmp_path, 1, parts={"d-2": {"model": net, "optimizer": opt, "scheduler": sched}}, **kw)
    ck = load_checkpoint(path)
    assert ck["ema"] is None and ck["ema_updates"] is None and ck["parts"]["d-2"]["ema"] is None
    assert ck["parts"]["d-2"]["model"].keys() == net.state_dict().keys()


def test_stream_caption_rng_and_token_noise_are_functions_of_seed_and_sample():
    import random

    from noisebrush.seeding import mix

    a, b, tagged = SampleStream(10, 3), SampleStream(10, 3), SampleStream(10, 3, tag=7)
    for k in (5, 0, 123, 5):  # any order, any history
        assert a.caption_rng(k).random() == b.caption_rng(k).random() == random.Random(mix(3, k, 0xCA97)).random()
        assert torch.equal(a.token_noise(k, (4, 6)), b.token_noise(k, (4, 6)))
        assert torch.equal(a.token_noise(k, (4, 6)), torch.randn((4, 6), generator=generator(3, k, 0x70CE)))
    assert a.caption_rng(5).random() != a.caption_rng(6).random() != SampleStream(10, 4).caption_rng(6).random()
    assert tagged.caption_rng(5).random() == random.Random(mix(3, 5, 7, 0xCA97)).random() != a.caption_rng(5).random()
    assert not torch.equal(tagged.token_noise(5, (3,)), a.token_noise(5, (3,)))


@pytest.mark.parametrize("kw, match", [
    (dict(captions="families"), "captions: one of template, family"),
    (dict(captions="family", condition="label"), "captions: 'family'"),
    (dict(captions="family", data="/some/folder", condition="text"), "captions: 'family'"),
    (dict(text_noise=-0.1), "text_noise"),
    (dict(text_noise=11.0), "text_noise"),
])
def test_caption_settings_are_checked(make_config, kw, match):
    from noisebrush.errors import BadParameter

    with pytest.raises(BadParameter, match=match):
        make_config(**kw)


def test_caption_family_and_text_noise_need_what_they_work_on(make_config):
    from noisebrush.errors import UserError
    from noisebrush.train.objectives import EDMObjective

    class Captioned(torch.utils.data.Dataset):  # a captioned data set without scenes (like a folder)
        captions = ["a red circle", "a blue square"]

        def __len__(self):
            return 2

        def __getitem__(self, i):
            return {"image": torch.zeros(3, 16, 16), "caption": self.captions[i], "label": 0, "index": i}

    with pytest.raises(UserError, match="needs the built-in data set"):
        Trainer(make_config(captions="family", condition="text"), objective=EDMObjective(dataset=Captioned()))
    with pytest.raises(UserError, match="text_noise = 0.1 needs a text condition"):
        Trainer(make_config(text_noise=0.1))  # the base config trains on labels
    assert make_config().captions == "template" and make_config().text_noise == 0.0


# -- the super-resolution task ------------------------------------------------------------------------------------------

SR = dict(data_size=16, resolution=16, task="sr", scale=2, crop_size=8, condition="none", steps=2, batch_size=4,
          warmup=0, sample_every=0, checkpoint_every=0, mixed_precision="no",
          model=dict(attn_resolutions=[], cross_attn_resolutions=[]))


def test_stream_condition_generator_is_a_function_of_seed_and_sample():
    a, b, tagged = SampleStream(10, 3), SampleStream(10, 3), SampleStream(10, 3, tag=7)
    for k in (4, 0, 99, 4):
        want = torch.rand(5, generator=generator(3, k, 0xC0D1))
        assert torch.equal(torch.rand(5, generator=a.condition_generator(k)), want)
        assert torch.equal(torch.rand(5, generator=b.condition_generator(k)), want)
    assert torch.equal(torch.rand(5, generator=tagged.condition_generator(4)),
                       torch.rand(5, generator=generator(3, 4, 7, 0xC0D1)))
    other = [torch.rand(5, generator=g) for g in (a.condition_generator(5), SampleStream(10, 4).condition_generator(4),
                                                  tagged.condition_generator(4))]
    base = torch.rand(5, generator=a.condition_generator(4))
    assert all(not torch.equal(o, base) for o in other)


def test_a_tiny_sr_run_exports_a_super_resolution_stage(make_config):
    import noisebrush
    from _model_fixture import one_thread

    cfg = make_config("sr", **SR)
    tr = Trainer(cfg)
    assert tr.net_config.cond_channels == 3 and tr.net_config.aug_cond
    path = tr.fit()
    assert tr.skipped == 0
    conf = json.loads((path / "config.json").read_text())
    assert conf["task"] == "sr" and conf["condition"] == "none"
    assert conf["superres"]["scale"] == 2 and conf["superres"]["crop"] == 8
    assert conf["superres"]["aug_max"] == cfg.sr_aug_max and conf["superres"]["blur_max"] == cfg.sr_blur
    assert 0 <= conf["superres"]["sampling_aug"] <= conf["superres"]["aug_max"]
    assert conf["unet"]["cond_channels"] == 3 and conf["unet"]["aug_cond"] is True
    assert conf["resolution"] == 16
    with one_thread():
        pipe = noisebrush.load(str(path))
    assert pipe.task == "sr" and pipe.scale == 2


def test_an_image_run_has_no_sr_entries(make_config):
    tr = Trainer(make_config("img", **{**SR, "task": "image", "steps": 1}))
    assert tr.net_config.cond_channels == 0 and not tr.net_config.aug_cond
    conf = tr.objective.model_config()
    assert "task" not in conf and "superres" not in conf
    b = tr.batch(range(4))
    assert b["x0"].shape == (4, 3, 16, 16) and "low" not in b["cond"] and "aug" not in b["cond"]


def test_sr_crop_must_fit_the_network_levels(make_config):
    from noisebrush.errors import BadParameter

    with pytest.raises(BadParameter, match="crop_size: the network needs a side divisible by 4, got 6"):
        Trainer(make_config("sr", **{**SR, "crop_size": 6, "model": dict(channel_mult=[1, 2, 2],
                                                                          attn_resolutions=[],
                                                                          cross_attn_resolutions=[])}))


def test_the_sr_batch_is_a_function_of_seed_and_sample(make_config):
    a = Trainer(make_config("a", **{**SR, "sr_blur": 1.0}))
    b = Trainer(make_config("b", **{**SR, "sr_blur": 1.0}))
    whole = a.batch(range(8, 16))
    assert whole["x0"].shape == whole["cond"]["low"].shape == whole["noise"].shape == (8, 3, 8, 8)
    assert whole["cond"]["aug"].shape == (8,) and whole["cond"]["aug"].dtype == torch.float32
    assert ((whole["cond"]["aug"] >= 0) & (whole["cond"]["aug"] <= a.cfg.sr_aug_max)).all()
    assert len(set(whole["cond"]["aug"].tolist())) == 8
    again = a.batch(range(8, 16))
    split = [b.batch(range(12, 16)), b.batch(range(8, 12))]  # another trainer, another split and order
    for key in ("x0", "noise", "sigma"):
        assert torch.equal(again[key], whole[key])
        assert torch.equal(torch.cat([split[1][key], split[0][key]]), whole[key])
    for key in ("low", "aug"):
        assert torch.equal(again["cond"][key], whole["cond"][key])
        assert torch.equal(torch.cat([split[1]["cond"][key], split[0]["cond"][key]]), whole["cond"][key])
    # other samples, other crops and augmentation
    other = a.batch(range(16, 24))
    assert not torch.equal(other["cond"]["aug"], whole["cond"]["aug"])
    # another seed, other draws for the same samples
    c = Trainer(make_config("c", **{**SR, "sr_blur": 1.0, "seed": 1}))
    assert not torch.equal(c.batch(range(8, 16))["cond"]["aug"], whole["cond"]["aug"])


def test_the_sr_batch_is_the_crop_and_its_aligned_condition(make_config):
    """With no augmentation, sample k's condition is the box-averaged picture upsampled, cut at the crop's window;
    the crop is its picture's, and every draw is SuperRes.training_pair's from the stream's condition generator."""
    from noisebrush.data.superres import downsample, upsample

    tr = Trainer(make_config("sr0", **{**SR, "sr_aug_max": 0.0}))
    obj, ds = tr.objective, tr.dataset
    ks = range(0, 12)
    b = tr.batch(ks)
    assert torch.equal(b["cond"]["aug"], torch.zeros(12))
    windows = set()
    for j, k in enumerate(ks):
        full = ds[obj.stream.item(k)[0]]["image"]
        crop = b["x0"][j]
        hits = [(oy, ox) for oy in range(0, 9) for ox in range(0, 9)
                if torch.equal(full[:, oy:oy + 8, ox:ox + 8], crop)]
        assert hits, k
        oy, ox = hits[0]
        windows.add((oy, ox))
        assert oy % 2 == 0 and ox % 2 == 0
        cond = upsample(downsample(full, 2), 2)[:, oy:oy + 8, ox:ox + 8]
        assert torch.equal(b["cond"]["low"][j], cond), k
        # the objective's draws are SuperRes.training_pair's with the stream's generator of sample k
        hi, low, aug = obj.sr.training_pair(full, obj.stream.condition_generator(k))
        assert torch.equal(hi, crop) and torch.equal(low, b["cond"]["low"][j]) and aug == 0.0
        # σ and noise as for pictures: the stream's draws for k, of the crop's shape
        sigma, noise, _ = obj.stream.draws(k, (3, 8, 8))
        assert float(b["sigma"][j]) == sigma and torch.equal(b["noise"][j], noise)
    assert len(windows) > 1


def test_sr_previews_upscale_the_first_pictures(make_config):
    tr = Trainer(make_config("sr", **SR))
    out = tr.objective.sample(n=2, steps=2)
    assert out.shape == (2, 3, 16, 16) and torch.isfinite(out).all()
    assert out.min() >= -1 and out.max() <= 1


def test_cached_pixels_give_the_procedural_pictures_back_bit_for_bit(make_config):
    from noisebrush.data.procedural import ProceduralArt
    from noisebrush.train.objectives import _Pixels

    # every level a uint8 picture can hold, made the way ProceduralArt makes them
    levels = torch.arange(256, dtype=torch.uint8).reshape(1, 16, 16).expand(3, -1, -1)
    x = levels.float().div_(127.5).sub_(1.0)
    assert torch.equal(_Pixels(x).image(), x)
    assert torch.equal(_Pixels(x).u8, levels)
    for resolution in (16, 32):
        ds = ProceduralArt(resolution=resolution, size=24, seed=0)
        for i in range(len(ds)):
            item = ds[i]
            p = _Pixels(item["image"])
            assert p.u8.dtype == torch.uint8
            assert torch.equal(p.image(), item["image"]), (resolution, i)
    # the trainer's cache: the pictures of a batch are the data set's, bit for bit
    tr = Trainer(make_config("img", **{**SR, "task": "image", "steps": 1}))
    ks = list(range(20))
    b = tr.batch(ks)
    for j, k in enumerate(ks):
        assert torch.equal(b["x0"][j], tr.dataset[tr.objective.stream.item(k)[0]]["image"])
    assert len(tr.objective._image_cache) > 0
    assert all(isinstance(item["image"], _Pixels) for item in tr.objective._image_cache.values())
    assert torch.equal(tr.batch(ks)["x0"], b["x0"])  # from the cache now
