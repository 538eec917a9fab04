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


# after_step(x, sigma) -> x: called on each step's (clamped) output, before the next renoising
StepCallback = Callable[[torch.Tensor, float], torch.Tensor]


@torch.no_grad()
def consistency_sample(
    consistency_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    noise: PerSampleNoise,
    sample_shape: Sequence[int],
    sigma_max: float,
    sigma_min: float,
    intermediate_sigmas: Sequence[float] = (),
    clamp: tuple[float, float] | None = None,
    start: torch.Tensor | None = None,
    after_step: StepCallback | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Song et al. (2023) Algorithm 1: one step from sigma_max, then denoise-renoise at each tau.

    ``start``: the point at sigma_max to begin from (default sigma_max z). ``after_step`` sees
    every step's output and may change it (k-diffusion's sampler callback): zero-shot editing
    (Algorithm 4) is this sampler with the known part of the data put back there.
    """
    x = sigma_max * noise.randn(*sample_shape, dtype=dtype) if start is None else start
    for k, sigma in enumerate([float(sigma_max), *map(float, intermediate_sigmas)]):
        if k:  # renoise the previous output to sigma
            x = x + (sigma**2 - sigma_min**2) ** 0.5 * noise.randn(*sample_shape, dtype=dtype)
        x = consistency_fn(x, torch.tensor(sigma))
        x = x.clamp(*clamp) if clamp else x
        x = after_step(x, sigma) if after_step else x
    return x
