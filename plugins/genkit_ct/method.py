"""CT = the shared consistency loss with: the data point as target source (x_hat_n = x + sigma_n z),
the square-root curriculum N(k) with s0, s1, n ~ Uniform{1, ..., N(k)-1}, weight 1, and a target
network that follows the student with the adaptive EMA rate mu(k) = exp(s0 ln(mu0) / N(k))
(Song et al., 2023, Algorithm 3). Each part is a registered component chosen by the options;
the defaults are the paper's CIFAR-10 recipe. The evaluation EMA is the training loop's."""

from __future__ import annotations

import math
from dataclasses import dataclass

from genkit.methods.consistency import ConsistencyTraining, Weighting
from genkit.schema import Component, option, part, unit_interval


def ct_target_rate(num_levels: int, s0: int, mu0: float) -> float:
    """mu(k) = exp(s0 ln(mu0) / N(k)): mu0 while N(k) = s0, closer to 1 as N(k) grows.

    The paper's formula, with N(k) the number of levels. (The authors' code divides by N(k) - 1,
    the number of intervals, which starts the rate at mu0^2 instead of mu0.)
    """
    return math.exp(s0 * math.log(mu0) / num_levels) if mu0 > 0 else 0.0


class OriginalConsistencyTraining(ConsistencyTraining):
    """Consistency training (Song et al. 2023, Algorithm 3): an EMA target with mu(k), the sqrt curriculum."""
    paper = 'Song, Dhariwal, Chen & Sutskever 2023, "Consistency Models", ICML 2023 (Algorithm 3), https://arxiv.org/abs/2303.01469'  # shown in docs/recipes.md

    @dataclass
    class Config:
        curriculum: Component = part("curricula", "sqrt", "N(k): square root from s0 = 2 to s1 = 150 (CIFAR-10)")
        index_schedule: Component = part("noise_schedules", "uniform", "p(i): uniform over the N(k) - 1 intervals")
        teacher: Component = part("teachers", "data", "target point: the data point x + sigma_n z")
        loss: Component = part("losses", "lpips", "metric d; the paper's best is LPIPS")
        mu0: float = option(0.9, "target EMA rate at the start of training; 0: no target network", unit_interval)
        weighting: Weighting = option("uniform", "lambda: 1 (the paper), or inverse-gap")

    def __init__(self, options: "OriginalConsistencyTraining.Config", ctx, network):
        options = options or self.Config()
        super().__init__(options, ctx, network, has_target=options.mu0 > 0)

    def target_rate(self, step: int) -> float:
        """mu(k) with s0 = N(0), the curriculum's first number of levels (s0 for the sqrt curriculum)."""
        return ct_target_rate(self.curriculum.num_levels(step), self.curriculum.num_levels(0), self.options.mu0)
