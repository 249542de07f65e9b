"""The built-in model ships inside the package, is small, records how it was trained, and paints offline."""
import json

import pytest
import torch
from safetensors import safe_open

import noisebrush
from noisebrush.errors import UserError
from noisebrush.models import ship as ship_mod
from noisebrush.io.model_folder import BUILTIN, read_config, weights_hash


def test_builtin_is_in_the_package_and_small():
    assert (BUILTIN / "config.json").is_file() and (BUILTIN / "model.safetensors").is_file()
    assert (BUILTIN / "model.safetensors").stat().st_size <= 16 * 2**20
    with safe_open(str(BUILTIN / "model.safetensors"), "pt") as f:
        assert f.keys()


def test_builtin_config_records_its_training():
    conf = read_config(BUILTIN)
    assert conf["format"] == "noisebrush.model/1"
    assert conf["condition"] == "text" and conf["resolution"] == 32
    prov = conf["provenance"]
    assert prov["command"].startswith("noisebrush train") and "configs/builtin.toml" in prov["command"]
    assert prov["data"] == "builtin"
    for key in ("steps", "train_seconds", "hardware", "noisebrush", "config"):
        assert prov[key]
    assert prov["steps"] == prov["config"]["steps"]  # trained to the end of its schedule


def test_builtin_paints_offline(monkeypatch):
    import socket

    def refuse(*a, **k):
        raise OSError("network access during painting")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    pipe = noisebrush.load("builtin", device="cpu")
    images = pipe("a red sun over purple mountains", steps=4, seed=1, n=2)
    assert len(images) == 2 and images[0].size == (32, 32)
    assert images[0].tobytes() != images[1].tobytes()


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from noisebrush.train import TrainConfig, Trainer

    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("tiny")
    cfg = TrainConfig(data="builtin", data_size=16, resolution=16, condition="none", steps=2, batch_size=4,
                      warmup=0, sample_every=0, checkpoint_every=0, mixed_precision="no", out_dir=str(out / "run"),
                      model=dict(channels=8, channel_mult=[1, 2], blocks=1, attn_resolutions=[8],
                                 cross_attn_resolutions=[]))
    tr = Trainer(cfg)
    path = tr.fit()
    tr.close()
    return path


def test_ship_stores_half_precision_weights_that_paint_alike(tiny_model, tmp_path):
    dest = ship_mod.ship(tiny_model, tmp_path / "shipped")
    with safe_open(str(dest / "model.safetensors"), "pt") as f:
        assert all(f.get_tensor(k).dtype in (torch.float16, torch.int64) for k in f.keys())
    conf = json.loads((dest / "config.json").read_text())
    assert conf["provenance"]["shipped"]["weights_dtype"] == "float16"
    a, _ = noisebrush.load(tiny_model, device="cpu").generate(steps=3, seed=3)
    b, _ = noisebrush.load(dest, device="cpu").generate(steps=3, seed=3)
    assert (a - b).abs().max() < 0.05


def test_ship_refuses_a_model_over_the_limit(tiny_model, tmp_path, monkeypatch):
    monkeypatch.setattr(ship_mod, "LIMIT_MB", 1e-4)
    with pytest.raises(UserError, match="limit"):
        ship_mod.ship(tiny_model, tmp_path / "big")
    assert not (tmp_path / "big" / "config.json").exists()  # an incomplete folder is never a model folder


def test_the_readme_grid_was_painted_by_the_shipped_model():
    from pathlib import Path

    from noisebrush.io.png import read_recipe

    grid = Path(__file__).resolve().parents[2] / "docs" / "images" / "builtin-grid.png"
    rec = read_recipe(grid)
    assert len(rec["images"]) == 24
    assert {r["model"] for r in rec["images"]} == {"builtin"}
    assert {r["model_hash"] for r in rec["images"]} == {weights_hash(BUILTIN)}


def test_a_stage_trained_from_the_builtin_model_keeps_the_earlier_provenance(tiny_model, tmp_path):
    src = tmp_path / "stage"
    src.mkdir()
    (src / "model.safetensors").write_bytes((tiny_model / "model.safetensors").read_bytes())
    conf = read_config(tiny_model)
    conf["provenance"]["init"] = "builtin"
    (src / "config.json").write_text(json.dumps(conf))
    dest = ship_mod.ship(src, tmp_path / "shipped")
    prov = read_config(dest)["provenance"]
    assert prov["init_provenance"] == read_config(BUILTIN)["provenance"]
    assert prov["shipped"]["from"] == str(src)
    # a run that did not start from the built-in model has no earlier stages to keep
    plain = read_config(ship_mod.ship(tiny_model, tmp_path / "plain"))["provenance"]
    assert "init_provenance" not in plain
