"""Sample-quality distances (pure functions) and the helper that samples and scores a model."""

from genkit.evaluation.distances import frechet_distance, gaussian_stats, sliced_wasserstein
from genkit.evaluation.scoring import (
    FLOOR_SEED,
    REFERENCE_SEED,
    data_floor,
    build_evaluators,
    draw_samples,
    reference_data,
    score,
    score_against_data,
)

__all__ = [
    "FLOOR_SEED",
    "REFERENCE_SEED",
    "data_floor",
    "build_evaluators",
    "draw_samples",
    "frechet_distance",
    "gaussian_stats",
    "reference_data",
    "score",
    "score_against_data",
    "sliced_wasserstein",
]
