"""``noisebrush experiment``: every experiment end to end on tiny budgets (tables, CSVs and figures written)."""
import csv

import pytest
from PIL import Image

from _model_fixture import one_thread, reset_accelerate, tiny_model
from noisebrush.apps.cli import main
from noisebrush.workflows.experiments import EXPERIMENTS, run_experiment


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    with one_thread():
        yield


@pytest.fixture(scope="module")
def text_model(tmp_path_factory):
    return tiny_model(tmp_path_factory, "text")


def _check_outputs(result, name, rows):
    assert result["markdown"].name == f"{name}.md"
    md = result["markdown"].read_text()
    assert md.startswith("# ") and md.count("\n|") >= rows + 1
    with open(result["csv"]) as f:
        assert len(list(csv.DictReader(f))) == rows
    with Image.open(result["figure"]) as im:
        assert im.format == "PNG" and im.size[0] > 300


def test_steps(text_model, tmp_path):
    r = run_experiment("steps", tmp_path, model=str(text_model), samplers=["euler", "heun"], nfes=[2, 4], n=6,
                       log=lambda s: None)
    _check_outputs(r, "steps", 4)
    heun = [row for row in r["rows"] if row["sampler"] == "heun"]
    assert [row["steps"] for row in heun] == [1, 2]  # heun spends 2 evaluations per step, 1 on the last
    assert all(0 <= row["adherence"] <= 1 and row["fd_art"] > 0 for row in r["rows"])


def test_noise(text_model, tmp_path):
    r = run_experiment("noise", tmp_path, model=str(text_model), n=5, nfe=3, log=lambda s: None)
    _check_outputs(r, "noise", len(r["rows"]))
    assert len(r["rows"]) == 8
    smax = {row["schedule"]: row["sigma_max"] for row in r["rows"]}
    assert smax["karras ρ=7, σ_max=5"] == pytest.approx(5.0)
    assert smax["karras ρ=7, σ_max=160"] == pytest.approx(160.0)


def test_samplers(text_model, tmp_path):
    r = run_experiment("samplers", tmp_path, model=str(text_model), samplers=["euler", "ddpm", "dpmpp_2m"],
                       nfes=[2, 8], n=5, ref_steps=12, log=lambda s: None)
    _check_outputs(r, "samplers", 6)
    rows = {(row["sampler"], row["nfe"]): row for row in r["rows"]}
    assert rows[("ddpm", 2)]["rmse_vs_exact"] is None  # stochastic: no endpoint to compare
    # more evaluations land closer to the exact solve
    assert rows[("dpmpp_2m", 8)]["rmse_vs_exact"] < rows[("dpmpp_2m", 2)]["rmse_vs_exact"]


def test_lr_schedule(tmp_path):
    try:
        r = run_experiment("lr-schedule", tmp_path, steps=10, n=6, log=lambda s: None)
    finally:
        reset_accelerate()
    _check_outputs(r, "lr-schedule", 4)
    assert [row["schedule"] for row in r["rows"]] == ["constant", "linear", "exponential", "cosine"]
    assert all(row["final_loss"] > 0 and row["fd_art"] > 0 for row in r["rows"])


def test_regularization(tmp_path):
    try:
        r = run_experiment("regularization", tmp_path, steps=10, n=6, data_size=8, log=lambda s: None)
    finally:
        reset_accelerate()
    _check_outputs(r, "regularization", 4)
    assert all(row["heldout_loss"] > 0 and 0 <= row["near_copy_fraction"] <= 1 for row in r["rows"])


def test_cli_experiment_and_errors(text_model, tmp_path, capsys):
    code = main(["experiment", "steps", "--model", str(text_model), "--samplers", "euler", "--nfe", "2", "--n", "5",
                 "--out", str(tmp_path)])
    assert code == 0
    out = capsys.readouterr().out
    assert "| euler | 2 |" in out and (tmp_path / "steps.png").is_file()
    for argv, fragment in [(["experiment", "nope"], "nope"),
                           (["experiment", "noise", "--train-steps", "5"], "--train-steps"),
                           (["experiment", "steps", "--nfe", "a,b"], "--nfe"),
                           (["experiment", "steps", "--samplers", "langevin", "--model", str(text_model)], "langevin"),
                           (["experiment", "lr-schedule", "--model", str(text_model)], "--model"),
                           # issue 12 point 9: the flag is named, not the library's "steps"
                           (["experiment", "lr-schedule", "--train-steps", "1"], "--train-steps: "),
                           (["experiment", "regularization", "--data-size", "1"], "--data-size: "),
                           (["experiment", "noise", "--n", "2"], "--n: "),
                           (["experiment", "steps", "--nfe", "0,2"], "--nfe: ")]:
        assert main(argv + ["--out", str(tmp_path / "x")]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and fragment in err[0], (argv, err)
    assert set(EXPERIMENTS) == {"steps", "noise", "lr-schedule", "regularization", "samplers"}


def test_results_are_never_overwritten_unless_forced(tmp_path):
    """Issue 12 point 6: running an experiment again keeps the earlier .md/.csv/.png (all three get the next free
    stem); force=True replaces them."""
    from noisebrush.workflows.experiments import _write

    def figure(path):
        Image.new("RGB", (4, 4), (255, 0, 0)).save(path, format="PNG")

    rows = [{"a": 1, "b": 2.5}]
    first = _write(tmp_path, "steps", rows, ["a", "b"], "T", ["note"], figure)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    (tmp_path / "noise.png").write_text("someone else's")  # another stem's files do not matter
    second = _write(tmp_path, "steps", [{"a": 3, "b": 4}], ["a", "b"], "T", ["note"], figure)
    assert [second[k].name for k in ("markdown", "csv", "figure")] == ["steps-2.md", "steps-2.csv", "steps-2.png"]
    assert "`steps-2.png`" in second["markdown"].read_text()
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.name in before} == before
    third = _write(tmp_path, "steps", [{"a": 5, "b": 6}], ["a", "b"], "T", ["note"], figure, force=True)
    assert third["csv"] == first["csv"] and "5,6" in first["csv"].read_text()


def test_run_experiment_checks_out_before_any_work(tmp_path, monkeypatch):
    import tempfile
    from pathlib import Path

    from noisebrush.errors import UserError

    real = tempfile.mkstemp

    def mkstemp(*a, dir=None, **k):  # tmp_path/ro cannot be written
        if dir is not None and Path(dir) == tmp_path / "ro":
            raise PermissionError(13, "Permission denied", str(dir))
        return real(*a, dir=dir, **k)

    (tmp_path / "ro").mkdir()
    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
    with pytest.raises(UserError, match=r"ro: cannot write here \(--out: Permission denied\)"):
        run_experiment("steps", tmp_path / "ro", model="no-such-model")  # not loaded: out is checked first
