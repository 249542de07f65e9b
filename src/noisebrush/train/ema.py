"""Exponential moving average of a model's weights.

The average lives in a separate copy of the network (``ema.model``), kept in float32 and in eval mode, so it can be
sampled from directly. The decay ramps up at the start (``min(decay, (1+n)/(10+n))``) so the average is not dominated
by the random initial weights.

    ema = EMA(net, decay=0.999)
    ...; optimizer.step(); ema.update(net)
"""
from __future__ import annotations

import copy

import torch

from noisebrush.errors import BadParameter

__all__ = ["EMA"]


class EMA:
    def __init__(self, model: torch.nn.Module, decay: float = 0.999):
        if not 0 <= decay < 1:
            raise BadParameter(f"ema_decay: in [0, 1), got {decay}")
        self.decay = float(decay)
        self.updates = 0
        self.model = copy.deepcopy(model).to(torch.float32).eval().requires_grad_(False)

    def current_decay(self) -> float:
        n = self.updates
        return min(self.decay, (1 + n) / (10 + n))

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        d = self.current_decay()
        src = dict(model.named_parameters())
        for name, p in self.model.named_parameters():
            p.lerp_(src[name].detach().to(p.dtype), 1 - d)
        srcb = dict(model.named_buffers())
        for name, b in self.model.named_buffers():
            b.copy_(srcb[name])
        self.updates += 1

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().clone() for k, v in self.model.state_dict().items()}

    def load_state_dict(self, state: dict[str, torch.Tensor], updates: int) -> None:
        self.model.load_state_dict(state)
        self.updates = int(updates)
