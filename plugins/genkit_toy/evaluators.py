"""2-D sample metrics: sliced Wasserstein-2 and the Frechet distance of Gaussian fits."""

from genkit.evaluation import frechet_distance, gaussian_stats, sliced_wasserstein


class SlicedWasserstein:
    """Sliced W2 over 256 fixed random directions (lower is better)."""

    def __init__(self, options, ctx):
        pass

    def __call__(self, samples, reference) -> float:
        return sliced_wasserstein(samples, reference)


class Frechet2D:
    """Frechet distance between Gaussian fits of raw coordinates; not comparable to FID."""

    def __init__(self, options, ctx):
        pass

    def __call__(self, samples, reference) -> float:
        return frechet_distance(*gaussian_stats(samples), *gaussian_stats(reference))
