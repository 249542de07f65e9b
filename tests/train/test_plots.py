"""noisebrush.train.plots and `noisebrush plot-log`: on the log of a tiny real training run, and on hand-written logs."""
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from _cli_checks import one_error_line
from _model_fixture import TINY_NET, one_thread, reset_accelerate
from noisebrush.apps.cli import main
from noisebrush.errors import BadParameter, UserError
from noisebrush.train.plots import bucket_labels, plot_log, read_log

HEADER = "step,loss,loss_s0,loss_s1,loss_s2,loss_s3,loss_s4,loss_s5,lr,grad_norm,img_s,skipped,time\r\n"


def row(step, loss=0.5, lr=1e-3, buckets=("0.1", "0.2", "", "0.4", "0.5", "0.6")):
    return f"{step},{loss},{','.join(buckets)},{lr},1.0,10.0,0,{step * 0.1:.1f}\r\n"


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """A run folder written by really training the tiny network for 4 steps, logging every step."""
    from noisebrush.train import Trainer, TrainConfig

    out = tmp_path_factory.mktemp("run")
    cfg = TrainConfig(data="builtin", data_size=32, resolution=16, condition="label", steps=4, batch_size=4, warmup=0,
                      log_every=1, sample_every=0, checkpoint_every=0, mixed_precision="no", model=dict(TINY_NET),
                      out_dir=str(out))
    with one_thread(), torch.random.fork_rng(devices=[]):
        trainer = Trainer(cfg)
        try:
            trainer.fit()
        finally:
            trainer.close()
            reset_accelerate()
    return out


@pytest.fixture
def run_copy(trained_run, tmp_path):
    dst = tmp_path / "run"
    dst.mkdir()
    shutil.copy(trained_run / "log.csv", dst / "log.csv")
    return dst


def cli(capsys, *argv):
    capsys.readouterr()
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def is_png(path):
    with Image.open(path) as im:
        assert im.format == "PNG"
        im.verify()
    with Image.open(path) as im:
        return im.size


def test_read_log_of_a_real_run(trained_run):
    cols = read_log(trained_run / "log.csv")
    assert list(cols["step"]) == [1, 2, 3, 4]
    assert {f"loss_s{i}" for i in range(6)} <= set(cols) and {"lr", "grad_norm", "img_s", "time"} <= set(cols)
    assert np.isfinite(cols["loss"]).all() and (cols["loss"] > 0).all()


def test_plot_log_of_a_real_run(run_copy):
    path = plot_log(run_copy)
    assert path == run_copy / "log.png"
    assert is_png(path) == (800, 900)
    assert sorted(p.name for p in run_copy.iterdir()) == ["log.csv", "log.png"]  # no temporary file left


def test_plot_log_never_overwrites_unless_forced(run_copy):
    (run_copy / "log.png").write_bytes(b"an earlier plot")
    assert plot_log(run_copy) == run_copy / "log-2.png"
    assert (run_copy / "log.png").read_bytes() == b"an earlier plot"
    assert plot_log(run_copy, force=True) == run_copy / "log.png"
    assert is_png(run_copy / "log.png") == (800, 900)


def test_cli_plot_log(run_copy, tmp_path, capsys):
    target = tmp_path / "plots" / "loss.png"
    code, out, err = cli(capsys, "plot-log", run_copy, "--out", target)
    assert code == 0, err
    assert out.strip() == f"wrote {target}"
    is_png(target)


def test_bucket_labels():
    assert bucket_labels(6) == ["σ ≤ 0.1", "0.1 < σ ≤ 0.3", "0.3 < σ ≤ 1", "1 < σ ≤ 3", "3 < σ ≤ 10",
                                "σ > 10"]  # the trainer's SIGMA_BUCKETS
    assert bucket_labels(3) == ["bucket 0", "bucket 1", "bucket 2"]  # a log made with other edges


def test_a_row_being_appended_is_left_out(tmp_path):
    (tmp_path / "log.csv").write_text(HEADER + row(10) + row(20) + "30,0.4,0.1,", newline="")
    assert list(read_log(tmp_path / "log.csv")["step"]) == [10, 20]
    is_png(plot_log(tmp_path))


def test_a_complete_last_row_without_newline_counts(tmp_path):
    (tmp_path / "log.csv").write_text(HEADER + row(10) + row(20).rstrip(), newline="")
    assert list(read_log(tmp_path / "log.csv")["step"]) == [10, 20]


def test_empty_buckets_and_a_single_row(tmp_path):
    (tmp_path / "log.csv").write_text(HEADER + row(5, buckets=("", "", "", "", "", "0.9")), newline="")
    cols = read_log(tmp_path / "log.csv")
    assert np.isnan(cols["loss_s0"][0]) and cols["loss_s5"][0] == 0.9
    is_png(plot_log(tmp_path, tmp_path / "one.png"))


@pytest.mark.parametrize("text, fragment", [
    ("", "empty"),
    ("step,loss,l", "empty"),  # the header itself still being written
    (HEADER, "no rows yet"),
    ("when,what\r\n1,2\r\n", "no 'step' column"),
    ("step,lr\r\n1,2\r\n", "no 'loss' column"),
    (HEADER + row(1) + "2,0.5\r\n" + row(3), "line 3: 2 fields where the header has 13"),
    (HEADER + row(1) + row(2, loss="oops"), "line 3: loss is 'oops', not a number"),
    (HEADER + "x" + row(1), "line 2: step is 'x1', not a number"),
])
def test_bad_logs(tmp_path, capsys, text, fragment):
    (tmp_path / "log.csv").write_text(text, newline="")
    with pytest.raises(UserError, match="log.csv: ") as e:
        plot_log(tmp_path)
    assert fragment in str(e.value)
    line = one_error_line(*cli(capsys, "plot-log", tmp_path))
    assert str(tmp_path / "log.csv") in line and fragment in line
    assert not (tmp_path / "log.png").exists()


def test_missing_things(tmp_path, capsys):
    line = one_error_line(*cli(capsys, "plot-log", tmp_path / "nope"))
    assert line == f"error: {tmp_path / 'nope'}: no such run folder"
    (tmp_path / "file").write_text("x")
    assert "not a folder" in one_error_line(*cli(capsys, "plot-log", tmp_path / "file"))
    line = one_error_line(*cli(capsys, "plot-log", tmp_path))
    assert str(tmp_path / "log.csv") in line and "no such file" in line
    (tmp_path / "log.csv").write_bytes(b"\xff\xfe\x00binary")
    assert "not a text file" in one_error_line(*cli(capsys, "plot-log", tmp_path))


def test_bad_out(tmp_path, capsys):
    (tmp_path / "log.csv").write_text(HEADER + row(1), newline="")
    with pytest.raises(BadParameter, match="^out: "):
        plot_log(tmp_path, tmp_path / "log.jpg")
    (tmp_path / "dir.png").mkdir()
    assert "is a folder" in one_error_line(*cli(capsys, "plot-log", tmp_path, "--out", tmp_path / "dir.png"))
