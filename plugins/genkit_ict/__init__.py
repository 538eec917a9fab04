"""Improved consistency training (Song & Dhariwal, 2023)."""

from genkit.hookspecs import hookimpl
from genkit_ict.method import ImprovedConsistencyTraining


@hookimpl
def register_methods(register):
    register("ict", ImprovedConsistencyTraining)
