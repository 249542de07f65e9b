"""Tiny model folders made by really training (2 steps), shared by test_pipeline.py and test_cli.py.

Imported as a plain module (tests/ is on sys.path under pytest's default "prepend" import mode). Each model is
built once per test session and cached here; callers pass pytest's ``tmp_path_factory``.
"""
from __future__ import annotations

import contextlib
from pathlib import Path

import torch

TINY_NET = dict(channels=8, channel_mult=[1, 2], blocks=1, attn_resolutions=[8], cross_attn_resolutions=[])

_built: dict[str, Path] = {}


def reset_accelerate() -> None:
    """Accelerate's state is a process-wide singleton; reset it so later Accelerators start clean."""
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(True)
    GradientState._reset_state()


@contextlib.contextmanager
def one_thread():
    """One intra-op thread, and ``load`` must not raise it again (pipeline._use_all_cores sets every core)."""
    import noisebrush.paint.pipeline as pipeline

    old_threads = torch.get_num_threads()
    old_use = pipeline._use_all_cores
    torch.set_num_threads(1)
    pipeline._use_all_cores = lambda: torch.set_num_threads(1)
    try:
        yield
    finally:
        pipeline._use_all_cores = old_use
        torch.set_num_threads(old_threads)


def train_tiny(out_dir, condition: str = "label", steps: int = 2) -> Path:
    """Train a tiny model for ``steps`` steps into ``out_dir`` and return its exported model folder."""
    from noisebrush.train import Trainer, TrainConfig

    cfg = TrainConfig(data="builtin", data_size=32, resolution=16, condition=condition, steps=steps, batch_size=4,
                      warmup=0, sample_every=0, checkpoint_every=0, mixed_precision="no", model=dict(TINY_NET),
                      out_dir=str(out_dir))
    reset_accelerate()  # whatever ran before may have left Accelerate's process-wide state set up otherwise
    with torch.random.fork_rng(devices=[]):  # the trainer reseeds the global RNG
        trainer = Trainer(cfg)
        try:
            path = trainer.fit()
        finally:
            trainer.close()
            reset_accelerate()
    return Path(path)


def tiny_model(tmp_path_factory, condition: str = "label") -> Path:
    """The session's tiny model folder for ``condition`` (built on first use). Do not modify it; copy it."""
    if condition not in _built or not (_built[condition] / "config.json").is_file():
        with one_thread():
            _built[condition] = train_tiny(tmp_path_factory.mktemp(f"run-{condition}"), condition)
    return _built[condition]
