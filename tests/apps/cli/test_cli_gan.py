"""Diffusion GANs through the command line: `train --method` trains one (the GAN columns in the log and the bar),
`paint` and `vary` use its own sampler and steps without being told, `reproduce` paints its pictures again to the
pixel, and what it cannot do (inpainting, morphs, other samplers or steps) is one error line."""
import csv

import pytest

from _cli_checks import one_error_line, run_cli
from _model_fixture import one_thread, reset_accelerate
from noisebrush.apps.cli import main
from noisebrush.io.png import read_recipe

TINY = ["--data", "builtin", "--set", "data_size=16", "--set", "resolution=16", "--set", "model.channels=8",
        "--set", "model.channel_mult=[1,2]", "--set", "model.blocks=1", "--set", "model.attn_resolutions=[8]",
        "--set", "model.cross_attn_resolutions=[]", "--set", "condition=label", "--set", "batch_size=4",
        "--set", 'mixed_precision="no"', "--set", "log_every=1", "--set", "disc.channels=8",
        "--set", "disc.channel_mult=[1,2,2]"]


@pytest.fixture(scope="module")
def gan_model(tmp_path_factory):
    run = tmp_path_factory.mktemp("cli-gan") / "run"
    with one_thread():
        # sample_every=2: previews and the recall monitor run in the log (a real, if tiny, measurement)
        code = main(["train", "--method", "ddgan", "--out", str(run), "--steps", "2", "--set", "sample_every=2",
                     "--set", "gan_steps=2", *TINY])
    reset_accelerate()
    assert code == 0
    return run


def test_train_method_logs_the_gan_columns_and_a_recall_estimate(gan_model):
    with open(gan_model / "log.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["step"] for r in rows] == ["1", "2"]
    assert rows[0]["d_loss"] and rows[0]["g_loss"] and rows[0]["d_real"] and rows[0]["recall"] == ""
    assert 0.0 <= float(rows[1]["recall"]) <= 1.0  # measured at sample_every
    assert (gan_model / "samples" / "step-0000002.png").is_file()


def test_paint_vary_and_reproduce(gan_model, tmp_path, capsys):
    model = str(gan_model / "model")
    with one_thread():
        assert main(["paint", "flower", "-m", model, "-n", "2", "--seed", "4", "--out", str(tmp_path / "p")]) == 0
        first = sorted(p for p in (tmp_path / "p").glob("*.png") if "grid" not in p.name)[0]
        rec = read_recipe(first)
        assert rec["sampler"] == "gan" and rec["steps"] == 2 and rec["cfg"] == 1.0
        capsys.readouterr()
        assert main(["reproduce", str(first), "--out", str(tmp_path / "again")]) == 0
        assert "pixel-identical" in capsys.readouterr().out
        assert main(["vary", str(first), "-m", model, "--strength", "0.5", "-n", "2",
                     "--out", str(tmp_path / "v")]) == 0
        varied = sorted(p for p in (tmp_path / "v").glob("*.png") if "grid" not in p.name)
        assert len(varied) == 2 and read_recipe(varied[0])["mode"] == "vary"
        capsys.readouterr()
        assert main(["reproduce", str(varied[1]), "--source", str(first), "--out", str(tmp_path / "again-v")]) == 0
    assert "pixel-identical" in capsys.readouterr().out


@pytest.mark.parametrize("args, match", [
    (["paint", "flower", "--steps", "5"], "steps: this ddgan model paints in exactly 2 steps"),
    (["paint", "flower", "--sampler", "euler"], "sampler: this ddgan model paints with the gan sampler"),
    (["inpaint", "PIC", "--mask", "PIC", "flower"], "inpainting needs a diffusion model"),
    (["morph", "flower", "--to-seed", "3"], "a morph needs a diffusion model"),
])
def test_what_a_gan_cannot_do_is_one_line(gan_model, tmp_path, capsys, args, match):
    from PIL import Image

    pic = tmp_path / "pic.png"
    Image.new("RGB", (16, 16), "white").save(pic)
    args = [str(pic) if a == "PIC" else a for a in args]
    with one_thread():
        line = one_error_line(*run_cli(capsys, *args, "-m", str(gan_model / "model"), "--out", str(tmp_path / "o")))
    assert match in line


def test_a_diffusion_model_refuses_the_gan_sampler(tmp_path, capsys):
    with one_thread():
        line = one_error_line(*run_cli(capsys, "paint", "a red circle", "--sampler", "gan", "--out",
                                       str(tmp_path / "o")))
    assert "sampler: gan paints diffusion-GAN models" in line
