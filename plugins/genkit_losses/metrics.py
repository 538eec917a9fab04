"""Distances over the whole sample vector: each returns a tensor of shape (batch,)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from genkit.schema import option, positive


def _difference(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a - b).flatten(1)


class L2:
    """Squared Euclidean distance ||a - b||_2^2."""

    def __init__(self, options=None, ctx=None):
        pass

    def __call__(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return _difference(a, b).pow(2).sum(dim=1)


class L1:
    """||a - b||_1."""

    def __init__(self, options=None, ctx=None):
        pass

    def __call__(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return _difference(a, b).abs().sum(dim=1)


def pseudo_huber(a: torch.Tensor, b: torch.Tensor, c: float) -> torch.Tensor:
    """sqrt(||a - b||_2^2 + c^2) - c over the whole sample vector (not per element)."""
    return (_difference(a, b).pow(2).sum(dim=1) + c**2).sqrt() - c


class PseudoHuber:
    """iCT's metric with c = c_factor * sqrt(d), d the number of values in one sample."""

    @dataclass
    class Config:
        c_factor: float = option(0.00054, "c = c_factor * sqrt(d), d the values per sample: about 0.03 on CIFAR-10", positive)

    def __init__(self, options: "PseudoHuber.Config | None" = None, ctx=None):
        self.c_factor = (options or PseudoHuber.Config()).c_factor

    def __call__(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        c = self.c_factor * math.sqrt(a[0].numel())
        return pseudo_huber(a, b, c)
