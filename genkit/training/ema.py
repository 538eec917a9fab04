"""Exponential moving average of a module's weights, used for evaluation and sampling."""

from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    def __init__(self, model: nn.Module, rate: float):
        self.rate = rate
        self.model = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        for averaged, online in zip(self.model.parameters(), model.parameters()):
            averaged.lerp_(online, 1 - self.rate)
        for averaged, online in zip(self.model.buffers(), model.buffers()):
            averaged.copy_(online)

    def state_dict(self) -> dict:
        return self.model.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state)
