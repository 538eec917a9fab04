"""sCT (Lu & Song 2025): continuous-time consistency training in TrigFlow.

    x_t = cos(t) x_0 + sin(t) z,   z ~ N(0, sigma_d^2 I),   tan(t) = e^tau / sigma_d,   tau ~ N(P_mean, P_std^2)
    f(x_t, t) = cos(t) x_t - sin(t) sigma_d F(x_t / sigma_d, t)
    g = -cos^2(t) (sigma_d F^- - dx_t/dt) - r cos(t) sin(t) (x_t + sigma_d dF^-/dt)   (= cos(t) df^-/dt at r = 1)
    loss = e^w(t) / D ||F(x_t / sigma_d, t) - F^- - g / (||g|| + c)||^2 - w(t)

with dx_t/dt = cos(t) z - sin(t) x_0 (the training pair's own velocity), dF^-/dt from one
Jacobian-vector product through the stop-gradient network, the tangent warm-up r = min(1, k / H)
and w(t) a small network learned with the model (adaptive weighting). Sampling: f(sigma_d e,
pi/2) in one step; two steps re-noise to t = 1.1 and apply f once more (Algorithm 1 of the paper,
section 4 and appendix). Defaults are the paper's CIFAR-10 settings (P_mean -1.0, P_std 1.4,
c = 0.1, H = 10k iterations); the paper starts from a pretrained TrigFlow diffusion model, this
method from the network's initial weights.

The network is genkit's raw network F called ``net(x_t / sigma_d, t)``: its time input is t itself
(the paper's identity time conditioning), not EDM's ln(sigma) / 4, so a small Fourier scale suits
it (the paper's 0.02 of iCT, the toy preset's). ``sample`` starts at t = pi/2 from the unit noise
of the PerSampleNoise it is given; the consistency sampler's sigma levels (``--levels``) do not apply.

The paper's stability change to the network, adaptive double normalisation (section 4.1: blocks
modulated by norm(h) pnorm(s) + pnorm(b), the time embedding's scale and shift pixel-normalised,
where ADM has norm(h) (1 + s) + b), is the U-Nets' option ``network.double_normalisation = true``,
off by default; DDPM++/NCSN++ blocks, which otherwise add a shift only, gain a scale with it.
Its other one, positional time embeddings in place of Fourier features of a large scale (16 made
training unstable), is ``network.embedding = "positional"`` (DDPM++'s and ADM's default), or
NCSN++'s Fourier features at a small ``network.fourier_scale`` (0.02, the fmnist and toy presets').
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from genkit.components import Method
from genkit.maths import PerSampleNoise, conditioned
from genkit.nn import rng
from genkit.schema import Check, non_negative, option, positive
from genkit_sct.formulas import (
    HALF_PI,
    consistency_output,
    draw_times,
    noisy,
    normalise,
    raw_and_scaled_derivative,
    scm_loss,
    tangent,
    training_velocity,
    warmup_factor,
)

inside_trigflow = Check(
    lambda v: all(0 < t < HALF_PI for t in v) and all(a > b for a, b in zip(v, v[1:])),
    "must be descending times in (0, pi/2)",
)


class AdaptiveWeight(nn.Module):
    """w(t): a linear layer on fixed sinusoids sin(k t), cos(k t), k = 1..n (with a bias), which
    can follow any smooth function of t on [0, pi/2]; it starts at 0, the unweighted loss."""

    def __init__(self, frequencies: int = 8):
        super().__init__()
        self.register_buffer("k", torch.arange(1, frequencies + 1, dtype=torch.float32), persistent=False)
        self.linear = nn.Linear(2 * frequencies, 1)
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        angles = t[:, None] * self.k.to(t.dtype)
        return self.linear(torch.cat([angles.sin(), angles.cos()], dim=1)).squeeze(1)


class TrigFlowConsistency(nn.Module):
    """f(x_t, t) = cos(t) x_t - sin(t) sigma_d F(x_t / sigma_d, t); holds w(t) too, so that the loop's
    optimizer trains it with the network and a DistributedDataParallel wrapper sees both used in
    the one gradient pass (``forward(..., training=True)`` returns (F, w(t)))."""

    def __init__(self, net: nn.Module, sigma_data: float = 0.5, adaptive: bool = True):
        super().__init__()
        self.net = net
        self.sigma_data = sigma_data
        self.weight = AdaptiveWeight() if adaptive else None

    def raw(self, x_in: torch.Tensor, t: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """F(x_in, t) with x_in = x_t / sigma_d."""
        return self.net(x_in, t) if labels is None else self.net(x_in, t, labels)

    def forward(self, x_t: torch.Tensor, t, labels: torch.Tensor | None = None, training: bool = False):
        t = torch.as_tensor(t, dtype=x_t.dtype, device=x_t.device).expand(x_t.shape[0])
        raw = self.raw(x_t / self.sigma_data, t, labels)
        if training:
            return raw, self.weight(t) if self.weight is not None else torch.zeros_like(t)
        return consistency_output(x_t, t, raw, self.sigma_data)


class ContinuousConsistencyTraining(Method):
    """sCT (Lu & Song 2025): continuous-time consistency training in TrigFlow with tangent normalisation, warm-up and adaptive weighting."""

    paper = 'Lu & Song 2025, "Simplifying, Stabilizing and Scaling Continuous-Time Consistency Models", ICLR 2025, https://arxiv.org/abs/2410.11081'  # shown in docs/recipes.md
    sampler = "TrigFlow consistency sampling from t = pi/2 through the option intermediate_times, one network call each"

    @dataclass
    class Config:
        p_mean: float = option(-1.0, "mean of tau, tan(t) = e^tau / sigma_d (the paper's CIFAR-10: -1.0)")
        p_std: float = option(1.4, "standard deviation of tau (the paper's CIFAR-10: 1.4)", positive)
        tangent_c: float = option(0.1, "c of the tangent normalisation g / (||g|| + c) (the paper: 0.1)", positive)
        warmup_steps: int = option(10_000, "H: the tangent warm-up r = min(1, k / H) (the paper: 10k iterations); 0: none", non_negative)
        adaptive_weighting: bool = option(True, "learn w(t) and weight the loss by e^w(t) / D, minus w(t) (the paper); false: w = 0")
        intermediate_times: list[float] = option([1.1], "times of multistep sampling after pi/2, descending (the paper's 2-step sampler: 1.1)", inside_trigflow)

    def __init__(self, options: "ContinuousConsistencyTraining.Config", ctx, network):
        super().__init__()
        self.options = options or ContinuousConsistencyTraining.Config()
        self.sigma_data = ctx.noise.sigma_data
        self.data_shape = tuple(ctx.data_shape)
        self.clamp = ctx.clamp
        self.model = TrigFlowConsistency(network, self.sigma_data, self.options.adaptive_weighting)

    def draw(self, n: int, step: int, generator: torch.Generator | None, device: torch.device) -> dict[str, torch.Tensor]:
        """Each sample's time t and its unit noise (z = sigma_d times it)."""
        options = self.options
        t = draw_times(n, options.p_mean, options.p_std, self.sigma_data, generator, device)
        return {"t": t, "noise": torch.randn((n, *self.data_shape), generator=generator, device=device)}

    def velocity(self, x0: torch.Tensor, z: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor, labels=None) -> torch.Tensor:
        """dx_t/dt: the training pair's own (sCT); distillation overrides it with a teacher's."""
        return training_velocity(x0, z, t)

    def tangent(self, x0, z, t, step: int, labels=None):
        """(x_t, F^-, the normalised tangent g), all without gradient."""
        with torch.no_grad():
            x_t = noisy(x0, z, t)
            dxdt = self.velocity(x0, z, x_t, t, labels)
            raw, scaled = raw_and_scaled_derivative(lambda x_in, t_: self.model.raw(x_in, t_, labels), x_t, t, dxdt, self.sigma_data)
            g = tangent(raw, scaled, x_t, dxdt, t, warmup_factor(step, self.options.warmup_steps), self.sigma_data)
            return x_t, raw, normalise(g, self.options.tangent_c)

    def loss(self, x: torch.Tensor, step: int, labels: torch.Tensor | None = None, draws: dict | None = None):
        draws = draws or self.draw(x.shape[0], step, None, x.device)
        t, z = draws["t"].to(x.dtype), self.sigma_data * draws["noise"].to(x.dtype)
        dropout_state = rng.capture(x.device)
        # The JVP runs on self.model without gradient, the gradient pass through the student (which
        # may be a DistributedDataParallel or compiled wrapper forward-mode AD does not go through).
        with rng.replay(dropout_state, x.device):  # the same dropout masks in both passes
            x_t, raw_target, g = self.tangent(x, z, t, step, labels)
        raw, log_weight = self.student(x_t, t, labels, training=True)
        per_sample = scm_loss(raw, raw_target, g, log_weight)
        logs = {"tangent_norm": g.flatten(1).norm(dim=1).mean().detach(), "warmup": warmup_factor(step, self.options.warmup_steps)}
        return per_sample.mean(), logs

    def sample_times(self, steps: int) -> list[float]:
        times = list(self.options.intermediate_times)
        if steps - 1 > len(times):
            raise ValueError(f"{steps}-step sampling needs {steps - 1} times in the option intermediate_times, the config gives {len(times)}: {times}")
        return [HALF_PI, *times[: steps - 1]]

    @torch.no_grad()
    def sample(self, model, noise: PerSampleNoise, steps: int | None, labels: torch.Tensor | None = None) -> torch.Tensor:
        """f(sigma_d e, pi/2), then for each further time t: f(cos(t) x + sin(t) sigma_d e', t)."""
        f = conditioned(model, labels)
        x = None
        for k, t in enumerate(self.sample_times(steps or self.default_sampling_steps())):
            z = self.sigma_data * noise.randn(*self.data_shape)
            x_t = z if k == 0 else math.cos(t) * x + math.sin(t) * z
            x = f(x_t, torch.tensor(t))
            x = x.clamp(*self.clamp) if self.clamp else x
        return x

    def sampling_evaluations(self, steps: int | None) -> int:
        return steps or self.default_sampling_steps()

    def training_evaluations(self) -> dict[str, int]:
        # the JVP pass (a forward pass carrying tangents) and the gradient pass
        return {"student": 2, "teacher": 0}
