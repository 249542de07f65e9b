"""`bench gpu` (issue 19, part 5): the script a session runs when it is lent an accelerator. Here it runs its checks
on the CPU with tiny networks: training through `accelerate launch` in a fresh process, painting, the replay from
the recipe, the ONNX export (and the exporter's refusal of clips), the JSON and the table."""
import json

import pytest

from noisebrush.bench import gpu as bench
from noisebrush.bench.__main__ import BENCHES, main as bench_main


def test_tiny_cpu_run_checks_pictures_and_clips(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    out = tmp_path / "gpu.json"
    code = bench_main(["gpu", "--device", "cpu", "--tiny", "--steps", "2", "--types", "image,video",
                       "--out", str(tmp_path / "runs"), "--json", str(out)])
    text = capsys.readouterr().out
    r = json.loads(out.read_text())
    assert code == 0, r["rows"]
    assert r["failed"] == [] and r["device"] == "cpu" and r["machine"]["cpu"]
    image, video = r["rows"]
    for row in (image, video):
        assert row["train"]["steps"] == 2 and row["train"]["processes"] == 1 and row["train"]["last_loss"] > 0
        assert row["reproduced_identical"] is True and row["seconds_per_picture"] > 0
        assert "vs_cpu_max_abs_diff" not in row  # on the CPU there is nothing to compare with
    assert image["onnx"]["exported"] and image["onnx"]["max_abs_diff_cpu_provider"] < 1e-4
    assert not video["onnx"]["exported"] and "clip" in video["onnx"]["why"]
    assert "GPU path: cpu" in text and (tmp_path / "runs" / "image" / "model" / "model.safetensors").is_file()


def test_the_commands_are_the_shipped_recipes_with_the_checks_settings(tmp_path):
    configs = bench.configs_folder()
    cmd = bench.train_command("ddgan", tmp_path / "r", steps=200, device="cuda", processes=2, tiny=False,
                              configs=configs)
    assert cmd[1:4] == ["-m", "accelerate.commands.launch", "--num_processes"] and cmd[4] == "2"
    assert "--cpu" not in cmd and cmd[cmd.index("--config") + 1].endswith("builtin.toml")
    sets = [cmd[i + 1] for i, a in enumerate(cmd) if a == "--set"]
    assert 'method="ddgan"' in sets and "betas=[0.5,0.9]" in sets and "checkpoint_every=200" in sets
    tiny = bench.train_command("video", tmp_path / "v", steps=2, device="cpu", processes=1, tiny=True,
                               configs=configs)
    sets = [tiny[i + 1] for i, a in enumerate(tiny) if a == "--set"]
    assert "--cpu" in tiny and 'init=""' in sets and "model.factorized=true" in sets and "warmup=0" in sets


def test_registered_and_bad_flags_are_one_line(capsys):
    assert BENCHES["gpu"] == "noisebrush.bench.gpu"
    assert bench_main(["gpu", "--types", "image,hologram"]) == 2
    assert "--types: unknown 'hologram'; choose from" in capsys.readouterr().err
    assert bench_main(["gpu", "--device", "tpu"]) == 2
    assert "--device: cuda or cpu" in capsys.readouterr().err


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="a CUDA device is here")
def test_cuda_without_a_device_is_one_line(capsys, tmp_path):
    assert bench_main(["gpu", "--out", str(tmp_path / "runs")]) == 2
    assert "no CUDA device here" in capsys.readouterr().err
