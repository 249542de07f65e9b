"""`noisebrush animate` (issue 16): a GIF, an MP4 and a film strip with the recipe per clip; `reproduce` on the strip
paints it again frame for frame; --from keeps the first frame exactly; bad flags are one line."""
import json

import imageio.v3 as iio
import numpy as np
import pytest
from PIL import Image

from _model_fixture import one_thread, write_model
from noisebrush.apps.cli import main
from noisebrush.io.png import read_recipe


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return write_model(tmp_path_factory.mktemp("video") / "model", factorized=True, condition="label",
                       classes=["up", "down"], frames=4, given_frames=True)


def _run(args, capsys):
    with one_thread():
        code = main(args)
    return code, capsys.readouterr()


def test_animate_writes_gif_mp4_and_a_strip_that_reproduces(model, tmp_path, capsys):
    code, io = _run(["animate", "up", "-m", str(model), "--seed", "3", "--steps", "3", "--sampler", "euler",
                     "--frames", "6", "--loop", "--out", str(tmp_path / "out")], capsys)
    assert code == 0, io.err
    gif, mp4, strip = (tmp_path / "out" / f"up-s3{ext}" for ext in (".gif", ".mp4", "-strip.png"))
    assert gif.is_file() and mp4.is_file() and strip.is_file()
    rec = read_recipe(strip)
    assert rec["mode"] == "animate" and rec["frames"] == 6 and rec["loop"] is True and rec["fps"] == 8.0
    frames = iio.imread(gif, index=None)
    assert frames.shape[0] == 6 + 4 - 2 and frames.shape[1] == 8 * 8  # zoom 8
    assert "animated 1 clip of 8 frames (seed 3)" in io.out
    code, io = _run(["reproduce", str(strip), "--out", str(tmp_path / "again")], capsys)
    assert code == 0 and "pixel-identical" in io.out


def test_from_keeps_the_first_frame(model, tmp_path, capsys):
    a = np.random.default_rng(0).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    Image.fromarray(a).save(tmp_path / "start.png")
    code, io = _run(["animate", "down", "-m", str(model), "--from", str(tmp_path / "start.png"), "--seed", "1",
                     "--steps", "3", "--zoom", "1", "--out", str(tmp_path / "out")], capsys)
    assert code == 0, io.err
    first = iio.imread(tmp_path / "out" / "down-s1.gif", index=0)[..., :3]
    assert np.array_equal(first, a)
    rec = read_recipe(tmp_path / "out" / "down-s1-strip.png")
    assert rec["source"] == "start.png"
    # reproduce finds the picture next to the strip's folder or in the current one: give it
    code, io = _run(["reproduce", str(tmp_path / "out" / "down-s1-strip.png"), "--source", str(tmp_path / "start.png"),
                     "--out", str(tmp_path / "again")], capsys)
    assert code == 0 and "pixel-identical" in io.out


def test_upscale_sends_the_frames_through_the_stages(model, tmp_path, capsys):
    code, io = _run(["animate", "up", "-m", str(model), "--seed", "2", "--steps", "2", "--upscale", "2",
                     "--out", str(tmp_path / "out")], capsys)
    assert code == 0, io.err
    frames = iio.imread(tmp_path / "out" / "up-s2.gif", index=None)
    assert frames.shape[:3] == (4, 16 * 2, 16 * 2)  # 8 → 16 px, zoom 2
    rec = json.loads(json.dumps(read_recipe(tmp_path / "out" / "up-s2-strip.png")))
    assert rec["upscale"] == 2
    with Image.open(tmp_path / "out" / "up-s2-strip.png") as im:
        assert im.height == 8 + 4  # the strip keeps the clip at the model's size (a 2 px frame around it)


@pytest.mark.parametrize("args,match", [
    (["--to", "x.png"], "--to x.png: no such file"),
    (["--upscale", "3"], "--upscale: 2 or 4"),
    (["--fps", "0"], "--fps"),
    (["--frames", "1"], "frames"),
    (["-m", "builtin"], "not clips"),
])
def test_bad_flags_are_one_line(model, tmp_path, capsys, args, match):
    full = ["animate", "up", "-m", str(model), "--steps", "2", "--out", str(tmp_path / "out"), *args]
    code, io = _run(full, capsys)
    assert code == 2 and match in io.err and "Traceback" not in io.err
