"""iCT = the shared consistency loss with: teacher = stopgrad(student) (mu = 0), the data point
as target source, pseudo-Huber metric, 1/(sigma_{i+1} - sigma_i) weighting, lognormal index
sampling and the doubling curriculum. The evaluation EMA is the training loop's."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from genkit.methods.consistency import ConsistencyTraining


class ImprovedConsistencyTraining(ConsistencyTraining):
    @dataclass
    class Config:
        s0: int = 10  # initial number of discretization intervals
        s1: int = 1280  # final number of intervals
        p_mean: float = -1.1  # lognormal index schedule: mean of ln sigma
        p_std: float = 2.0  # lognormal index schedule: std of ln sigma
        loss: str = "pseudo-huber"  # any registered loss
        weighting: Literal["inverse-gap", "uniform"] = "inverse-gap"

    def __init__(self, options: "ImprovedConsistencyTraining.Config", ctx, network):
        parts = ctx.registries
        super().__init__(
            network,
            ctx,
            curriculum=parts.curricula.create("doubling", ctx, s0=options.s0, s1=options.s1),
            noise_schedule=parts.noise_schedules.create("lognormal", ctx, p_mean=options.p_mean, p_std=options.p_std),
            teacher=parts.teachers.create("data", ctx),
            metric=parts.losses.create(options.loss, ctx),
            weighting=options.weighting,
            target_rate=None,  # the teacher is the student itself: no EMA target
        )
