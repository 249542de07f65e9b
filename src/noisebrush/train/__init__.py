"""Training: one loop (Accelerate, guard, EMA, checkpoints, logs) over pluggable objectives, the sample stream,
the config, LR schedules, EMA and checkpoints.

    from noisebrush.train import Trainer, TrainConfig
    Trainer(TrainConfig(steps=2000, out_dir="runs/try")).fit()

See :mod:`noisebrush.train.loop` (the loop and the run) and :mod:`noisebrush.train.objectives` (what is learned:
EDM today; how to plug in another objective).
"""
from noisebrush.train.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from noisebrush.train.config import TrainConfig
from noisebrush.train.ema import EMA
from noisebrush.train.lr import LR_SCHEDULES, expected_lr, make_scheduler
from noisebrush.train.loop import Loop, StepResult, Trainer, build_dataset, leave_worker
from noisebrush.train.objectives import EDMObjective, Loss, Objective, Part, Phase
from noisebrush.train.stream import SampleStream

__all__ = ["EDMObjective", "EMA", "LR_SCHEDULES", "Loop", "Loss", "Objective", "Part", "Phase", "SampleStream",
           "StepResult", "TrainConfig", "Trainer", "build_dataset", "expected_lr", "latest_checkpoint",
           "leave_worker", "load_checkpoint", "make_scheduler", "save_checkpoint"]
