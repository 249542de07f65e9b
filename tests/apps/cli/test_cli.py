"""The ``noisebrush`` command line, run in-process through ``noisebrush.apps.cli.main(argv)`` (plus one real run of the
console script). Models are tiny folders made by really training (see _model_fixture.py)."""
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from _cli_checks import run_cli
from _model_fixture import TINY_NET, one_thread, reset_accelerate, tiny_model
from noisebrush.apps.cli import main
from noisebrush.diffusion import SAMPLERS
from noisebrush.io.png import read_recipe, save_png

VENV_BIN = Path(sys.executable).parent


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    with one_thread():
        yield


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return tiny_model(tmp_path_factory, "label")


run = run_cli  # main(argv) → (exit code, stdout, stderr)


def assert_user_error(code, out, err, *fragments):
    assert code == 2, (code, out, err)
    assert "Traceback" not in out + err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("error: "), err
    for f in fragments:
        assert f in lines[0], lines[0]
    return lines[0]


def _pixels(path):
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


# -- paint, info, reproduce ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def painted(model_dir, tmp_path_factory):
    """`noisebrush paint flower -n 2 --steps 4 --seed 5` into a fresh folder: (code, stdout, stderr, out_dir)."""
    out = tmp_path_factory.mktemp("painted")
    with torch.random.fork_rng(devices=[]):
        import io
        from contextlib import redirect_stderr, redirect_stdout

        o, e = io.StringIO(), io.StringIO()
        with redirect_stdout(o), redirect_stderr(e):
            code = main(["paint", "flower", "--model", str(model_dir), "-n", "2", "--steps", "4", "--seed", "5",
                         "--out", str(out), "--device", "cpu"])
    return code, o.getvalue(), e.getvalue(), out


def test_paint_writes_pngs_and_a_grid(painted):
    code, out, err, folder = painted
    assert code == 0, err
    assert "Traceback" not in err
    files = sorted(p.name for p in folder.iterdir())
    assert files == ["flower-grid-s5.png", "flower-s5.png", "flower-s6.png"]
    printed = [line.strip() for line in out.splitlines()[1:] if line.strip()]
    assert sorted(Path(p).name for p in printed) == files
    assert all(Path(p).is_file() for p in printed)
    assert out.splitlines()[0].startswith("painted 2 images")
    with Image.open(folder / "flower-grid-s5.png") as g:  # two 16×16 pictures at zoom 2, side by side
        assert g.size == (2 * 32 + 3 * 2, 32 + 2 * 2)


def test_paint_pngs_carry_their_recipes(painted, model_dir):
    folder = painted[3]
    for seed in (5, 6):
        rec = read_recipe(folder / f"flower-s{seed}.png")
        assert rec["seed"] == seed and rec["prompt"] == "flower" and rec["steps"] == 4
        assert rec["sampler"] == "dpmpp_2m" and rec["cfg"] == 3.0
        assert rec["model"] == str(model_dir.resolve()) and len(rec["model_hash"]) == 10
        with Image.open(folder / f"flower-s{seed}.png") as im:
            assert im.size == (16, 16)
            assert im.text["parameters"].startswith("flower\nSteps: 4, Sampler: dpmpp_2m")


def test_paint_never_overwrites(model_dir, tmp_path, capsys):
    argv = ["paint", "flower", "--model", model_dir, "-n", "1", "--steps", "1", "--seed", "0", "--out", tmp_path,
            "--device", "cpu"]
    assert run(capsys, *argv)[0] == 0
    assert run(capsys, *argv)[0] == 0
    assert {p.name for p in tmp_path.iterdir()} == {"flower-s0.png", "flower-s0-2.png"}
    assert np.array_equal(_pixels(tmp_path / "flower-s0.png"), _pixels(tmp_path / "flower-s0-2.png"))


def test_info(painted, capsys):
    code, out, err = run(capsys, "info", painted[3] / "flower-s6.png")
    assert code == 0, err
    fields = dict(line.split(None, 1) for line in out.splitlines() if line.strip())
    assert fields["prompt"] == "flower" and fields["seed"] == "6" and fields["sampler"] == "dpmpp_2m"
    assert fields["steps"] == "4"


def test_reproduce_with_model(painted, model_dir, tmp_path, capsys):
    png = painted[3] / "flower-s6.png"
    code, out, err = run(capsys, "reproduce", png, "--model", model_dir, "--out", tmp_path / "again")
    assert code == 0, err
    assert "pixel-identical" in out
    again = tmp_path / "again" / "flower-s6-again.png"  # one rule: STEM-again…
    assert np.array_equal(_pixels(again), _pixels(png))
    assert read_recipe(again) == read_recipe(png)


def test_reproduce_without_model_uses_the_recorded_folder(painted, model_dir, tmp_path, capsys, monkeypatch):
    """The recipe records the model folder's absolute path, so reproduce works from any working directory."""
    png = painted[3] / "flower-s5.png"
    assert read_recipe(png)["model"] == str(model_dir.resolve())
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, "reproduce", png, "--out", tmp_path / "again")
    assert code == 0, err
    assert "pixel-identical" in out


def test_reproduce_without_model_when_the_folder_is_gone(model_dir, tmp_path, capsys, monkeypatch):
    moved = tmp_path / "moved-model"
    shutil.copytree(model_dir, moved)
    assert run(capsys, "paint", "rings", "--model", moved, "-n", "1", "--steps", "1", "--seed", "0", "--out",
               tmp_path / "p", "--device", "cpu")[0] == 0
    shutil.rmtree(moved)
    monkeypatch.chdir(tmp_path)
    assert_user_error(*run(capsys, "reproduce", tmp_path / "p" / "rings-s0.png", "--out", tmp_path / "again"),
                      str(moved), "no such model folder")
    # with --model pointing at another copy of the same weights it works again
    code, out, err = run(capsys, "reproduce", tmp_path / "p" / "rings-s0.png", "--model", model_dir,
                         "--out", tmp_path / "again")
    assert code == 0 and "pixel-identical" in out, err


def test_reproduce_with_the_wrong_weights(painted, model_dir, tmp_path, capsys):
    rec = read_recipe(painted[3] / "flower-s5.png")
    with Image.open(painted[3] / "flower-s5.png") as im:
        forged = save_png(im.copy(), tmp_path / "forged.png", {**rec, "model_hash": "0000000000"})
    line = assert_user_error(*run(capsys, "reproduce", forged, "--model", model_dir, "--out", tmp_path / "o"),
                             "0000000000", "--model")
    assert not (tmp_path / "o").exists()
    assert "model weights" in line


def test_reproduce_that_differs_exits_1(painted, model_dir, tmp_path, capsys):
    png = painted[3] / "flower-s5.png"
    rec = read_recipe(png)
    with Image.open(png) as im:
        a = np.asarray(im.convert("RGB")).copy()
    a[0, 0] ^= 0xFF
    altered = save_png(Image.fromarray(a), tmp_path / "altered.png", rec)
    code, out, err = run(capsys, "reproduce", altered, "--model", model_dir, "--out", tmp_path / "o")
    assert "DIFFERS" in out
    assert code == 1


def test_reproduce_incomplete_recipe(painted, model_dir, tmp_path, capsys):
    rec = read_recipe(painted[3] / "flower-s5.png")
    del rec["steps"]
    with Image.open(painted[3] / "flower-s5.png") as im:
        p = save_png(im.copy(), tmp_path / "partial.png", rec)
    assert_user_error(*run(capsys, "reproduce", p, "--model", model_dir, "--out", tmp_path / "o"),
                      "incomplete noisebrush parameters")


def test_paint_several_prompts(model_dir, tmp_path, capsys):
    code, out, err = run(capsys, "paint", "flower", "rings", "--model", model_dir, "-n", "2", "--steps", "1",
                         "--seed", "3", "--out", tmp_path, "--device", "cpu")
    assert code == 0, err
    assert out.splitlines()[0].startswith("painted 4 images")
    assert {p.name for p in tmp_path.iterdir()} == {"flower-s3.png", "flower-s4.png", "rings-s3.png", "rings-s4.png",
                                                   "flower-and-more-grid-s3.png"}
    with Image.open(tmp_path / "flower-and-more-grid-s3.png") as g:  # a row per prompt, n columns
        assert g.size == (2 * 32 + 3 * 2, 2 * 32 + 3 * 2)
    assert read_recipe(tmp_path / "rings-s4.png")["prompt"] == "rings"
    # a prompt's pictures do not depend on the other prompts painted with it
    code, _, err = run(capsys, "paint", "rings", "--model", model_dir, "-n", "2", "--steps", "1", "--seed", "3",
                       "--out", tmp_path / "alone", "--device", "cpu")
    assert code == 0, err
    assert np.array_equal(_pixels(tmp_path / "alone" / "rings-s4.png"), _pixels(tmp_path / "rings-s4.png"))


def test_paint_one_picture_makes_no_grid(model_dir, tmp_path, capsys):
    """Without --seed, a random seed is drawn, printed and recorded (issue 12 point 13)."""
    code, out, err = run(capsys, "paint", "flower", "--model", model_dir, "-n", "1", "--steps", "1", "--out", tmp_path,
                         "--device", "cpu")
    assert code == 0, err
    seed = int(re.search(r"\(seed (\d+)\)", out).group(1))
    assert [p.name for p in tmp_path.iterdir()] == [f"flower-s{seed}.png"]
    assert read_recipe(tmp_path / f"flower-s{seed}.png")["seed"] == seed


def test_reproduce_honours_size_and_sigma_range(model_dir, tmp_path, capsys):
    import noisebrush
    from noisebrush.io.images import to_pil

    pipe = noisebrush.load(model_dir, device="cpu")
    images, recipes = pipe.generate("flower", steps=3, seed=2, size=24, sigma_max=20.0)
    png = save_png(to_pil(images)[0], tmp_path / "api.png", recipes[0])
    code, out, err = run(capsys, "reproduce", png, "--out", tmp_path / "again")
    assert code == 0 and "pixel-identical" in out, (out, err)


def test_info_on_an_empty_recipe(tmp_path, capsys):
    p = save_png(Image.new("RGB", (4, 4)), tmp_path / "empty.png", {})
    code, out, err = run(capsys, "info", p)
    assert code in (0, 2) and "Traceback" not in err


def test_reproduce_recipe_with_null_model(painted, tmp_path, capsys):
    rec = {**read_recipe(painted[3] / "flower-s5.png"), "model": None}
    with Image.open(painted[3] / "flower-s5.png") as im:
        p = save_png(im.copy(), tmp_path / "null.png", rec)
    assert_user_error(*run(capsys, "reproduce", p, "--out", tmp_path / "o"))


def test_paint_out_is_a_file(model_dir, tmp_path, capsys):
    f = tmp_path / "file"
    f.write_text("x")
    assert_user_error(*run(capsys, "paint", "flower", "--model", model_dir, "-n", "1", "--steps", "1", "--out", f,
                           "--device", "cpu"), "not a folder")


def test_console_script_end_to_end(model_dir, tmp_path):
    """The installed `noisebrush` script, in a fresh process pinned to one CPU."""
    exe = VENV_BIN / "noisebrush"
    assert exe.is_file()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    cpu = min(os.sched_getaffinity(0))
    p = subprocess.run([str(exe), "paint", "flower", "--model", str(model_dir), "-n", "1", "--steps", "2", "--seed",
                        "3", "--out", str(tmp_path), "--device", "cpu"], env=env, capture_output=True, text=True,
                       timeout=120, preexec_fn=lambda: os.sched_setaffinity(0, {cpu}))
    assert p.returncode == 0, p.stderr
    assert str(tmp_path / "flower-s3.png") in p.stdout
    assert read_recipe(tmp_path / "flower-s3.png")["seed"] == 3
    bad = subprocess.run([str(exe), "info", str(tmp_path / "missing.png")], env=env, capture_output=True, text=True,
                         timeout=120, preexec_fn=lambda: os.sched_setaffinity(0, {cpu}))
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [f"error: {tmp_path / 'missing.png'}: no such file"]


# -- samplers, bench, help ----------------------------------------------------------------------------------------

def test_samplers(capsys):
    code, out, err = run(capsys, "samplers")
    assert code == 0
    lines = [line for line in out.splitlines() if line.strip()]
    assert len(lines) == 14 == len(SAMPLERS)
    assert [line.split()[0] for line in lines] == list(SAMPLERS)
    assert set(SAMPLERS) == {"euler", "ddim", "heun", "dpmpp_2m", "dpmpp_3m", "ipndm", "ipndm_v", "unipc", "ddpm",
                             "euler_ancestral", "dpmpp_2m_sde", "langevin", "adaptive", "gan"}  # gan: diffusion-GAN models


def test_no_arguments_prints_help(capsys):
    code, out, err = run(capsys)
    assert code == 0
    assert "Usage" in out and "paint" in out and "train" in out


def test_bench_without_a_name_is_a_one_line_user_error(capsys):
    assert_user_error(*run(capsys, "bench"), "samplers")


def test_bench_help(capsys):
    code, out, err = run(capsys, "bench", "--help")
    assert code == 0 and "samplers" in out and "train" in out


def test_bench_unknown_name_exits_2(capsys):
    assert_user_error(*run(capsys, "bench", "nope"), "unknown benchmark 'nope'")




# -- user errors: exit 2, one line, no traceback ------------------------------------------------------------------

@pytest.fixture
def plain_png(tmp_path):
    p = tmp_path / "plain.png"
    Image.new("RGB", (4, 4)).save(p)
    return p




@pytest.mark.parametrize("case", [
    "missing-model", "unknown-sampler", "bad-steps", "negative-n",
    "zero-steps", "unknown-option", "missing-prompt",
    "info-missing", "info-no-recipe", "info-not-image", "unknown-command", "reproduce-missing", "bad-cfg",
    "unknown-class", "cuda", "bad-zoom",
])
def test_user_errors(case, model_dir, tmp_path, plain_png, capsys):
    m, out = str(model_dir), str(tmp_path / "out")
    not_image = tmp_path / "notes.png"
    not_image.write_text("hello")
    argv, fragments = {
        "missing-model": (["paint", "flower", "--model", tmp_path / "nope", "--out", out], ["no such model folder"]),
        "unknown-sampler": (["paint", "flower", "--model", m, "--sampler", "nope", "--out", out], ["sampler", "nope"]),
        "bad-steps": (["paint", "flower", "--model", m, "--steps", "abc", "--out", out], ["--steps"]),
        "negative-n": (["paint", "flower", "--model", m, "-n", "-1", "--out", out], ["n:"]),
        "zero-steps": (["paint", "flower", "--model", m, "--steps", "0", "--out", out], ["steps"]),
        "unknown-option": (["paint", "flower", "--bogus"], ["--bogus"]),
        "missing-prompt": (["paint"], ["PROMPT"]),
        "info-missing": (["info", tmp_path / "missing.png"], ["no such file"]),
        "info-no-recipe": (["info", plain_png], ["no noisebrush parameters"]),
        "info-not-image": (["info", not_image], ["not a readable image"]),
        "unknown-command": (["nonsense"], ["nonsense"]),
        "reproduce-missing": (["reproduce", tmp_path / "missing.png"], ["no such file"]),
        "bad-cfg": (["paint", "flower", "--model", m, "--cfg", "lots", "--out", out], ["--cfg"]),
        "unknown-class": (["paint", "dragon", "--model", m, "--steps", "1", "--out", out], ["label", "dragon"]),
        "cuda": (["paint", "flower", "--model", m, "--device", "cuda", "--out", out], ["cuda"]),
        "bad-zoom": (["paint", "flower", "--model", m, "--zoom", "0", "--out", out], ["--zoom"]),
    }[case]
    if case == "cuda" and torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    assert_user_error(*run(capsys, *argv), *fragments)
    assert not any(Path(out).glob("*.png"))


# -- train --------------------------------------------------------------------------------------------------------

def _train_argv(out, steps=2, *extra):
    return ["train", "--data", "builtin", "--steps", str(steps), "--set", "data_size=16", "--set", "resolution=16",
            "--set", f"model.channels={TINY_NET['channels']}", "--set", "model.channel_mult=[1,2]",
            "--set", "model.blocks=1", "--set", "model.attn_resolutions=[8]", "--set", "model.cross_attn_resolutions=[]",
            "--set", 'condition="none"', "--set", "batch_size=4", "--set", "sample_every=0",
            "--set", 'mixed_precision="no"', "--set", "warmup=0", "--out", str(out), *extra]


def _train(capsys, argv):
    try:
        return run(capsys, *argv)
    finally:
        reset_accelerate()


@pytest.fixture(scope="module")
def train_run(tmp_path_factory):
    """One CLI training run: argv, run folder, (code, stdout, stderr). sys.argv is the *caller's* (pytest's)."""
    import io
    from contextlib import redirect_stderr, redirect_stdout

    folder = tmp_path_factory.mktemp("cli-train") / "run"
    argv = _train_argv(folder)
    o, e = io.StringIO(), io.StringIO()
    with torch.random.fork_rng(devices=[]), redirect_stdout(o), redirect_stderr(e):
        try:
            code = main(argv)
        finally:
            reset_accelerate()
    return argv, folder, (code, o.getvalue(), e.getvalue())


def test_train_writes_a_model_folder(train_run, capsys):
    argv, folder, (code, out, err) = train_run
    assert code == 0, err
    assert "Traceback" not in err
    assert "trained 2 steps" in out and str(folder / "model") in out
    conf = json.loads((folder / "model" / "config.json").read_text())
    assert conf["format"] == "noisebrush.model/1" and conf["condition"] == "none"
    assert conf["unet"]["channels"] == 8 and conf["unet"]["channel_mult"] == [1, 2]
    assert conf["provenance"]["steps"] == 2
    assert conf["provenance"]["command"].startswith("noisebrush ")
    # and the fresh model paints
    code, out, err = run(capsys, "paint", "anything", "--model", folder / "model", "-n", "1", "--steps", "1",
                         "--out", folder / "pics", "--device", "cpu")
    assert code == 0, err


def test_train_provenance_records_the_command(train_run):
    argv, folder, _ = train_run
    conf = json.loads((folder / "model" / "config.json").read_text())
    assert conf["provenance"]["command"].startswith("noisebrush train --data builtin --steps 2")


def test_train_provenance_with_matching_sys_argv(tmp_path, capsys, monkeypatch):
    """As the console script runs it (sys.argv = the command line), the command is recorded."""
    argv = _train_argv(tmp_path / "run", 1)
    monkeypatch.setattr(sys, "argv", ["noisebrush", *argv])
    code, out, err = _train(capsys, argv)
    assert code == 0, err
    conf = json.loads((tmp_path / "run" / "model" / "config.json").read_text())
    assert conf["provenance"]["command"].startswith("noisebrush train --data builtin --steps 1 --set data_size=16")
    assert "'model.channel_mult=[1,2]'" in conf["provenance"]["command"]


def test_train_again_refuses_then_resumes(train_run, tmp_path, capsys):
    _, folder, (code, _, _) = train_run
    assert code == 0
    run_dir = tmp_path / "run"
    shutil.copytree(folder, run_dir)  # leave the module's run alone
    before = (run_dir / "model" / "model.safetensors").read_bytes()
    assert_user_error(*_train(capsys, _train_argv(run_dir, 4)), "already holds checkpoints", "--resume")
    assert (run_dir / "model" / "model.safetensors").read_bytes() == before
    code, out, err = _train(capsys, _train_argv(run_dir, 4, "--resume"))
    assert code == 0, err
    assert "trained 4 steps" in out
    conf = json.loads((run_dir / "model" / "config.json").read_text())
    assert conf["provenance"]["steps"] == 4 and conf["provenance"]["images_seen"] == 16
    assert (run_dir / "model" / "model.safetensors").read_bytes() != before
    assert (run_dir / "checkpoints" / "step-0000004").is_dir()


def test_resume_with_nothing_to_resume(tmp_path, capsys):
    assert_user_error(*_train(capsys, _train_argv(tmp_path / "fresh", 2, "--resume")), "nothing to resume")


def test_train_out_is_a_file(tmp_path, capsys):
    f = tmp_path / "file"
    f.write_text("x")
    assert_user_error(*_train(capsys, _train_argv(f, 1)), "not a folder")


@pytest.mark.parametrize("case", ["missing-config", "set-without-equals", "unknown-key", "unknown-model-key",
                                  "bad-type", "bad-toml-config"])
def test_train_user_errors(case, tmp_path, capsys):
    bad_toml = tmp_path / "bad.toml"
    bad_toml.write_text("steps = = 3\n")
    argv, fragments = {
        "missing-config": (["train", "--config", tmp_path / "nope.toml", "--out", tmp_path / "r"], ["nope.toml"]),
        "set-without-equals": (["train", "--set", "nonsense", "--out", tmp_path / "r"], ["--set", "nonsense"]),
        "unknown-key": (["train", "--set", "bogus=1", "--out", tmp_path / "r"], ["bogus"]),
        "unknown-model-key": (_train_argv(tmp_path / "r", 2, "--set", "model.bogus=1"), ["bogus"]),
        "bad-type": (["train", "--set", 'steps="ten"', "--out", tmp_path / "r"], ["steps"]),
        "bad-toml-config": (["train", "--config", bad_toml, "--out", tmp_path / "r"], ["bad.toml"]),
    }[case]
    assert_user_error(*_train(capsys, [str(a) for a in argv]), *fragments)
    assert not (tmp_path / "r" / "model").exists()


def test_a_contact_sheet_carries_every_recipe_and_reproduces(model_dir, tmp_path, capsys):
    code, out, err = run(capsys, "paint", "flower", "rings", "--model", model_dir, "-n", "2", "--steps", "3",
                         "--seed", "9", "--zoom", "3", "--out", tmp_path / "p", "--device", "cpu")
    assert code == 0, err
    sheet = tmp_path / "p" / "flower-and-more-grid-s9.png"
    rec = read_recipe(sheet)
    assert rec["sheet"] == {"cols": 2, "zoom": 3}
    assert [(r["prompt"], r["seed"]) for r in rec["images"]] == [("flower", 9), ("flower", 10), ("rings", 9),
                                                                 ("rings", 10)]
    code, out, err = run(capsys, "info", sheet)
    assert code == 0 and "image 4" in out and "'rings' seed 10" in out
    code, out, err = run(capsys, "reproduce", sheet, "--out", tmp_path / "again")
    assert code == 0, err
    assert "pixel-identical" in out
