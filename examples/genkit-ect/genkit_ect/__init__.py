"""genkit-ect: Easy Consistency Tuning (Geng et al. 2024, "Consistency Models Made Easy",
arXiv:2406.14548) as a third-party genkit plugin. Registers the training method "ect"."""

from genkit import hookimpl

from genkit_ect.method import EasyConsistencyTuning

__version__ = "0.1.0"


@hookimpl
def register_methods(register):
    register("ect", EasyConsistencyTuning)
