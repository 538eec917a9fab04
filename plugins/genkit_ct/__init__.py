"""Original consistency training (Song et al., 2023, Algorithm 3)."""

from genkit.hookspecs import hookimpl
from genkit_ct.method import OriginalConsistencyTraining


@hookimpl
def register_methods(register):
    register("ct", OriginalConsistencyTraining)
