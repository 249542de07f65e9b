"""From a folder of the user's own pictures to paintings, through the command line only."""
import os
import subprocess
import sys

import numpy as np
from PIL import Image

from noisebrush.io.png import read_recipe


def _make_folder(root):
    rng = np.random.default_rng(0)
    for cls, colour in (("reds", (220, 30, 30)), ("blues", (30, 40, 220))):
        (root / cls).mkdir(parents=True)
        for i in range(6):
            a = np.full((20, 24, 3), colour, np.uint8)
            a[rng.integers(0, 10):, rng.integers(0, 12):] //= 2
            Image.fromarray(a).save(root / cls / f"{i}.png")
    (root / "blues" / "notes.jpg").write_text("not a picture")


def test_train_on_a_folder_then_paint_a_class(tmp_path):
    data = tmp_path / "pictures"
    _make_folder(data)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "noisebrush", "train", "--data", str(data), "--out", str(run), "--steps", "3",
           "--set", "resolution=16", "--set", "batch_size=4", "--set", "sample_every=0",
           "--set", 'mixed_precision="no"', "--set", "model.channels=8", "--set", "model.channel_mult=[1,2]",
           "--set", "model.blocks=1", "--set", "model.attn_resolutions=[8]", "--set", "model.cross_attn_resolutions=[]"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "notes.jpg" in done.stderr  # the unreadable file is skipped with a warning, not a crash
    assert "pictures: 13 found, 12 used, 1 skipped" in done.stderr  # said at the start of the run
    conf = (run / "model" / "config.json").read_text()
    assert '"condition": "label"' in conf and '"reds"' in conf
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "noisebrush", "paint", "reds", "blues", "--model", str(run / "model"), "-n", "2",
           "--steps", "3", "--out", str(out), "--size", "32", "--no-cascade", "--seed", "0"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    rec = read_recipe(out / "reds-s0.png")
    assert rec["prompt"] == "reds" and rec["width"] == 32
    with Image.open(out / "blues-s1.png") as im:
        assert im.size == (32, 32)
    # painting a class the model does not know is a one-line error
    cmd = [sys.executable, "-m", "noisebrush", "paint", "greens", "--model", str(run / "model"), "--out", str(out)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "greens" in done.stderr
