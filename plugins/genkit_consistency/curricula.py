"""Discretization curricula N(k): how many Karras levels are used at training step k."""

from __future__ import annotations

import math
from dataclasses import dataclass

from genkit.errors import GenkitError
from genkit.schema import between, option

# Training draws an interval index with torch.multinomial, which takes at most 2**24 categories.
MAX_LEVELS = 2**24 - 2


class ConstantCurriculum:
    """N(k) = N for all k (consistency distillation: 18 on CIFAR-10, 40 on ImageNet 64)."""

    @dataclass
    class Config:
        num_levels: int = option(18, "N, the number of Karras levels (N - 1 intervals)", between(2, MAX_LEVELS + 1))

    def __init__(self, options: "ConstantCurriculum.Config", ctx=None):
        self.n = (options or self.Config()).num_levels

    def num_levels(self, step: int) -> int:
        return self.n


@dataclass
class GrowthOptions:
    """s0 and s1 of the curricula that grow N(k) over the K = train.steps iterations."""

    s0: int = option(2, "initial number of discretization steps", between(1, MAX_LEVELS))
    s1: int = option(150, "final number of discretization steps", between(1, MAX_LEVELS))

    def __post_init__(self):
        if self.s0 < 1:  # also when built in Python without the config parser's field checks
            raise ValueError(f"s0 must be at least 1, got {self.s0}")
        if self.s1 < self.s0:
            raise ValueError(f"s1 ({self.s1}) must not be smaller than s0 ({self.s0})")


def _check_horizon(total_steps: int) -> None:
    if total_steps < 1:
        raise GenkitError(f"curriculum needs K = total training steps >= 1, got {total_steps}")


class SquareRootCurriculum:
    """Original CT: N(k) = ceil(sqrt(k/K ((s1 + 1)^2 - s0^2) + s0^2) - 1) + 1."""

    @dataclass
    class Config(GrowthOptions):
        s0: int = option(2, "N(0), the number of levels at the start (CIFAR-10: 2)", between(1, MAX_LEVELS))
        s1: int = option(150, "N(K) - 1, the number of intervals at the end (CIFAR-10: 150)", between(1, MAX_LEVELS))

    def __init__(self, options: "SquareRootCurriculum.Config", ctx):
        _check_horizon(ctx.total_steps)
        self.s0, self.s1, self.total = options.s0, options.s1, ctx.total_steps

    def num_levels(self, step: int) -> int:
        s0, s1 = self.s0, self.s1
        inner = step / self.total * ((s1 + 1) ** 2 - s0**2) + s0**2
        return math.ceil(math.sqrt(inner) - 1) + 1


class DoublingCurriculum:
    """iCT: N(k) = min(s0 2^floor(k / K'), s1) + 1 with K' = floor(K / (log2 floor(s1/s0) + 1))."""

    @dataclass
    class Config(GrowthOptions):
        s0: int = option(10, "initial number of intervals, N(0) - 1 (iCT: 10)", between(1, MAX_LEVELS))
        s1: int = option(1280, "final number of intervals, the cap of N(k) - 1 (iCT: 1280)", between(1, MAX_LEVELS))

    def __init__(self, options: "DoublingCurriculum.Config", ctx):
        _check_horizon(ctx.total_steps)
        self.s0, self.s1 = options.s0, options.s1
        stages = math.log2(options.s1 // options.s0) + 1  # not rounded: the paper's formula floors only K'
        self.stage_length = max(math.floor(ctx.total_steps / stages), 1)  # K' >= 1 on short runs

    def num_levels(self, step: int) -> int:
        return min(self.s0 * 2 ** (step // self.stage_length), self.s1) + 1
