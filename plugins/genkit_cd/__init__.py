"""Consistency distillation (Song et al., 2023, Algorithm 2) from an EDM teacher."""

from genkit.hookspecs import hookimpl
from genkit_cd.method import ConsistencyDistillation


@hookimpl
def register_methods(register):
    register("cd", ConsistencyDistillation)
