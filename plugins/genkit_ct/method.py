"""CT = the shared consistency loss with: the data point as target source (x_hat_n = x + sigma_n z),
the square-root curriculum N(k) with s0, s1, n ~ Uniform{1, ..., N(k)-1}, weight 1, and a target
network that follows the student with the adaptive EMA rate mu(k) = exp(s0 ln(mu0) / N(k)).
The evaluation EMA is the training loop's (train.ema_rate)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from genkit.errors import GenkitError
from genkit.methods.consistency import ConsistencyTraining


def ct_target_rate(num_levels: int, s0: int, mu0: float) -> float:
    """mu(k) = exp(s0 ln(mu0) / N(k)): mu0 while N(k) = s0, closer to 1 as N(k) grows.

    The paper's formula, with N(k) the number of levels. (The authors' code divides by N(k) - 1,
    the number of intervals, which starts the rate at mu0^2 instead of mu0.)
    """
    return math.exp(s0 * math.log(mu0) / num_levels) if mu0 > 0 else 0.0


class AdaptiveRate:
    """step -> mu(k) for the curriculum's N(k)."""

    def __init__(self, curriculum, s0: int, mu0: float):
        self.curriculum, self.s0, self.mu0 = curriculum, s0, mu0

    def __call__(self, step: int) -> float:
        return ct_target_rate(self.curriculum.num_levels(step), self.s0, self.mu0)


class OriginalConsistencyTraining(ConsistencyTraining):
    @dataclass
    class Config:
        s0: int = 2  # N(0): levels at the start of training
        s1: int = 150  # N(K) - 1: intervals at the end of training (CIFAR-10)
        mu0: float = 0.9  # target EMA rate at the start of training
        loss: str = "lpips"  # any registered loss; the paper's best is LPIPS
        weighting: Literal["uniform", "inverse-gap"] = "uniform"  # the paper: lambda = 1

    def __init__(self, options: "OriginalConsistencyTraining.Config", ctx, network):
        options = options or OriginalConsistencyTraining.Config()
        if not 0 <= options.mu0 < 1:
            raise GenkitError(f"methods.ct.mu0 must be in [0, 1), got {options.mu0}")
        parts = ctx.registries
        curriculum = parts.curricula.create("sqrt", ctx, s0=options.s0, s1=options.s1)
        super().__init__(
            network,
            ctx,
            curriculum=curriculum,
            noise_schedule=parts.noise_schedules.create("uniform", ctx),
            teacher=parts.teachers.create("data", ctx),
            metric=parts.losses.create(options.loss, ctx),
            weighting=options.weighting,
            target_rate=AdaptiveRate(curriculum, options.s0, options.mu0) if options.mu0 > 0 else None,
        )
