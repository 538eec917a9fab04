"""MeanFlow's formulas (Geng et al. 2025, "Mean Flows for One-step Generative Modeling",
arXiv:2505.13447) as small pure functions.

Flow-matching time t in [0, 1]: z_t = (1 - t) x + t e with e ~ N(0, I), velocity v = e - x.
The network predicts the average velocity u(z_t, r, t) = 1 / (t - r) int_r^t v(z_s, s) ds, which
obeys the MeanFlow identity u = v - (t - r) du/dt (eq. 6), with the total derivative
du/dt = v . d_z u + d_t u (eq. 8) along the trajectory.
"""

from __future__ import annotations

from typing import Callable

import torch

from genkit.maths import as_column

# u(z, r, t): the average velocity from time r to time t at z (batch of z, r and t of shape (batch,))
AverageVelocity = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def interpolate(x: torch.Tensor, e: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """z_t = (1 - t) x + t e: data at t = 0, noise at t = 1."""
    t = as_column(t, x)
    return (1 - t) * x + t * e


def draw_times(
    n: int, p_mean: float = -0.4, p_std: float = 1.0, unequal_share: float = 0.25,
    generator: torch.Generator | None = None, device=None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(r, t) as the paper samples them (section 4.3): two logit-normal draws
    sigmoid(N(p_mean, p_std^2)), the larger one t; then r = t for all but ``unequal_share`` of the
    pairs (those train plain flow matching, the instantaneous velocity)."""
    pair = torch.sigmoid(p_mean + p_std * torch.randn(2, n, generator=generator, device=device))
    t, r = pair.max(dim=0).values, pair.min(dim=0).values
    unequal = torch.rand(n, generator=generator, device=device) < unequal_share
    return torch.where(unequal, r, t), t


def total_derivative(u: AverageVelocity, z: torch.Tensor, r: torch.Tensor, t: torch.Tensor, v: torch.Tensor):
    """(u(z, r, t), du/dt) with du/dt = v . d_z u + 0 . d_r u + 1 . d_t u: one forward-mode
    Jacobian-vector product with the tangent (v, 0, 1) (eq. 8), no Jacobian formed."""
    return torch.func.jvp(u, (z, r, t), (v, torch.zeros_like(r), torch.ones_like(t)))


def meanflow_target(v: torch.Tensor, dudt: torch.Tensor, r: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """u_tgt = v - (t - r) du/dt (eq. 10); at r = t it is v, the instantaneous velocity."""
    return v - as_column(t - r, v) * dudt


def adaptive_weight(squared_error: torch.Tensor, p: float = 1.0, c: float = 1e-3) -> torch.Tensor:
    """w = 1 / (||Delta||^2 + c)^p (section 4.3), used under stop-gradient: p = 0 is the squared
    L2 loss, p = 0.5 behaves like the pseudo-Huber loss."""
    return 1 / (squared_error + c) ** p


@torch.no_grad()
def meanflow_sample(u: AverageVelocity, e: torch.Tensor, steps: int = 1) -> torch.Tensor:
    """z_r = z_t - (t - r) u(z_t, r, t) over ``steps`` equal intervals from t = 1 to 0 (eq. 12):
    one step is z_0 = z_1 - u(z_1, 0, 1)."""
    times = torch.linspace(1, 0, steps + 1, dtype=torch.float64).tolist()
    z = e
    for t, r in zip(times[:-1], times[1:]):
        t_column = torch.full((z.shape[0],), t, dtype=z.dtype, device=z.device)
        r_column = torch.full_like(t_column, r)
        z = z - (t - r) * u(z, r_column, t_column)
    return z
