"""The network registry: config.json's "network" → class; unknown names are one clear line; a registered network
loads through noisebrush.load."""
from dataclasses import dataclass

import pytest
import torch

import noisebrush
from _model_fixture import TINY_NET, one_thread
from noisebrush.errors import BadParameter, UserError
from noisebrush.io import model_folder
from noisebrush.nets import UNet, UNetConfig, registry

CONFIG = {"network": "unet", "unet": dict(TINY_NET, resolution=16), "sigma_data": 0.5, "condition": "none",
          "resolution": 16}


def _one_line(e) -> str:
    msg = str(e.value)
    assert msg and "\n" not in msg and msg.strip() == msg
    return msg


def test_build_a_unet_from_its_config():
    net = registry.build(CONFIG)
    assert isinstance(net, UNet) and net.config == UNetConfig.from_dict(CONFIG["unet"])


def test_a_config_without_a_network_name_holds_a_unet():
    old = {k: v for k, v in CONFIG.items() if k != "network"}
    assert isinstance(registry.build(old), UNet)


def test_unet_is_registered():
    assert "unet" in registry.names()
    entry = registry.get("unet")
    assert entry.net_class is UNet and entry.config_class is UNetConfig


def test_unknown_network_is_one_line_naming_config_json(tmp_path):
    with pytest.raises(UserError) as e:
        registry.build({**CONFIG, "network": "sr-unet", "sr-unet": {}}, source=tmp_path / "config.json")
    msg = _one_line(e)
    assert str(tmp_path / "config.json") in msg and "'sr-unet'" in msg and "unet" in msg.split("knows", 1)[1]


def test_missing_or_bad_description_is_one_line():
    with pytest.raises(UserError) as e:
        registry.build({k: v for k, v in CONFIG.items() if k != "unet"})
    assert "config.json" in _one_line(e) and "missing 'unet'" in str(e.value)
    with pytest.raises(UserError) as e:
        registry.build({**CONFIG, "unet": {**CONFIG["unet"], "bogus": 1}})
    assert "bad network description" in _one_line(e) and "bogus" in str(e.value)
    with pytest.raises(UserError) as e:
        registry.build({**CONFIG, "unet": [1, 2]})
    assert "bad network description" in _one_line(e)


# -- a network of one's own ---------------------------------------------------------------------------------------

@dataclass
class ToyConfig:  # no from_dict: built as ToyConfig(**description)
    gain: float = 0.5


class Toy(torch.nn.Module):
    """F(x) = gain·x: the EDM denoiser then shrinks x toward 0 a little at every σ."""

    def __init__(self, config: ToyConfig):
        super().__init__()
        self.config = config
        self.gain = torch.nn.Parameter(torch.tensor(float(config.gain)))

    def forward(self, x, c_noise, **cond):
        return self.gain * x


@pytest.fixture
def toy():
    registry.register("toy", Toy, ToyConfig)
    yield
    registry.unregister("toy")


def test_registering_a_name_twice_is_refused(toy):
    with pytest.raises(BadParameter, match="toy"):
        registry.register("toy", Toy, ToyConfig)
    registry.register("toy", Toy, ToyConfig, replace=True)
    assert registry.get("toy").net_class is Toy


def test_a_registered_network_loads_through_load(toy, tmp_path):
    conf = {"network": "toy", "toy": {"gain": 0.25}, "sigma_data": 0.5, "condition": "none", "resolution": 8}
    path = model_folder.write(tmp_path / "toy", Toy(ToyConfig(0.25)).state_dict(), conf)
    with one_thread():
        pipe = noisebrush.load(path, device="cpu")
        assert isinstance(pipe.net, Toy) and pipe.net.config == ToyConfig(0.25)
        assert float(pipe.net.gain) == 0.25
        images, recipes = pipe.generate(steps=2, seed=1, size=8)
    assert images.shape == (1, 3, 8, 8) and torch.isfinite(images).all()
    assert recipes[0]["model_hash"] == model_folder.weights_hash(path)


def test_an_unregistered_network_in_a_folder_is_one_line(tmp_path):
    conf = {"network": "toy", "toy": {"gain": 0.25}, "sigma_data": 0.5, "condition": "none", "resolution": 8}
    path = model_folder.write(tmp_path / "toy", Toy(ToyConfig(0.25)).state_dict(), conf)
    with pytest.raises(UserError) as e:
        noisebrush.load(path, device="cpu")
    assert str(path / "config.json") in _one_line(e) and "'toy'" in str(e.value)


# -- a folder built on a base (issue 16: the built-in animation model ships only what differs) ---------------------

def _picture_and_clip(tmp_path):
    """A picture model folder, and a clip network inflated from it whose temporal layers were then changed (what a
    run with train_only = ["time"] leaves)."""
    from noisebrush.nets.unet import inflate_image_weights

    pic_cfg = UNetConfig(**dict(TINY_NET, resolution=16))
    torch.manual_seed(1)
    pic = UNet(pic_cfg)
    pic_dir = model_folder.write(tmp_path / "pic", pic.state_dict(), dict(CONFIG))
    clip_cfg = UNetConfig(**dict(TINY_NET, resolution=16, dims=3, factorized=True, cond_channels=4))
    clip = UNet(clip_cfg)
    state = inflate_image_weights(pic.state_dict(), pic_cfg.to_dict(), clip)
    for k in state:
        if "time" in k:
            state[k] = state[k] + 0.5
    conf = {**CONFIG, "unet": clip_cfg.to_dict(), "frames": 4}
    return pic_dir, model_folder.write(tmp_path / "clip", state, conf), state


def test_ship_with_a_base_keeps_only_what_differs_and_loads_whole(tmp_path):
    from noisebrush.models.ship import ship

    pic_dir, clip_dir, state = _picture_and_clip(tmp_path)
    dest = ship(clip_dir, tmp_path / "shipped", "float32", base=str(pic_dir))
    conf = model_folder.read_config(dest)
    assert conf["base"] == {"model": str(pic_dir), "hash": model_folder.weights_hash(pic_dir)}
    stored = model_folder.read_weights(dest)
    assert stored and all("time" in k or k == "enc.0.weight" for k in stored)  # enc.0 gained the frame columns
    with one_thread():
        pipe = noisebrush.load(dest)
    for k, v in pipe.net.state_dict().items():
        assert torch.equal(v, state[k]), k
    with pytest.raises(UserError, match="not a picture network"):  # a base that does not fit: one line
        ship(clip_dir, tmp_path / "other", "float32", base="builtin-sr128")


def test_a_changed_or_nested_base_is_one_line(tmp_path):
    from noisebrush.models.ship import ship

    pic_dir, clip_dir, _ = _picture_and_clip(tmp_path)
    dest = ship(clip_dir, tmp_path / "shipped", "float32", base=str(pic_dir))
    conf = model_folder.read_config(dest)
    model_folder.write_config(dest, {**conf, "base": {"model": str(pic_dir), "hash": "0000000000"}})
    with pytest.raises(UserError) as e:
        noisebrush.load(dest)
    assert "is built on" in _one_line(e) and "0000000000" in str(e.value)
    model_folder.write_config(dest, {**conf, "base": "builtin"})
    with pytest.raises(UserError, match="base must name"):
        noisebrush.load(dest)
    model_folder.write_config(pic_dir, {**model_folder.read_config(pic_dir), "base": {"model": "builtin"}})
    model_folder.write_config(dest, conf)
    with pytest.raises(UserError, match="one level"):
        noisebrush.load(dest)
