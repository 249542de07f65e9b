"""Shared fixtures for the trainer tests: a tiny network, one intra-op thread, isolated RNG and Accelerate state."""
import os
import socket
import subprocess
import sys

import pytest
import torch

# A network small enough that one optimizer step on 8 pictures of 16×16 takes a few tens of milliseconds.
TINY_NET = dict(channels=8, channel_mult=[1, 2], blocks=1, attn_resolutions=[8], cross_attn_resolutions=[])

BASE = dict(data="builtin", resolution=16, data_size=32, condition="label", model=TINY_NET, mixed_precision="no",
            steps=6, batch_size=8, lr=3e-3, lr_schedule="constant", warmup=0, log_every=2, sample_every=0,
            checkpoint_every=0, keep_last=3)


@pytest.fixture(autouse=True)
def _isolated_torch():
    """One thread (reproducible reductions, no contention on a shared box); the trainer reseeds torch's global
    RNG for dropout, so give each test its own copy; Accelerate's state is a process-wide singleton that refuses a
    second Accelerator with other settings, so reset it after every test."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    with torch.random.fork_rng(devices=[]):
        yield
    torch.set_num_threads(old)
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(True)
    GradientState._reset_state()


@pytest.fixture
def make_config(tmp_path):
    """``make_config(name, **overrides)`` → a tiny TrainConfig writing to tmp_path/name."""
    from noisebrush.train import TrainConfig

    def make(name="run", **overrides):
        d = {**BASE, "out_dir": str(tmp_path / name)}
        if "model" in overrides:
            d["model"] = {**TINY_NET, **overrides.pop("model")}
        d.update(overrides)
        return TrainConfig(**d)

    return make


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def free_port():
    return _free_port


@pytest.fixture
def subprocess_env():
    """Environment for training subprocesses: one thread, the package importable, no stray distributed vars."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "ACCELERATE_MIXED_PRECISION")}
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONHASHSEED="0", TOKENIZERS_PARALLELISM="false")
    src = os.path.join(os.path.dirname(__file__), "..", "..", "src")
    env["PYTHONPATH"] = os.pathsep.join([os.path.abspath(src), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


@pytest.fixture
def run_script(subprocess_env):
    """``run_script(path, *args, timeout=…)``: run a Python script in a fresh interpreter, fail with its output."""

    def run(*args, timeout=120, launcher=()):
        cmd = [sys.executable, *launcher, *map(str, args)]
        p = subprocess.run(cmd, env=subprocess_env, capture_output=True, text=True, timeout=timeout)
        if p.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)} exited {p.returncode}\n--- stdout\n{p.stdout[-4000:]}\n"
                                 f"--- stderr\n{p.stderr[-6000:]}")
        return p

    return run
