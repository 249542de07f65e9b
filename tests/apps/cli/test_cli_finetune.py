"""`noisebrush finetune` from the command line: Ctrl-C keeps the steps done, the report's wording, its bounds."""
import json
import signal

import pytest

from _cli_checks import one_error_line
from _model_fixture import one_thread, reset_accelerate, tiny_model
from noisebrush.apps.cli import main
from noisebrush.bench.finetune import make_style_folder


@pytest.fixture(autouse=True)
def _clean():
    with one_thread():
        yield
    reset_accelerate()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return tiny_model(tmp_path_factory, "text")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return make_style_folder(tmp_path_factory.mktemp("style"), n=4, resolution=16)


def _ctrl_c_after_step(monkeypatch, k):
    """A real SIGINT to this process while step ``k`` runs (the command's handler only raises its flag then)."""
    from noisebrush.train.loop import Loop

    real = Loop.train_step

    def train_step(self):
        res = real(self)
        if self.step == k:
            signal.raise_signal(signal.SIGINT)
        return res

    monkeypatch.setattr(Loop, "train_step", train_step)


@pytest.mark.parametrize("lora", [True, False])
def test_ctrl_c_writes_the_steps_done(tiny, folder, tmp_path, monkeypatch, capsys, lora):
    from safetensors import safe_open

    _ctrl_c_after_step(monkeypatch, 2)
    out = tmp_path / ("x.safetensors" if lora else "model")
    code = main(["finetune", "--base", str(tiny), "--data", str(folder), "--out", str(out), "--steps", "5",
                 "--batch-size", "2", "--token", "<s>", *(["--lora", "--rank", "2"] if lora else [])])
    err = capsys.readouterr().err
    assert code == 130, err
    assert "Traceback" not in err
    kind = "LoRA" if lora else "model"
    assert f"interrupted at step 2 of 5: {kind} of the steps done written to {out}" in err
    if lora:
        with safe_open(str(out), framework="pt") as f:
            prov = json.loads(f.metadata()["provenance"])
    else:
        prov = json.loads((out / "config.json").read_text())["provenance"]
        assert prov["images_seen"] == 2 * 2
    assert (prov["steps"], prov["steps_planned"], prov["interrupted"]) == (2, 5, True)
    # the painting command accepts what was kept
    paint = ["paint", "<s> rings", "--model", str(tiny), "--lora", str(out)] if lora else \
        ["paint", "<s> rings", "--model", str(out)]
    assert main([*paint, "-n", "1", "--steps", "2", "--out", str(tmp_path / "p")]) == 0


def test_report_wording(tiny, folder, tmp_path, monkeypatch, capsys):
    import noisebrush.workflows.finetune as ft

    monkeypatch.setattr(ft, "cpu_bf16_fast", lambda: False)  # the report said "(1 thread, no)" then
    monkeypatch.setattr(ft, "has_accelerator", lambda: False)
    code = main(["finetune", "--base", str(tiny), "--data", str(folder), "--out", str(tmp_path / "x.safetensors"),
                 "--lora", "--rank", "2", "--steps", "1", "--batch-size", "2"])
    cap = capsys.readouterr()
    assert code == 0, cap.err
    assert "1 step," in cap.out and "1 steps" not in cap.out
    assert "fp32" in cap.out and ", no)" not in cap.out


def test_steps_and_batch_are_bounded(tiny, folder, tmp_path, capsys):
    # --lr -1 too: the bound on --steps must be what refuses (before, 10^8 steps were accepted)
    code = main(["finetune", "--base", str(tiny), "--data", str(folder), "--out", str(tmp_path / "a"),
                 "--steps", "100000000", "--lr", "-1"])
    line = one_error_line(code, *capsys.readouterr())
    assert "--steps" in line
    code = main(["finetune", "--base", str(tiny), "--data", str(folder), "--out", str(tmp_path / "a"),
                 "--batch-size", "100000"])
    line = one_error_line(code, *capsys.readouterr())
    assert "--batch-size" in line
    assert not (tmp_path / "a").exists()


def test_a_place_that_fails_at_the_end_keeps_the_model(tiny, folder, tmp_path, monkeypatch, capsys):
    """The --out folder was fine at the start and cannot be written at the end: the fine-tuned model goes to the
    rescue folder and the one error line names it (before: a traceback after the training, the work lost)."""
    import tempfile

    from noisebrush.errors import UserError
    from noisebrush.io import model_folder

    def refuse(path, *, what, folder=False):
        raise UserError(f"{path}: cannot write here ({what}: Permission denied)")

    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    monkeypatch.setattr(model_folder, "check_writable", refuse)  # the check made at the end, when writing the model
    out = tmp_path / "model"
    code = main(["finetune", "--base", str(tiny), "--data", str(folder), "--out", str(out), "--steps", "1",
                 "--batch-size", "2"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err, err
    errors = [x for x in err.splitlines() if x.startswith("error: ")]  # (after the progress lines of the work)
    assert len(errors) == 1, err
    line = errors[0]
    (kept,) = (tmp_path / "tmp" / "noisebrush-rescued").iterdir()
    assert str(out) in line and str(kept) in line and "fine-tuned model" in line
    assert (kept / "config.json").is_file() and (kept / "model.safetensors").is_file()
