"""Bounds end to end (issue 12 points 2, 3, 8, 9): sizes and memory, budgets with an ETA, progress off a terminal,
an all-black mask, and inpainting's jump length — each one line, before any work. In-process on a tiny text model;
under pytest's capture stderr is not a terminal, as when output is piped or logged."""
import re

import numpy as np
import pytest
from PIL import Image

from _cli_checks import one_error_line, run_cli
from _model_fixture import one_thread, tiny_model
from noisebrush.apps.cli import main
from noisebrush.io.png import read_recipe


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    with one_thread():
        yield


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return tiny_model(tmp_path_factory, "text")


@pytest.fixture(scope="module")
def painted(model_dir, tmp_path_factory):
    """A 16×16 picture `paint` wrote (it carries its recipe), and masks of its size."""
    out = tmp_path_factory.mktemp("painted")
    assert main(["paint", "a red circle", "--model", str(model_dir), "-n", "1", "--steps", "4", "--seed", "0",
                 "--out", str(out)]) == 0
    half = np.zeros((16, 16), np.uint8)
    half[:, 8:] = 255
    Image.fromarray(half, "L").save(out / "half.png")
    Image.new("L", (16, 16), 0).save(out / "black.png")
    return next(out.glob("a-red-circle-s0.png"))


run = run_cli  # main(argv) → (exit code, stdout, stderr)


@pytest.fixture
def no_painting(monkeypatch):
    import noisebrush.paint.edit as edit

    monkeypatch.setattr(edit, "sample", lambda *a, **k: pytest.fail("painted a request that should be refused"))


def test_inpaint_with_few_steps_needs_no_jump_length(capsys, model_dir, painted, tmp_path):
    """`inpaint --steps 4` said "jump_length must be below steps"; the default now adapts and is recorded."""
    code, out, err = run(capsys, "inpaint", painted, "a red circle", "--mask", painted.parent / "half.png",
                         "--model", model_dir, "-n", "1", "--steps", "4", "--out", tmp_path)
    assert code == 0, err
    files = [line.strip() for line in out.splitlines() if line.strip().endswith(".png")]
    rec = read_recipe(files[0])
    assert rec["jump_length"] == 3 and rec["jumps"] == 3 and rec["steps"] == 4


def test_refusals_name_the_flag_in_one_line(capsys, model_dir, painted, tmp_path, no_painting):
    black, half = painted.parent / "black.png", painted.parent / "half.png"
    common = ["--model", model_dir, "--seed", "0", "--out", tmp_path]
    cases = {
        ("inpaint", painted, "x", "--mask", half, "--steps", "4", "--jump-length", "4", "--jumps", "2"):
            "error: --jump-length: must be below the number of steps (4) to resample, got 4",
        ("inpaint", painted, "x", "--mask", black, "--steps", "4"):
            "error: --mask black.png: nothing to repaint: the mask is all black; white = repaint",
        ("vary", painted, "x", "--size", "100000"): "error: --size: a whole number from 2 to 128, got 100000",
        ("outpaint", painted, "x", "--extend", "10000"):
            "error: --extend: at most 4× the picture's side on each side (64 left and right, 64 top and bottom for "
            "this 16×16 picture), got 10000,10000,10000,10000",
        ("inpaint", painted, "x", "--mask", half, "--jumps", "101"): "error: --jumps: a whole number from 1 to 100, "
                                                                      "got 101",
        ("vary", painted, "x", "--steps", "10001"): "error: --steps: a whole number from 1 to 10000, got 10001",
        ("morph", "x", "--to-seed", "1", "--frames", "2001"): "error: --frames: a whole number from 2 to 2000, got 2001",
    }
    for argv, want in cases.items():
        code, out, err = run(capsys, *argv, *common)
        assert one_error_line(code, out, err) == want, argv


def test_memory_is_checked_before_painting(capsys, model_dir, painted, tmp_path, no_painting, monkeypatch):
    monkeypatch.setenv("NOISEBRUSH_MEMORY_LIMIT", "100k")
    tail = r": needs about [\d.]+ [kM]B, NOISEBRUSH_MEMORY_LIMIT is 100 kB \(set NOISEBRUSH_MEMORY_LIMIT to change\)$"
    for argv, head in ((("vary", painted, "x", "--size", "8", "-n", "1"), "error: --size 8"),
                       (("vary", painted, "x", "-n", "1"), "error: picture size 16×16"),
                       (("outpaint", painted, "x", "--extend", "4,0,4,0", "-n", "1"), "error: --extend 4,0,4,0"),
                       (("morph", "x", "--to-seed", "1", "--frames", "3"), "error: --size 16")):
        code, out, err = run(capsys, *argv, "--model", model_dir, "--seed", "0", "--out", tmp_path)
        assert re.match(re.escape(head) + tail, one_error_line(code, out, err)), (argv, err)


def test_paint_checks_memory_before_painting(capsys, model_dir, tmp_path, monkeypatch):
    """The check every painting path passes (Pipeline.check → paint.options.check_memory)."""
    monkeypatch.setenv("NOISEBRUSH_MEMORY_LIMIT", "100k")
    code, out, err = run(capsys, "paint", "x", "--model", model_dir, "-n", "1", "--size", "64", "--no-cascade",
                         "--out", tmp_path)
    assert re.match(r"error: (--)?size 64: needs about", one_error_line(code, out, err)), err


def test_unusual_steps_are_warned_with_an_eta_and_progress_prints_plain_lines(capsys, model_dir, painted, tmp_path):
    code, out, err = run(capsys, "vary", painted, "x", "--model", model_dir, "-n", "1", "--steps", "201",
                         "--strength", "0.1", "--out", tmp_path)
    assert code == 0, err
    lines = err.splitlines()
    warned = [line for line in lines if line.startswith("warning: --steps")]
    assert len(warned) == 1 and re.fullmatch(r"warning: --steps 201 is far beyond the usual 200: about [\d.]+ "
                                             r"(s|min|h) at the current [\d.e-]+ s a step \(Ctrl-C stops\)",
                                             warned[0]), err
    progress = [line for line in lines if line.startswith("varying ")]
    assert progress and re.match(r"varying \d+/201 steps", progress[0]), err  # off a terminal: plain lines
    assert progress[-1].startswith("varying 201/201 steps") and "in all" in progress[-1], err


def test_a_size_the_model_was_not_trained_at_is_warned_once(capsys, model_dir, tmp_path):
    code, out, err = run(capsys, "paint", "x", "--model", model_dir, "-n", "1", "--steps", "2", "--size", "32",
                         "--no-cascade", "--out", tmp_path)
    assert code == 0, err
    warned = [line for line in err.splitlines() if "trained at" in line]
    assert warned == ["warning: --size 32: this model was trained at 16 px; expect repeated scenes"], err
