"""MeanFlow (Geng, Deng, Bai, Kolter & He 2025): a network u(z_t, r, t) of the average velocity
between times r and t of the flow-matching path z_t = (1 - t) x + t e, trained on the MeanFlow
identity

    loss = sg(w) ||u(z_t, r, t) - sg(u_tgt)||^2,   u_tgt = v - (t - r) (v . d_z u + d_t u),   v = e - x

with the total derivative from one Jacobian-vector product, (r, t) from two logit-normal draws
(r = t for 75% of them: flow matching) and the adaptive weight w = 1 / (||Delta||^2 + c)^p.
Sampling is z_0 = z_1 - u(z_1, 0, 1) from z_1 = e, or that step repeated over equal intervals.
Defaults are the paper's ImageNet 256 ablation defaults (Table 1): logit-normal (-0.4, 1.0),
25% of pairs with r != t, conditioning on (t, t - r), p = 1, c = 1e-3.

Where genkit's core did not fit, the method keeps to itself: the core's networks take one
noise level c_noise = ln(sigma) / 4 inside an EDM-style preconditioning, and its consistency
sampler starts at sigma_max. MeanFlow has no sigma: its network takes two times (a network
option, e.g. ``network.second_time = true`` of the toy MLP) and no preconditioning, and
``sample`` starts from the unit noise of the PerSampleNoise it is given. Multistep levels
(``--levels``) are consistency-model levels in sigma and do not apply.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from genkit.components import Method
from genkit.errors import GenkitError
from genkit.maths import PerSampleNoise, conditioned
from genkit.nn import rng
from genkit.schema import non_negative, option, positive, unit_interval
from genkit_meanflow.formulas import adaptive_weight, draw_times, interpolate, meanflow_sample, meanflow_target, total_derivative

SecondInput = Literal["t-r", "r"]


class AverageVelocityModel(nn.Module):
    """u(z, r, t) = F(z, t, c_second) with c_second = t - r (the paper's default) or r: the raw
    network without preconditioning, fed the times as they are."""

    def __init__(self, net: nn.Module, second_input: SecondInput = "t-r"):
        super().__init__()
        self.net = net
        self.second_input = second_input

    def forward(self, z: torch.Tensor, r: torch.Tensor, t: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        second = t - r if self.second_input == "t-r" else r
        extra = () if labels is None else (labels,)
        return self.net(z, t, *extra, c_second=second)


class MeanFlow(Method):
    """MeanFlow (Geng et al. 2025): average velocities u(z, r, t) trained by the MeanFlow identity, sampled in one step."""

    paper = 'Geng, Deng, Bai, Kolter & He 2025, "Mean Flows for One-step Generative Modeling", https://arxiv.org/abs/2505.13447'  # shown in docs/recipes.md
    sampler = "MeanFlow steps z_r = z_t - (t - r) u(z_t, r, t) over equal intervals from t = 1, one network call each"

    @dataclass
    class Config:
        p_mean: float = option(-0.4, "mean of the logit-normal times, t = sigmoid(N(p_mean, p_std^2)) (the paper: -0.4)")
        p_std: float = option(1.0, "standard deviation of the logit-normal times (the paper: 1.0)", positive)
        unequal_share: float = option(0.25, "share of (r, t) pairs with r != t; the rest have r = t, plain flow matching (the paper: 25%)", unit_interval)
        p: float = option(1.0, "power of the adaptive weight 1 / (||Delta||^2 + c)^p; 0: squared L2 (the paper: 1.0)", non_negative)
        c: float = option(1e-3, "c of the adaptive weight 1 / (||Delta||^2 + c)^p (the paper: 1e-3)", positive)
        second_input: SecondInput = option("t-r", "the network's second time input: t - r (the paper's default) or r")

    def __init__(self, options: "MeanFlow.Config", ctx, network):
        super().__init__()
        self.options = options or MeanFlow.Config()
        if not getattr(network, "second_time", False):
            raise GenkitError(
                f"MeanFlow's network takes two times (r, t): network '{ctx.network.name if ctx.network else type(network).__name__}' "
                "needs its second time input, set network.second_time = true"
            )
        self.data_shape = tuple(ctx.data_shape)
        self.clamp = ctx.clamp
        self.model = AverageVelocityModel(network, self.options.second_input)

    def draw(self, n: int, step: int, generator: torch.Generator | None, device: torch.device) -> dict[str, torch.Tensor]:
        """Each sample's times (r, t) and its noise e."""
        options = self.options
        r, t = draw_times(n, options.p_mean, options.p_std, options.unequal_share, generator, device)
        return {"r": r, "t": t, "e": torch.randn((n, *self.data_shape), generator=generator, device=device)}

    def target(self, x: torch.Tensor, e: torch.Tensor, r: torch.Tensor, t: torch.Tensor, labels: torch.Tensor | None = None):
        """(z_t, u_tgt) without gradient: the target is a stop-gradient (eq. 9)."""
        z, v = interpolate(x, e, t), e - x
        with torch.no_grad():
            _, dudt = total_derivative(lambda z_, r_, t_: self.model(z_, r_, t_, labels), z, r, t, v)
        return z, meanflow_target(v, dudt, r, t)

    def loss(self, x: torch.Tensor, step: int, labels: torch.Tensor | None = None, draws: dict | None = None):
        draws = draws or self.draw(x.shape[0], step, None, x.device)
        r, t, e = draws["r"].to(x.dtype), draws["t"].to(x.dtype), draws["e"].to(x.dtype)
        dropout_state = rng.capture(x.device)
        # The JVP runs on self.model without gradient, and the gradient pass through the student,
        # which may be a DistributedDataParallel or compiled wrapper that forward-mode AD does not
        # go through: one forward pass more than reusing the JVP's primal output.
        with rng.replay(dropout_state, x.device):  # the same dropout masks in both passes
            z, target = self.target(x, e, r, t, labels)
        prediction = self.student(z, r, t, labels)
        squared = (prediction - target).flatten(1).pow(2).sum(dim=1)
        weight = adaptive_weight(squared.detach(), self.options.p, self.options.c)
        loss = (weight * squared).mean()
        return loss, {"squared_error": squared.mean().detach()}

    def sample(self, model, noise: PerSampleNoise, steps: int | None, labels: torch.Tensor | None = None) -> torch.Tensor:
        """MeanFlow's sampler from t = 1 (z_1 = e, the noise's unit draws) in ``steps`` equal steps (default 1)."""
        steps = steps or self.default_sampling_steps()
        x = meanflow_sample(conditioned(model, labels), noise.randn(*self.data_shape), steps)
        return x.clamp(*self.clamp) if self.clamp else x

    def sampling_evaluations(self, steps: int | None) -> int:
        return steps or self.default_sampling_steps()

    def training_evaluations(self) -> dict[str, int]:
        # the JVP pass (a forward pass carrying tangents) and the gradient pass
        return {"student": 2, "teacher": 0}
