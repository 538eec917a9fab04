"""The kinds of component: one declaration each, from which the hooks, the registries, the
messages, the reference docs and the config's training-only set are all derived.

A plugin may declare kinds of its own (``genkit_kinds = (Kind(...),)`` in its module): they get
a ``register_<name>`` hook and a registry like the core's, so its own plugins can extend it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Kind:
    name: str  # plural: the registry (``registries.losses``) and the hook (``register_losses``)
    singular: str  # one component of it, in messages ("unknown loss 'l3'")
    doc: str  # what its components are: the hook's docstring
    protocols: tuple[str, ...] = ()  # classes in genkit.components its components follow
    training_only: bool = False  # only training builds it: a finished run samples without it

    @property
    def hook(self) -> str:
        return f"register_{self.name}"


CORE_KINDS: tuple[Kind, ...] = (
    Kind("networks", "network", "Raw networks F(x_in, c_noise) -> output of the same shape as x_in.", ("Network",)),
    Kind("losses", "loss", "Per-sample distances d(a, b) -> tensor of shape (batch,).", training_only=True),
    Kind(
        "noise_schedules", "noise schedule",
        "How noise levels (or indices into a discretization) are drawn during training.", ("NoiseSchedule",), True,
    ),
    Kind(
        "curricula", "curriculum", "Discretization curricula: training step -> number of noise levels N(k).",
        ("Curriculum",), True,
    ),
    Kind(
        "teachers", "teacher", "Where a consistency target point x_hat_n comes from (the data, or an ODE step).",
        ("Teacher", "TrainedTeacher"), True,
    ),
    Kind("methods", "method", "Training methods: objects that turn a data batch into a loss and know how to sample.", ("Method",)),
    Kind("datasets", "dataset", "Datasets that yield training batches and reference samples.", ("Dataset", "BatchStream")),
    Kind("evaluators", "evaluator", "Sample-quality metrics between generated and reference samples (lower is better unless one declares higher_is_better).", ("Evaluator",)),
    Kind(
        "optimizers", "optimizer", "Optimizers: ``factory(options, ctx)(parameters, lr) -> torch.optim.Optimizer``.",
        training_only=True,
    ),
    Kind(
        "lr_schedules", "learning-rate schedule",
        "Learning-rate schedules: ``schedule.factor(step)`` multiplies ``train.lr`` at step k.", training_only=True,
    ),
    Kind(
        "loggers", "logger",
        "Training loggers: each gets every record of metrics.jsonl (``log(record)``, rank 0 only) and ``close()`` "
        "when training ends; chosen by ``train.loggers``.", ("Logger",), True,
    ),
    Kind(
        "presets", "preset",
        "Named configurations: ``register(name, path)`` with the path of a TOML file of config layers "
        "(`genkit train --preset NAME`).",
    ),
)


def training_only(kinds) -> frozenset[str]:
    """Names of the kinds a run can be rebuilt without, to sample it."""
    return frozenset(kind.name for kind in kinds if kind.training_only)
