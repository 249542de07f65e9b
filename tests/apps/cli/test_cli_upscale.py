"""`noisebrush upscale` and `noisebrush paint --size` through a cascade, end to end (in-process), with reproduce and
info; tiny models made by really training (a 16 px text base, 16 px scale-2 stages)."""
import numpy as np
import pytest
from PIL import Image

from _cli_checks import one_error_line, run_cli
from _model_fixture import one_thread, tiny_model, tiny_sr_model
from noisebrush.io.png import read_recipe

run = run_cli


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    with one_thread():
        yield


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory):
    return tiny_model(tmp_path_factory, "text")


@pytest.fixture(scope="module")
def sr_dir(tmp_path_factory):
    return tiny_sr_model(tmp_path_factory, "text")


def _size(path):
    with Image.open(path) as im:
        return im.size


def test_paint_above_the_models_size_goes_through_the_stages(capsys, base_dir, sr_dir, tmp_path):
    code, out, err = run(capsys, "paint", "a red circle", "--model", base_dir, "-n", "2", "--steps", "3", "--seed", "4",
                         "--size", "64", "--stages", f"{sr_dir},{sr_dir}", "--sr-steps", "2", "--sr-aug", "0.1",
                         "--out", tmp_path)
    assert code == 0, err
    pic = tmp_path / "a-red-circle-s5.png"
    assert _size(pic) == (64, 64)
    rec = read_recipe(pic)
    assert rec["width"] == 16 and [(s["width"], s["steps"], s["sr_aug"]) for s in rec["stages"]] == [(32, 2, 0.1),
                                                                                                   (64, 2, 0.1)]
    assert rec["stages"][0]["prompt"] == "a red circle"  # a text stage reads the prompt
    code, out, err = run(capsys, "reproduce", pic, "--out", tmp_path)
    assert code == 0 and "pixel-identical" in out, err
    code, out, err = run(capsys, "info", pic)
    assert code == 0 and "stage 2" in out and "→ 64×64" in out, out


def test_show_stages_writes_the_way_through_the_cascade(capsys, base_dir, sr_dir, tmp_path):
    code, out, err = run(capsys, "paint", "a red circle", "--model", base_dir, "-n", "1", "--steps", "3", "--seed", "4",
                         "--size", "32", "--stages", sr_dir, "--sr-steps", "2", "--show-stages", "--out", tmp_path)
    assert code == 0, err
    strip = tmp_path / "a-red-circle-stages-s4.png"
    with Image.open(strip) as im, Image.open(tmp_path / "a-red-circle-s4.png") as pic:
        assert im.size == (2 * 32 + 2, 32)
        right = np.asarray(im.convert("RGB"))[:, 34:]
        assert np.array_equal(right, np.asarray(pic.convert("RGB")))  # the last stage is the picture itself
    assert read_recipe(strip)["figure"] == "stages"
    line = one_error_line(*run(capsys, "reproduce", strip, "--out", tmp_path))
    assert "figure of a cascade's stages" in line
    line = one_error_line(*run(capsys, "paint", "x", "--model", base_dir, "--show-stages", "--out", tmp_path))
    assert line.startswith("error: --show-stages: only when painting through the cascade")


def test_upscale_writes_a_faithful_picture_that_reproduces(capsys, sr_dir, tmp_path):
    src = tmp_path / "small.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (12, 10, 3), dtype=np.uint8)).save(src)
    code, out, err = run(capsys, "upscale", src, "--stages", sr_dir, "--steps", "2", "--seed", "1", "--out", tmp_path)
    assert code == 0, err
    big = tmp_path / "small-x2.png"
    assert _size(big) == (20, 24) and "PSNR" in out
    rec = read_recipe(big)
    assert rec["mode"] == "upscale" and rec["source"] == "small.png" and rec["seed"] == 1
    code, out, err = run(capsys, "reproduce", big, "--out", tmp_path)
    assert code == 0 and "pixel-identical" in out, err
    code, out, err = run(capsys, "upscale", src, "--stages", sr_dir, "--steps", "2", "--seed", "1", "--out", tmp_path)
    assert code == 0 and (tmp_path / "small-x2-2.png").is_file(), err  # never overwritten: a free name
    assert np.array_equal(np.asarray(Image.open(big)), np.asarray(Image.open(tmp_path / "small-x2-2.png")))


@pytest.mark.parametrize("argv, message", [
    (("--scale", "3"), "--scale"),
    (("--sr-aug", "5"), "--sr-aug"),
    (("--steps", "0"), "steps"),
])
def test_upscale_bad_options_are_one_line(capsys, sr_dir, tmp_path, argv, message):
    src = tmp_path / "s.png"
    Image.new("RGB", (8, 8)).save(src)
    code, out, err = run(capsys, "upscale", src, "--stages", sr_dir, "--out", tmp_path, *argv)
    if code == 2 and "Usage" in err:  # typer's own usage error for --scale
        assert message in err
        return
    assert message in one_error_line(code, out, err)


def test_upscale_refuses_a_picture_model_and_a_missing_file(capsys, base_dir, sr_dir, tmp_path):
    src = tmp_path / "s.png"
    Image.new("RGB", (8, 8)).save(src)
    line = one_error_line(*run(capsys, "upscale", src, "--stages", base_dir, "--out", tmp_path))
    assert "not a super-resolution stage" in line
    line = one_error_line(*run(capsys, "upscale", tmp_path / "nope.png", "--stages", sr_dir, "--out", tmp_path))
    assert "nope.png" in line
    line = one_error_line(*run(capsys, "paint", "x", "--model", base_dir, "--sr-aug", "0.1", "--out", tmp_path))
    assert "--sr-aug" in line
    line = one_error_line(*run(capsys, "paint", "x", "--model", base_dir, "--size", "48", "--stages", sr_dir,
                               "--out", tmp_path))
    assert line == "error: --size: 48 px, but these stages take the 16 px pictures to 32 px"


def test_edits_of_a_larger_picture_go_through_the_cascade(capsys, base_dir, sr_dir, tmp_path):
    code, out, err = run(capsys, "paint", "a red circle", "--model", base_dir, "-n", "1", "--steps", "3", "--seed", "1",
                         "--size", "32", "--stages", sr_dir, "--sr-steps", "2", "--out", tmp_path)
    assert code == 0, err
    pic = tmp_path / "a-red-circle-s1.png"
    code, out, err = run(capsys, "vary", pic, "--model", base_dir, "-n", "1", "--steps", "4", "--seed", "2",
                         "--stages", sr_dir, "--sr-steps", "2", "--out", tmp_path / "v")
    assert code == 0, err
    varied = next((tmp_path / "v").glob("*-vary-s2.png"))
    assert _size(varied) == (32, 32)
    rec = read_recipe(varied)
    assert rec["mode"] == "vary" and rec["base_scale"] == 2 and len(rec["stages"]) == 1
    code, out, err = run(capsys, "reproduce", varied, "--source", pic, "--out", tmp_path / "v")
    assert code == 0 and "pixel-identical" in out, err
    mask = tmp_path / "mask.png"
    m = Image.new("L", (32, 32), 0)
    m.paste(255, (0, 0, 12, 32))
    m.save(mask)
    code, out, err = run(capsys, "inpaint", pic, "--mask", mask, "--model", base_dir, "-n", "1", "--steps", "4",
                         "--jumps", "1", "--seed", "3", "--stages", sr_dir, "--sr-steps", "2", "--out", tmp_path / "i")
    assert code == 0, err
    painted = next((tmp_path / "i").glob("*-inpaint-s3.png"))
    a, b = np.asarray(Image.open(painted).convert("RGB")), np.asarray(Image.open(pic).convert("RGB"))
    assert np.array_equal(a[:, 12:], b[:, 12:])  # the known pixels, exactly
    code, out, err = run(capsys, "reproduce", painted, "--source", pic, "--mask", mask, "--out", tmp_path / "i")
    assert code == 0 and "pixel-identical" in out, err
    code, out, err = run(capsys, "vary", pic, "--model", base_dir, "-n", "1", "--steps", "4", "--seed", "2",
                         "--no-cascade", "--out", tmp_path / "d")
    assert code == 0, err
    assert "vary" in read_recipe(next((tmp_path / "d").glob("*-vary-s2.png")))["mode"]
    assert "stages" not in read_recipe(next((tmp_path / "d").glob("*-vary-s2.png")))
