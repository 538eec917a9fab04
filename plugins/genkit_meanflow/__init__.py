"""MeanFlow (Geng, Deng, Bai, Kolter & He 2025): one-step generation from a learned average velocity."""

from genkit.hookspecs import hookimpl
from genkit_meanflow.method import MeanFlow


@hookimpl
def register_methods(register):
    register("meanflow", MeanFlow)
