"""The clip judge: the shipped net, what it reads from fresh clips and from clips played backwards, its files, and
its training command."""
import json

import pytest
import torch

from _model_fixture import one_thread  # noqa: E402

from noisebrush.data.clips import MOTION_ATTRIBUTES, ProceduralClips, make_clip
from noisebrush.errors import UserError
from noisebrush.eval.clip_features import (CLIPNET_DIR, CLIPNET_FORMAT, ClipFeatureNet, default_heads,
                                           load_clip_features, read_clip_features, save_clip_features)
from noisebrush.eval.features import load_feature_net
from noisebrush.eval.train_clip_features import augment_clips, label_table, main

# what the shipped net was trained to reach on held-out clips (its config records what it reached)
TARGETS = {"family": 0.98, "motion": 0.95, "direction": 0.9, "speed": 0.9}
FRESH_SEED, FRESH = 2, 60  # neither the training seed (0) nor the held-out one (1)
OPPOSITE = {"left": "right", "right": "left", "up": "down", "down": "up", "clockwise": "anticlockwise",
            "anticlockwise": "clockwise"}


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    with one_thread():
        yield


def _turns(i: int) -> bool:
    """Whether clip i of the fresh set moves one way of two: a direction, or a sun that rises or sets."""
    motion = make_clip(FRESH_SEED, i).motion
    return "direction" in motion or motion["motion"] in ("rising", "setting")


@pytest.fixture(scope="module")
def fresh():
    """60 clips of a seed the net never saw, their labels, what the shipped net reads from them, and what it reads
    from those that move one way of two, played backwards (one pass)."""
    clips = ProceduralClips(32, 16, size=FRESH, seed=FRESH_SEED).cache_uint8(FRESH).float() / 127.5 - 1
    table = label_table(FRESH_SEED, FRESH)
    turns = [i for i in range(FRESH) if _turns(i)]
    pred = load_clip_features().predict(torch.cat([clips, clips[turns].flip(2)]))
    return table, {k: v[:FRESH] for k, v in pred.items()}, dict(zip(turns, zip(*[pred[k][FRESH:].tolist()
                                                                                for k in ("motion", "direction")])))


def test_shipped_net_loads_and_records_its_heldout_accuracy():
    conf = json.loads((CLIPNET_DIR / "config.json").read_text())
    assert conf["format"] == CLIPNET_FORMAT and conf["heads"] == default_heads()
    acc = conf["heldout_accuracy"]
    assert set(acc) == set(default_heads())
    for name, target in TARGETS.items():
        assert acc[name] >= target, (name, acc[name])
    prov = conf["provenance"]
    assert prov["command"].startswith("python -m noisebrush.eval.train_clip_features")
    assert prov["heldout"] == {"clips": 1000, "data_seed": 1} and prov["frames"] == 16
    assert (CLIPNET_DIR / "model.safetensors").stat().st_size <= 3 * 2**20
    net = load_clip_features()
    assert isinstance(net, ClipFeatureNet) and not net.training
    assert net.config() == {k: conf[k] for k in net.config()}
    assert load_clip_features() is net  # cached


def test_reads_fresh_clips_about_as_well_as_held_out(fresh):
    table, pred, _ = fresh
    names = list(default_heads())
    acc = {}
    for name in ("family", "motion", "direction", "speed"):
        j = names.index(name)
        m = table[:, j] >= 0
        acc[name] = float((pred[name][m] == table[m, j]).float().mean())
    # 60 clips (about 30 with a direction): a few points below the held-out accuracy at most
    assert acc["family"] >= 0.95 and acc["motion"] >= 0.9, acc
    assert acc["direction"] >= 0.85 and acc["speed"] >= 0.85, acc


def test_a_clip_played_backwards_moves_the_other_way(fresh):
    table, _, back = fresh  # back: {clip: (motion, direction) read from it played backwards}
    kinds, directions = MOTION_ATTRIBUTES["motion"], MOTION_ATTRIBUTES["direction"]
    flips = 0
    for i, (kind, direction) in back.items():
        motion = make_clip(FRESH_SEED, i).motion
        if "direction" in motion:
            flips += directions[direction] == OPPOSITE[motion["direction"]]
        else:
            flips += kinds[kind] == ("setting" if motion["motion"] == "rising" else "rising")
    assert int((table[:, list(default_heads()).index("direction")] >= 0).sum()) <= len(back)
    assert len(back) >= 20 and flips / len(back) >= 0.8, (flips, len(back))


def test_features_any_length_and_size():
    net = load_clip_features()
    clips = ProceduralClips(32, 16, size=4, seed=FRESH_SEED).cache_uint8(4).float() / 127.5 - 1
    f = net.features(clips)
    assert f.shape == (4, net.dim) and f.dtype == torch.float64 and torch.isfinite(f).all()
    assert net.features(clips[:, :, :2]).shape == (4, net.dim)
    # a 64 px clip is brought down to 32 px frame by frame with an area filter: 2 × 2 blocks give the same clip
    big = clips.repeat_interleave(2, -1).repeat_interleave(2, -2)
    assert torch.allclose(net.features(big), f, atol=1e-5)
    with pytest.raises(ValueError, match="T ≥ 2"):
        net.features(clips[:, :, :1])
    assert net.features(clips[:0]).shape == (0, net.dim)


def test_untrained_net_sees_every_frame_as_the_picture_judge():
    """Spatial blocks copied from the picture judge, temporal gains at 0: the trunk's output for each frame is the
    picture judge's third stage for that frame."""
    fnet = load_feature_net()
    torch.manual_seed(0)
    net = ClipFeatureNet().init_from_pictures(fnet).eval()
    clips = torch.rand(2, 3, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        h = net.trunk(clips)[-1]
        frames = clips.transpose(1, 2).reshape(6, 3, 32, 32)
        want = fnet.body[:8](frames).reshape(2, 3, 128, 8, 8).transpose(1, 2)
    assert torch.allclose(h, want, atol=1e-5)
    with pytest.raises(ValueError, match="does not start"):
        ClipFeatureNet(widths=(16, 32)).init_from_pictures(fnet)


def test_save_and_read_round_trip(tmp_path):
    torch.manual_seed(1)
    net = ClipFeatureNet(widths=(8, 16, 16), dim=24, flow=4)
    net.train()
    for _ in range(2):  # move the BatchNorm statistics off their defaults
        net(torch.rand(4, 3, 5, 32, 32) * 2 - 1)
    net.eval()
    save_clip_features(net, tmp_path / "c", {"heldout_accuracy": {"family": 0.5}})
    conf = json.loads((tmp_path / "c" / "config.json").read_text())
    assert conf["heldout_accuracy"] == {"family": 0.5} and conf["format"] == CLIPNET_FORMAT
    back = read_clip_features(tmp_path / "c")
    assert back.config() == net.config() and not back.training
    x = torch.rand(3, 3, 6, 32, 32) * 2 - 1
    assert torch.equal(back.features(x), net.features(x))
    assert {k: v.tolist() for k, v in back.predict(x).items()} == {k: v.tolist() for k, v in net.predict(x).items()}
    lp = back.log_probs(x, batch=2)
    assert {k: v.argmax(1).tolist() for k, v in lp.items()} == {k: v.tolist() for k, v in net.predict(x).items()}
    assert all(torch.allclose(v.exp().sum(1), torch.ones(3)) for v in lp.values())
    assert load_clip_features(str(tmp_path / "c")).config() == net.config()


def _one_line_user_error(fn, path) -> str:
    with pytest.raises(UserError) as e:
        fn(path)
    msg = str(e.value)
    assert "\n" not in msg and str(path) in msg
    return msg


def test_corrupt_or_missing_files_give_one_line(tmp_path):
    net = ClipFeatureNet(widths=(8, 16, 16), dim=24, flow=4)
    save_clip_features(net, tmp_path / "bad")
    (tmp_path / "bad" / "model.safetensors").write_bytes(b"\x00garbage\n" * 10)
    assert "unreadable" in _one_line_user_error(read_clip_features, tmp_path / "bad")
    save_clip_features(net, tmp_path / "conf")
    (tmp_path / "conf" / "config.json").write_text("{not json")
    assert "unreadable" in _one_line_user_error(read_clip_features, tmp_path / "conf")
    (tmp_path / "conf" / "config.json").write_text(json.dumps({**net.config(), "format": "other/1"}))
    assert "format" in _one_line_user_error(read_clip_features, tmp_path / "conf")
    (tmp_path / "conf" / "config.json").write_text(json.dumps({**net.config(), "dim": 25}))
    assert "does not match" in _one_line_user_error(read_clip_features, tmp_path / "conf")
    assert "no clip feature network" in _one_line_user_error(load_clip_features, str(tmp_path / "none"))


def test_augment_blurs_all_frames_of_a_clip_alike():
    x = -torch.ones(32, 3, 16, 32, 32)
    x[..., 16:] = 1.0  # a sharp vertical edge in every frame
    y = augment_clips(x, torch.Generator().manual_seed(0))
    assert y.shape == x.shape and y.min() >= -1 and y.max() <= 1
    profile = y.mean((1, 3))  # N × T × W: noise averages out over 96 rows and channels
    assert (profile - profile.mean(1, keepdim=True)).abs().max() < 0.1  # the same blur in every frame
    assert profile[:, :, 15].std() > 0.1  # but not in every clip


def test_cli_tiny_run_and_bad_arguments(tmp_path, capsys):
    assert main(["--out", str(tmp_path / "c"), "--n", "8", "--epochs", "1", "--batch", "4", "--val", "6",
                 "--frames", "4", "--workers", "1"]) == 0
    conf = json.loads((tmp_path / "c" / "config.json").read_text())
    assert set(conf["heldout_accuracy"]) == set(default_heads())
    prov = conf["provenance"]
    assert prov["n"] == 8 and prov["epochs"] == 1 and prov["init"] == "featnet" and prov["seconds"]["train"] >= 0
    assert prov["command"].endswith("--workers 1")
    assert read_clip_features(tmp_path / "c").predict(torch.zeros(1, 3, 4, 32, 32))["speed"].shape == (1,)
    capsys.readouterr()
    for bad in (["--workers", "3"], ["--frames", "1"], ["--n", "0"], ["--lr", "nan"]):
        assert main(["--out", str(tmp_path / "never"), *bad]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: --") and "\n" not in err
    assert not (tmp_path / "never").exists()
