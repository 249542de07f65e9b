"""The video objective (issue 16): joint picture and clip batches, MCVD frame masks, a picture model inflated into
the clip network, part of a network trained, exact resume — on a tiny network and a stub text encoder."""
import json
import zlib

import pytest
import torch

from noisebrush.errors import BadParameter, UserError
from noisebrush.io import model_folder
from noisebrush.nets.unet import UNet, UNetConfig
from noisebrush.train import Trainer
from noisebrush.train.video import MASKS, VideoObjective, draw_given
from noisebrush.seeding import generator


class _Text:
    """Tokens from a CRC of each word (the real encoder loads a sentence-transformers model)."""
    dim, name, max_tokens = 12, "fake-encoder", 16

    def encode(self, captions):
        tok = torch.zeros(len(captions), self.max_tokens, self.dim)
        mask = torch.zeros(len(captions), self.max_tokens, dtype=torch.bool)
        for i, c in enumerate(captions):
            for j, w in enumerate(c.split()[: self.max_tokens]):
                tok[i, j] = torch.randn(self.dim, generator=torch.Generator().manual_seed(zlib.crc32(w.encode())))
                mask[i, j] = True
        return tok, mask

    encode_uncached = encode


NET = dict(dims=3, factorized=True, cross_attn_resolutions=[8])
VIDEO = dict(task="video", condition="text", frames=4, data_size=16, joint_images=2, batch_size=6, model=NET)


def _trainer(make_config, name="run", **kw):
    return Trainer(make_config(name, **{**VIDEO, **kw}), objective=VideoObjective(text_encoder=_Text()))


def test_a_tiny_video_run_trains_and_exports_a_clip_model(make_config):
    tr = _trainer(make_config, steps=2)
    path = tr.fit()
    conf = json.loads((path / "config.json").read_text())
    assert conf["task"] == "video" and conf["frames"] == 4 and conf["condition"] == "text"
    assert conf["unet"]["factorized"] and conf["unet"]["dims"] == 3 and conf["unet"]["cond_channels"] == 4
    assert conf["video"]["frame_masks"] == [0.5, 0.2, 0.15, 0.15]
    previews = tr.sample(n=2, steps=2)
    assert previews.shape == (2 * 4, 3, 16, 16) and tr.objective.preview_cols == 4


def test_the_batch_puts_pictures_first_and_depends_on_seed_and_sample_only(make_config):
    tr = _trainer(make_config)
    whole = tr.objective.batch(range(6, 12))  # step 1: samples 6, 7 are pictures
    assert whole["pictures"]["x0"].shape == (2, 3, 1, 16, 16) and whole["clips"]["x0"].shape == (4, 3, 4, 16, 16)
    assert not whole["pictures"]["given"].any()
    again = _trainer(make_config, "again").objective
    split = [again.batch(range(6, 9)), again.batch(range(9, 12))]  # another split of the same step
    assert torch.equal(split[0]["pictures"]["x0"], whole["pictures"]["x0"])
    for key in ("x0", "noise", "given"):
        torch.testing.assert_close(torch.cat([split[0]["clips"][key], split[1]["clips"][key]]), whole["clips"][key],
                                   rtol=0, atol=0)
    low = whole["clips"]["cond"]["low"]
    given = whole["clips"]["given"]
    assert low.shape == (4, 4, 4, 16, 16)
    assert torch.equal(low[:, 3, :, 0, 0], given.float())  # the mask channel
    assert torch.equal(low[:, :3] * (~given)[:, None, :, None, None], torch.zeros_like(low[:, :3]))


def test_frame_noise_correlates_a_clips_frames_and_is_recorded(make_config):
    tr = _trainer(make_config, frame_noise=0.9, batch_size=40, joint_images=0, data_size=40)
    noise = tr.objective.batch(range(40))["clips"]["noise"]
    corr = float(torch.corrcoef(torch.stack([noise[:, :, 0].flatten(), noise[:, :, 2].flatten()]))[0, 1])
    assert 0.8 < corr < 0.95
    assert tr.objective.model_config()["video"]["frame_noise"] == 0.9
    with pytest.raises(BadParameter, match="frame_noise"):
        make_config(**{**VIDEO, "frame_noise": 0.99})


def test_draw_given_follows_the_shares():
    def kinds(shares, frames=8, n=40):
        return [draw_given(shares, frames, generator(5, k)) for k in range(n)]

    assert all(g.tolist() == [False] * 8 for g in kinds((1, 0, 0, 0)))
    assert all(g.tolist() == [True] + [False] * 7 for g in kinds((0, 1, 0, 0)))
    assert all(g.tolist() == [True] + [False] * 6 + [True] for g in kinds((0, 0, 1, 0)))
    prefixes = kinds((0, 0, 0, 1))
    lengths = {int(g.sum()) for g in prefixes}
    assert lengths == {2, 3, 4} and all(g[:int(g.sum())].all() for g in prefixes)
    assert not draw_given((0, 1, 0, 0), 1, generator(1)).any()  # a picture has nothing to be given
    assert len(MASKS) == 4


def test_given_frames_do_not_count_in_the_loss(make_config):
    tr = _trainer(make_config, frame_masks=[0, 1, 0, 0], joint_images=0)
    batch = tr.objective.batch(range(6))["clips"]
    base = tr.objective.loss({"clips": batch}, 0, 1).per_sample
    moved = dict(batch, x0=batch["x0"].clone())
    moved["x0"][:, :, 0] += 5.0  # the given first frame's target: not learned, so the loss ignores it
    assert torch.equal(tr.objective.loss({"clips": moved}, 0, 1).per_sample, base)
    moved["x0"][:, :, 1] += 5.0
    assert (tr.objective.loss({"clips": moved}, 0, 1).per_sample > base).all()


def test_train_only_keeps_every_other_weight_exactly(make_config):
    tr = _trainer(make_config, steps=2, train_only=["time"])
    before = {k: v.clone() for k, v in tr.net.state_dict().items()}
    tr.fit()
    after = tr.net.state_dict()
    frozen = [k for k in before if "time" not in k]
    assert frozen and all(torch.equal(before[k], after[k]) for k in frozen)
    assert any(not torch.equal(before[k], after[k]) for k in before if "time" in k)
    with pytest.raises(UserError, match="train_only"):
        _trainer(make_config, "none", train_only=["no-such-weight"])


def _picture_model(path, **over):
    cfg = UNetConfig(**{"resolution": 16, "channels": 8, "channel_mult": (1, 2), "blocks": 1,
                        "attn_resolutions": (8,), "cross_attn_resolutions": (8,), "text_dim": 12, **over})
    torch.manual_seed(3)
    net = UNet(cfg)
    return model_folder.write(path, net.state_dict(), {"network": "unet", "unet": cfg.to_dict(), "sigma_data": 0.5,
                                                        "resolution": 16, "condition": "text"}), net


def test_init_from_a_picture_model_paints_its_frames(make_config, tmp_path):
    folder, picture = _picture_model(tmp_path / "pic")
    tr = _trainer(make_config, init=str(folder))
    clip_net = tr.net.eval()
    x = torch.randn(2, 3, 4, 16, 16)
    tok, mask = _Text().encode(["a red circle", "a blue sun"])
    low = torch.zeros(2, 4, 4, 16, 16)
    with torch.no_grad():
        y = clip_net(x, torch.tensor([0.2, 1.0]), text=tok, text_mask=mask, low=low)
        per_frame = torch.stack([picture.eval()(x[:, :, t], torch.tensor([0.2, 1.0]), text=tok, text_mask=mask)
                                 for t in range(4)], 2)
    torch.testing.assert_close(y, per_frame, atol=1e-5, rtol=1e-4)
    other, _ = _picture_model(tmp_path / "wide", channels=16)
    with pytest.raises(UserError, match="init: .*channels"):
        _trainer(make_config, "wide", init=str(other))


def test_a_video_run_resumes_bit_identically(make_config, tmp_path):
    kw = dict(steps=4, checkpoint_every=2, log_every=1, keep_last=4, lr_schedule="cosine", warmup=1)
    ref = _trainer(make_config, "ref", **kw)
    ref.fit()

    def crash(step, row):
        if step == 3:
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        _trainer(make_config, "run", **kw).fit(crash)
    tr = Trainer(make_config("run", **{**VIDEO, **kw}), resume=True, objective=VideoObjective(text_encoder=_Text()))
    assert tr.step == 2
    tr.fit()
    for k, v in ref.net.state_dict().items():
        assert torch.equal(tr.net.state_dict()[k], v), k
    for k, v in ref.ema.state_dict().items():
        assert torch.equal(tr.ema.state_dict()[k], v), k


@pytest.mark.parametrize("kw,match", [
    (dict(frames=0), "frames"), (dict(frames=65), "frames"), (dict(joint_images=6), "joint_images"),
    (dict(frame_masks=[0.5, 0.5, 0.5, 0]), "frame_masks"), (dict(frame_masks=[1, 0, 0]), "frame_masks"),
    (dict(data="/some/folder"), "built-in clips"), (dict(condition="label"), "text"),
    (dict(model=dict(dims=2, factorized=False)), "factorised"), (dict(train_only=[""]), "train_only"),
])
def test_video_settings_are_checked(make_config, kw, match):
    with pytest.raises(BadParameter, match=match):
        make_config(**{**VIDEO, **kw})
