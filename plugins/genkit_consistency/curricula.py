"""Discretization curricula N(k): how many Karras levels are used at training step k."""

from __future__ import annotations

import math
from dataclasses import dataclass

from genkit.errors import GenkitError


class ConstantCurriculum:
    """N(k) = N for all k (consistency distillation: 18 on CIFAR-10, 40 on ImageNet 64)."""

    @dataclass
    class Config:
        num_levels: int = 18

    def __init__(self, options: "ConstantCurriculum.Config", ctx=None):
        if options.num_levels < 2:
            raise GenkitError(f"a constant curriculum needs at least 2 levels, got {options.num_levels}")
        self.n = options.num_levels

    def num_levels(self, step: int) -> int:
        return self.n


def _check_s0_s1(s0: int, s1: int, total_steps: int) -> None:
    if s0 < 1:
        raise GenkitError(f"curriculum s0 must be at least 1, got {s0}")
    if s1 < s0:
        raise GenkitError(f"curriculum s1 ({s1}) must not be smaller than s0 ({s0})")
    if total_steps < 1:
        raise GenkitError(f"curriculum needs K = total training steps >= 1, got {total_steps}")


class SquareRootCurriculum:
    """Original CT: N(k) = ceil(sqrt(k/K ((s1 + 1)^2 - s0^2) + s0^2) - 1) + 1."""

    @dataclass
    class Config:
        s0: int = 2
        s1: int = 150

    def __init__(self, options: "SquareRootCurriculum.Config", ctx):
        _check_s0_s1(options.s0, options.s1, ctx.total_steps)
        self.s0, self.s1, self.total = options.s0, options.s1, ctx.total_steps

    def num_levels(self, step: int) -> int:
        s0, s1 = self.s0, self.s1
        inner = step / self.total * ((s1 + 1) ** 2 - s0**2) + s0**2
        return math.ceil(math.sqrt(inner) - 1) + 1


class DoublingCurriculum:
    """iCT: N(k) = min(s0 2^floor(k / K'), s1) + 1 with K' = floor(K / (log2 floor(s1/s0) + 1))."""

    @dataclass
    class Config:
        s0: int = 10
        s1: int = 1280

    def __init__(self, options: "DoublingCurriculum.Config", ctx):
        _check_s0_s1(options.s0, options.s1, ctx.total_steps)
        self.s0, self.s1 = options.s0, options.s1
        stages = math.log2(options.s1 // options.s0) + 1  # not rounded: the spec floors only K'
        self.stage_length = max(math.floor(ctx.total_steps / stages), 1)  # K' >= 1 on short runs

    def num_levels(self, step: int) -> int:
        return min(self.s0 * 2 ** (step // self.stage_length), self.s1) + 1
