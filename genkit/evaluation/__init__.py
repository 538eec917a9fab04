"""Sample-quality distances (pure functions) and the helper that samples and scores a model."""

from genkit.evaluation.distances import frechet_distance, gaussian_stats, sliced_wasserstein
from genkit.evaluation.scoring import draw_samples, score

__all__ = ["draw_samples", "frechet_distance", "gaussian_stats", "score", "sliced_wasserstein"]
