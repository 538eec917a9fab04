"""The probability-flow ODE in EDM form, dx/dsigma = (x - D(x, sigma)) / sigma, and its steps."""

from __future__ import annotations

from typing import Callable

import torch

from genkit.maths.precond import as_column

Denoiser = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def pf_ode_derivative(denoiser: Denoiser, x: torch.Tensor, sigma) -> torch.Tensor:
    sigma = as_column(sigma, x)
    return (x - denoiser(x, sigma.flatten())) / sigma


def euler_step(denoiser: Denoiser, x: torch.Tensor, sigma_from, sigma_to) -> torch.Tensor:
    """First-order step from sigma_from to sigma_to (per-sample or scalar levels)."""
    step = as_column(sigma_to, x) - as_column(sigma_from, x)
    return x + step * pf_ode_derivative(denoiser, x, sigma_from)


def heun_step(denoiser: Denoiser, x: torch.Tensor, sigma_from, sigma_to) -> torch.Tensor:
    """Second-order (Heun) step; Euler when stepping to sigma = 0 (given as a number)."""
    step = as_column(sigma_to, x) - as_column(sigma_from, x)
    slope = pf_ode_derivative(denoiser, x, sigma_from)
    x_euler = x + step * slope
    if isinstance(sigma_to, (int, float)) and sigma_to == 0:  # a number: no device sync per step
        return x_euler
    slope_end = pf_ode_derivative(denoiser, x_euler, sigma_to)
    return x + step * (slope + slope_end) / 2
