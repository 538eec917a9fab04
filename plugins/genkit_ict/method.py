"""iCT = the shared consistency loss with: teacher = stopgrad(student) (mu = 0), the data point
as target source, pseudo-Huber metric, 1/(sigma_{i+1} - sigma_i) weighting, lognormal index
sampling and the doubling curriculum (Song & Dhariwal, 2023). Each part is a registered
component chosen by the options below; the defaults are the paper's. The evaluation EMA is the
training loop's."""

from __future__ import annotations

from dataclasses import dataclass

from genkit.methods.consistency import ConsistencyTraining, Weighting
from genkit.schema import Component, option, part


class ImprovedConsistencyTraining(ConsistencyTraining):
    """Improved consistency training (Song & Dhariwal 2023): no target EMA, pseudo-Huber, lognormal indices, doubling curriculum."""
    paper = 'Song & Dhariwal 2023, "Improved Techniques for Training Consistency Models", ICLR 2024, https://arxiv.org/abs/2310.14189'  # shown in docs/recipes.md

    @dataclass
    class Config:
        curriculum: Component = part("curricula", "doubling", "N(k): doubling from s0 = 10 to s1 = 1280 intervals")
        index_schedule: Component = part("noise_schedules", "lognormal", "p(i): lognormal mass, P_mean -1.1, P_std 2.0")
        teacher: Component = part("teachers", "data", "target point: the data point x + sigma_n z")
        loss: Component = part("losses", "pseudo-huber", "metric d: pseudo-Huber, c = 0.00054 sqrt(d)")
        weighting: Weighting = option("inverse-gap", "lambda: 1 / (sigma_{i+1} - sigma_i), or uniform")

    def __init__(self, options: "ImprovedConsistencyTraining.Config", ctx, network):
        super().__init__(options or self.Config(), ctx, network)  # no target network: mu = 0
