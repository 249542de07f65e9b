"""The studio's training jobs: real tiny runs of `noisebrush train` / `finetune` in a subprocess, watched, stopped,
resumed and found again; everything refused is refused before anything is spawned."""
import json
import shutil
import time

import numpy as np
import pytest
from PIL import Image

from noisebrush.apps.studio import training
from noisebrush.apps.studio.training import JOB_FILE, PRESETS, TrainingJob, jobs_in, loss_plot, models_in
from noisebrush.errors import BadParameter, UserError

# the smallest network and run the trainer takes (tests/train/conftest.py's TINY_NET), a preview and a checkpoint
# every 2 steps so that a 6-step run has both
TINY = {"resolution": 16, "model.channels": 8, "model.channel_mult": [1, 2], "model.blocks": 1,
        "model.attn_resolutions": [8], "model.cross_attn_resolutions": [], "batch_size": 4, "mixed_precision": "no",
        "warmup": 0, "log_every": 1, "sample_every": 2, "checkpoint_every": 2, "sample_steps": 2}


def _folder(path, n=4):
    path.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (20, 20, 3), dtype=np.uint8)).save(path / f"p{i}.png")
    return path


@pytest.fixture(scope="module")
def pics(tmp_path_factory):
    return _folder(tmp_path_factory.mktemp("pics"))


def _wait(job, until, timeout=120.0):
    deadline = time.monotonic() + timeout
    while True:
        st = job.status()
        if until(st):
            return st
        assert time.monotonic() < deadline, f"waited {timeout}s; last status {st}"
        assert st["state"] == "running", st
        time.sleep(0.1)


@pytest.fixture(scope="module")
def finished(tmp_path_factory, pics):
    """A 6-step sketch run, started and watched to its end: (job, first status, last status)."""
    run = tmp_path_factory.mktemp("runs") / "first"
    job = TrainingJob.start("train", pics, run, preset="sketch", steps=6, extra=TINY)
    first = job.status()
    last = _wait(job, lambda s: s["state"] != "running")
    return job, first, last


def test_a_tiny_run_finishes_with_a_model_the_model_list_shows(finished):
    job, first, st = finished
    assert first["state"] == "running" and first["total"] == 6
    assert st["state"] == "finished", st
    assert st["exit_code"] == 0 and st["error"] is None and st["eta"] is None
    assert st["step"] == 6 and st["total"] == 6
    assert [s for s, _ in st["losses"]] == [1, 2, 3, 4, 5, 6]  # log.csv's step and loss columns
    assert all(0 < v < 10 for _, v in st["losses"])
    assert st["preview"].endswith("samples/step-0000006.png")
    assert st["model"] == str(job.run_dir / "model")
    assert st["pictures"] == {"found": 4, "used": 4, "skipped": 0}
    assert any(line.startswith("trained 6 steps") for line in st["log"])
    assert not st["resumable"]  # finished: only with more steps
    argv = job.meta["argv"]
    assert argv[1:4] == ["-m", "noisebrush", "train"] and "--set" in argv
    assert job.run_dir / "model" in models_in(job.run_dir.parent)
    assert models_in(job.run_dir.parent / "nowhere") == []
    fig = loss_plot(st)
    assert fig.axes[0].get_xlabel() == "step" and len(fig.axes[0].lines) == 1
    assert loss_plot({"losses": []}).axes[0].texts  # "no loss logged yet"


def test_attach_after_the_fact(finished):
    """A restarted studio: the process is not its child and nobody saw it end; the evidence settles it."""
    job, _, _ = finished
    doc = json.loads((job.run_dir / JOB_FILE).read_text())
    assert doc["kind"] == "train" and doc["pid"] == job.pid and doc["state"] == "finished"
    doc.update(state="running", exit_code=None)
    (job.run_dir / JOB_FILE).write_text(json.dumps(doc))
    training._SPAWNED.pop(job.pid, None)  # as after a restart: not our child any more
    again = TrainingJob.attach(job.run_dir)
    st = again.status()
    assert st["state"] == "finished" and st["exit_code"] is None and st["model"] == str(job.run_dir / "model")
    assert json.loads((job.run_dir / JOB_FILE).read_text())["state"] == "finished"
    assert job.run_dir in jobs_in(job.run_dir.parent)
    with pytest.raises(UserError, match="no studio job"):
        TrainingJob.attach(job.run_dir / "model")
    with pytest.raises(UserError, match="finished at step 6; give more steps"):
        again.resume()


def test_refused_before_spawning(tmp_path, pics, finished, monkeypatch):
    def no_spawn(*a, **k):
        raise AssertionError("spawned")

    monkeypatch.setattr(training.subprocess, "Popen", no_spawn)
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no pictures here")
    run = tmp_path / "run"
    model = finished[0].run_dir / "model"
    cases = [
        (dict(kind="train", data=tmp_path / "missing"), UserError, "image folder not found"),
        (dict(kind="train", data=empty), UserError, "no images"),
        (dict(kind="train", data=empty / "notes.txt"), UserError, "not a folder"),
        (dict(kind="train", data=pics, steps=0), BadParameter, "steps: a whole number"),
        (dict(kind="train", data=pics, steps=True), BadParameter, "steps: a whole number"),
        (dict(kind="train", data=pics, steps=10 ** 12), BadParameter, "steps: a whole number"),
        (dict(kind="paint", data=pics), BadParameter, "kind:"),
        (dict(kind="train", data=pics, preset="huge"), BadParameter, "preset: one of"),
        (dict(kind="train", data=pics, preset="lora"), BadParameter, "'lora' is a finetune preset"),
        (dict(kind="train", data=pics, extra={"nope": 1}), BadParameter, "unknown training option"),
        (dict(kind="train", data=pics, extra={"model.channels": "x"}), BadParameter, "model.channels"),
        (dict(kind="train", data=pics, extra={"steps": 3}), BadParameter, "extra: steps"),
        (dict(kind="train", data=pics, base=model), BadParameter, "base: only for fine-tuning"),
        (dict(kind="finetune", data=pics, base=tmp_path), UserError, "not a noisebrush model folder"),
        (dict(kind="finetune", data=pics, preset="finetune", extra={"rank": 4}), BadParameter, "rank: only"),
        (dict(kind="finetune", data=pics, extra={"lr": -1}), BadParameter, "lr:"),
        (dict(kind="finetune", data="builtin"), BadParameter, "data:"),
        (dict(kind="train", data=pics, run_dir=finished[0].run_dir), UserError, "already holds a studio job"),
        (dict(kind="train", data=pics, run_dir=empty), UserError, "not empty"),
    ]
    for kw, error, words in cases:
        kw.setdefault("run_dir", run)
        with pytest.raises(error, match=words):
            TrainingJob.start(kw.pop("kind"), kw.pop("data"), kw.pop("run_dir"), steps=kw.pop("steps", 4), **kw)
        assert not run.exists()
    assert {p["kind"] for p in PRESETS.values()} == {"train", "finetune"}


def test_stop_then_resume_finishes(tmp_path, pics):
    run = tmp_path / "run"
    job = TrainingJob.start("train", pics, run, preset="sketch", steps=5000,
                            extra={**TINY, "sample_every": 0, "checkpoint_every": 0})
    st = _wait(job, lambda s: s["step"] >= 3)
    assert st["eta"] is not None and st["eta"] > 0
    assert TrainingJob.attach(run).status()["state"] == "running"
    st = job.stop(timeout=60)
    assert st["state"] == "stopped" and st["exit_code"] == 130, st
    assert st["checkpoint"] is not None and st["resumable"]
    step = int(st["checkpoint"].rsplit("-", 1)[1])
    assert step >= 3 and st["model"] is None
    job.resume(steps=step + 2)
    assert job.meta["argv"][3:] == ["train", "--out", str(run), "--resume", "--steps", str(step + 2)]
    st = _wait(job, lambda s: s["state"] != "running")
    assert st["state"] == "finished", st
    assert st["step"] == step + 2 and st["model"] == str(run / "model")
    assert [s for s, _ in st["losses"]][-3:] == [step, step + 1, step + 2]
    assert len(job.meta["history"]) == 1 and job.meta["history"][0]["state"] == "stopped"


def test_a_stopped_finetune_keeps_its_steps_but_cannot_resume(tmp_path, pics, finished):
    run = tmp_path / "ft"
    base = finished[0].run_dir / "model"
    job = TrainingJob.start("finetune", pics, run, preset="lora", steps=5000, base=base,
                            extra={"batch_size": 2, "rank": 2})
    assert "--lora" in job.meta["argv"] and job.meta["argv"][3] == "finetune"
    st = _wait(job, lambda s: s["step"] >= 1)
    assert st["losses"] and st["total"] == 5000
    st = job.stop(timeout=60)
    assert st["state"] == "stopped" and st["exit_code"] == 130, st
    assert st["model"] == str(run / "lora.safetensors") and (run / "lora.safetensors").is_file()
    assert not st["resumable"]
    with pytest.raises(UserError, match="a fine-tune cannot resume"):
        job.resume()


def test_a_failing_run_reports_its_error_line(tmp_path, pics):
    data = shutil.copytree(pics, tmp_path / "gone")
    job = TrainingJob.start("train", data, tmp_path / "run", preset="sketch", steps=4, extra=TINY)
    shutil.rmtree(data)  # before the command reads it (it is still importing)
    st = _wait(job, lambda s: s["state"] != "running")
    assert st["state"] == "failed" and st["exit_code"] == 2, st
    assert st["error"].startswith("image folder not found") and "Traceback" not in "\n".join(st["log"])
    assert not st["resumable"] or st["checkpoint"] is None
