"""2-D sample metrics: sliced Wasserstein-2 and the Frechet distance of Gaussian fits."""

from dataclasses import dataclass

from genkit.evaluation import frechet_distance, gaussian_stats, sliced_wasserstein
from genkit.schema import option, positive


class SlicedWasserstein:
    """Sliced W2 over fixed random directions (lower is better)."""

    @dataclass
    class Config:
        projections: int = option(256, "random directions the samples are projected on", positive)
        seed: int = option(0, "seed of the directions: the same seed compares runs on the same directions")

    def __init__(self, options: "SlicedWasserstein.Config", ctx=None):
        self.options = options or SlicedWasserstein.Config()

    def __call__(self, samples, reference) -> float:
        return sliced_wasserstein(samples, reference, self.options.projections, self.options.seed)


class Frechet2D:
    """Frechet distance between Gaussian fits of raw coordinates; not comparable to FID."""

    def __init__(self, options=None, ctx=None):
        pass

    def __call__(self, samples, reference) -> float:
        return frechet_distance(*gaussian_stats(samples), *gaussian_stats(reference))
