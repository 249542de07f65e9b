"""`noisebrush vary | inpaint | outpaint | morph` and `paint --palette`, end to end (in-process), with reproduce."""
import imageio.v2 as iio2
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


run = run_cli  # main(argv) → (exit code, stdout, stderr)


def _pixels(path):
    with Image.open(path) as im:
        return np.array(im.convert("RGB"))


@pytest.fixture(scope="module")
def painted(model_dir, tmp_path_factory):
    """A picture `paint` wrote (it carries its recipe)."""
    out = tmp_path_factory.mktemp("painted")
    assert main(["paint", "a red circle", "--model", str(model_dir), "-n", "1", "--steps", "4", "--seed", "0", "--out",
                 str(out)]) == 0
    return next(out.glob("a-red-circle-s0.png"))


def _written(out_text, suffix=".png"):
    return [line.strip() for line in out_text.splitlines() if line.strip().endswith(suffix)]


def test_vary_writes_variations_that_reproduce(capsys, model_dir, painted, tmp_path):
    code, out, err = run(capsys, "vary", painted, "--model", model_dir, "--strength", "0.5", "-n", "2", "--steps",
                         "6", "--out", tmp_path)
    assert code == 0, err
    files = _written(out)
    assert len(files) == 3  # two variations and their sheet
    rec = read_recipe(files[0])
    assert rec["mode"] == "vary" and rec["prompt"] == "a red circle"  # taken from the picture's own recipe
    code, out, err = run(capsys, "reproduce", files[1], "--source", painted, "--out", tmp_path / "again")
    assert code == 0 and "pixel-identical" in out, out + err


def test_inpaint_keeps_known_pixels_and_reproduces(capsys, model_dir, painted, tmp_path):
    mask = np.zeros((16, 16), np.uint8)
    mask[3:10, 5:14] = 255
    Image.fromarray(mask).save(tmp_path / "mask.png")
    code, out, err = run(capsys, "inpaint", painted, "a blue square", "--mask", tmp_path / "mask.png", "--model",
                         model_dir, "-n", "2", "--steps", "5", "--jump-length", "2", "--jumps", "2", "--out", tmp_path)
    assert code == 0, err
    files = _written(out)
    for f in files[:2]:
        assert np.array_equal(_pixels(f)[mask == 0], _pixels(painted)[mask == 0])
    code, out, err = run(capsys, "reproduce", files[0], "--source", painted, "--out", tmp_path / "again")
    assert code == 0 and "pixel-identical" in out, out + err
    # the source picture changed: reproduce says so in one line
    Image.fromarray(255 - _pixels(painted)).save(tmp_path / "changed.png")
    code, out, err = run(capsys, "inpaint", tmp_path / "changed.png", "--mask", tmp_path / "mask.png", "--model",
                         model_dir, "-n", "1", "--steps", "3", "--jumps", "1", "--out", tmp_path / "c")
    assert code == 0
    made = _written(out)[0]
    Image.fromarray(_pixels(painted)).save(tmp_path / "changed.png")
    line = one_error_line(*run(capsys, "reproduce", made, "--source", tmp_path / "changed.png", "--out",
                               tmp_path / "again2"))
    assert "changed.png" in line and ("has changed" in line or "differs" in line)


def test_outpaint_grows_the_canvas(capsys, model_dir, painted, tmp_path):
    code, out, err = run(capsys, "outpaint", painted, "--extend", "4,0,4,0", "--model", model_dir, "-n", "1",
                         "--steps", "4", "--jumps", "1", "--out", tmp_path)
    assert code == 0, err
    (f,) = _written(out)
    px = _pixels(f)
    assert px.shape == (16, 24, 3) and np.array_equal(px[:, 4:20], _pixels(painted))
    code, out, err = run(capsys, "reproduce", f, "--source", painted, "--out", tmp_path / "again")
    assert code == 0 and "pixel-identical" in out, out + err


def test_morph_writes_gif_mp4_and_strip(capsys, model_dir, tmp_path):
    code, out, err = run(capsys, "morph", "a red circle", "--to", "a blue square", "--seed", "1", "--to-seed", "2",
                         "--frames", "3", "--steps", "4", "--model", model_dir, "--zoom", "4", "--bounce", "--out",
                         tmp_path)
    assert code == 0, err
    gif = next(tmp_path.glob("*.gif"))
    mp4 = next(tmp_path.glob("*.mp4"))
    strip = next(tmp_path.glob("*-strip.png"))
    with Image.open(gif) as im:
        assert im.n_frames == 4 and im.size == (64, 64)  # 3 frames, bounced: 0 1 2 1
    r = iio2.get_reader(str(mp4))
    try:
        assert sum(1 for _ in r) == 4
    finally:
        r.close()
    assert read_recipe(strip)["mode"] == "morph"
    line = one_error_line(*run(capsys, "reproduce", strip))
    assert "noisebrush morph" in line


def test_paint_with_a_palette_records_it_and_reproduces(capsys, model_dir, tmp_path):
    code, out, err = run(capsys, "paint", "a red circle", "--model", model_dir, "-n", "1", "--steps", "4",
                         "--palette", "#20c040,#f0e020", "--palette-scale", "0.3", "--out", tmp_path)
    assert code == 0, err
    (f,) = _written(out)
    assert read_recipe(f)["guidance"][0]["palette"] == "#20c040,#f0e020"
    code, out, err = run(capsys, "reproduce", f, "--out", tmp_path / "again")
    assert code == 0 and "pixel-identical" in out, out + err


@pytest.mark.parametrize("argv,fragment", [
    (["vary", "missing.png"], "missing.png: no such file"),
    (["vary", "{painted}", "--strength", "2"], "strength"),
    (["inpaint", "{painted}", "--mask", "nomask.png"], "nomask.png: no such file"),
    (["outpaint", "{painted}", "--extend", "1,2"], "--extend"),
    (["outpaint", "{painted}", "--extend", "3,0,0,0"], "multiples of 2"),
    (["paint", "x", "--palette", "#zz0000"], "--palette"),
    (["paint", "x", "--palette-scale", "0.5"], "--palette-scale: give --palette too"),
    (["morph", "x"], "--to / --to-seed"),
    (["morph", "x", "--to-seed", "3", "--sampler", "ddpm"], "deterministic"),
])
def test_errors_are_one_line(capsys, model_dir, painted, argv, fragment, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    argv = [a.replace("{painted}", str(painted)) for a in argv] + ["--model", str(model_dir)]
    line = one_error_line(*run(capsys, *argv))
    assert fragment in line, line
