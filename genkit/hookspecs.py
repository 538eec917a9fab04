"""Hook specifications: one ``register_*`` hook per kind of component.

A plugin implements any of these with ``@genkit.hookimpl`` and calls ``register(name, factory)``
for every component it provides. Built-in plugins use exactly the same hooks.
"""

import pluggy

hookspec = pluggy.HookspecMarker("genkit")
hookimpl = pluggy.HookimplMarker("genkit")


@hookspec
def register_networks(register):
    """Raw networks F(x_in, c_noise) -> output of the same shape as x_in."""


@hookspec
def register_losses(register):
    """Per-sample distances d(a, b) -> tensor of shape (batch,)."""


@hookspec
def register_noise_schedules(register):
    """How noise levels (or indices into a discretization) are drawn during training."""


@hookspec
def register_curricula(register):
    """Discretization curricula: training step -> number of noise levels N(k)."""


@hookspec
def register_teachers(register):
    """Where a consistency target point x_hat_n comes from (the data, or an ODE step)."""


@hookspec
def register_methods(register):
    """Training methods: objects that turn a data batch into a loss and know how to sample."""


@hookspec
def register_datasets(register):
    """Datasets that yield training batches and reference samples."""


@hookspec
def register_evaluators(register):
    """Sample-quality metrics between generated and reference samples (lower is better)."""


@hookspec
def register_optimizers(register):
    """Optimizers: ``factory(options, ctx)(parameters, lr) -> torch.optim.Optimizer``."""


@hookspec
def register_lr_schedules(register):
    """Learning-rate schedules: ``schedule.factor(step)`` multiplies ``train.lr`` at step k."""


@hookspec
def register_edit_tasks(register):
    """Zero-shot editing tasks: which part of the data is known and how it is put back after each
    denoising step of the multistep sampler (Song et al. 2023, Algorithm 4)."""


@hookspec
def register_loggers(register):
    """Training loggers: each gets every record of metrics.jsonl (``log(record)``, rank 0 only)
    and ``close()`` when training ends; chosen by ``train.loggers``."""


@hookspec
def register_commands(cli):
    """Add Typer commands to the ``genkit`` command-line app ``cli``."""
