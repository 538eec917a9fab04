"""Samplers: Heun for an EDM denoiser, one-step and multistep for a consistency function."""

from __future__ import annotations

from typing import Callable, Sequence

import torch

from genkit.maths.noise import PerSampleNoise
from genkit.maths.ode import Denoiser, heun_step


@torch.no_grad()
def heun_sample(denoiser: Denoiser, x: torch.Tensor, sigmas: Sequence[float]) -> torch.Tensor:
    """Deterministic Heun integration of the PF ODE along descending sigmas (EDM Algorithm 1).

    ``x`` is the starting point at sigmas[0]; a final level 0 makes the last step plain Euler.
    """
    for sigma_from, sigma_to in zip(sigmas[:-1], sigmas[1:]):
        x = heun_step(denoiser, x, float(sigma_from), float(sigma_to))
    return x


def heun_evaluations(num_levels: int) -> int:
    """Network evaluations of heun_sample on num_levels levels plus the final 0: 2N - 1."""
    return 2 * num_levels - 1


@torch.no_grad()
def consistency_sample(
    consistency_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    noise: PerSampleNoise,
    sample_shape: Sequence[int],
    sigma_max: float,
    sigma_min: float,
    intermediate_sigmas: Sequence[float] = (),
    clamp: tuple[float, float] | None = None,
) -> torch.Tensor:
    """Song et al. (2023) Algorithm 1: one step from sigma_max, then denoise-renoise at each tau."""
    x = consistency_fn(sigma_max * noise.randn(*sample_shape), torch.tensor(sigma_max))
    x = x.clamp(*clamp) if clamp else x
    for tau in intermediate_sigmas:
        scale = (tau**2 - sigma_min**2) ** 0.5
        x_tau = x + scale * noise.randn(*sample_shape)
        x = consistency_fn(x_tau, torch.tensor(tau))
        x = x.clamp(*clamp) if clamp else x
    return x
