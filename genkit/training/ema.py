"""Exponential moving average of a module's weights, used for evaluation and sampling."""

from __future__ import annotations

import copy

import torch
from torch import nn


@torch.no_grad()
def ema_update(averaged: nn.Module, online: nn.Module, rate: float) -> None:
    """averaged <- rate * averaged + (1 - rate) * online for parameters; buffers are copied."""
    for mean, value in zip(averaged.parameters(), online.parameters()):
        mean.lerp_(value, 1 - rate)
    for mean, value in zip(averaged.buffers(), online.buffers()):
        mean.copy_(value)


class EMA:
    def __init__(self, model: nn.Module, rate: float):
        self.rate = rate
        self.model = copy.deepcopy(model).eval().requires_grad_(False)

    def update(self, model: nn.Module) -> None:
        ema_update(self.model, model, self.rate)

    def state_dict(self) -> dict:
        return self.model.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state)
