"""Learning-rate schedules: a factor on ``train.lr`` at iteration k, a pure function of k, so a
resumed run needs no schedule state."""

from __future__ import annotations

from dataclasses import dataclass

from genkit.schema import option, positive


class ConstantRate:
    """factor(k) = 1: the consistency-model papers train at a constant rate."""

    def __init__(self, options=None, ctx=None):
        pass

    def factor(self, step: int) -> float:
        return 1.0


class Warmup:
    """EDM's linear ramp-up (Karras et al. 2022): factor(k) = min(k / warmup_steps, 1).

    EDM ramps over 10M training images (lr_rampup_kimg = 10000), that is warmup_steps =
    10M / batch_size; iteration k = 0 runs at rate 0, as in EDM's loop.
    """

    @dataclass
    class Config:
        warmup_steps: int = option(1000, "iterations over which the rate ramps linearly from 0 to train.lr", positive)

    def __init__(self, options: "Warmup.Config", ctx=None):
        self.warmup_steps = (options or Warmup.Config()).warmup_steps

    def factor(self, step: int) -> float:
        return min(step / self.warmup_steps, 1.0)
