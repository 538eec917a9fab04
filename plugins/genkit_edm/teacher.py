"""The teacher of consistency distillation: one Heun step of a trained EDM model's PF ODE."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch

from genkit.trained import TrainedModel, load_trained
from genkit.errors import GenkitError
from genkit.maths import conditioned, heun_step
from genkit.schema import option
from genkit.training.run import RunFolder


def load_edm_run(run: str | Path | None, registries, device: torch.device) -> TrainedModel:
    """A finished ``genkit train --method edm`` run with its EMA weights; GenkitError otherwise."""
    if not run:
        raise GenkitError("consistency distillation needs a teacher: pass --teacher RUN (a genkit train --method edm run folder)")
    folder = RunFolder(run)
    if not folder.path.is_dir():
        raise GenkitError(f"teacher run folder not found: {folder.path} (train one with: genkit train --method edm)")
    config = folder.read_config(registries)
    if config.method != "edm":
        raise GenkitError(f"teacher run {folder.path} was trained with method '{config.method}'; the teacher must be an 'edm' run")
    if not folder.has_checkpoint():
        raise GenkitError(f"teacher run {folder.path} has no checkpoint yet; train it first")
    return load_trained(folder.path, registries, device)


class EDMHeunTeacher:
    """x_hat_n = one Heun step of dx/dsigma = (x - D(x, sigma)) / sigma from sigma_{n+1} to sigma_n.

    D is the teacher run's EMA denoiser, frozen. It is kept as a plain attribute, not a submodule,
    so its weights stay out of the student's checkpoints; it is loaded onto the run's device.
    """

    evaluations_per_sample = 2  # Heun: one slope at sigma_{n+1}, one at sigma_n

    @dataclass
    class Config:
        run: Optional[Path] = option(None, "folder of a genkit train --method edm run (written absolute)")

    def __init__(self, options: "EDMHeunTeacher.Config", ctx):
        trained = load_edm_run(options.run, ctx.registries, ctx.device)
        self.denoiser = trained.model  # EMA weights, eval mode, requires_grad False
        self.network_config = trained.built.config.network

    @property
    def network(self) -> torch.nn.Module:
        """The teacher's raw network F inside its EDM preconditioning."""
        return self.denoiser.net

    @torch.no_grad()
    def target_point(self, x, z, x_hi, sigma_hi, sigma_lo, labels=None):
        return heun_step(conditioned(self.denoiser, labels), x_hi, sigma_hi, sigma_lo)
