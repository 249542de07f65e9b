"""The training-throughput benchmark runs end to end on a tiny budget and reports what it promises."""
import json

import pytest
import torch

from noisebrush.bench import train as bench
from noisebrush.bench.__main__ import main as bench_main


def test_flops_matching_is_within_15_percent():
    ours = bench.ours_model(32)
    target = bench.train_flops("ours", ours, 32, batch=2)
    width, f = bench.match_width(target, 32)
    assert abs(f / target - 1) < 0.15
    assert width % 8 == 0


def test_run_reports_every_key(tmp_path):
    prec = bench.native_precisions()[0][0]  # bf16 where this CPU runs it natively, else fp32: never emulation
    res = bench.run(batch=2, resolution=32, rounds=1, iters=1, precisions=(prec,), memory=False, log=lambda s: None)
    for key in ("ours_img_s", "diffusers_img_s", "ratio", "ours_gflops", "bf16_peak_gflops", "peak_fraction",
                "flops_per_image", "skipped"):
        assert key in res
    row = res["precisions"][prec]
    assert row["ratio"] == pytest.approx(row["ours_img_s"] / row["diffusers_img_s"])
    assert row["ours_gflops"] == pytest.approx(row["ours_img_s"] * res["flops_per_image"]["ours"] / 1e9)
    assert res["fp32_peak_gflops"] > 0 and res[f"{prec}_peak_gflops"] > 0
    assert set(res["flops_per_image"]) == {"ours", "diffusers"}
    assert f"| {prec} | ours |" in bench.table(res)
    json.dumps(res)


def test_an_emulated_precision_is_labelled_and_not_timed(monkeypatch, tmp_path, capsys):
    """On a CPU without native bf16 (faked here) nothing runs in bf16 — no matmul peak, no step, no memory run —
    and the log, the table and the JSON say why; the fastest native precision is what --quick times."""
    monkeypatch.setattr(bench, "emulated", lambda dtype, device="cpu": dtype == torch.bfloat16)
    timed = []
    real_peak, real_step = bench.matmul_peak, bench.train_step_fn
    monkeypatch.setattr(bench, "matmul_peak", lambda dtype, *a, **k: timed.append(dtype) or real_peak(dtype, 256, 1))
    monkeypatch.setattr(bench, "train_step_fn", lambda *a: timed.append(a[4]) or real_step(*a))
    assert bench.native_precisions()[0] == ("fp32",) and "emulated" in bench.native_precisions()[1]["bf16"]
    out = tmp_path / "train.json"
    assert bench_main(["train", "--quick", "--batch", "2", "--resolution", "16", "--rounds", "1",
                       "--json", str(out)]) == 0
    assert torch.bfloat16 not in timed and "bf16" not in timed and "fp32" in timed
    text = capsys.readouterr().out
    assert "bf16: emulated on this CPU" in text and "| bf16 | — |" in text and "matmul peak: bf16 emulated" in text
    rep = json.loads(out.read_text())
    assert set(rep["precisions"]) == {"fp32"} and rep["bf16_peak_gflops"] is None and "bf16" in rep["skipped"]
    assert rep["ratio"] == rep["precisions"]["fp32"]["ratio"]
    assert rep["machine"]["cpu"]["bf16_native"] in (True, False) and "threads" in rep["machine"]


def test_peak_memory_is_measured_in_a_subprocess():
    prec = bench.native_precisions()[0][0]
    mb = bench.peak_memory_mb("ours", 16, prec, batch=2, resolution=16, channels_last=True)
    assert 0 < mb < 4096


@pytest.mark.parametrize("argv, match", [(["--precisions", "fp8"], "--precisions: unknown 'fp8'; choose from"), (["--batch", "0"], "batch"),
                                          (["--resolution", "10"], "resolution"), (["--bogus"], "bogus")])
def test_bad_flags_are_one_line_errors(argv, match, capsys):
    assert bench_main(["train", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and match in err and "\n" not in err
