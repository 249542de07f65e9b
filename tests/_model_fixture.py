"""Tiny model folders made by really training (2 steps), shared by test_pipeline.py and test_cli.py.

Imported as a plain module (tests/ is on sys.path under pytest's default "prepend" import mode). Each model is
built once per test session and cached here; callers pass pytest's ``tmp_path_factory``.
"""
from __future__ import annotations

import contextlib
from pathlib import Path

import torch

from noisebrush.io import model_folder
from noisebrush.nets.unet import UNet, UNetConfig

TINY_NET = dict(channels=8, channel_mult=[1, 2], blocks=1, attn_resolutions=[8], cross_attn_resolutions=[])

_built: dict[str, Path] = {}


def reset_accelerate() -> None:
    """Accelerate's state is a process-wide singleton; reset it so later Accelerators start clean."""
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(True)
    GradientState._reset_state()


@contextlib.contextmanager
def one_thread():
    """One intra-op thread, and ``load`` must not raise it again (it calls ``use_all_cores``, which sets every core,
    by the name noisebrush.paint.pipeline imported)."""
    import noisebrush.paint.pipeline as pipeline

    old_threads = torch.get_num_threads()
    old_use = pipeline.use_all_cores
    torch.set_num_threads(1)
    pipeline.use_all_cores = lambda: torch.set_num_threads(1)
    try:
        yield
    finally:
        pipeline.use_all_cores = old_use
        torch.set_num_threads(old_threads)


TINY_SR = dict(task="sr", resolution=16, scale=2, crop_size=8, sample_steps=4,
               model=dict(TINY_NET, attn_resolutions=[], cross_attn_resolutions=[]))


def train_tiny(out_dir, condition: str = "label", steps: int = 2, **extra) -> Path:
    """Train a tiny model for ``steps`` steps into ``out_dir`` and return its exported model folder (``extra``:
    more TrainConfig fields, e.g. :data:`TINY_SR` for a super-resolution stage)."""
    from noisebrush.train import Trainer, TrainConfig

    fields = dict(data="builtin", data_size=32, resolution=16, condition=condition, steps=steps, batch_size=4,
                  warmup=0, sample_every=0, checkpoint_every=0, mixed_precision="no", model=dict(TINY_NET),
                  out_dir=str(out_dir))
    cfg = TrainConfig(**(fields | extra))
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


def tiny_sr_model(tmp_path_factory, condition: str = "none") -> Path:
    """The session's tiny super-resolution stage (16 px pictures, scale 2, 8 px crops; ``condition`` "none" or
    "text"), built on first use. Do not modify it; copy it."""
    key = f"sr-{condition}"
    if key not in _built or not (_built[key] / "config.json").is_file():
        with one_thread():
            _built[key] = train_tiny(tmp_path_factory.mktemp(f"run-{key}"), condition, **TINY_SR)
    return _built[key]


def write_model(path, *, factorized: bool, condition: str = "none", classes=None, schedule=None,
                given_frames: bool = False, in_channels: int = 3, resolution: int = 8, **top):
    """A tiny dims=3 model folder (a clip model when ``factorized``, else a volume model) with seeded random weights
    and every gain switched on (the temporal ones at 0.3), so the network shapes every step. ``given_frames``: a
    clip model that reads given frames (``noisebrush train --task video``'s kind); a shape model is a volume model
    with ``in_channels=1`` and ``task="shape"``."""
    cfg = UNetConfig(dims=3, factorized=factorized, in_channels=in_channels, channels=8, channel_mult=(1, 2),
                     blocks=1, resolution=resolution, attn_resolutions=(resolution // 2,), cross_attn_resolutions=(),
                     channels_per_head=8, label_dim=len(classes or []), cond_channels=4 if given_frames else 0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(3)
        net = UNet(cfg)
    with torch.no_grad():
        for name, p in net.named_parameters():
            if "gain" in name:
                p.fill_(0.3 if "time" in name else 1.0)
    config = {"network": "unet", "unet": cfg.to_dict(), "sigma_data": 0.5, "resolution": resolution,
              "condition": condition, "classes": classes, **top}
    if given_frames:
        config["video"] = {"given_frames": "channels", "frame_masks": [0.5, 0.2, 0.15, 0.15], "frame_noise": 0.5}
    if schedule is not None:
        config["schedule"] = schedule
    return model_folder.write(path, net.state_dict(), config)
