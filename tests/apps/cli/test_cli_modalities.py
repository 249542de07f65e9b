"""Clip- and volume-shaped models through the command line: `paint` writes a picture of each (a film strip of the
clip's frames, a grid of the volume's slices) carrying its recipe, and `reproduce` paints it again to the pixel."""
import pytest
from PIL import Image

from _model_fixture import one_thread, write_model
from noisebrush.apps.cli import main
from noisebrush.io.png import read_recipe


@pytest.mark.parametrize("factorized,prompt,shape_keys", [(True, "up", ("frames", "height", "width")),
                                                           (False, "", ("depth", "height", "width"))])
def test_paint_and_reproduce(tmp_path, capsys, factorized, prompt, shape_keys):
    model = write_model(tmp_path / "model", factorized=factorized, condition="label" if factorized else "none",
                        classes=["up", "down"] if factorized else None, frames=4)
    with one_thread():
        assert main(["paint", prompt, "-m", str(model), "-n", "1", "--steps", "3", "--sampler", "euler",
                     "--seed", "2", "--out", str(tmp_path / "out")]) == 0
        (png,) = sorted((tmp_path / "out").glob("*.png"))
        rec = read_recipe(png)
        assert all(k in rec for k in shape_keys) and rec["steps"] == 3
        with Image.open(png) as im:
            assert min(im.size) >= 8 and max(im.size) > 8  # the frames or slices, side by side or in a grid
        capsys.readouterr()
        assert main(["reproduce", str(png), "--out", str(tmp_path / "again")]) == 0
    assert "pixel-identical" in capsys.readouterr().out
