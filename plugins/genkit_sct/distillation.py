"""sCD (Lu & Song 2025): sCT with the teacher's PF ODE velocity in place of the training pair's.

dx_t/dt comes from a trained ``genkit train --method edm`` run: TrigFlow is EDM's noising with
sigma = sigma_d tan(t) scaled by cos(t), so the EDM denoiser D gives
dx_t/dt = (cos(t) x_t - D(x_t / cos(t), sigma_d tan(t))) / sin(t) (``edm_velocity``). The paper
distils a TrigFlow diffusion model and starts the student from its weights; an EDM network is
conditioned on ln(sigma) / 4 rather than on t, so here the student starts from its own initial
weights and the teacher lends its velocity only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch

from genkit.maths import conditioned
from genkit.schema import option
from genkit_edm.teacher import load_edm_run
from genkit_sct.formulas import edm_velocity
from genkit_sct.method import ContinuousConsistencyTraining


class ContinuousConsistencyDistillation(ContinuousConsistencyTraining):
    """sCD (Lu & Song 2025): sCT whose dx_t/dt is an EDM teacher's PF ODE velocity, converted to TrigFlow."""

    teacher_run_key = "teacher_run"  # --teacher RUN sets methods.scd.teacher_run

    @dataclass
    class Config(ContinuousConsistencyTraining.Config):
        teacher_run: Optional[Path] = option(None, "folder of a genkit train --method edm run whose velocity is distilled (--teacher RUN; written absolute)")

    def __init__(self, options: "ContinuousConsistencyDistillation.Config", ctx, network):
        super().__init__(options or ContinuousConsistencyDistillation.Config(), ctx, network)
        self.ctx = ctx
        self.teacher = None

    def prepare_training(self) -> None:
        # kept out of the module tree (no submodule): the teacher's weights stay out of the checkpoints
        self.__dict__["teacher"] = load_edm_run(self.options.teacher_run, self.ctx.registries, self.ctx.device).model

    def velocity(self, x0, z, x_t, t, labels=None) -> torch.Tensor:
        return edm_velocity(conditioned(self.teacher, labels), x_t, t, self.sigma_data)

    def training_evaluations(self) -> dict[str, int]:
        return {"student": 2, "teacher": 1}
