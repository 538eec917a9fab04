"""What each kind of component looks like. Every factory is called as ``factory(options, ctx)``
where ``options`` is an instance of the factory's ``Config`` dataclass (or None without one)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn

from genkit.config import NoiseConfig, SampleConfig
from genkit.maths.noise import PerSampleNoise


def _about(help: str, **kwargs) -> Any:
    """A BuildContext field with the help text the hook reference shows (tools/docs.py)."""
    return field(metadata={"help": help}, **kwargs)


@dataclass
class BuildContext:
    """What a factory may need to know about the run it is built for: the second argument of
    every `factory(options, ctx)`. Filled in order by `genkit.build.build`: the dataset is built
    before `data_shape`, `clamp` and `label_dim` are known, every other part after (a model
    loaded from an export knows them first: its dataset is built only when used)."""

    registries: Any = _about("every kind's registry (ctx.registries.losses.build(component, ctx)): to build parts of your own")
    noise: NoiseConfig = _about("the run's noise levels and preconditioning: sigma_min, sigma_max, rho, sigma_data", default_factory=NoiseConfig)
    sample: SampleConfig = _about("the run's sampling settings (multistep_sigmas, heun_levels, batch_size...)", default_factory=SampleConfig)
    total_steps: int = _about("train.steps: K, the horizon of curricula and schedules", default=1)
    data_shape: tuple[int, ...] = _about("one sample's shape, (2,) for points, (C, R, R) for images; set after the dataset is built", default=())
    clamp: tuple[float, float] | None = _about("the range samplers clamp samples to (images: (-1, 1)); None: no clamping", default=None)
    label_dim: int = _about("classes of the data's labels; 0: unconditional", default=0)
    network: Any = _about("the run's network Component (name and options), e.g. to check a teacher's", default=None)
    run_path: Path | None = _about("the run folder being trained (set for loggers; None otherwise)", default=None)
    device: torch.device = _about("where the run's tensors live", default=torch.device("cpu"))


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
    data, else why not: checked before training), ``prepare(dataset, data_options)``, which
    computes reference statistics once (cached on disk, see genkit.evaluation.cache), and
    ``higher_is_better``: True for a score where higher is better, or for one giving several
    values the set of their keys that are (precision and recall: ``{"precision", "recall"}``);
    without it every value is a distance, lower is better. Reports and verdicts follow it."""

    def __call__(self, samples: torch.Tensor, reference: torch.Tensor) -> float | dict[str, float]:
        """Distance between samples and reference (lower is better); an evaluator with prepared
        statistics compares against those. A dict gives several values (precision, recall)."""


class Logger(Protocol):
    """Where training records go besides metrics.jsonl (TensorBoard, an experiment tracker).

    Built on rank 0 only, before training, from ``train.loggers``, with ``ctx.run_path`` set to
    the run folder: a logger whose package is missing should raise a one-line GenkitError there,
    not when the first record arrives. ``log`` gets every record metrics.jsonl gets, in order;
    ``close`` is called once when training ends (also after an error or Ctrl-C).
    """

    def log(self, record: dict[str, Any]) -> None:
        """One record: ``{"step": k, "loss": ..., "elapsed_s": ..., <the method's logs>}`` each
        log interval, or ``{"step": k, "eval": {metric: value}}`` after an evaluation. Values are
        plain numbers (NaN possible in ``eval``); a resumed run logs again from the step after its
        checkpoint."""

    def close(self) -> None:
        """Flush and release files or connections."""


class Method(nn.Module):
    """A training method: turns a data batch into a loss and knows how to sample its model.

    ``self.model`` is the module the loop optimizes and keeps an EMA of; anything else the
    method needs to resume (a target network, say) is a submodule or buffer, so it is saved
    with ``state_dict()``. The pass whose gradient trains the model goes through
    ``self.student``: ``self.model`` itself, or the wrapper the loop puts around it
    (DistributedDataParallel, ``torch.compile``), which shares its parameters.
    """

    Config: Any = None
    model: nn.Module
    # the option `--teacher RUN` sets, dotted below methods.NAME (e.g. "teacher.run"); None: no teacher
    teacher_run_key: str | None = None
    # What its sampler can do, declared so that callers need not recognise a method by name:
    takes_levels: bool = False  # sample(..., levels=[...]): multistep consistency sampling at chosen levels
    sampler: str = "its own sampler"  # in messages: what sample() runs and what its ``steps`` count

    def prepare_training(self) -> None:
        """Build what only training needs (loss, teacher, ...); called by the Trainer before the
        first step and before a checkpoint is restored, never when a run is rebuilt to sample."""

    @property
    def student(self) -> nn.Module:
        wrapped = self.__dict__.get("_student")
        return self.model if wrapped is None else wrapped

    def use_student(self, wrapped: nn.Module | None) -> None:
        """Route the gradient pass through ``wrapped`` (kept out of ``state_dict``); None: self.model."""
        self.__dict__["_student"] = wrapped

    def draw(self, n: int, step: int, generator: torch.Generator | None, device: torch.device) -> dict[str, torch.Tensor]:
        """The per-sample random draws of iteration k = ``step`` for a batch of ``n`` (noise,
        levels, ...), each a tensor with ``n`` rows. The loop draws them for the global batch
        from one generator that every process shares and hands each process and microbatch its
        rows, so a run's result does not depend on how its batch is split. A method that
        returns {} (the default) draws inside ``loss`` from torch's global generator instead."""
        return {}

    def loss(
        self, x: torch.Tensor, step: int, labels: torch.Tensor | None = None, draws: dict[str, torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """The loss of iteration k = ``step``, counted from 0 as in the papers' algorithms, as a
        mean over the batch; ``labels`` are the batch's class labels for a class-conditional
        network (else None); ``draws``: this batch's rows of ``draw`` (None: draw them here)."""
        raise NotImplementedError

    def after_step(self, step: int) -> None:
        """Called after the optimizer step of iteration k = ``step`` (target-network updates go here)."""

    def sample(self, model: nn.Module, noise: PerSampleNoise, steps: int | None, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Samples from ``model`` (called ``model(x, sigma, labels)``), one per seed of ``noise`` (len(noise) of them)."""
        raise NotImplementedError

    def sampling_evaluations(self, steps: int | None) -> int:
        """Network evaluations per sample for ``sample(..., steps)``."""
        raise NotImplementedError

    def default_sampling_steps(self) -> int:
        return 1

    def training_evaluations(self) -> dict[str, int]:
        """Network evaluations per training sample, split into 'student' and 'teacher'."""
        raise NotImplementedError
