"""The consistency loss that CD, CT and iCT share; they differ only in the parts passed in.

loss = E[ lambda(sigma_n, sigma_{n+1}) d(f(x + sigma_{n+1} z, sigma_{n+1}), f^-(x_hat_n, sigma_n)) ]

with N(k) from a curriculum, n drawn from a noise schedule, x_hat_n from a teacher (the data
point for CT/iCT, one ODE step of a diffusion model for CD) and f^- a target network that
follows the student with EMA rate mu(k) (mu = 0: the student itself under stop-gradient).
"""

from __future__ import annotations

import copy
from typing import Callable, Literal, Sequence

import torch
from torch import nn

from genkit.components import BuildContext, Curriculum, Method, NoiseSchedule, Teacher
from genkit.maths import ConsistencyFunction, PerSampleNoise, as_column, conditioned, consistency_sample, karras_sigmas
from genkit.nn import rng
from genkit.nn.ema import AveragePair

Metric = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def uniform_weighting(sigma_hi: torch.Tensor, sigma_lo: torch.Tensor) -> torch.Tensor:
    return torch.ones_like(sigma_hi)


def inverse_gap_weighting(sigma_hi: torch.Tensor, sigma_lo: torch.Tensor) -> torch.Tensor:
    """iCT: lambda(sigma_i) = 1 / (sigma_{i+1} - sigma_i), larger weight at small noise."""
    return 1 / (sigma_hi - sigma_lo)


WEIGHTINGS = {"uniform": uniform_weighting, "inverse-gap": inverse_gap_weighting}
Weighting = Literal["uniform", "inverse-gap"]


def draw_indices(probabilities: torch.Tensor, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """n zero-based indices i into sigmas, each pairing (sigma_i, sigma_{i+1})."""
    return torch.multinomial(probabilities.float(), n, replacement=True, generator=generator)


class ConsistencyTraining(Method):
    """The shared loss around registered parts named by the options: ``curriculum``,
    ``index_schedule``, ``teacher`` and ``loss`` (Components) and ``weighting``.

    The parts are built by ``prepare_training``, so a finished run samples without them (and
    without their plugins). A target network exists when ``has_target``; its rate mu(k) comes
    from ``target_rate``, which subclasses with an EMA target override.
    """

    takes_levels = True
    sampler = "consistency sampling, one network call per step"

    def __init__(self, options, ctx: BuildContext, network: nn.Module, has_target: bool = False):
        super().__init__()
        self.options = options
        self.ctx = ctx
        self.noise = ctx.noise
        self.sample_config = ctx.sample
        self.clamp = ctx.clamp
        self.data_shape = tuple(ctx.data_shape)
        self.model = ConsistencyFunction(network, ctx.noise.sigma_min, ctx.noise.sigma_data)
        self.target = copy.deepcopy(self.model).requires_grad_(False) if has_target else None
        self.weighting = WEIGHTINGS[options.weighting]
        self.curriculum: Curriculum | None = None
        self.noise_schedule: NoiseSchedule | None = None
        self.teacher: Teacher | None = None
        self.metric: Metric | None = None
        self._sigmas: tuple | None = None  # ((N, device), levels) of the last step
        self._probabilities: tuple | None = None  # (levels, p(i)) for those levels
        self._target_pair: AveragePair | None = None

    def prepare_training(self) -> None:
        parts, ctx, options = self.ctx.registries, self.ctx, self.options
        self.curriculum = parts.curricula.build(options.curriculum, ctx)
        self.noise_schedule = parts.noise_schedules.build(options.index_schedule, ctx)
        self.teacher = parts.teachers.build(options.teacher, ctx)
        self.metric = parts.losses.build(options.loss, ctx)

    def target_rate(self, step: int) -> float:
        """mu(k), the target network's EMA rate after iteration k (only with a target network)."""
        raise NotImplementedError

    def sigmas(self, step: int, device: torch.device) -> torch.Tensor:
        """The N(k) + 1 Karras levels of iteration k, kept on the device while N(k) stays the
        same: a copy from the host every step would make each step wait for the device."""
        n = self.curriculum.num_levels(step)
        if self._sigmas is None or self._sigmas[0] != (n, device):
            noise = self.noise
            self._sigmas = ((n, device), karras_sigmas(n, noise.sigma_min, noise.sigma_max, noise.rho).to(device))
        return self._sigmas[1]

    def draw(self, n: int, step: int, generator: torch.Generator | None, device: torch.device) -> dict[str, torch.Tensor]:
        """Each sample's interval index i (pairing sigma_i, sigma_{i+1}) and its noise z."""
        sigmas = self.sigmas(step, device)
        if self._probabilities is None or self._probabilities[0] is not sigmas:  # new levels: new p(i)
            self._probabilities = (sigmas, self.noise_schedule.index_probabilities(sigmas).float())
        index = draw_indices(self._probabilities[1], n, generator)
        return {"index": index, "z": torch.randn((n, *self.data_shape), generator=generator, device=device)}

    def loss(self, x: torch.Tensor, step: int, labels: torch.Tensor | None = None, draws: dict | None = None):
        sigmas = self.sigmas(step, x.device)
        draws = draws or self.draw(x.shape[0], step, None, x.device)
        index, z = draws["index"], draws["z"].to(x.dtype)
        sigma_hi, sigma_lo = sigmas[index + 1].to(x.dtype), sigmas[index].to(x.dtype)
        x_hi = x + as_column(sigma_hi, x) * z

        dropout_state = rng.capture(x.device)
        prediction = self.student(x_hi, sigma_hi, labels)
        with torch.no_grad():
            x_lo = self.teacher.target_point(x, z, x_hi, sigma_hi, sigma_lo, labels)
            with rng.replay(dropout_state, x.device):  # same dropout masks as the student pass
                target_net = self.model if self.target is None else self.target
                target = target_net(x_lo, sigma_lo, labels)

        distance = self.metric(prediction, target)
        loss = (self.weighting(sigma_hi, sigma_lo) * distance).mean()
        return loss, {"num_levels": len(sigmas), "distance": distance.mean().detach()}

    def after_step(self, step: int) -> None:
        if self.target is not None:
            if self._target_pair is None:
                self._target_pair = AveragePair(self.target, self.model)
            self._target_pair.update(self.target_rate(step))

    def multistep_sigmas(self, steps: int, levels: Sequence[float] | None = None) -> list[float]:
        """The steps - 1 intermediate levels: the first of ``levels`` when given, else of
        sample.multistep_sigmas."""
        taus = list(self.sample_config.multistep_sigmas if levels is None else levels)
        if steps - 1 > len(taus):
            if levels is not None:
                raise ValueError(f"{steps}-step sampling needs {steps - 1} levels, {len(taus)} given: {taus}")
            raise ValueError(
                f"{steps}-step sampling needs {steps - 1} levels in sample.multistep_sigmas, "
                f"the config gives {len(taus)}: {taus}"
            )
        return taus[: steps - 1]

    def sample(
        self, model, noise: PerSampleNoise, steps: int | None, labels: torch.Tensor | None = None,
        levels: Sequence[float] | None = None,
    ) -> torch.Tensor:
        """Algorithm 1 of Song et al. (2023) from sigma_max through the intermediate ``levels``
        (default: sample.multistep_sigmas); ``steps`` None with levels: len(levels) + 1."""
        if not steps:
            steps = len(levels) + 1 if levels is not None else self.default_sampling_steps()
        return consistency_sample(
            conditioned(model, labels),
            noise,
            self.data_shape,
            self.noise.sigma_max,
            self.noise.sigma_min,
            self.multistep_sigmas(steps, levels),
            clamp=self.clamp,
        )

    def sampling_evaluations(self, steps: int | None) -> int:
        return steps or self.default_sampling_steps()

    def training_evaluations(self) -> dict[str, int]:
        # student pass with gradient + target pass without; the teacher adds its own.
        teacher = self.ctx.registries.teachers.get(self.options.teacher.name)
        return {"student": 2, "teacher": teacher.evaluations_per_sample}
