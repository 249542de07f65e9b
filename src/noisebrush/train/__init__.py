"""Training: the Accelerate trainer, its config, LR schedules, EMA and checkpoints."""
from noisebrush.train.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from noisebrush.train.config import TrainConfig
from noisebrush.train.ema import EMA
from noisebrush.train.lr import LR_SCHEDULES, expected_lr, make_scheduler
from noisebrush.train.loop import Trainer, build_dataset, leave_worker

__all__ = ["EMA", "LR_SCHEDULES", "TrainConfig", "Trainer", "build_dataset", "expected_lr", "latest_checkpoint",
           "leave_worker", "load_checkpoint", "make_scheduler", "save_checkpoint"]
