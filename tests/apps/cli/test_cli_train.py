"""`noisebrush train` from the command line: typed --set values, a resume that takes its run's own settings, a
warmup that fits the run, bounds, and places that cannot be written (checked before any work)."""
import csv
import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

from _cli_checks import one_error_line
from _model_fixture import one_thread, reset_accelerate, tiny_model
from noisebrush.apps.cli import main
from noisebrush.bench.finetune import make_style_folder

TINY = ["--data", "builtin", "--set", "data_size=16", "--set", "resolution=16", "--set", "model.channels=8",
        "--set", "model.channel_mult=[1,2]", "--set", "model.blocks=1", "--set", "model.attn_resolutions=[8]",
        "--set", "model.cross_attn_resolutions=[]", "--set", "condition=none", "--set", "batch_size=4",
        "--set", "sample_every=0", "--set", 'mixed_precision="no"', "--set", "log_every=1"]


@pytest.fixture(autouse=True)
def _clean():
    with one_thread():
        yield
    reset_accelerate()


# -- --set values -------------------------------------------------------------------------------------------------------

BAD_SETS = [
    ("model.channel_mult=[1,2", "--set model.channel_mult: not a TOML value: [1,2"),   # malformed TOML
    ("lr={1", "--set lr: not a TOML value"),
    ("lr=1e-3e", "lr: expected a number"),                       # a bare word, so a string: the type says no
    ("model.channel_mult=3", "model.channel_mult"),              # an int for a list
    ("model.channel_mult=\"1,2\"", "model.channel_mult"),         # a string for a list
    ("model.channels=[8]", "model.channels"),                     # a list for an int
    ("model.attn_resolutions=[\"8\"]", "model.attn_resolutions"),  # a list of the wrong things
    ("model.dropout=\"high\"", "model.dropout"),
    ("model.factorized=1", "model.factorized"),                   # a number for true/false
    ("model.chanels=8", "model.chanels"),                         # not a setting of the network
    ("betas=[0.9, \"x\"]", "betas"),
    ("steps=[10]", "steps"),
    ("warmup=2.5", "warmup"),
]


@pytest.mark.parametrize("item, words", BAD_SETS)
def test_bad_set_values_are_one_line_before_anything_is_built(tmp_path, capsys, item, words):
    run = tmp_path / "run"
    code = main(["train", "--steps", "3", "--out", str(run), *TINY, "--set", item])
    line = one_error_line(code, *capsys.readouterr())
    assert words in line
    assert not run.exists()  # nothing built, nothing written


def test_unknown_network_key_names_the_known_ones(tmp_path, capsys):
    code = main(["train", "--steps", "3", "--out", str(tmp_path / "run"), *TINY, "--set", "model.chanels=8"])
    line = one_error_line(code, *capsys.readouterr())
    assert "channel_mult" in line and "channels" in line


def test_bare_words_are_strings():
    from noisebrush.apps.cli.train import parse_sets

    assert parse_sets(["data=runs/pics-1.0:x", "condition=none", "model.channels=8"]) == \
        {"data": "runs/pics-1.0:x", "condition": "none", "model": {"channels": 8}}


# -- warmup ----------------------------------------------------------------------------------------------------------------

def test_default_warmup_fits_a_short_run_and_a_given_one_is_checked(tmp_path, capsys):
    run = tmp_path / "run"
    code = main(["train", "--steps", "3", "--out", str(run), *TINY, "--set", "checkpoint_every=0"])
    cap = capsys.readouterr()
    assert code == 0, cap.err  # before: "warmup: must be < steps (3), got 200"
    assert json.loads((run / "config.json").read_text())["train"]["warmup"] == 0  # 3 // 10
    code = main(["train", "--steps", "8", "--out", str(tmp_path / "b"), *TINY, "--set", "warmup=8"])
    line = one_error_line(code, *capsys.readouterr())
    assert "warmup: 8" in line and "steps = 8" in line


# -- resume ----------------------------------------------------------------------------------------------------------------

def _lrs(run):
    with open(run / "log.csv", newline="") as f:
        return {int(r["step"]): float(r["lr"]) for r in csv.DictReader(f)}


def test_resume_takes_the_runs_own_settings(tmp_path, capsys):
    run = tmp_path / "run"
    code = main(["train", "--steps", "4", "--out", str(run), *TINY, "--set", "checkpoint_every=2",
                 "--set", "warmup=1", "--lr-schedule", "cosine"])
    cap = capsys.readouterr()
    assert code == 0, cap.err
    assert "pictures: 16" in cap.err  # said at the start of every run

    # no --set repeated: the run's network, data and warmup come from the run folder; --steps may change
    code = main(["train", "--out", str(run), "--resume", "--steps", "6"])
    cap = capsys.readouterr()
    assert code == 0, cap.err
    assert "resumed from step 4" in cap.err and "pictures: 16" in cap.err
    assert "trained 6 steps" in cap.out
    lrs = _lrs(run)
    # the cosine schedule was planned for 4 steps: past its end the LR holds its final value (it climbed back)
    assert lrs[5] == pytest.approx(lrs[6]) and lrs[6] == pytest.approx(1e-2 * 0.05)

    # given again: the same value is fine, another one is one line naming the key and both values
    code = main(["train", "--out", str(run), "--resume", "--steps", "7", *TINY])
    cap = capsys.readouterr()
    assert code == 0, cap.err
    for args, words in [(["--set", "model.channels=16"], ["--set model.channels", "8", "16"]),
                        (["--lr", "0.5"], ["--lr", "0.01", "0.5"]),
                        (["--set", "warmup=0"], ["--set warmup", "1", "0"]),
                        (["--set", "seed=3"], ["--set seed", "0", "3"])]:
        code = main(["train", "--out", str(run), "--resume", "--steps", "9", *args])
        line = one_error_line(code, *capsys.readouterr())
        assert all(w in line for w in words), (args, line)


def test_resume_without_a_run_is_one_line(tmp_path, capsys):
    code = main(["train", "--out", str(tmp_path / "nothing"), "--resume", "--steps", "5"])
    line = one_error_line(code, *capsys.readouterr())
    assert "nothing to resume" in line and "nothing" in line


def test_steps_are_bounded(tmp_path, capsys):
    # warmup=-1 too: the bound on --steps must be what refuses (before, 10^8 steps were accepted)
    code = main(["train", "--steps", "100000000", "--out", str(tmp_path / "r"), *TINY, "--set", "warmup=-1"])
    assert "--steps" in one_error_line(code, *capsys.readouterr())
    code = main(["train", "--out", str(tmp_path / "r"), *TINY, "--set", "warmup=-1", "--set", "batch_size=100000"])
    assert "--set batch_size" in one_error_line(code, *capsys.readouterr())
    code = main(["train", "--out", str(tmp_path / "r"), *TINY, "--set", "warmup=-1", "--set", "steps=100000000"])
    assert "--set steps" in one_error_line(code, *capsys.readouterr())


# -- places that cannot be written (one subprocess without the capability that lets root write anywhere) ---------------

READ_ONLY_SCRIPT = textwrap.dedent("""
    import contextlib, io, json, os, sys, warnings
    from noisebrush.apps.cli import main
    from noisebrush.data.folder import ImageFolder

    args = json.loads(sys.argv[1])
    results = {}
    for name, argv, cwd in args["cases"]:
        err = io.StringIO()
        old = os.getcwd()
        os.chdir(cwd)
        try:
            with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
                code = main(argv)
        finally:
            os.chdir(old)
        results[name] = [code, err.getvalue()]
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        ds = ImageFolder(args["locked_data"], resolution=16)
    results["locked"] = [len(ds), [str(w.message) for w in seen]]
    print(json.dumps(results))
""")


def test_unwritable_places_fail_before_any_work(tmp_path_factory, tmp_path):
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("setpriv is not installed")
    tiny = tiny_model(tmp_path_factory, "text")
    data = make_style_folder(tmp_path / "style", n=3, resolution=16)
    ro = tmp_path / "ro"
    ro.mkdir()
    locked = tmp_path / "locked-data"
    shutil.copytree(data, locked / "ok")
    shutil.copytree(data, locked / "secret")
    os.chmod(ro, 0o555)
    os.chmod(locked / "secret", 0o000)
    drop = [setpriv, "--inh-caps=-all", "--bounding-set=-dac_override,-dac_read_search", "--"]
    try:
        probe = subprocess.run([*drop, sys.executable, "-c", f"open({str(ro / 'p')!r}, 'w')"], capture_output=True)
        if probe.returncode == 0:
            pytest.skip("the probe write into a read-only folder succeeded (permissions are not enforced here)")
        ft = ["finetune", "--base", str(tiny), "--data", str(data), "--steps", "1", "--batch-size", "2"]
        cases = [
            ("train", ["train", "--steps", "2", "--out", str(ro / "run"), *TINY], str(tmp_path)),
            ("lora", [*ft, "--lora", "--out", str(ro / "x.safetensors")], str(tmp_path)),
            ("full", [*ft, "--out", str(ro / "model")], str(tmp_path)),
            ("default_out", [*ft, "--lora"], str(ro)),  # outputs/finetune/… under a read-only working folder
        ]
        env = dict(os.environ, OMP_NUM_THREADS="1")
        done = subprocess.run([*drop, sys.executable, "-c", READ_ONLY_SCRIPT,
                               json.dumps({"cases": cases, "locked_data": str(locked)})],
                              capture_output=True, text=True, timeout=600, env=env)
    finally:
        os.chmod(ro, 0o755)
        os.chmod(locked / "secret", 0o755)
    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout.strip().splitlines()[-1])
    for name, _, _ in cases:
        code, err = results[name]
        line = one_error_line(code, "", err)
        assert "cannot write here" in line and "--out" in line, (name, line)  # the check made before any work
    assert not (ro / "run").exists() and not list(ro.iterdir())
    n, warned = results["locked"]
    assert n == 3  # the readable subfolder's pictures
    assert any("secret" in w and "cannot read this folder" in w for w in warned), warned


# -- a time budget (--minutes) -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("args, words", [
    (["--minutes", "0"], "--minutes: a number > 0"), (["--minutes", "-2"], "--minutes: a number > 0"),
    (["--minutes", "1e9"], "--minutes: a number > 0 and ≤ 10080"),
    (["--minutes", "1", "--steps", "3"], "--minutes: give --steps or --minutes, not both"),
    (["--set", "minutes=0"], "--set minutes: a number > 0"),
    (["--set", "minutes=2", "--set", "steps=3"], "minutes: a run is planned by steps or by minutes, not both"),
])
def test_bad_budgets_are_one_line_before_anything_is_built(tmp_path, capsys, args, words):
    run = tmp_path / "run"
    line = one_error_line(main(["train", "--out", str(run), *TINY, *args]), *capsys.readouterr())
    assert words in line
    assert not run.exists()


def test_a_flag_wins_over_the_other_budget_in_a_file(tmp_path):
    from noisebrush.apps.cli.train import _train_config
    from noisebrush.train.budget import budget_batch

    path = tmp_path / "c.toml"
    path.write_text("steps = 100\nwarmup = 5\n")
    cfg = _train_config(path, {"minutes": 2.0}, {}, flags={"minutes": "--minutes"})
    assert (cfg.minutes, cfg.steps, cfg.warmup, cfg.batch_size) == (2.0, None, 5, budget_batch(2.0))
    path.write_text("minutes = 3\n")
    cfg = _train_config(path, {"steps": 40}, {}, flags={"steps": "--steps"})
    assert (cfg.minutes, cfg.steps, cfg.batch_size) == (None, 40, 64)


def test_a_budget_run_and_its_resume(tmp_path, capsys, monkeypatch):
    """With the trainer's clock made to count 0.5 s a step: --minutes 0.1 is 12 steps (2 probe steps, then the
    rate × the 5 s left); --resume --minutes 0.15 takes it on to 9 s in all, at the plan's final LR; --steps is
    refused on a budget run."""
    from noisebrush.train import Trainer
    from noisebrush.train.budget import budget_lr

    ticks = iter(range(10**6))
    monkeypatch.setattr(Trainer, "clock", staticmethod(lambda: 0.5 * next(ticks)))
    run = tmp_path / "run"
    code = main(["train", "--minutes", "0.1", "--out", str(run), *TINY, "--set", "checkpoint_every=5"])
    cap = capsys.readouterr()
    assert code == 0, cap.err
    assert "trained 12 steps" in cap.out and "plan 12 steps" in cap.err
    doc = json.loads((run / "config.json").read_text())
    assert doc["train"]["minutes"] == 0.1 and doc["train"]["steps"] is None and doc["plan"]["planned_steps"] == 12
    lrs = _lrs(run)
    peak = doc["train"]["lr"]
    assert peak == budget_lr(0.1)  # a short budget's LR, written into the run's config
    assert lrs[1] == 0.0 and lrs[12] == pytest.approx(peak * 0.05, rel=0.2)  # the probe; near the cosine's end

    code = main(["train", "--out", str(run), "--resume", "--steps", "20"])
    line = one_error_line(code, *capsys.readouterr())
    assert "--steps: this run was planned by minutes; resume it with --minutes (the total)" in line

    code = main(["train", "--out", str(run), "--resume", "--minutes", "0.15"])
    cap = capsys.readouterr()
    assert code == 0, cap.err
    assert "resumed from step 12" in cap.err and "trained 18 steps" in cap.out
    lrs = _lrs(run)
    assert [lrs[s] for s in range(13, 19)] == pytest.approx([peak * 0.05] * 6)  # held past the plan's end
    doc = json.loads((run / "config.json").read_text())
    assert doc["train"]["minutes"] == 0.15 and doc["plan"]["budget_seconds"] == 6.0  # the plan's own budget
    assert doc["plan"]["stop_seconds"] == 9.0 and doc["plan"]["planned_steps"] == 12


@pytest.mark.parametrize("main_process", [True, False])
def test_only_the_main_process_reports_progress(capsys, main_process):
    """Under torchrun every process used to print the bar and the closing line; now only the main one does."""
    from types import SimpleNamespace

    from noisebrush.apps.cli.train import _fit

    class Run:  # what _fit uses of a Trainer
        step, planned_steps, skipped = 0, 3, 0
        acc = SimpleNamespace(is_main_process=main_process, num_processes=1)

        def fit(self, progress):
            for s in range(1, 4):
                self.step = s
                progress(s, {"loss": 1.0, "lr": 1e-3})
            return "run/model"

        def close(self):
            pass

    _fit(Run(), SimpleNamespace(batch_size=4, out_dir="run"))
    out, err = capsys.readouterr()
    if main_process:
        assert "trained 3 steps (0 skipped) → model in run/model" in out and "training 3/3" in err
    else:
        assert out == err == ""
