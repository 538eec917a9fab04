"""TrigFlow and the continuous-time consistency objective of sCM (Lu & Song 2025, "Simplifying,
Stabilizing and Scaling Continuous-Time Consistency Models", ICLR 2025, arXiv:2410.11081) as
small pure functions.

TrigFlow (section 3): x_t = cos(t) x_0 + sin(t) z with z ~ N(0, sigma_d^2 I), t in [0, pi/2];
the consistency function f(x_t, t) = cos(t) x_t - sin(t) sigma_d F(x_t / sigma_d, t), so f(x, 0) = x.
It is EDM's noising with sigma = sigma_d tan(t), scaled by cos(t): x_t / cos(t) = x_0 + sigma n.
"""

from __future__ import annotations

import math
from typing import Callable

import torch

from genkit.maths import as_column

HALF_PI = math.pi / 2
RawNetwork = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # F(x_t / sigma_d, t)


def sigma_of_t(t: torch.Tensor, sigma_data: float = 0.5) -> torch.Tensor:
    """The EDM noise level of TrigFlow time t: sigma = sigma_d tan(t)."""
    return sigma_data * torch.tan(t)


def t_of_sigma(sigma: torch.Tensor, sigma_data: float = 0.5) -> torch.Tensor:
    """The TrigFlow time of EDM noise level sigma: t = arctan(sigma / sigma_d)."""
    return torch.atan(sigma / sigma_data)


def noisy(x0: torch.Tensor, z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """x_t = cos(t) x_0 + sin(t) z."""
    t = as_column(t, x0)
    return torch.cos(t) * x0 + torch.sin(t) * z


def training_velocity(x0: torch.Tensor, z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """dx_t/dt = cos(t) z - sin(t) x_0 of one pair (x_0, z): consistency training's estimate."""
    t = as_column(t, x0)
    return torch.cos(t) * z - torch.sin(t) * x0


def edm_velocity(denoiser, x_t: torch.Tensor, t: torch.Tensor, sigma_data: float = 0.5) -> torch.Tensor:
    """The PF ODE's dx_t/dt in TrigFlow from an EDM denoiser D(x, sigma) (a teacher for sCD):
    x_0_hat = D(x_t / cos t, sigma_d tan t) and dx_t/dt = (cos(t) x_t - x_0_hat) / sin(t), the same
    ODE as EDM's dx/dsigma = (x - D) / sigma under x_t = cos(t) x, sigma = sigma_d tan(t)."""
    column = as_column(t, x_t)
    x0_hat = denoiser(x_t / torch.cos(column), sigma_of_t(t, sigma_data))
    return (torch.cos(column) * x_t - x0_hat) / torch.sin(column)


def consistency_output(x_t: torch.Tensor, t: torch.Tensor, raw: torch.Tensor, sigma_data: float = 0.5) -> torch.Tensor:
    """f(x_t, t) = cos(t) x_t - sin(t) sigma_d F, with ``raw`` = F(x_t / sigma_d, t)."""
    t = as_column(t, x_t)
    return torch.cos(t) * x_t - torch.sin(t) * sigma_data * raw


def draw_times(n: int, p_mean: float = -1.0, p_std: float = 1.4, sigma_data: float = 0.5, generator=None, device=None) -> torch.Tensor:
    """The proposal of Algorithm 1: tau ~ N(p_mean, p_std^2), t = arctan(e^tau / sigma_d), i.e. the
    EDM noise level sigma = sigma_d tan(t) = e^tau is lognormal as in EDM."""
    tau = p_mean + p_std * torch.randn(n, generator=generator, device=device)
    return t_of_sigma(tau.exp(), sigma_data)


def raw_and_scaled_derivative(net: RawNetwork, x_t: torch.Tensor, t: torch.Tensor, dxdt: torch.Tensor, sigma_data: float = 0.5):
    """(F, cos(t) sin(t) sigma_d dF/dt) with dF/dt the total derivative of F(x_t / sigma_d, t) along
    dx_t/dt: one JVP with the tangent (cos t sin t dx_t/dt, cos t sin t sigma_d), the paper's
    arrangement (section 4.2), whose tangents stay bounded as t nears 0 or pi/2."""
    scale = torch.cos(t) * torch.sin(t)
    return torch.func.jvp(net, (x_t / sigma_data, t), (as_column(scale, x_t) * dxdt, scale * sigma_data))


def tangent(raw, scaled_derivative, x_t, dxdt, t, warmup: float = 1.0, sigma_data: float = 0.5) -> torch.Tensor:
    """g = -cos^2(t) (sigma_d F - dx_t/dt) - r cos(t) sin(t) (x_t + sigma_d dF/dt) (Algorithm 1), which
    is cos(t) df/dt at r = 1; ``warmup`` r < 1 scales down the second term (tangent warm-up)."""
    column = as_column(t, x_t)
    cos, sin = torch.cos(column), torch.sin(column)
    return -(cos**2) * (sigma_data * raw - dxdt) - warmup * (cos * sin * x_t + scaled_derivative)


def normalise(g: torch.Tensor, c: float = 0.1) -> torch.Tensor:
    """g / (||g|| + c) per sample (tangent normalisation)."""
    return g / as_column(g.flatten(1).norm(dim=1) + c, g)


def warmup_factor(step: int, warmup_steps: int) -> float:
    """r = min(1, k / H) at iteration k (0: no warm-up)."""
    return 1.0 if warmup_steps <= 0 else min(1.0, step / warmup_steps)


def scm_loss(raw_student, raw_target, g, log_weight) -> torch.Tensor:
    """Per sample: e^w(t) / D ||F_theta - F_theta^- - g||^2 - w(t) (eq. 9, adaptive weighting),
    D the data dimension; ``raw_target`` and ``g`` carry no gradient."""
    dimension = raw_student[0].numel()
    squared = (raw_student - raw_target - g).flatten(1).pow(2).sum(dim=1)
    return log_weight.exp() * squared / dimension - log_weight
