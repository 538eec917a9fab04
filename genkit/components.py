"""What each kind of component looks like. Every factory is called as ``factory(options, ctx)``
where ``options`` is an instance of the factory's ``Config`` dataclass (or None without one)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch import nn

from genkit.config import NoiseConfig, SampleConfig
from genkit.maths.noise import PerSampleNoise


@dataclass
class BuildContext:
    """What a factory may need to know about the run it is built for."""

    registries: Any
    noise: NoiseConfig = field(default_factory=NoiseConfig)
    sample: SampleConfig = field(default_factory=SampleConfig)
    total_steps: int = 1
    data_shape: tuple[int, ...] = ()
    clamp: tuple[float, float] | None = None  # range of the data, for clamping samples
    label_dim: int = 0  # classes of the data's labels (0: unconditional)
    network: Any = None  # the run's network Component (name and options)
    device: torch.device = torch.device("cpu")


class Network(Protocol):
    """The raw network F inside the preconditioning (Karras et al. 2022, table 1).

    Called ``net(c_in * x, c_noise)`` with ``c_noise = ln(sigma) / 4`` of shape (batch,), or
    ``net(c_in * x, c_noise, labels)`` with class indices (batch,) when ``label_dim`` > 0; it
    returns a tensor of the input's shape. Built as ``factory(options, ctx)`` from
    ``ctx.data_shape`` (and ``ctx.label_dim``).
    """

    label_dim: int  # 0 (or absent): unconditional

    def __call__(self, x_in: torch.Tensor, c_noise: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor: ...


class BatchStream(Protocol):
    """An endless sequence of training batches whose position a checkpoint can hold."""

    def next(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(samples on the CPU, class labels (batch,) or None)."""

    def state_dict(self) -> dict:
        """Plain values (ints, floats, lists) from which a fresh stream continues exactly."""

    def load_state_dict(self, state: dict) -> None: ...


class Dataset(Protocol):
    shape: tuple[int, ...]  # shape of one sample: (2,) for points, (C, R, R) for images
    clamp: tuple[float, float] | None  # range samplers clamp to (images: (-1, 1))
    evaluators: tuple[str, ...]  # registered evaluators that make sense for this data
    label_dim: int  # classes its batches carry labels of (0: unlabelled, labels None)

    def stream(self, batch_size: int, seed: int, rank: int = 0, world_size: int = 1) -> BatchStream:
        """This rank's training batches; resuming from ``state_dict()`` continues them exactly."""

    def reference(self, n: int, seed: int) -> torch.Tensor:
        """n held-out samples, the same for the same seed, drawn without torch's global RNG."""


class Curriculum(Protocol):
    def num_levels(self, step: int) -> int:
        """N(k): how many noise levels discretize [sigma_min, sigma_max] at training step k."""


class NoiseSchedule(Protocol):
    def index_probabilities(self, sigmas: torch.Tensor) -> torch.Tensor:
        """p(i) for i = 1..N-1: the chance that a training pair is (sigma_i, sigma_{i+1})."""


class Teacher(Protocol):
    """Where the consistency target point comes from. Built only for training (a finished run
    samples without it), so a teacher may load heavy things in its constructor."""

    evaluations_per_sample: int  # class attribute: teacher network evaluations per training sample

    def target_point(self, x, z, x_hi, sigma_hi, sigma_lo, labels=None) -> torch.Tensor:
        """x_hat at sigma_lo on the trajectory through x_hi (no gradient flows through it);
        ``labels`` are the batch's class labels (None: unconditional)."""


class TrainedTeacher(Teacher, Protocol):
    """A teacher backed by a trained run, whose weights a student may start from (CD does)."""

    network: nn.Module  # the raw network F of the teacher (inside its preconditioning)
    network_config: Any  # its network Component (name and options), to check the student's


class Evaluator(Protocol):
    """A sample-quality score. Optional: ``accepts(dataset) -> str`` ('' when it can score that
    data, else why not: checked before training) and ``prepare(dataset, data_options)``, which
    computes reference statistics once (cached on disk, see genkit.evaluation.cache)."""

    def __call__(self, samples: torch.Tensor, reference: torch.Tensor) -> float | dict[str, float]:
        """Distance between samples and reference (lower is better); an evaluator with prepared
        statistics compares against those. A dict gives several values (precision, recall)."""


class Method(nn.Module):
    """A training method: turns a data batch into a loss and knows how to sample its model.

    ``self.model`` is the module the loop optimizes and keeps an EMA of; anything else the
    method needs to resume (a target network, say) is a submodule or buffer, so it is saved
    with ``state_dict()``.
    """

    Config: Any = None
    model: nn.Module
    # the option `--teacher RUN` sets, dotted below methods.NAME (e.g. "teacher.run"); None: no teacher
    teacher_run_key: str | None = None

    def prepare_training(self) -> None:
        """Build what only training needs (loss, teacher, ...); called by the Trainer before the
        first step and before a checkpoint is restored, never when a run is rebuilt to sample."""

    def loss(self, x: torch.Tensor, step: int, labels: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, float]]:
        """The loss of iteration k = ``step``, counted from 0 as in the papers' algorithms;
        ``labels`` are the batch's class labels for a class-conditional network (else None)."""
        raise NotImplementedError

    def after_step(self, step: int) -> None:
        """Called after the optimizer step of iteration k = ``step`` (target-network updates go here)."""

    def sample(self, model: nn.Module, noise: PerSampleNoise, steps: int | None, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Samples from ``model`` (called ``model(x, sigma, labels)``), one per generator of ``noise``."""
        raise NotImplementedError

    def sampling_evaluations(self, steps: int | None) -> int:
        """Network evaluations per sample for ``sample(..., steps)``."""
        raise NotImplementedError

    def default_sampling_steps(self) -> int:
        return 1

    def training_evaluations(self) -> dict[str, int]:
        """Network evaluations per training sample, split into 'student' and 'teacher'."""
        raise NotImplementedError
