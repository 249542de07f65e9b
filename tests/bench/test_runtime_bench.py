"""`bench runtime` (issue 19) runs end to end on a tiny model in its --quick mode and reports what it promises: a
row per runtime with seconds per picture, the ratio to torch fp32, fd_art and its change, the graphs' validation,
the int8 ship rule and the goal line."""
import json

import pytest

from _model_fixture import one_thread, tiny_model
from noisebrush.bench import runtime as bench
from noisebrush.bench.__main__ import BENCHES, main as bench_main


@pytest.fixture(autouse=True)
def _one_thread():
    with one_thread():
        yield


def test_quick_run_reports_every_runtime(tmp_path_factory, tmp_path, capsys):
    model = tiny_model(tmp_path_factory, "label")
    out = tmp_path / "runtime.json"
    code = bench_main(["runtime", "--quick", "--model", str(model), "--runtimes",
                       "torch-fp32,onnx-fp32,onnx-int8-dynamic", "--json", str(out)])
    assert code == 0
    text = capsys.readouterr().out
    assert "goal: best runtime ≥ 2× torch fp32 with fd_art within 5% (and adherence within 0.05)" in text
    r = json.loads(out.read_text())
    assert [row["runtime"] for row in r["rows"]] == ["torch-fp32", "onnx-fp32", "onnx-int8-dynamic"]
    assert r["n"] == 8 and r["rounds"] == 1 and r["machine"]["cpu"]
    ref, fp32, int8 = r["rows"]
    assert ref["speedup"] == 1.0 and ref["fd_change"] == 0.0 and "graph" not in ref
    assert fp32["seconds_per_picture"] > 0 and fp32["speedup"] > 0 and fp32["fd_art"] >= 0
    assert fp32["graph"]["validation"]["max_abs_diff"] < 1e-4
    assert int8["graph"]["quantization"]["mode"] == "dynamic" and int8["ships"] in (True, False)
    assert not int8["ships"] or int8["fd_change"] < bench.INT8_SHIP
    assert isinstance(r["goal"]["met"], bool)


def test_summary_picks_the_fastest_runtime_within_the_fd_goal():
    rows = [{"runtime": "torch-fp32", "seconds_per_picture": 1.0, "fd_art": 10.0},
            {"runtime": "onnx-fp32", "seconds_per_picture": 0.4, "fd_art": 10.2},
            {"runtime": "onnx-int8-static", "seconds_per_picture": 0.2, "fd_art": 30.0}]
    r = bench.summarize({"rows": rows})
    assert r["best"] == "onnx-fp32" and r["goal"]["met"] and r["goal"]["best_speedup"] == pytest.approx(2.5)
    assert r["rows"][2]["ships"] is False and r["rows"][1]["fd_change"] == pytest.approx(0.02)
    # fd_art alone is not enough: a graph whose pictures stop following their prompts neither ships nor wins
    rows = [dict(rows[0], adherence=0.69), dict(rows[1], adherence=0.40),
            dict(rows[2], fd_art=10.1, adherence=0.06)]
    r = bench.summarize({"rows": rows})
    assert r["best"] is None and not r["goal"]["met"] and r["rows"][2]["ships"] is False


def test_registered_and_bad_flags_are_one_line(capsys):
    assert BENCHES["runtime"] == "noisebrush.bench.runtime"
    assert bench_main(["runtime", "--runtimes", "torch-fp32,tensorrt"]) == 2
    assert "--runtimes: unknown 'tensorrt'; choose from" in capsys.readouterr().err
