"""EDM training formulas (Karras et al. 2022, section 5 and table 1) as small pure functions."""

from __future__ import annotations

import torch

from genkit.maths import as_column, karras_sigmas


def edm_loss_weight(sigma: torch.Tensor, sigma_data: float = 0.5) -> torch.Tensor:
    """lambda(sigma) = (sigma^2 + sigma_data^2) / (sigma sigma_data)^2: unit loss at every level."""
    return (sigma**2 + sigma_data**2) / (sigma * sigma_data) ** 2


def lognormal_sigmas(n: int, p_mean: float = -1.2, p_std: float = 1.2, device=None, dtype=torch.float32, generator=None) -> torch.Tensor:
    """n training noise levels with ln sigma ~ N(p_mean, p_std^2) (default: torch's global RNG)."""
    return (p_mean + p_std * torch.randn(n, device=device, dtype=dtype, generator=generator)).exp()


def edm_loss(denoiser, x: torch.Tensor, sigma: torch.Tensor, sigma_data: float = 0.5, noise: torch.Tensor | None = None) -> torch.Tensor:
    """Per sample: lambda(sigma) ||D(x + sigma n, sigma) - x||^2 with n ~ N(0, I) (``noise``, or drawn here)."""
    noise = torch.randn_like(x) if noise is None else noise
    noisy = x + as_column(sigma, x) * noise
    error = (denoiser(noisy, sigma) - x).flatten(1).pow(2).sum(dim=1)
    return edm_loss_weight(sigma, sigma_data) * error


def heun_levels(num_levels: int, sigma_min: float, sigma_max: float, rho: float) -> torch.Tensor:
    """EDM's sampling levels: num_levels Karras levels from sigma_max down to sigma_min, then 0."""
    descending = karras_sigmas(num_levels, sigma_min, sigma_max, rho).flip(0)
    return torch.cat([descending, descending.new_zeros(1)])
