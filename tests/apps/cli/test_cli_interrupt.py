"""Ctrl-C during `noisebrush train` writes a checkpoint and exits cleanly; --resume continues from it."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from noisebrush.train.checkpoint import list_checkpoints

TINY = ["--data", "builtin", "--set", "data_size=16", "--set", "resolution=16", "--set", "model.channels=8",
        "--set", "model.channel_mult=[1,2]", "--set", "model.blocks=1", "--set", "model.attn_resolutions=[8]",
        "--set", "model.cross_attn_resolutions=[]", "--set", 'condition="none"', "--set", "batch_size=4",
        "--set", "sample_every=0", "--set", "checkpoint_every=0", "--set", 'mixed_precision="no"',
        "--set", "log_every=1", "--set", "warmup=0"]


def _env():
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    return env


def test_ctrl_c_checkpoints_and_resume_continues(tmp_path):
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "noisebrush", "train", "--steps", "100000", "--out", str(run), *TINY]
    p = subprocess.Popen(cmd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    log = run / "log.csv"
    deadline = time.time() + 120
    while time.time() < deadline and (not log.exists() or len(log.read_text().splitlines()) < 4):
        time.sleep(0.2)
    assert log.exists(), "training never started"
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 130, (out, err)
    assert "Traceback" not in err
    assert "interrupted at step" in err and "--resume" in err
    found = list_checkpoints(run)
    assert found, "no checkpoint written on Ctrl-C"
    step = found[-1][0]
    assert step >= 3
    # resume to a few steps further and finish: the model folder appears
    cmd = [sys.executable, "-m", "noisebrush", "train", "--steps", str(step + 2), "--out", str(run), "--resume", *TINY]
    done = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert (Path(run) / "model" / "config.json").is_file()
    assert f"trained {step + 2} steps" in done.stdout
