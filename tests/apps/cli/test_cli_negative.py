"""`--negative` and weighted prompts on the command line (issue 13), end to end in-process on the built-in model."""
import json

import pytest

from _cli_checks import one_error_line, run_cli
from _model_fixture import one_thread
from noisebrush.io.png import read_recipe

FAST = ["-n", "1", "--steps", "2", "--seed", "0"]


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    with one_thread():
        yield


@pytest.mark.parametrize("command", ["paint", "vary", "inpaint", "outpaint", "morph", "explain"])
def test_every_painting_command_takes_negative(capsys, command):
    code, out, err = run_cli(capsys, command, "--help")
    assert code == 0 and "--negative" in out, out + err


def test_paint_with_negative_and_weights_records_both_and_reproduces(capsys, tmp_path):
    prompt = "a (red:1.5) circle on a blue background"
    code, out, err = run_cli(capsys, "paint", prompt, "--negative", "murky, dark", *FAST, "--out", tmp_path)
    assert code == 0, err
    png = next(tmp_path.glob("*-s0.png"))
    rec = read_recipe(png)
    assert rec["prompt"] == prompt and rec["negative"] == "murky, dark"
    code, out, err = run_cli(capsys, "reproduce", png, "--out", tmp_path / "again")
    assert code == 0 and "pixel-identical" in out, out + err


@pytest.mark.parametrize("args, words", [
    (["a (red circle"], "prompt 'a (red circle': a '(' that is never closed"),
    (["a (red:7) circle"], "is not a number from 0 to 3"),
    (["a red circle", "--negative", "(dark:2)"], "negative: weights such as (word:1.3) work in the prompt only"),
])
def test_bad_weights_are_one_error_line_and_nothing_is_written(capsys, tmp_path, args, words):
    code, out, err = run_cli(capsys, "paint", *args, *FAST, "--out", tmp_path)
    line = one_error_line(code, out, err)
    assert words in line, line
    assert not list(tmp_path.glob("*.png"))


def test_explain_records_the_negative(capsys, tmp_path):
    code, out, err = run_cli(capsys, "explain", "a red circle", "--negative", "a blue square", "--steps", "2",
                             "--seed", "0", "--out", tmp_path / "ex")
    assert code == 0, err
    doc = json.loads((tmp_path / "ex" / "explain.json").read_text())
    assert doc["recipe"]["negative"] == "a blue square"


def test_morph_to_prompt_weights_name_the_flag(capsys, tmp_path):
    code, out, err = run_cli(capsys, "morph", "a red circle", "--to", "a (blue square", "--frames", "2", "--steps", "2",
                             "--out", tmp_path)
    assert "--to 'a (blue square': a '(' that is never closed" in one_error_line(code, out, err)
