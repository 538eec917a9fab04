"""Built-in 2-D toy distributions, an MLP for them and 2-D sample metrics: the no-download default."""

from genkit.hookspecs import hookimpl
from genkit_toy.data import TOY_DISTRIBUTIONS, ToyDataset
from genkit_toy.evaluators import Frechet2D, SlicedWasserstein
from genkit_toy.mlp import MLP


@hookimpl
def register_datasets(register):
    for name in TOY_DISTRIBUTIONS:
        register(name, ToyDataset.factory(name))


@hookimpl
def register_networks(register):
    register("mlp", MLP)


@hookimpl
def register_evaluators(register):
    register("swd", SlicedWasserstein)
    register("frechet2d", Frechet2D)
