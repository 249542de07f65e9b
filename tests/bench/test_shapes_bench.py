"""`python -m noisebrush.bench shapes` (issue 17) on a tiny shape model: every row and metric in the report, the
real floor and the retrieval baseline measured the same way, the memoriser flagged as copying; bad flags one line."""
import json

import pytest

from _model_fixture import one_thread, write_model
from noisebrush.bench.__main__ import main
from noisebrush.bench.shapes import balanced
from noisebrush.data.shapes import CATEGORIES, TRUNCATION


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return write_model(tmp_path_factory.mktemp("shape") / "model", factorized=False, in_channels=1, resolution=16,
                       task="shape", shape={"truncation": TRUNCATION})


def test_the_report_has_every_row_and_metric(model, tmp_path):
    out = tmp_path / "r.json"
    with one_thread():
        assert main(["shapes", "--model", str(model), "--per-category", "2", "--steps", "2", "--batch", "11",
                     "--pool", "100", "--quick", "--json", str(out)]) == 0
    r = json.loads(out.read_text())
    assert r["bench"] == "shapes" and r["settings"]["n"] == 2 * len(CATEGORIES) and r["settings"]["points"] == 2048
    assert [row["kind"] for row in r["rows"]] == ["real", "model", "retrieval"]
    for row in r["rows"]:
        assert set(row["per_category"]) == set(CATEGORIES)
        assert 0 <= row["one_nna"] <= 1 and 0 < row["cov"] <= 1 and row["mmd"] >= 0
        assert 0 <= row["adherence"]["adherence"] <= 1 and 0 <= row["watertight"] <= 1
    real, _, retrieval = r["rows"]
    assert real["watertight"] == 1.0 and retrieval["watertight"] == 1.0
    assert real["adherence"]["adherence"] > 0.8  # the judge reads real shapes
    assert retrieval["near_copy"] == 1.0 and retrieval["nearest_train_median"] == 0.0  # training shapes, copied
    assert r["rows"][1]["seconds_per_shape"] > 0 and set(r["summary"]["met"]) == {"one_nna", "cov", "adherence",
                                                                                   "watertight"}


def test_held_out_sets_are_balanced_and_disjoint_draws():
    ds, idx = balanced(1, 3, 16)
    cats = [ds.shape(i).category for i in idx]
    assert cats == [c for c in CATEGORIES for _ in range(3)]
    other, oidx = balanced(2, 3, 16)
    assert [other.shape(i).caption for i in oidx] != [ds.shape(i).caption for i in idx]


def test_bad_flags_are_one_line(model, capsys):
    assert main(["shapes", "--per-category", "1"]) == 2
    assert "--per-category" in capsys.readouterr().err
    with one_thread():
        assert main(["shapes", "--model", "builtin", "--per-category", "2"]) == 2
    assert "not shapes" in capsys.readouterr().err
