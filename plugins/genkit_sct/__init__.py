"""sCT and sCD (Lu & Song 2025): continuous-time consistency training and distillation in TrigFlow."""

from genkit.hookspecs import hookimpl
from genkit_sct.distillation import ContinuousConsistencyDistillation
from genkit_sct.method import ContinuousConsistencyTraining


@hookimpl
def register_methods(register):
    register("sct", ContinuousConsistencyTraining)
    register("scd", ContinuousConsistencyDistillation)
