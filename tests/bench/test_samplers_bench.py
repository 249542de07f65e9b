"""The sampler benchmark runs end to end on a tiny budget and writes the JSON the issue describes."""
import json
import subprocess
import sys

import pytest

from noisebrush.bench import samplers as bench

pytest.importorskip("diffusers")


def test_bench_runs_and_writes_rows(tmp_path, capsys):
    out = tmp_path / "sub" / "bench.json"
    assert bench.main(["--quick", "--nfe", "5", "--samples", "2", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    rows = report["rows"]
    assert isinstance(rows, list) and rows and report["machine"]["cpu"]["bf16_native"] in (True, False)
    for r in rows:
        assert {"impl", "sampler", "nfe", "endpoint_rmse", "swd", "overhead_ms"} <= set(r)
        assert r["impl"] in ("noisebrush", "diffusers") and r["nfe"] == 5
        assert r["swd"] is None or r["swd"] > 0
    impls = {r["impl"] for r in rows}
    assert impls == {"noisebrush", "diffusers"}
    names = {r["sampler"] for r in rows if r["impl"] == "diffusers"}
    assert {"DDIM", "Euler", "Heun", "DPM++2M", "DPM++3M", "UniPC-2", "UniPC-3", "DEIS-2"} <= names
    # every deterministic run stays within its budget and has an endpoint error; stochastic ones have none
    for r in rows:
        if r["sampler"] in ("ddpm", "langevin"):
            assert r["endpoint_rmse"] is None
        elif r["nfe_used"] is not None:
            assert r["nfe_used"] <= 5 and r["endpoint_rmse"] > 0
    text = capsys.readouterr().out
    assert "| impl | sampler |" in text and "ratio" in text


def test_bench_bad_flag_is_one_line():
    r = subprocess.run([sys.executable, "-m", "noisebrush.bench", "samplers", "--nfe", "ten"],
                       capture_output=True, text=True)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == ["error: --nfe: a comma-separated list of integers, got 'ten'"]


def test_bench_unknown_name():
    r = subprocess.run([sys.executable, "-m", "noisebrush.bench", "nope"], capture_output=True, text=True)
    assert r.returncode == 2 and "unknown benchmark" in r.stderr and "Traceback" not in r.stderr


def test_bench_argparse_errors_are_one_line():
    r = subprocess.run([sys.executable, "-m", "noisebrush.bench", "samplers", "--samples", "abc"],
                       capture_output=True, text=True)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == ["error: argument --samples: invalid int value: 'abc'"]
