"""EDM training (Karras et al., 2022): denoising score matching with lognormal noise levels and
the lambda(sigma) weighting, EDM preconditioning, deterministic Heun sampling on Karras levels."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from genkit.components import Method
from genkit.maths import EDMDenoiser, PerSampleNoise, conditioned, heun_sample
from genkit.maths.sampling import heun_evaluations
from genkit.schema import option, positive
from genkit_edm.formulas import edm_loss, heun_levels, lognormal_sigmas


class EDM(Method):
    """The EDM diffusion model (Karras et al. 2022): the teacher CD distils, sampled with Heun."""
    sampler = "EDM's Heun sampler, whose steps count its noise levels"
    paper = 'Karras, Aittala, Aila & Laine 2022, "Elucidating the Design Space of Diffusion-Based Generative Models", NeurIPS 2022, https://arxiv.org/abs/2206.00364'  # shown in docs/recipes.md

    @dataclass
    class Config:
        p_mean: float = option(-1.2, "mean of ln sigma during training (EDM: -1.2)")
        p_std: float = option(1.2, "standard deviation of ln sigma during training (EDM: 1.2)", positive)

    def __init__(self, options: "EDM.Config", ctx, network):
        super().__init__()
        options = options or EDM.Config()
        self.p_mean, self.p_std = options.p_mean, options.p_std
        self.noise = ctx.noise
        self.sample_config = ctx.sample
        self.data_shape = tuple(ctx.data_shape)
        self.clamp = ctx.clamp
        self.model = EDMDenoiser(network, ctx.noise.sigma_data)

    def draw(self, n: int, step: int, generator, device) -> dict[str, torch.Tensor]:
        """Each sample's noise level sigma (lognormal) and its unit noise."""
        sigma = lognormal_sigmas(n, self.p_mean, self.p_std, device=device, generator=generator)
        return {"sigma": sigma, "noise": torch.randn((n, *self.data_shape), generator=generator, device=device)}

    def loss(self, x: torch.Tensor, step: int, labels: torch.Tensor | None = None, draws: dict | None = None):
        draws = draws or self.draw(x.shape[0], step, None, x.device)
        sigma, noise = draws["sigma"].to(x.dtype), draws["noise"].to(x.dtype)
        per_sample = edm_loss(conditioned(self.student, labels), x, sigma, self.noise.sigma_data, noise)
        return per_sample.mean(), {}

    def sample(self, model, noise: PerSampleNoise, steps: int | None, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Heun on ``steps`` Karras levels (default sample.heun_levels), last step Euler to 0."""
        num_levels = steps or self.default_sampling_steps()
        if num_levels < 2:
            raise ValueError(f"EDM's Heun sampler needs at least 2 Karras levels (--steps 2 or more), got {num_levels}")
        levels = heun_levels(num_levels, self.noise.sigma_min, self.noise.sigma_max, self.noise.rho)
        x = heun_sample(conditioned(model, labels), levels[0].item() * noise.randn(*self.data_shape), levels.tolist())
        return x.clamp(*self.clamp) if self.clamp else x

    def sampling_evaluations(self, steps: int | None) -> int:
        return heun_evaluations(steps or self.default_sampling_steps())

    def default_sampling_steps(self) -> int:
        return self.sample_config.heun_levels

    def training_evaluations(self) -> dict[str, int]:
        return {"student": 1, "teacher": 0}
