"""The domain feature network at 32 px (shipped) and above (a stride-2 stem), and its training command."""
import json

import pytest
import torch

from _model_fixture import one_thread  # noqa: E402

from noisebrush.data.procedural import ATTRIBUTES
from noisebrush.eval.features import (FEATNET128_DIR, FEATNET_DIR, FeatureNet, default_stem, load_feature_net,
                                      read_feature_net, save_feature_net)
from noisebrush.eval.train_features import augment, main, train_feature_net

HEADS = {k: len(v) for k, v in ATTRIBUTES.items()}


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    with one_thread():
        yield


def test_default_stem_keeps_the_trunk_at_32():
    assert default_stem(32) == [] and default_stem(48) == []
    assert default_stem(64) == [16] and default_stem(128) == [16, 24]
    assert FeatureNet(HEADS).stem_widths == ()


def test_128_px_net_reads_128_and_resized_pictures():
    torch.manual_seed(0)
    net = FeatureNet(HEADS, resolution=128).eval()
    assert net.config()["stem"] == [16, 24] and net.config()["resolution"] == 128
    assert any(k.startswith("stem.") for k in net.state_dict())
    x = torch.rand(3, 3, 128, 128) * 2 - 1
    f, logits = net(x)
    assert f.shape == (3, 256) and torch.isfinite(f).all()
    assert {k: v.shape[1] for k, v in logits.items()} == HEADS
    # the trunk runs at 32 × 32 whatever the input
    assert net.stem(x).shape[-2:] == (32, 32)
    small = torch.rand(2, 3, 32, 32) * 2 - 1
    assert net.features(small).shape == (2, 256)
    assert set(net.predict(small)) == set(HEADS)
    lp = net.log_probs(small, batch=1)  # log-probabilities whose argmax is the prediction
    assert {k: v.shape for k, v in lp.items()} == {k: (2, n) for k, n in HEADS.items()}
    assert all(torch.allclose(v.exp().sum(1), torch.ones(2)) for v in lp.values())
    assert {k: v.argmax(1).tolist() for k, v in lp.items()} == {k: v.tolist() for k, v in net.predict(small).items()}
    # a 32 px picture is resized to 128 first
    up = torch.nn.functional.interpolate(small, size=(128, 128), mode="bilinear")
    assert torch.allclose(net.features(small), net.features(up), atol=1e-6)


@pytest.mark.parametrize("resolution", [64, 128])
def test_stem_config_round_trips(tmp_path, resolution):
    torch.manual_seed(1)
    net = FeatureNet(HEADS, widths=(8, 16, 32, 32), resolution=resolution)
    net.train()
    for _ in range(2):  # move the BatchNorm statistics off their defaults
        net(torch.rand(4, 3, resolution, resolution) * 2 - 1)
    net.eval()
    # weights as the float16 file stores them, so the reloaded net must match exactly
    net.load_state_dict({k: v.half().float() if v.is_floating_point() else v for k, v in net.state_dict().items()})
    save_feature_net(net, tmp_path / "f", {"provenance": {"command": "test"}})
    conf = json.loads((tmp_path / "f" / "config.json").read_text())
    assert conf["stem"] == default_stem(resolution)
    back = read_feature_net(tmp_path / "f")
    assert back.config() == net.config()
    assert back.state_dict().keys() == net.state_dict().keys()
    x = torch.rand(5, 3, resolution, resolution) * 2 - 1
    assert torch.equal(back.features(x), net.features(x))
    assert torch.equal(back.features(x[:, :, ::2, ::2]), net.features(x[:, :, ::2, ::2]))


def test_config_without_stem_builds_none(tmp_path):
    """Nets saved before stems existed (the shipped one) have no "stem" key: they read back without one, at any
    resolution, as they always did."""
    net = FeatureNet({"family": 6}, widths=(8, 16), resolution=64, stem=[])
    save_feature_net(net, tmp_path)
    conf = json.loads((tmp_path / "config.json").read_text())
    del conf["stem"]
    (tmp_path / "config.json").write_text(json.dumps(conf))
    back = read_feature_net(tmp_path)
    assert back.stem_widths == () and back.resolution == 64


def test_shipped_32_px_net_loads_as_before():
    conf = json.loads((FEATNET_DIR / "config.json").read_text())
    assert conf.get("stem", []) == [] and conf["resolution"] == 32
    fnet = load_feature_net()
    assert fnet.stem_widths == () and len(fnet.stem) == 0
    keys = set(fnet.state_dict())
    assert not any(k.startswith("stem.") for k in keys) and "body.0.0.weight" in keys
    assert fnet.state_dict()["body.0.0.weight"].shape[1] == 3
    assert FeatureNet(conf["heads"], conf["widths"], 32).state_dict().keys() == fnet.state_dict().keys()


def test_featnet128_dir_and_package_data():
    assert FEATNET128_DIR.name == "featnet128" and FEATNET128_DIR.parent == FEATNET_DIR.parent


def test_augment_blur_scales_with_resolution():
    g = torch.Generator().manual_seed(0)
    x = torch.zeros(64, 3, 128, 128)
    x[:, :, :, 64:] = 1.0  # a sharp vertical edge
    y = augment(x, g)
    # σ up to 4 px at 128: some pictures are blurred well beyond the 5 taps a 32 px picture uses
    spread = ((y[:, 0, 64] > 0.05) & (y[:, 0, 64] < 0.95)).sum(-1)
    assert spread.max() >= 6


def test_augment_blur_max_bounds_the_blur():
    """blur_max=0: noise only, the edge stays where it is; the default blurs it across the edge."""
    x = torch.zeros(64, 3, 128, 128)
    x[:, :, :, 64:] = 1.0
    sharp = augment(x, torch.Generator().manual_seed(0), blur_max=0.0)
    soft = augment(x, torch.Generator().manual_seed(0))
    assert sharp[..., 63].mean() < 0.05 and sharp[..., 64].mean() > 0.9
    assert soft[..., 63].mean() > 0.1
    small = augment(x, torch.Generator().manual_seed(0), blur_max=0.5)  # σ ≤ 0.5 px: a pixel or so either side
    assert small[..., 61].mean() < 0.05 and small[..., 66].mean() > 0.9


def test_cli_blur_max_is_bounded(capsys):
    assert main(["--resolution", "64", "--n", "8", "--out", "/tmp/never", "--blur-max", "20"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--blur-max" in err and "\n" not in err


def test_tiny_training_run_at_64_px():
    net, report = train_feature_net(n=64, epochs=1, batch=32, resolution=64, val=32, progress=lambda s: None)
    assert net.resolution == 64 and net.stem_widths == (16,)
    assert report["resolution"] == 64 and report["train_items"] == 64
    assert set(report["held_out"]["accuracy"]) == set(ATTRIBUTES)
    assert net.features(torch.zeros(2, 3, 64, 64)).shape == (2, 256)


def test_cli_needs_out_for_an_unshipped_resolution(capsys):
    assert main(["--resolution", "64", "--n", "8"]) == 2
    assert "--out" in capsys.readouterr().err
