"""CD = the shared consistency loss with: the EDM teacher's Heun step from sigma_{n+1} to sigma_n
as target source (registered teacher 'edm-heun'), a constant curriculum of N Karras levels,
n ~ Uniform{1, ..., N-1}, weight 1, a target network with constant EMA rate mu (0: the student
under stop-gradient), and the student initialised from the teacher's (EMA) weights. The
evaluation EMA is the training loop's (train.ema_rate)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from genkit.errors import GenkitError
from genkit.methods.consistency import ConsistencyTraining
from genkit_cd.student import initialise_from_teacher


class ConstantRate:
    """mu(k) = mu for every step k."""

    def __init__(self, mu: float):
        self.mu = mu

    def __call__(self, step: int) -> float:
        return self.mu


class UnloadedTeacher:
    """Stands in for the teacher when a finished CD run is rebuilt to sample or evaluate."""

    def __init__(self, evaluations_per_sample: int):
        self.evaluations_per_sample = evaluations_per_sample

    def target_point(self, *args):
        raise RuntimeError("this CD run was rebuilt for sampling; its teacher was not loaded")


class ConsistencyDistillation(ConsistencyTraining):
    @dataclass
    class Config:
        teacher: str = ""  # run folder of the EDM teacher (genkit train --method edm); --teacher RUN
        num_levels: int = 18  # N: 18 on CIFAR-10, 40 on ImageNet 64
        loss: str = "lpips"  # any registered loss; the paper's best is LPIPS
        target_ema: float = 0.0  # mu: 0 on CIFAR-10, 0.95 on ImageNet 64
        weighting: Literal["uniform", "inverse-gap"] = "uniform"  # the paper: lambda = 1

    def __init__(self, options: "ConsistencyDistillation.Config", ctx, network):
        options = options or ConsistencyDistillation.Config()
        if not 0 <= options.target_ema < 1:
            raise GenkitError(f"methods.cd.target_ema must be in [0, 1), got {options.target_ema}")
        if options.teacher:  # written absolute into the run's config, so it samples from any folder
            options.teacher = str(Path(options.teacher).expanduser().resolve())
        parts = ctx.registries
        if ctx.training:
            teacher = parts.teachers.create("edm-heun", ctx, run=options.teacher)
            initialise_from_teacher(network, teacher, parts.networks, ctx.network)
        else:  # sampling a finished run needs only its own checkpoint, not the teacher's folder
            teacher = UnloadedTeacher(parts.teachers.get("edm-heun").evaluations_per_sample)
        super().__init__(
            network,
            ctx,
            curriculum=parts.curricula.create("constant", ctx, num_levels=options.num_levels),
            noise_schedule=parts.noise_schedules.create("uniform", ctx),
            teacher=teacher,
            metric=parts.losses.create(options.loss, ctx),
            weighting=options.weighting,
            target_rate=ConstantRate(options.target_ema) if options.target_ema > 0 else None,
        )

