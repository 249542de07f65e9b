"""The training-throughput benchmark runs end to end on a tiny budget and reports what it promises."""
import json

import pytest

from noisebrush.bench import train as bench
from noisebrush.bench.__main__ import main as bench_main


def test_flops_matching_is_within_15_percent():
    ours = bench.ours_model(32)
    target = bench.train_flops("ours", ours, 32, batch=2)
    width, f = bench.match_width(target, 32)
    assert abs(f / target - 1) < 0.15
    assert width % 8 == 0


def test_run_reports_every_key(tmp_path):
    res = bench.run(batch=2, resolution=32, rounds=1, iters=1, precisions=("bf16",), memory=False, log=lambda s: None)
    for key in ("ours_img_s", "diffusers_img_s", "ratio", "ours_gflops", "bf16_peak_gflops", "peak_fraction",
                "flops_per_image"):
        assert key in res
    row = res["precisions"]["bf16"]
    assert row["ratio"] == pytest.approx(row["ours_img_s"] / row["diffusers_img_s"])
    assert row["ours_gflops"] == pytest.approx(row["ours_img_s"] * res["flops_per_image"]["ours"] / 1e9)
    assert res["bf16_peak_gflops"] > 0 and res["fp32_peak_gflops"] > 0
    assert set(res["flops_per_image"]) == {"ours", "diffusers"}
    assert "| bf16 | ours |" in bench.table(res)
    json.dumps(res)


def test_peak_memory_is_measured_in_a_subprocess():
    mb = bench.peak_memory_mb("ours", 16, "bf16", batch=2, resolution=16, channels_last=True)
    assert 0 < mb < 4096


@pytest.mark.parametrize("argv, match", [(["--precisions", "fp8"], "precisions"), (["--batch", "0"], "batch"),
                                          (["--resolution", "10"], "resolution"), (["--bogus"], "bogus")])
def test_bad_flags_are_one_line_errors(argv, match, capsys):
    assert bench_main(["train", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and match in err and "\n" not in err
