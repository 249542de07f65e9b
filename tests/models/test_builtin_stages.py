"""The built-in super-resolution stages ship inside the package, record how they were trained, keep the picture
cascade under 32 MB (every built-in model together under 64 MB), and upscale faithfully and offline."""
import pytest
import torch

import noisebrush
from noisebrush.data.procedural import ProceduralArt
from noisebrush.data.superres import consistency_psnr
from noisebrush.io.model_folder import BUILTIN_MODELS, read_config
from noisebrush.models.ship import CASCADE, CASCADE_LIMIT_MB, LIMIT_MB, TOTAL_LIMIT_MB, shipped_mb
from noisebrush.paint.cascade import BUILTIN_STAGES

STAGES = {"builtin-sr64": ("configs/sr64.toml", 64), "builtin-sr128": ("configs/sr128.toml", 128)}


def test_every_built_in_model_is_there_within_the_limits():
    assert set(BUILTIN_STAGES.values()) == set(STAGES)
    for name, path in BUILTIN_MODELS.items():
        assert (path / "config.json").is_file() and (path / "model.safetensors").is_file(), name
        assert shipped_mb([name]) <= LIMIT_MB, name
    assert shipped_mb(CASCADE) <= CASCADE_LIMIT_MB and shipped_mb() <= TOTAL_LIMIT_MB


@pytest.mark.parametrize("name", sorted(STAGES))
def test_a_stage_records_its_training(name):
    config, resolution = STAGES[name]
    conf = read_config(BUILTIN_MODELS[name])
    assert conf["task"] == "sr" and conf["superres"]["scale"] == 2 and conf["resolution"] == resolution
    assert conf["unet"]["cond_channels"] == 3 and conf["unet"]["aug_cond"] is True
    prov = conf["provenance"]
    assert prov["command"].startswith("noisebrush train") and config in prov["command"]
    assert prov["steps"] == prov["config"]["steps"] and prov["config"]["task"] == "sr"
    assert prov["shipped"]["weights_dtype"] == "float16"


def test_the_64_px_stage_upscales_a_render_faithfully_offline(monkeypatch):
    import socket

    def refuse(*a, **k):
        raise OSError("network access during painting")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    pipe = noisebrush.load("builtin-sr64", device="cpu")
    ds = ProceduralArt(resolution=32, size=4, seed=777)
    low = torch.stack([ds[i]["image"] for i in range(2)])
    big, recipes = pipe.upscale(low, ds.caption(0), seed=0)
    assert big.shape == (2, 3, 64, 64) and recipes[0]["model"] == "builtin-sr64"
    assert consistency_psnr(big[:1], low[:1]) >= 30  # box-averaged back, it is the picture it was given


def test_the_readme_grid_at_128_was_painted_by_the_shipped_cascade():
    from pathlib import Path

    from noisebrush.io.model_folder import weights_hash
    from noisebrush.io.png import read_recipe

    grid = Path(__file__).resolve().parents[2] / "docs" / "images" / "cascade-grid.png"
    rec = read_recipe(grid)
    assert len(rec["images"]) == 24
    assert {r["model_hash"] for r in rec["images"]} == {weights_hash(BUILTIN_MODELS["builtin"])}
    for r in rec["images"]:
        assert [(s["model"], s["model_hash"], s["width"]) for s in r["stages"]] == [
            (name, weights_hash(BUILTIN_MODELS[name]), size) for name, size in (("builtin-sr64", 64),
                                                                                ("builtin-sr128", 128))]
