"""Optimizers and learning-rate schedules, chosen by ``train.optimizer`` and ``train.lr_schedule``."""

from genkit.hookspecs import hookimpl
from genkit_optim.optimizers import Adam, RAdam
from genkit_optim.schedules import ConstantRate, Warmup


@hookimpl
def register_optimizers(register):
    register("radam", RAdam, default=True)  # the consistency-models papers' optimizer
    register("adam", Adam)


@hookimpl
def register_lr_schedules(register):
    register("constant", ConstantRate, default=True)
    register("warmup", Warmup)
