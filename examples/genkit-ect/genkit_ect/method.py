"""Easy Consistency Tuning (ECT): Geng, Pokle, Luo, Lin & Kolter, "Consistency Models Made Easy"
(arXiv:2406.14548, 2024), as a genkit method.

ECT is consistency training that starts from a pretrained diffusion model (here: the weights of a
``genkit train --method edm`` run) and trains on continuous-time pairs (t, r) whose gap t - r
shrinks over training, so the first stage is close to the diffusion model's own denoising loss and
the last close to the consistency condition:

    t ~ exp(N(P_mean, P_std^2))
    r = t (1 - q^-(s+1) n(t)),  n(t) = 1 + k sigmoid(-b t)   (mapping "sigmoid"; "const": n = 1)
    s = floor(step / double_every)                            (the stage: the gap halves with q = 2)
    loss = w(t, r) d(f(x + t z, t), stopgrad f(x + r z, r))   w = 1 / (t - r)
    d(a, b) = sqrt(||a - b||^2 + c^2) - c                      (c = 0: the L2 norm)

with the same noise z and the same dropout masks in both passes, and no target EMA. The
stage is counted from 0, so the first stage already has r = t (1 - n(t) / q). The defaults are the
authors' CIFAR-10 recipe (their public code, locuslab/ect: P_mean -1.1, P_std 2.0, q 2, k 8, b 1,
c 0, 8 stages over training), written here from the paper and that code, not copied. The authors'
shorter "1 GPU hour" recipe keeps q = 256 from the first step (here: q = 256, stages = 1).

One change to fit genkit: the consistency function is genkit's ``ConsistencyFunction``, whose
boundary f(x, sigma_min) = x sits at sigma_min rather than at 0 (the authors use EDM's scalings in
training and shift them by sigma_min only to sample). So t is clipped into [sigma_min, sigma_max],
and a pair whose r falls below sigma_min takes r = sigma_min, where the target is the noisy point
itself (the authors' "r <= 0: the target is the data"). Sampling is iCT's consistency sampler.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch

from genkit.errors import GenkitError
from genkit.maths import as_column
from genkit.methods.consistency import ConsistencyTraining, Weighting
from genkit.methods.student import initialise_from_teacher
from genkit.schema import Check, Component, non_negative, option, part, positive
from genkit.nn import rng

Mapping = Literal["sigmoid", "const"]
greater_than_one = Check(lambda v: v > 1, "must be greater than 1")


# ----------------------------------------------------------------------------- the formulas


def stage_at(step: int, double_every: int) -> int:
    """s = floor(k / d): the stage of iteration k (0-based) when the gap shrinks every d iterations."""
    return step // double_every


def gap_factor(stage: int, q: float) -> float:
    """q^-(s+1): the share of t that separates r from t in stage s (before n(t))."""
    return float(q) ** -(stage + 1)


def mapping_factor(t: torch.Tensor, mapping: Mapping = "sigmoid", k: float = 8.0, b: float = 1.0) -> torch.Tensor:
    """n(t) = 1 + k sigmoid(-b t) ("sigmoid": wider gaps at small t) or 1 ("const")."""
    if mapping == "const":
        return torch.ones_like(t)
    return 1 + k * torch.sigmoid(-b * t)


def r_of_t(t: torch.Tensor, stage: int, q: float = 2.0, mapping: Mapping = "sigmoid", k: float = 8.0, b: float = 1.0) -> torch.Tensor:
    """r = t (1 - q^-(s+1) n(t)), clipped at 0 as in the paper (genkit then lifts it to sigma_min)."""
    return (t * (1 - gap_factor(stage, q) * mapping_factor(t, mapping, k, b))).clamp(min=0)


def ect_distance(a: torch.Tensor, b: torch.Tensor, c: float = 0.0) -> torch.Tensor:
    """d(a, b) = sqrt(||a - b||^2 + c^2) - c per sample, shape (batch,); c = 0 gives ||a - b||.

    The square is clamped away from 0 so the square root's gradient stays finite where a = b.
    """
    squared = (a - b).flatten(1).pow(2).sum(dim=1)
    return (squared + c * c).clamp(min=1e-20).sqrt() - c


# ----------------------------------------------------------------------------- the method


class EasyConsistencyTuning(ConsistencyTraining):
    """Easy Consistency Tuning (Geng et al. 2024): consistency training from an EDM run's weights, continuous t, shrinking gap."""

    paper = 'Geng, Pokle, Luo, Lin & Kolter 2024, "Consistency Models Made Easy", https://arxiv.org/abs/2406.14548'
    teacher_run_key = "teacher.run"  # --teacher RUN sets methods.ect.teacher.run

    @dataclass
    class Config:
        teacher: Component = part(
            "teachers", "edm-heun", "the pretrained EDM run the student starts from (--teacher RUN); ECT takes its weights only, never an ODE step"
        )
        init_from_teacher: bool = option(True, "start the student from the teacher's weights (the paper); false: ECT from scratch, no run needed")
        p_mean: float = option(-1.1, "mean of ln t (the paper: -1.1, as iCT)")
        p_std: float = option(2.0, "standard deviation of ln t (the paper: 2.0)", positive)
        q: float = option(2.0, "gap shrink factor per stage: r = t (1 - q^-(s+1) n(t)) (the paper: 2)", greater_than_one)
        double_every: int = option(0, "iterations per stage (the paper: 25k of 200k on CIFAR-10); 0: train.steps / stages", non_negative)
        stages: int = option(8, "stages over train.steps when double_every is 0 (the paper: 8; its 1-hour recipe: 1 with q = 256)", positive)
        mapping: Mapping = option("sigmoid", "n(t): sigmoid = 1 + k sigmoid(-b t) (the paper), or const = 1")
        k: float = option(8.0, "k of n(t) = 1 + k sigmoid(-b t) (the paper: 8)", non_negative)
        b: float = option(1.0, "b of n(t) = 1 + k sigmoid(-b t) (the paper: 1)", positive)
        c: float = option(0.0, "d = sqrt(||a - b||^2 + c^2) - c; 0: the L2 norm (the paper's CIFAR-10 setting)", non_negative)
        weighting: Weighting = option("inverse-gap", "w(t, r): 1 / (t - r) (the paper), or uniform")

    def __init__(self, options: "EasyConsistencyTuning.Config", ctx, network):
        super().__init__(options or self.Config(), ctx, network)  # no target network: stopgrad(student)

    # -- training

    def prepare_training(self) -> None:
        """Only the teacher, for its weights; ECT has no curriculum, index schedule or loss part."""
        options = self.options
        if not options.init_from_teacher:
            return
        if options.teacher.name == "edm-heun" and getattr(options.teacher.options, "run", None) is None:
            raise GenkitError(
                "ECT starts from a pretrained EDM model: pass --teacher RUN (a genkit train --method edm run folder), "
                "or set methods.ect.init_from_teacher=false to train from scratch"
            )
        self.teacher = self.ctx.registries.teachers.build(options.teacher, self.ctx)
        if not hasattr(self.teacher, "network"):
            raise GenkitError(
                f"methods.ect.init_from_teacher needs a teacher backed by a trained run; "
                f"teacher '{options.teacher.name}' has none (set methods.ect.init_from_teacher=false)"
            )
        initialise_from_teacher(self.model.net, self.teacher, self.ctx.registries.networks, self.ctx.network)
        self.teacher = None  # its weights are copied; the student never calls it

    def stage_length(self) -> int:
        """d, the iterations per stage: double_every, else train.steps / stages rounded up."""
        options = self.options
        return options.double_every or max(1, math.ceil(self.ctx.total_steps / options.stages))

    def stage(self, step: int) -> int:
        return stage_at(step, self.stage_length())

    def draw(self, n: int, step: int, generator: torch.Generator | None, device: torch.device) -> dict[str, torch.Tensor]:
        """Each sample's time t (lognormal) and its noise z."""
        normal = torch.randn(n, generator=generator, device=device)
        t = (self.options.p_mean + self.options.p_std * normal).exp()
        return {"t": t, "z": torch.randn((n, *self.data_shape), generator=generator, device=device)}

    def pair(self, t: torch.Tensor, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(t, r) of iteration k on genkit's range: t clipped into [sigma_min, sigma_max], r at least sigma_min."""
        options, noise = self.options, self.noise
        t = t.clamp(noise.sigma_min, noise.sigma_max)
        r = r_of_t(t, self.stage(step), options.q, options.mapping, options.k, options.b)
        return t, r.clamp(min=noise.sigma_min)

    def loss(self, x: torch.Tensor, step: int, labels: torch.Tensor | None = None, draws: dict | None = None):
        draws = draws or self.draw(x.shape[0], step, None, x.device)
        t, r = self.pair(draws["t"].to(x.dtype), step)
        z = draws["z"].to(x.dtype)

        dropout_state = rng.capture(x.device)
        prediction = self.student(x + as_column(t, x) * z, t, labels)
        with torch.no_grad(), rng.replay(dropout_state, x.device):  # the same dropout masks
            target = self.model(x + as_column(r, x) * z, r, labels)

        distance = ect_distance(prediction, target, self.options.c)
        live = t > r  # only where t = r = sigma_min (t clipped): both sides are the identity, no loss
        weight = torch.where(live, self.weighting(t, torch.where(live, r, t - 1)), torch.zeros_like(t))
        loss = (weight * distance).mean()
        boundary = (r <= self.noise.sigma_min).float().mean()
        return loss, {"stage": self.stage(step), "distance": distance.mean().detach(), "boundary_share": boundary.detach()}

    def training_evaluations(self) -> dict[str, int]:
        # the student pass with gradient and the stop-gradient pass at r; the teacher only lends its weights
        return {"student": 2, "teacher": 0}
