"""Input the CLI used to ignore without a word, misleading words, and paths in shared pictures (issue 12 points 8, 9,
10): each is one ``warning: …`` or ``error: …`` line now, said by the library so the Python API says it too."""
import json

import pytest
import torch
from PIL import Image

from _cli_checks import one_error_line
from _model_fixture import one_thread, tiny_model
from noisebrush.apps.cli import main
from noisebrush.io.png import read_recipe


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    with one_thread():
        yield


@pytest.fixture(scope="module")
def none_model(tmp_path_factory):
    return tiny_model(tmp_path_factory, "none")


@pytest.fixture(scope="module")
def text_model(tmp_path_factory):
    return tiny_model(tmp_path_factory, "text")


def _warnings(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("warning: ")]


def test_paint_with_an_unconditional_model_says_prompt_and_cfg_are_ignored(none_model, tmp_path, capsys):
    code = main(["paint", "a red sun", "--model", str(none_model), "--steps", "2", "-n", "1", "--seed", "3",
                 "--cfg", "5", "-o", str(tmp_path / "out")])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert _warnings(err) == ["warning: this model takes no prompt: 'a red sun' and --cfg are ignored"]
    (png,) = [p for p in (tmp_path / "out").glob("*.png") if "sheet" not in p.name]
    rec = read_recipe(png)
    assert rec["cfg"] == 1.0  # what was used
    code = main(["reproduce", str(png), "--out", str(tmp_path / "again")])
    out, err = capsys.readouterr()
    assert code == 0 and "pixel-identical" in out, out + err


def test_a_long_prompt_says_how_much_of_it_is_read(text_model, tmp_path, capsys):
    code = main(["paint", "a red sun over purple mountains " * 20, "--model", str(text_model), "--steps", "1", "-n",
                 "1", "--seed", "1", "-o", str(tmp_path / "out")])
    out, err = capsys.readouterr()
    assert code == 0, err
    (line,) = _warnings(err)
    assert line.startswith("warning: prompt: 120 tokens, only the first 14 are used"), line


def test_vary_without_prompt_or_recipe_says_so(text_model, tmp_path, capsys):
    Image.new("RGB", (16, 16), (200, 40, 40)).save(tmp_path / "mine.png")
    code = main(["vary", str(tmp_path / "mine.png"), "--model", str(text_model), "--steps", "2", "-n", "1",
                 "--seed", "1", "-o", str(tmp_path / "out")])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert _warnings(err) == ["warning: mine.png has no recipe and no prompt was given: painting without a prompt"]


def test_lora_with_a_word_for_weight_names_the_weight(tmp_path, capsys):
    lora = tmp_path / "style.safetensors"
    lora.write_bytes(b"not read: the weight is checked first")
    code = main(["paint", "a red sun", "--lora", f"{lora}:abc", "--steps", "1", "-n", "1", "-o", str(tmp_path / "o")])
    line = one_error_line(code, *capsys.readouterr())
    assert line == f"error: --lora {lora}:abc: the weight after ':' must be a number, got 'abc'"


def test_edited_pictures_name_their_sources_without_folders(text_model, tmp_path, capsys, monkeypatch):
    """Issue 12 point 10: vary/inpaint PNGs stored absolute paths; now names (and hashes), found again beside the
    picture by `reproduce`."""
    private = tmp_path / "home" / "alice" / "secret-project"
    private.mkdir(parents=True)
    Image.new("RGB", (16, 16), (20, 90, 200)).save(private / "mine.png")
    mask = Image.new("L", (16, 16))
    mask.paste(255, (4, 4, 12, 12))
    mask.save(private / "hole.png")
    code = main(["inpaint", str(private / "mine.png"), "a blue sky", "--mask", str(private / "hole.png"),
                 "--model", str(text_model), "--steps", "2", "--jump-length", "1", "--jumps", "1", "-n", "1",
                 "--seed", "1", "-o", str(tmp_path / "out")])
    out, err = capsys.readouterr()
    assert code == 0, err
    (png,) = [p for p in (tmp_path / "out").glob("*.png") if "sheet" not in p.name]
    rec = read_recipe(png)
    assert rec["source"] == "mine.png" and rec["mask"] == "hole.png"
    with Image.open(png) as im:
        assert "alice" not in json.dumps(dict(im.text))  # neither chunk names the folder
    # shared: the picture travels with its source and mask, the folder does not
    shared = tmp_path / "shared"
    shared.mkdir()
    for f in (png, private / "mine.png", private / "hole.png"):
        (shared / f.name).write_bytes(f.read_bytes())
    monkeypatch.chdir(tmp_path)
    code = main(["reproduce", str(shared / png.name), "--out", str(tmp_path / "again")])
    out, err = capsys.readouterr()
    assert code == 0 and "pixel-identical" in out, out + err
    (shared / "hole.png").unlink()
    code = main(["reproduce", str(shared / png.name), "--out", str(tmp_path / "again2")])
    line = one_error_line(code, *capsys.readouterr())
    assert "was painted from 'hole.png', which is not there" in line and "--mask FILE" in line
    assert torch.__version__  # (torch imported: the CLI ran in-process)
