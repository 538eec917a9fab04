"""CD = the shared consistency loss with: the EDM teacher's Heun step from sigma_{n+1} to sigma_n
as target source (registered teacher 'edm-heun'), a constant curriculum of N Karras levels,
n ~ Uniform{1, ..., N-1}, weight 1, a target network with constant EMA rate mu (0: the student
under stop-gradient), and the student initialised from the teacher's (EMA) weights (Song et
al., 2023, Algorithm 2). Each part is a registered component chosen by the options; the
defaults are the paper's CIFAR-10 recipe. The evaluation EMA is the training loop's."""

from __future__ import annotations

from dataclasses import dataclass

from genkit.errors import GenkitError
from genkit.methods.consistency import ConsistencyTraining, Weighting
from genkit.methods.student import initialise_from_teacher
from genkit.schema import Component, option, part, unit_interval


class ConsistencyDistillation(ConsistencyTraining):
    """Consistency distillation (Song et al. 2023, Algorithm 2) from Heun steps of a trained EDM run."""
    paper = 'Song, Dhariwal, Chen & Sutskever 2023, "Consistency Models", ICML 2023 (Algorithm 2), https://arxiv.org/abs/2303.01469'  # shown in docs/recipes.md

    teacher_run_key = "teacher.run"  # --teacher RUN sets methods.cd.teacher.run

    @dataclass
    class Config:
        teacher: Component = part("teachers", "edm-heun", "target point: a Heun step of a trained EDM run (--teacher RUN)")
        curriculum: Component = part("curricula", "constant", "N: 18 levels on CIFAR-10, 40 on ImageNet 64")
        index_schedule: Component = part("noise_schedules", "uniform", "p(i): uniform over the N - 1 intervals")
        loss: Component = part("losses", "lpips", "metric d; the paper's best is LPIPS")
        target_ema: float = option(0.0, "mu: 0 on CIFAR-10 (the student under stop-gradient), 0.95 on ImageNet 64", unit_interval)
        weighting: Weighting = option("uniform", "lambda: 1 (the paper), or inverse-gap")
        init_from_teacher: bool = option(True, "start the student from the teacher's weights, as the paper does")

    def __init__(self, options: "ConsistencyDistillation.Config", ctx, network):
        options = options or self.Config()
        super().__init__(options, ctx, network, has_target=options.target_ema > 0)

    def prepare_training(self) -> None:
        super().prepare_training()
        if not self.options.init_from_teacher:
            return
        if not hasattr(self.teacher, "network"):
            raise GenkitError(
                f"methods.cd.init_from_teacher needs a teacher backed by a trained run; "
                f"teacher '{self.options.teacher.name}' has none (set methods.cd.init_from_teacher=false)"
            )
        initialise_from_teacher(self.model.net, self.teacher, self.ctx.registries.networks, self.ctx.network)
        if self.target is not None:  # the target network starts where the student does
            self.target.load_state_dict(self.model.state_dict())

    def target_rate(self, step: int) -> float:
        return self.options.target_ema
