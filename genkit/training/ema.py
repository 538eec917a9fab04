"""Exponential moving average of a module's weights, used for evaluation and sampling."""

from __future__ import annotations

import copy

import torch
from torch import nn


@torch.no_grad()
def ema_update(averaged: nn.Module, online: nn.Module, rate: float) -> None:
    """averaged <- rate * averaged + (1 - rate) * online for parameters; buffers are copied."""
    torch._foreach_lerp_(list(averaged.parameters()), list(online.parameters()), 1 - rate)  # one call, not one per tensor
    for mean, value in zip(averaged.buffers(), online.buffers()):
        mean.copy_(value)


class EMA:
    def __init__(self, model: nn.Module, rate: float):
        self.rate = rate
        self.model = copy.deepcopy(model).eval().requires_grad_(False)
        self._tensors: tuple | None = None  # (online module, tensor lists): walking modules each step costs

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        if self._tensors is None or self._tensors[0] is not model:
            self._tensors = (model, list(self.model.parameters()), list(model.parameters()),
                             list(self.model.buffers()), list(model.buffers()))
        _, means, values, mean_buffers, buffers = self._tensors
        torch._foreach_lerp_(means, values, 1 - self.rate)
        for mean, value in zip(mean_buffers, buffers):
            mean.copy_(value)

    def state_dict(self) -> dict:
        return self.model.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state)
