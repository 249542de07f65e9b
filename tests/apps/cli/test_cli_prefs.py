"""``noisebrush rate`` and ``noisebrush prefs``, run in-process through ``noisebrush.apps.cli.main``."""
import pytest
import torch

import noisebrush.apps.cli.prefs  # noqa: F401  (registers the commands; the package imports it too)
from _cli_checks import one_error_line, run_cli
from noisebrush.apps.cli import main
from noisebrush.io.images import to_pil
from noisebrush.io.png import save_png


@pytest.fixture(autouse=True)
def _home(tmp_path, monkeypatch):
    monkeypatch.setenv("NOISEBRUSH_HOME", str(tmp_path / "home"))


run = run_cli  # main(argv) → (exit code, stdout, stderr)


@pytest.fixture
def pngs(tmp_path):
    """Four pictures with recipes: two warm, two cool."""
    paths = []
    for i in range(4):
        c = torch.tensor([0.8, -0.5, -0.6]) if i < 2 else torch.tensor([-0.6, -0.4, 0.8])
        x = (c[:, None, None] + 0.05 * i * torch.ones(3, 16, 16)).clamp(-1, 1)
        paths.append(save_png(to_pil(x), tmp_path / f"p{i}.png", {"prompt": f"picture {i}", "seed": i}))
    return paths


def test_rate_show_fit_clear(capsys, tmp_path, pngs):
    code, out, err = run(capsys, "rate", pngs[0], pngs[1], "up")
    assert code == 0, err
    assert "rated 2 pictures up" in out and "2 up, 0 down" in out
    assert (tmp_path / "home" / "ratings.sqlite").is_file()
    code, out, err = run(capsys, "prefs", "fit")  # only ups so far
    assert "2 up and 0 down" in one_error_line(code, out, err)
    assert run(capsys, "rate", pngs[2], pngs[3], "DOWN")[0] == 0
    code, out, err = run(capsys, "rate", pngs[2], "up")  # changes its mind: replaces, does not add
    assert code == 0 and "3 up, 1 down" in out
    code, out, err = run(capsys, "prefs")
    assert code == 0 and "4 ratings (3 up, 1 down)" in out
    code, out, err = run(capsys, "prefs", "fit")
    assert code == 0, err
    assert "fitted on 4 ratings (3 up, 1 down)" in out and "accuracy" in out
    saved = list((tmp_path / "home" / "preference").glob("*.safetensors"))
    assert len(saved) == 1 and saved[0].stem in out and str(saved[0]) in out
    code, out, err = run(capsys, "prefs", "clear")
    assert "--yes" in one_error_line(code, out, err)
    code, out, err = run(capsys, "prefs", "clear", "--yes")
    assert code == 0 and "deleted 4 ratings" in out
    assert "0 ratings" in run(capsys, "prefs", "show")[1]


def test_own_database(capsys, tmp_path, pngs):
    db = tmp_path / "mine.sqlite"
    assert run(capsys, "rate", pngs[0], "up", "--db", db)[0] == 0
    assert db.is_file() and not (tmp_path / "home" / "ratings.sqlite").exists()
    assert "1 rating (1 up, 0 down)" in run(capsys, "prefs", "--db", db)[1]


def test_user_errors_are_one_line(capsys, tmp_path, pngs):
    line = one_error_line(*run(capsys, "rate", tmp_path / "missing.png", "up"))
    assert "missing.png: no such file" in line
    line = one_error_line(*run(capsys, "rate", pngs[0], "sideways"))
    assert "up or down" in line and "sideways" in line
    one_error_line(*run(capsys, "rate", "up"))
    assert "show, fit or clear" in one_error_line(*run(capsys, "prefs", "refit"))
    bad = tmp_path / "bad.sqlite"
    bad.write_bytes(b"not a database at all" * 50)
    for argv in (("rate", pngs[0], "up", "--db", bad), ("prefs", "--db", bad), ("prefs", "fit", "--db", bad)):
        line = one_error_line(*run(capsys, *argv))
        assert str(bad) in line and "ratings database" in line
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    assert "not a readable image" in one_error_line(*run(capsys, "rate", text, "down"))
    # nothing was stored by the failed calls
    assert not (tmp_path / "home" / "ratings.sqlite").exists()


def test_paint_best_of_and_prefer_use_the_ratings_and_reproduce(capsys, tmp_path, pngs, tmp_path_factory):
    """`paint --best-of N --prefer S` paints with the preference fitted on the ratings; the winner's PNG carries
    its own seed and the guide, so `reproduce` repaints it exactly."""
    from _model_fixture import one_thread, tiny_model
    from noisebrush.io.png import read_recipe

    assert run(capsys, "rate", pngs[0], pngs[1], "up")[0] == 0
    assert run(capsys, "rate", pngs[2], pngs[3], "down")[0] == 0
    with one_thread():
        model = tiny_model(tmp_path_factory, "text")
        code, out, err = run(capsys, "paint", "a red circle", "--model", model, "-n", "2", "--steps", "3",
                             "--best-of", "3", "--prefer", "0.5", "--seed", "4", "--out", tmp_path / "o")
        assert code == 0, err
        files = sorted(p for p in (tmp_path / "o").glob("*.png") if "grid" not in p.name)
        assert len(files) == 2
        rec = read_recipe(files[0])
        assert rec["best_of"]["n"] == 3 and len(rec["best_of"]["scores"]) == 3
        assert rec["seed"] in range(4, 7)  # picture 0's candidates have seeds 4, 5, 6
        assert rec["guidance"][0]["name"] == "preference" and rec["guidance"][0]["scale"] == 0.5
        code, out, err = run(capsys, "reproduce", files[0], "--out", tmp_path / "again")
        assert code == 0 and "pixel-identical" in out, out + err


def test_paint_best_of_without_ratings_is_one_line(capsys, tmp_path):
    code, out, err = run(capsys, "paint", "x", "--best-of", "2", "--out", tmp_path / "o")
    assert "rate" in one_error_line(code, out, err)
    code, out, err = run(capsys, "paint", "x", "--best-of", "0")
    assert "--best-of" in one_error_line(code, out, err)


def test_rate_prefs_and_paint_help_agree_on_where_ratings_live(capsys):
    """Issue 12 point 13: `rate --help` and `paint --help` told two stories about the database's place."""
    import re

    from noisebrush.apps.cli import main

    texts = {}
    for cmd in ("rate", "prefs", "paint"):
        assert main([cmd, "--help"]) == 0
        texts[cmd] = re.sub(r"\s+", " ", capsys.readouterr().out)
    want = "$NOISEBRUSH_HOME/ratings.sqlite; NOISEBRUSH_HOME is ~/.noisebrush unless set"
    for cmd, text in texts.items():
        assert want in text, cmd
