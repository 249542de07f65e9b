"""noisebrush.paint.explain and `noisebrush explain`, on the tiny label model of _model_fixture.py (16×16 pictures)."""
import json
import math
import re

import numpy as np
import pytest
import torch
from PIL import Image

import noisebrush
from _cli_checks import one_error_line, run_cli
from _model_fixture import one_thread, tiny_model
from noisebrush.apps.cli import main
from noisebrush.errors import BadParameter, UserError
from noisebrush.paint.explain import FILES, default_at, display_xt, explain, parse_at
from noisebrush.io.images import to_uint8
from noisebrush.io.png import read_recipe


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    with one_thread():
        yield


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return tiny_model(tmp_path_factory, "label")


@pytest.fixture(scope="module")
def pipe(model_dir):
    return noisebrush.load(model_dir, device="cpu")


run = run_cli  # main(argv) → (exit code, stdout, stderr)


def pixels(path):
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def tile(strip, layout, column, row):
    """The picture in a strip tile, shrunk back by the zoom it was enlarged with (pixel repetition)."""
    z = layout["zoom"]
    w, h = layout["tile"]
    left, top = layout["tiles"][column][row]
    block = strip[top:top + h, left:left + w]
    assert (np.repeat(np.repeat(block[::z, ::z], z, 0), z, 1) == block).all()  # really nearest-neighbour blocks
    return block[::z, ::z]


def as_rgb(t):
    return to_uint8(t).permute(1, 2, 0).numpy()


def valid_image(path, fmt):
    with Image.open(path) as im:
        assert im.format == fmt
        im.verify()


# -- options --------------------------------------------------------------------------------------------------------

def test_default_at_spans_first_to_last():
    assert default_at(20) == [0, 4, 8, 11, 15, 19]
    assert default_at(4) == [0, 1, 2, 3]
    assert default_at(1) == [0]
    for steps in range(1, 60):
        at = default_at(steps)
        assert at[0] == 0 and at[-1] == steps - 1 and len(at) == min(steps, 6) and at == sorted(set(at))


def test_parse_at():
    assert parse_at("0,5,10,19", 20) == [0, 5, 10, 19]
    assert parse_at(" 10, 0 ,10", 20) == [0, 10]  # sorted, each once
    assert parse_at([3, 1], 4) == [1, 3]
    assert parse_at(None, 20) == default_at(20)


@pytest.mark.parametrize("bad", ["20", "-1", "a", "1.5", "", "0,,3", "3,", [], [1.0], [True], 7])
def test_parse_at_rejects(bad):
    with pytest.raises(BadParameter, match="^--at: "):
        parse_at(bad, 20, name="--at")


def test_display_xt_is_the_variance_preserving_view():
    x = torch.linspace(-3, 3, 48).reshape(3, 4, 4)
    assert torch.allclose(display_xt(x * 0.1, 0.0, 0.5), x * 0.1)  # σ = 0: the state itself
    big = display_xt(x, 30.0, 0.5)
    assert torch.allclose(big, x * 0.5 / math.sqrt(0.25 + 900))
    assert display_xt(x * 100, 1.0, 0.5).abs().max() == 1  # clamped for display


# -- the Python API -------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def explained(pipe, tmp_path_factory):
    """explain(…) with dpmpp_2m, 5 steps, and every StepInfo it reported."""
    out = tmp_path_factory.mktemp("explained")
    seen = []
    files = explain(pipe, "flower", seed=3, steps=5, sampler="dpmpp_2m", cfg=2.0, out_dir=out, callback=seen.append)
    return files, seen, out


def test_explain_writes_the_files(explained):
    files, seen, out = explained
    assert set(files) == {"strip", "gif", "schedule", "picture", "json"}
    assert {p.name for p in out.iterdir()} == {"strip.png", "process.gif", "schedule.png", "final.png",
                                               "explain.json"}
    for key in ("strip", "schedule", "picture"):
        valid_image(files[key], "PNG")
    valid_image(files["gif"], "GIF")
    doc = json.loads(files["json"].read_text())
    assert doc["files"] == sorted(p.name for p in files.values()) and set(doc["files"]) <= set(FILES)
    assert doc["recipes"] == [doc["recipe"]] and doc["recipe"]["seed"] == 3 and doc["recipe"]["steps"] == 5
    assert doc["recipe"]["sampler"] == "dpmpp_2m" and doc["recipe"]["prompt"] == "flower"
    assert doc["at"] == [0, 1, 2, 3, 4] and doc["frames"] == 5 and len(doc["schedule"]) == 5
    assert doc["sampler_stats"] == {}  # dpmpp_2m keeps none
    assert read_recipe(files["picture"]) == doc["recipe"]  # final.png carries its recipe like a painted PNG


def test_gif_has_one_frame_per_step(explained):
    files, seen, _ = explained
    assert [s.step for s in seen] == [0, 1, 2, 3, 4]
    with Image.open(files["gif"]) as gif:
        assert gif.n_frames == 5
        assert gif.info.get("loop") == 0
        assert gif.width > 2 * 16 * 2  # x_t beside x̂_0, enlarged


def test_strip_tiles_are_the_recorded_states(explained, pipe):
    files, seen, _ = explained
    layout = json.loads(files["json"].read_text())["strip"]
    strip = pixels(files["strip"])
    assert [t["step"] for t in layout["tiles"]] == [0, 1, 2, 3, 4]
    sd = float(pipe.config["sigma_data"])
    for k, info in enumerate(seen):
        assert layout["tiles"][k]["sigma"] == pytest.approx(info.sigma)
        assert np.array_equal(tile(strip, layout, k, "x_t"), as_rgb(display_xt(info.x[0], info.sigma, sd)))
        assert np.array_equal(tile(strip, layout, k, "x0"), as_rgb(info.x0[0]))


def test_last_prediction_is_the_final_picture(explained, pipe):
    files, _, _ = explained
    layout = json.loads(files["json"].read_text())["strip"]
    last = tile(pixels(files["strip"]), layout, -1, "x0")
    assert np.array_equal(last, pixels(files["picture"]))
    with torch.random.fork_rng(devices=[]):
        images, _ = pipe.generate("flower", seed=3, steps=5, sampler="dpmpp_2m", cfg=2.0)
    assert np.array_equal(last, as_rgb(images[0]))  # the very picture `paint` paints


@pytest.mark.parametrize("sampler", ["langevin", "adaptive"])
def test_corrector_samplers_write_correctors_png(pipe, tmp_path, sampler):
    files = explain(pipe, "rings", seed=1, steps=4, sampler=sampler, out_dir=tmp_path)
    assert files["correctors"] == tmp_path / "correctors.png"
    valid_image(files["correctors"], "PNG")
    doc = json.loads(files["json"].read_text())
    stats = doc["sampler_stats"]
    assert "correctors.png" in doc["files"]
    with Image.open(files["gif"]) as gif:
        frames = gif.n_frames
    if sampler == "langevin":
        assert len(stats["corrector_steps"]) == len(stats["levels"]) == 3  # after every step that lands on σ > 0
        assert frames == 4
    else:
        assert stats["finished"] == [True]
        assert frames == doc["frames"] == stats["accepted"][0] + stats["rejected"][0]  # one frame per attempt
        assert doc["schedule"] == stats["sigmas"][0]
    layout = doc["strip"]
    assert np.array_equal(tile(pixels(files["strip"]), layout, -1, "x0"), pixels(files["picture"]))


def test_ordinary_sampler_leaves_no_correctors_png(pipe, tmp_path):
    explain(pipe, "rings", seed=1, steps=3, sampler="langevin", out_dir=tmp_path)
    assert (tmp_path / "correctors.png").exists()
    files = explain(pipe, "rings", seed=1, steps=3, sampler="euler", out_dir=tmp_path, force=True)  # replace it
    assert files["json"].parent == tmp_path and "correctors" not in files
    assert not (tmp_path / "correctors.png").exists()  # the earlier explanation's file does not linger
    assert "correctors.png" not in json.loads(files["json"].read_text())["files"]


def test_explain_never_overwrites_an_earlier_explanation(pipe, tmp_path):
    """Issue 12 point 6: a folder holding an explanation is kept; the new one goes to a free folder beside it."""
    first = explain(pipe, "rings", seed=1, steps=2, sampler="euler", out_dir=tmp_path / "why")
    before = {p.name: p.read_bytes() for p in (tmp_path / "why").iterdir()}
    second = explain(pipe, "flower", seed=2, steps=2, sampler="euler", out_dir=tmp_path / "why")
    assert first["json"].parent == tmp_path / "why" and second["json"].parent == tmp_path / "why-2"
    assert {p.name: p.read_bytes() for p in (tmp_path / "why").iterdir()} == before
    assert read_recipe(second["picture"])["prompt"] == "flower"
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")  # a folder without an explanation is used as it is
    assert explain(pipe, "rings", seed=1, steps=2, out_dir=tmp_path / "other")["json"].parent == tmp_path / "other"


def test_explain_checks_its_options(pipe, tmp_path):
    with pytest.raises(BadParameter, match="^fps: "):
        explain(pipe, "rings", steps=2, fps=0, out_dir=tmp_path / "a")
    with pytest.raises(BadParameter, match="^at: "):
        explain(pipe, "rings", steps=2, at=[2], out_dir=tmp_path / "a")
    with pytest.raises(BadParameter, match="^sampler: "):
        explain(pipe, "rings", steps=2, sampler="nope", out_dir=tmp_path / "a")
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match="not a folder"):
        explain(pipe, "rings", steps=2, out_dir=tmp_path / "file")
    assert not (tmp_path / "a").exists()  # nothing written before the options are known to be good


# -- the command line -----------------------------------------------------------------------------------------------

def test_cli_explain(model_dir, tmp_path, capsys):
    out = tmp_path / "why"
    code, stdout, err = run(capsys, "explain", "flower", "--model", model_dir, "--steps", "4", "--seed", "2",
                            "--at", "0,3", "--out", out, "--fps", "4", "--device", "cpu")
    assert code == 0, err
    lines = stdout.splitlines()
    assert lines[0].startswith("explained 'flower' (dpmpp_2m, 4 steps, seed 2)") and str(out) in lines[0]
    printed = {line.strip() for line in lines[1:] if line.strip()}
    assert printed == {str(out / name) for name in ("strip.png", "process.gif", "schedule.png", "final.png",
                                                    "explain.json")}
    doc = json.loads((out / "explain.json").read_text())
    assert doc["at"] == [0, 3] and [t["step"] for t in doc["strip"]["tiles"]] == [0, 3]
    with Image.open(out / "process.gif") as gif:
        assert gif.n_frames == 4
        assert gif.info["duration"] == 250


def test_cli_explain_default_folder(model_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    argv = ["explain", "flower", "--model", model_dir, "--steps", "2", "--sampler", "adaptive", "--seed", "0",
            "--device", "cpu"]
    assert run(capsys, *argv)[0] == 0
    assert run(capsys, *argv)[0] == 0  # a second explanation gets a folder of its own
    assert sorted(p.name for p in (tmp_path / "outputs").iterdir()) == ["explain-flower-s0", "explain-flower-s0-2"]
    assert (tmp_path / "outputs" / "explain-flower-s0" / "correctors.png").is_file()


@pytest.mark.parametrize("at", ["0,4", "-1", "two", "1.5", "", "0,,2"])
def test_cli_explain_bad_at(model_dir, tmp_path, capsys, at):
    line = one_error_line(*run(capsys, "explain", "flower", "--model", model_dir, "--steps", "4", "--at", at,
                               "--out", tmp_path / "x", "--device", "cpu"))
    assert line.startswith("error: --at: ")
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("args, fragment", [(["--sampler", "nope"], "sampler"), (["--steps", "0"], "steps"),
                                            (["--fps", "0"], "--fps"), (["--cfg", "-1"], "cfg")])
def test_cli_explain_bad_options(model_dir, tmp_path, capsys, args, fragment):
    line = one_error_line(*run(capsys, "explain", "flower", "--model", model_dir, *args, "--out", tmp_path / "x",
                               "--device", "cpu"))
    assert fragment in line


def test_cli_explain_unknown_class(model_dir, tmp_path, capsys):
    line = one_error_line(*run(capsys, "explain", "a dog", "--model", model_dir, "--out", tmp_path / "x",
                               "--device", "cpu"))
    assert "label" in line


def test_cli_explain_into_a_used_folder_and_force(model_dir, tmp_path, capsys):
    """`explain -o DIR` twice: the second run writes DIR-2 and says so; --force replaces DIR's files."""
    argv = ["explain", "flower", "--model", model_dir, "--steps", "2", "--out", tmp_path / "why", "--device", "cpu"]
    code, first, err = run(capsys, *argv, "--seed", "1")
    assert code == 0, err
    strip = (tmp_path / "why" / "strip.png").read_bytes()
    code, second, err = run(capsys, *argv)
    assert code == 0, err
    assert f"→ {tmp_path / 'why-2'}/" in second.splitlines()[0]
    assert (tmp_path / "why" / "strip.png").read_bytes() == strip
    seed = int(re.search(r"seed (\d+)\)", second).group(1))  # a random seed, printed and recorded
    assert json.loads((tmp_path / "why-2" / "explain.json").read_text())["recipe"]["seed"] == seed
    code, third, err = run(capsys, *argv, "--seed", "2", "--force")
    assert code == 0, err
    assert f"→ {tmp_path / 'why'}/" in third.splitlines()[0] and not (tmp_path / "why-3").exists()
    assert json.loads((tmp_path / "why" / "explain.json").read_text())["recipe"]["seed"] == 2


def test_cli_explain_out_is_a_file(model_dir, tmp_path, capsys):
    (tmp_path / "taken").write_text("x")
    line = one_error_line(*run(capsys, "explain", "flower", "--model", model_dir, "--out", tmp_path / "taken",
                               "--device", "cpu"))
    assert str(tmp_path / "taken") in line and "not a folder" in line
