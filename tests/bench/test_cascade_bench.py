"""The cascade benchmark, shrunk: a tiny 16 px text base, the tiny scale-2 stage twice (→ 64 px), a tiny 64 px
feature net, 8 prompts; every row and goal is reported with finite numbers, and bad options are one line."""
import json
import math

import pytest
import torch

from _model_fixture import one_thread, tiny_model, tiny_sr_model
from noisebrush.bench.__main__ import main


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return tiny_model(tmp_path_factory, "text"), tiny_sr_model(tmp_path_factory, "text")


@pytest.fixture(scope="module")
def featnet64(tmp_path_factory):
    """A 64 px feature net trained for one epoch of 64 pictures: a fixed embedding with heads is all this needs."""
    from noisebrush.eval.features import save_feature_net
    from noisebrush.eval.train_features import train_feature_net

    with one_thread():
        net, report = train_feature_net(n=64, epochs=1, batch=32, resolution=64, val=32, progress=lambda s: None,
                                        workers=1)
    return str(save_feature_net(net, tmp_path_factory.mktemp("featnet64"), {"provenance": report}))


def _finite(x) -> bool:
    if isinstance(x, dict):
        return all(_finite(v) for v in x.values())
    if isinstance(x, list):
        return all(_finite(v) for v in x)
    return not isinstance(x, float) or math.isfinite(x)


def test_cascade_bench_tiny(models, featnet64, tmp_path, capsys):
    base, stage = models
    out = tmp_path / "sub" / "cascade.json"
    with one_thread():
        rc = main(["cascade", "--n", "8", "--base", str(base), "--stages", f"{stage},{stage}", "--steps", "2",
                   "--sr-steps", "2", "--sr-aug", "0,0.2", "--other-projection", "--featnet128", featnet64,
                   "--json", str(out), "--save", str(tmp_path / "pictures")])
    assert rc == 0
    r = json.loads(out.read_text())
    names = [row["name"] for row in r["rows"]]
    kinds = [row["kind"] for row in r["rows"]]
    # bicubic, the stages' defaults, the 2-value sweep (steps 2 × aug 0, 0.2), upscaled renders, bicubic of renders
    assert kinds[0] == "bicubic" and kinds[-2:] == ["upscaled_renders", "bicubic_renders"]
    assert kinds.count("cascade") == 4
    assert r["rows"][1]["default"] and not r["rows"][2]["default"]
    assert names[2] == "cascade (steps 2, aug 0)" and names[3] == "cascade (steps 2, aug 0.2)"
    assert names[4].endswith("with projection") and r["rows"][4]["project"] and not r["rows"][1]["project"]
    assert r["rows"][4]["consistency_psnr"]["mean"] > r["rows"][1]["consistency_psnr"]["mean"]  # projection holds
    assert [row["aug"] for row in r["rows"][2:4]] == [[0.0, 0.0], [0.2, 0.2]]
    assert all(row["steps"] == [2, 2] for row in r["rows"][2:4])
    for row in r["rows"]:
        for k in ("swd", "swd_detail", "fd_art", "kid", "precision", "recall", "adherence_32", "adherence_128"):
            assert isinstance(row[k], float) and math.isfinite(row[k]), (row["name"], k)
        assert row["kind"] == "bicubic_renders" or row["seconds_per_picture"] > 0
    # bicubic of renders: the renders' composition, without their detail; its PSNR is the baseline's
    assert r["rows"][-1]["psnr"] == r["bicubic_renders_psnr"] and r["rows"][-1]["seconds_per_picture"] is None
    for row in r["rows"]:
        if row["kind"] == "cascade":
            assert row["consistency_psnr"]["mean"] > 0 and row["consistency_psnr"]["min"] > 0
            assert len(row["stage_seconds_per_picture"]) == 2 and all(s > 0 for s in row["stage_seconds_per_picture"])
            assert sum(row["stage_share"]) < 1 and row["base_seconds_per_picture"] > 0
            assert row["stage_sizes"] == [32, 64]
    assert r["rows"][-2]["psnr"]["mean"] > 0
    # --save: every row's pictures and the base paintings, uint8, with the prompts
    from safetensors import safe_open

    saved = sorted(p.name for p in (tmp_path / "pictures").iterdir())
    assert len(saved) == len(r["rows"]) + 1 and "base.safetensors" in saved and "bicubic_of_renders.safetensors" in saved
    with safe_open(str(tmp_path / "pictures" / "upscaled_renders.safetensors"), "pt") as f:
        pics = f.get_tensor("pictures")
        assert pics.dtype == torch.uint8 and pics.shape == (8, 3, 64, 64)
        assert len(json.loads(f.metadata()["prompts"])) == 8
    # --rejudge: the saved rows judged again without painting give the same numbers (up to the uint8 rounding)
    again = tmp_path / "again.json"
    with one_thread():
        assert main(["cascade", "--rejudge", str(tmp_path / "pictures"), "--featnet128", featnet64,
                     "--json", str(again)]) == 0
    rj = json.loads(again.read_text())
    assert sorted(row["name"] for row in rj["rows"]) == sorted(names)  # the base paintings (16 px) are left out
    by_name = {row["name"]: row for row in r["rows"]}
    for row in rj["rows"]:
        assert row["swd"] == pytest.approx(by_name[row["name"]]["swd"], rel=0.05, abs=0.5)
        assert row["adherence_32"] == pytest.approx(by_name[row["name"]]["adherence_32"], abs=0.13)
    assert set(r["goals"]) == {"swd_ratio", "fd_ratio", "adherence_delta", "consistency_psnr", "seconds_per_picture"}
    assert all(isinstance(g["met"], bool) and math.isfinite(g["value"]) for g in r["goals"].values())
    assert _finite(r["rows"]) and _finite(r["goals"])
    s = r["settings"]
    assert s["n"] == 8 and s["data_seed"] == 777 and s["size"] == 64 and s["base_resolution"] == 16
    assert s["sr_aug"] == [0.0, 0.2] and s["base_steps"] == 2
    assert r["models"]["base"]["model_hash"] and len(r["models"]["stages"]) == 2
    assert r["feature_nets"]["judge_128"]["held_out_accuracy"]  # from the tiny net's provenance
    assert r["hardware"] and f"--json {out}" in r["command"] and " cascade " in r["command"]
    text = capsys.readouterr()
    assert "fd_art@128" in text.out and "goals" in text.out and "met" in text.out
    assert "base: 8/8 pictures" in text.err


def test_cascade_bench_folder_and_single_model(models, featnet64, tmp_path_factory, tmp_path):
    """--data: a folder's pictures and captions are the reference (no adherence to judge); --single: a model that
    paints at the final size directly gets a row, and the cascade's fd ratio to it is reported."""
    from _model_fixture import train_tiny
    from noisebrush.bench.pattern_folder import write_pattern_folder

    base, stage = models
    folder = write_pattern_folder(tmp_path / "own", 8, size=32, seed=3)
    out = tmp_path / "r.json"
    with one_thread():
        single = train_tiny(tmp_path_factory.mktemp("single32"), "text", resolution=32)
        rc = main(["cascade", "--n", "8", "--base", str(base), "--stages", str(stage), "--steps", "2",
                   "--single", str(single), "--data", str(folder), "--featnet128", featnet64, "--json", str(out),
                   "--no-renders"])
    assert rc == 0
    r = json.loads(out.read_text())
    assert [row["kind"] for row in r["rows"]] == ["bicubic", "cascade", "single", "bicubic_renders"]
    one = r["rows"][2]
    assert one["name"] == f"one model: {one['model']}" and r["models"]["single"][0]["model"] == one["model"]
    assert math.isfinite(one["fd_art"]) and math.isfinite(one["swd"]) and one["seconds_per_picture"] > 0
    assert list(r["single_fd_ratio"]) == [one["name"]]
    assert r["single_fd_ratio"][one["name"]] == pytest.approx(r["rows"][1]["fd_art"] / one["fd_art"])
    assert all(row["adherence_32"] is None and row["adherence_128"] is None for row in r["rows"])
    assert r["goals"]["adherence_delta"]["met"] is None and r["base"]["adherence_32"] is None
    assert r["settings"]["data"] == str(folder) and r["settings"]["data_seed"] is None
    assert r["models"]["single"][0]["resolution"] == 32


def test_single_model_of_another_size_is_one_line(models, featnet64, capsys):
    base, stage = models
    assert main(["cascade", "--n", "8", "--base", str(base), "--stages", str(stage), "--single", str(base),
                 "--featnet128", featnet64]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "--single" in err and "16 px" in err and "\n" not in err


def test_missing_feature_net_is_one_line(models, tmp_path, capsys):
    base, stage = models
    assert main(["cascade", "--n", "8", "--base", str(base), "--stages", f"{stage},{stage}",
                 "--featnet128", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err and "--resolution 128" in err


def test_default_feature_net_missing_says_how_to_train(monkeypatch, tmp_path, capsys):
    import noisebrush.bench.cascade as bench

    monkeypatch.setattr(bench, "FEATNET128_DIR", tmp_path / "featnet128")
    assert main(["cascade", "--n", "8"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err
    assert "python -m noisebrush.eval.train_features --resolution 128 --n 40000 --epochs 4 --blur-max 0.5" in err


@pytest.mark.parametrize("argv, match", [
    (["--n", "3"], "--n"), (["--n", "3000"], "--n"), (["--sr-aug", "5"], "--sr-aug"),
    (["--sr-aug", "x"], "--sr-aug"), (["--sr-steps", "0"], "--sr-steps"), (["--sr-steps", ","], "--sr-steps"),
    (["--cfg", "nan"], "--cfg"), (["--bogus"], "bogus"), (["--single", ","], "--single"),
    (["--data", "/nonexistent/folder"], "--data"), (["--rejudge", "/nonexistent/folder"], "--rejudge"),
])
def test_bad_options_are_one_line(argv, match, capsys):
    assert main(["cascade", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and match in err and "\n" not in err
