"""Where the commands write (issue 12 points 1, 4, 6, 11, 13): an unwritable place is one line before any work, a
place that stops being writable keeps every file in the rescue folder, nothing is overwritten without --force, Ctrl-C
says what was kept, seeds are random by default, reproduce names its files one way, every option has help."""
import json
import os
import re
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
import typer
from PIL import Image

from _cli_checks import one_error_line, run_cli
from _model_fixture import one_thread, tiny_model
from noisebrush.apps.cli import app, main
from noisebrush.io.png import read_recipe
from noisebrush.paint.pipeline import Pipeline

HEADER = "step,loss,loss_s0,loss_s1,loss_s2,loss_s3,loss_s4,loss_s5,lr,grad_norm,img_s,skipped,time\n"
LOG = HEADER + "".join(f"{s},0.5,0.1,0.2,,0.4,0.5,0.6,0.001,1.0,10.0,0,{s / 10}\n" for s in (1, 2, 3))


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    with one_thread():
        yield


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return tiny_model(tmp_path_factory, "label")


run = run_cli  # main(argv) → (exit code, stdout, stderr)


def error_after_work(code, out, err):
    """one_error_line, once the progress bar's lines (the work was done) are left out."""
    err = "\n".join(line for line in err.splitlines() if not line.startswith(("painting", "varying", "morphing")))
    return one_error_line(code, out, err)


def _paths(out: str) -> list[Path]:
    return [Path(line.strip()) for line in out.splitlines() if line.startswith("  ")]


@pytest.fixture(scope="module")
def painted(model_dir, tmp_path_factory):
    """`paint flower -n 2 --seed 5` in a folder of its own: (folder, [flower-s5.png, flower-s6.png, the sheet])."""
    folder = tmp_path_factory.mktemp("painted")
    with torch.random.fork_rng(devices=[]):
        assert main(["paint", "flower", "--model", str(model_dir), "-n", "2", "--steps", "2", "--seed", "5",
                     "--out", str(folder), "--device", "cpu"]) == 0
    return folder, [folder / "flower-s5.png", folder / "flower-s6.png", folder / "flower-grid-s5.png"]


# -- 1: an unwritable place is one line, before any work ------------------------------------------------------------

_RO_SCRIPT = textwrap.dedent("""
    import contextlib, io, json, os, sys, tempfile
    cases, ro = json.loads(sys.argv[1]), sys.argv[2]
    try:
        fd, p = tempfile.mkstemp(dir=ro)
        os.close(fd); os.unlink(p)
        print(json.dumps({"skip": "a read-only folder can still be written here"})); sys.exit(0)
    except OSError:
        pass
    import noisebrush
    import noisebrush.paint.recipe as recipe
    import noisebrush.workflows.experiments as experiments
    from noisebrush.apps.cli import main

    class WorkStarted(Exception):
        pass

    def no_work(*a, **k):
        raise WorkStarted()

    noisebrush.load = no_work                # paint, vary, inpaint, outpaint, morph, explain, eval
    recipe.load_pipeline = no_work           # reproduce
    experiments.run_experiment = no_work     # experiment
    import noisebrush.train.plots as plots
    plots.read_log = no_work                 # plot-log
    results, home = [], os.getcwd()
    for argv, cwd in cases:
        os.chdir(cwd or home)
        out, err = io.StringIO(), io.StringIO()
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                code = main(argv)
        except WorkStarted:
            code = "work started"
        os.chdir(home)
        results.append({"argv": argv, "code": code, "out": out.getvalue(), "err": err.getvalue()})
    print(json.dumps(results))
""")


def test_unwritable_places_are_one_line_before_any_work(model_dir, painted, tmp_path):
    """Every writing command, run without the capability to ignore permissions on a read-only folder (0o555)."""
    folder, (png, _, sheet) = painted
    ro = tmp_path / "ro"
    ro.mkdir()
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "log.csv").write_text(LOG)
    ro_run = tmp_path / "ro-run"
    ro_run.mkdir()
    (ro_run / "log.csv").write_text(LOG)
    mask = tmp_path / "mask.png"
    Image.fromarray(np.full((16, 16), 255, np.uint8)).save(mask)
    m = str(model_dir)
    cases = [
        (["paint", "flower", "-m", m, "-o", str(ro)], None, ro),
        (["paint", "flower", "-m", m, "-o", str(ro / "sub")], None, ro),
        (["paint", "flower", "-m", m], str(ro), ro),  # the default ./outputs from a read-only working folder
        (["vary", str(png), "-m", m, "-o", str(ro)], None, ro),
        (["inpaint", str(png), "--mask", str(mask), "-m", m, "-o", str(ro)], None, ro),
        (["outpaint", str(png), "--extend", "2", "-m", m, "-o", str(ro)], None, ro),
        (["morph", "flower", "--to-seed", "2", "-m", m, "-o", str(ro)], None, ro),
        (["explain", "flower", "-m", m, "-o", str(ro)], None, ro),
        (["explain", "flower", "-m", m, "-o", str(ro / "why")], None, ro),
        (["reproduce", str(png), "-o", str(ro)], None, ro),
        (["reproduce", str(sheet), "-o", str(ro / "again")], None, ro),
        (["eval", m, "--json", str(ro / "r.json")], None, ro),
        (["plot-log", str(run_dir), "-o", str(ro / "log.png")], None, ro),
        (["plot-log", str(ro_run)], None, ro_run),  # the default RUN_DIR/log.png
        (["experiment", "steps", "-m", m, "-o", str(ro)], None, ro),
    ]
    ro.chmod(0o555)
    ro_run.chmod(0o555)
    rescue_tmp = tmp_path / "tmp"
    rescue_tmp.mkdir()
    try:
        p = subprocess.run(["setpriv", "--inh-caps=-all", "--bounding-set=-dac_override,-dac_read_search", "--",
                            sys.executable, "-c", _RO_SCRIPT, json.dumps([[a, c] for a, c, _ in cases]), str(ro)],
                           capture_output=True, text=True, timeout=600,
                           env={**os.environ, "TMPDIR": str(rescue_tmp), "OMP_NUM_THREADS": "1"})
    except FileNotFoundError:
        pytest.skip("setpriv is not installed")
    finally:
        ro.chmod(0o755)
        ro_run.chmod(0o755)
    assert p.returncode == 0, p.stderr[-3000:]
    results = json.loads(p.stdout.strip().splitlines()[-1])
    if isinstance(results, dict):
        pytest.skip(results["skip"])
    assert len(results) == len(cases)
    for r, (argv, _, where) in zip(results, cases):
        assert r["code"] != "work started", argv  # the place was checked before the model was loaded
        line = one_error_line(r["code"], r["out"], r["err"])
        assert str(where) in line and "Permission denied" in line, (argv, line)
    assert not list(rescue_tmp.rglob("*.png"))  # nothing painted, so nothing to rescue
    assert not list(ro.iterdir()) and sorted(p.name for p in ro_run.iterdir()) == ["log.csv"]


# -- 1: a folder that stops being writable keeps every file ---------------------------------------------------------

def _fail_writes_into(monkeypatch, folder: Path, armed: dict):
    """mkstemp into ``folder`` raises EACCES once ``armed["on"]`` (the folder "became read-only")."""
    real = tempfile.mkstemp

    def mkstemp(*a, dir=None, **k):
        if armed["on"] and dir is not None and Path(dir).absolute() == folder.absolute():
            raise PermissionError(13, "Permission denied", str(dir))
        return real(*a, dir=dir, **k)

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)


def test_paint_keeps_every_picture_when_the_folder_becomes_unwritable(model_dir, tmp_path, capsys, monkeypatch):
    out, rescue_tmp = tmp_path / "out", tmp_path / "tmp"
    rescue_tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(rescue_tmp))
    armed = {"on": False, "calls": 0}
    _fail_writes_into(monkeypatch, out, armed)
    generate = Pipeline.generate

    def paint_then_break(self, *a, **k):  # the folder becomes read-only while the second prompt is painted
        armed["calls"] += 1
        armed["on"] = armed["calls"] >= 2
        return generate(self, *a, **k)

    monkeypatch.setattr(Pipeline, "generate", paint_then_break)
    line = error_after_work(*run(capsys, "paint", "flower", "rings", "--model", model_dir, "-n", "2", "--steps", "1",
                               "--seed", "3", "--out", out, "--device", "cpu"))
    rescued = rescue_tmp / "noisebrush-rescued" / "out"
    assert str(out) in line and "Permission denied" in line and str(rescued) in line
    assert "the 3 files" in line and "2 written to" in line
    assert sorted(p.name for p in out.iterdir()) == ["flower-s3.png", "flower-s4.png"]
    assert sorted(p.name for p in rescued.iterdir()) == ["flower-and-more-grid-s3.png", "rings-s3.png",
                                                         "rings-s4.png"]
    assert read_recipe(rescued / "rings-s4.png")["seed"] == 4


def test_vary_and_morph_keep_every_file_when_the_folder_is_gone_read_only(model_dir, painted, tmp_path, capsys,
                                                                            monkeypatch):
    out, rescue_tmp = tmp_path / "out", tmp_path / "tmp"
    out.mkdir()
    rescue_tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(rescue_tmp))
    armed = {"on": False}
    _fail_writes_into(monkeypatch, out, armed)
    vary = Pipeline.vary

    def vary_then_break(self, *a, **k):
        armed["on"] = True
        return vary(self, *a, **k)

    monkeypatch.setattr(Pipeline, "vary", vary_then_break)
    line = error_after_work(*run(capsys, "vary", painted[1][0], "--model", model_dir, "-n", "2", "--steps", "2",
                               "--seed", "1", "--out", out, "--device", "cpu"))
    rescued = rescue_tmp / "noisebrush-rescued" / "out"
    assert str(rescued) in line and "the 3 files" in line
    assert sorted(p.name for p in rescued.iterdir()) == ["flower-s5-vary-grid-s1.png", "flower-s5-vary-s1.png",
                                                         "flower-s5-vary-s2.png"]
    armed["on"] = False
    morph = Pipeline.morph

    def morph_then_break(self, *a, **k):
        armed["on"] = True
        return morph(self, *a, **k)

    monkeypatch.setattr(Pipeline, "morph", morph_then_break)
    line = error_after_work(*run(capsys, "morph", "flower", "--to-seed", "2", "--frames", "2", "--model", model_dir,
                               "--steps", "2", "--seed", "1", "--out", out, "--device", "cpu"))
    assert "the 3 files" in line and str(rescue_tmp / "noisebrush-rescued" / "out-2") in line
    assert sorted(p.suffix for p in (rescue_tmp / "noisebrush-rescued" / "out-2").iterdir()) == [".gif", ".mp4",
                                                                                                 ".png"]
    assert not list(out.iterdir())


# -- 4: vary, inpaint, outpaint and morph check --out before painting -----------------------------------------------

@pytest.mark.parametrize("argv", [["vary", "PNG"], ["inpaint", "PNG", "--mask", "PNG"],
                                  ["outpaint", "PNG", "--extend", "2"], ["morph", "flower", "--to-seed", "3"]])
def test_edits_check_out_before_loading_the_model(argv, model_dir, painted, tmp_path, capsys, monkeypatch):
    import noisebrush

    def no_load(*a, **k):
        raise AssertionError("the model was loaded before --out was checked")

    monkeypatch.setattr(noisebrush, "load", no_load)
    taken = tmp_path / "taken.png"
    taken.write_bytes(b"mine")
    argv = [str(painted[1][0]) if a == "PNG" else a for a in argv]
    line = one_error_line(*run(capsys, *argv, "--model", model_dir, "--out", taken))
    assert str(taken) in line and "not a folder" in line
    assert taken.read_bytes() == b"mine"


# -- 6: never overwrite a file this run did not create, unless --force ---------------------------------------------

def test_plot_log_keeps_an_existing_file_unless_force(tmp_path, capsys):
    (tmp_path / "log.csv").write_text(LOG)
    victim = tmp_path / "victim.png"
    victim.write_bytes(b"my picture")
    code, out, err = run(capsys, "plot-log", tmp_path, "-o", victim)
    assert code == 0, err
    assert out.strip() == f"wrote {tmp_path / 'victim-2.png'}" and victim.read_bytes() == b"my picture"
    code, out, err = run(capsys, "plot-log", tmp_path)  # the default log.png, twice
    code, out, err = run(capsys, "plot-log", tmp_path)
    assert code == 0 and out.strip() == f"wrote {tmp_path / 'log-2.png'}"
    code, out, err = run(capsys, "plot-log", tmp_path, "-o", victim, "--force")
    assert code == 0 and out.strip() == f"wrote {victim}"
    with Image.open(victim) as im:
        assert im.format == "PNG"


def test_eval_json_keeps_an_existing_file_unless_force(model_dir, tmp_path, capsys, monkeypatch):
    import noisebrush.eval

    report = {"model": "tiny", "data": "builtin", "n": 8, "sampler": "euler", "steps": 2, "cfg": 3.0, "kid": 0.5}
    monkeypatch.setattr(noisebrush.eval, "evaluate", lambda *a, **k: dict(report))
    victim = tmp_path / "victim.png"
    victim.write_bytes(b"my picture")
    code, out, err = run(capsys, "eval", model_dir, "--n", "8", "--steps", "2", "--json", victim, "--device", "cpu")
    assert code == 0, err
    assert f"report → {tmp_path / 'victim-2.png'}" in out and victim.read_bytes() == b"my picture"
    assert json.loads((tmp_path / "victim-2.png").read_text()) == report
    code, out, err = run(capsys, "eval", model_dir, "--n", "8", "--steps", "2", "--json", victim, "--force",
                         "--device", "cpu")
    assert code == 0 and f"report → {victim}" in out and json.loads(victim.read_text()) == report
    line = one_error_line(*run(capsys, "eval", model_dir, "--json", tmp_path, "--device", "cpu"))
    assert "is a folder" in line and "--json" in line


# -- 11: Ctrl-C says what was kept ---------------------------------------------------------------------------------

def test_ctrl_c_during_paint_names_the_pictures_kept(model_dir, tmp_path, capsys, monkeypatch):
    generate, calls = Pipeline.generate, {"n": 0}

    def second_prompt_interrupted(self, *a, **k):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return generate(self, *a, **k)

    monkeypatch.setattr(Pipeline, "generate", second_prompt_interrupted)
    code, out, err = run(capsys, "paint", "flower", "rings", "--model", model_dir, "-n", "2", "--steps", "1",
                         "--seed", "3", "--out", tmp_path, "--device", "cpu")
    assert code == 130 and "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith("painting")]
    assert len(lines) == 1 and lines[0].startswith("interrupted: kept the 2 files"), err
    assert str(tmp_path / "flower-s3.png") in lines[0] and str(tmp_path / "flower-s4.png") in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["flower-s3.png", "flower-s4.png"]


@pytest.mark.parametrize("argv, method", [(["paint", "flower"], "generate"), (["vary", "PNG"], "vary"),
                                          (["morph", "flower", "--to-seed", "2"], "morph")])
def test_ctrl_c_before_anything_is_written(argv, method, model_dir, painted, tmp_path, capsys, monkeypatch):
    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(Pipeline, method, interrupted)
    argv = [str(painted[1][0]) if a == "PNG" else a for a in argv]
    code, out, err = run(capsys, *argv, "--model", model_dir, "--steps", "1", "--out", tmp_path / "o",
                         "--device", "cpu")
    assert code == 130 and "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith("painting")]
    assert lines == ["interrupted: nothing was written"]
    assert not (tmp_path / "o").exists() or not list((tmp_path / "o").iterdir())


# -- 13: random seeds by default, printed and recorded -------------------------------------------------------------

def test_vary_and_morph_draw_a_seed_print_and_record_it(model_dir, painted, tmp_path, capsys):
    code, out, err = run(capsys, "vary", painted[1][0], "--model", model_dir, "-n", "1", "--steps", "2", "--out",
                         tmp_path / "v", "--device", "cpu")
    assert code == 0, err
    seed = int(re.search(r"seed (\d+)\)", out).group(1))
    (f,) = _paths(out)
    assert read_recipe(f)["seed"] == seed and f.name == f"flower-s5-vary-s{seed}.png"
    code, out, err = run(capsys, "morph", "flower", "--to", "rings", "--frames", "2", "--model", model_dir,
                         "--steps", "2", "--out", tmp_path / "m", "--device", "cpu")
    assert code == 0, err
    seed = int(re.search(r"seed (\d+)\)", out).group(1))
    strip = next(p for p in _paths(out) if p.name.endswith("-strip.png"))
    rec = read_recipe(strip)
    assert rec["seed"] == seed and rec.get("to_seed", seed) == seed  # --to-seed defaults to the seed drawn


# -- 13: reproduce names every file STEM-again… ---------------------------------------------------------------------

def test_reproduce_names_its_files_after_the_picture(model_dir, painted, tmp_path, capsys):
    folder, (png, _, sheet) = painted
    code, out, err = run(capsys, "reproduce", png, "--out", tmp_path)
    assert code == 0, err
    assert out.splitlines()[0] == f"{tmp_path / 'flower-s5-again.png'}: pixel-identical to {png}"
    code, out, err = run(capsys, "reproduce", sheet, "--out", tmp_path)
    assert code == 0, err
    assert out.splitlines()[0].startswith(f"{tmp_path / 'flower-grid-s5-again.png'}: pixel-identical")
    assert set(_paths(out)) == {tmp_path / "flower-grid-s5-again-s5.png", tmp_path / "flower-grid-s5-again-s6.png"}
    code, out, err = run(capsys, "vary", png, "--model", model_dir, "-n", "1", "--steps", "2", "--seed", "1",
                         "--out", folder / "v", "--device", "cpu")
    (varied,) = _paths(out)
    code, out, err = run(capsys, "reproduce", varied, "--source", png, "--out", tmp_path)
    assert code == 0, err
    assert out.splitlines()[0].startswith(f"{tmp_path / (varied.stem + '-again.png')}: pixel-identical")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["flower-s5-again.png", "flower-grid-s5-again.png", "flower-grid-s5-again-s5.png",
         "flower-grid-s5-again-s6.png", varied.stem + "-again.png"])


# -- 13: every option of these commands says what it is for --------------------------------------------------------

MINE = ["paint", "vary", "inpaint", "outpaint", "morph", "info", "reproduce", "explain", "plot-log", "eval",
        "experiment"]


def test_every_option_has_help():
    group = typer.main.get_command(app)
    for name in MINE:
        cmd = group.commands[name]
        missing = [p.name for p in cmd.params if not (getattr(p, "help", None) or "").strip()]
        assert not missing, (name, missing)


def test_paint_and_rate_agree_on_the_ratings_database():
    group = typer.main.get_command(app)

    def db_help(cmd):
        return next(p.help for p in group.commands[cmd].params if p.name == "db")

    assert db_help("paint") == db_help("rate")
    assert "$NOISEBRUSH_HOME/ratings.sqlite" in db_help("paint") and "~/.noisebrush" in db_help("paint")
