"""Exponential moving average of a module's weights, used for evaluation and sampling."""

from __future__ import annotations

import copy

import torch
from torch import nn


class AveragePair:
    """An averaged module and the online module it follows, their tensors listed once: walking
    the modules every step costs more than the update itself for a small network."""

    def __init__(self, averaged: nn.Module, online: nn.Module):
        self.online = online
        self.means, self.values = list(averaged.parameters()), list(online.parameters())
        self.mean_buffers, self.buffers = list(averaged.buffers()), list(online.buffers())

    @torch.no_grad()
    def update(self, rate: float) -> None:
        """averaged <- rate * averaged + (1 - rate) * online, in one foreach call; buffers copied."""
        torch._foreach_lerp_(self.means, self.values, 1 - rate)
        for mean, value in zip(self.mean_buffers, self.buffers):
            mean.copy_(value)


class EMA:
    def __init__(self, model: nn.Module, rate: float):
        self.rate = rate
        self.model = copy.deepcopy(model).eval().requires_grad_(False)
        self._pair: AveragePair | None = None

    def update(self, model: nn.Module) -> None:
        if self._pair is None or self._pair.online is not model:
            self._pair = AveragePair(self.model, model)
        self._pair.update(self.rate)

    def state_dict(self) -> dict:
        return self.model.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state)
