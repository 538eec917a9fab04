"""Index schedules: p(i) over the pairs (sigma_i, sigma_{i+1}) of a discretization."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from genkit.schema import option, positive


class UniformIndices:
    """n ~ Uniform{1, ..., N-1} (CD and original CT)."""

    def __init__(self, options=None, ctx=None):
        pass

    def index_probabilities(self, sigmas: torch.Tensor) -> torch.Tensor:
        return torch.full((len(sigmas) - 1,), 1 / (len(sigmas) - 1), dtype=torch.float64, device=sigmas.device)


class LognormalIndices:
    """iCT: p(i) proportional to the lognormal mass between sigma_i and sigma_{i+1}."""

    @dataclass
    class Config:
        p_mean: float = option(-1.1, "mean of ln sigma (iCT: -1.1)")
        p_std: float = option(2.0, "standard deviation of ln sigma (iCT: 2.0)", positive)

    def __init__(self, options: "LognormalIndices.Config | None" = None, ctx=None):
        options = options or LognormalIndices.Config()
        self.p_mean, self.p_std = options.p_mean, options.p_std

    def index_probabilities(self, sigmas: torch.Tensor) -> torch.Tensor:
        cdf = torch.erf((sigmas.double().log() - self.p_mean) / (math.sqrt(2) * self.p_std))
        mass = cdf[1:] - cdf[:-1]
        return mass / mass.sum()
