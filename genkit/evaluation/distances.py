"""Distances between two sets of samples."""

from __future__ import annotations

import warnings

import numpy as np
import scipy.linalg
import torch


def sliced_wasserstein(
    a: torch.Tensor, b: torch.Tensor, projections: int = 256, seed: int = 0
) -> float:
    """Sliced Wasserstein-2: root mean over random directions of the 1-D W2^2 of projections.

    Both sets must have the same size; in 1-D the optimal coupling matches sorted values.
    """
    if a.shape != b.shape:
        raise ValueError(f"sliced_wasserstein needs equal shapes, got {tuple(a.shape)} and {tuple(b.shape)}")
    a, b = a.flatten(1).double(), b.flatten(1).double()
    generator = torch.Generator().manual_seed(seed)
    directions = torch.randn(a.shape[1], projections, generator=generator, dtype=torch.float64)
    directions /= directions.norm(dim=0, keepdim=True)
    a_proj = (a.cpu() @ directions).sort(dim=0).values
    b_proj = (b.cpu() @ directions).sort(dim=0).values
    return float(((a_proj - b_proj) ** 2).mean().sqrt())


def gaussian_stats(samples: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of flattened samples (or of their features)."""
    x = samples.flatten(1).double().cpu().numpy()
    return x.mean(axis=0), np.atleast_2d(np.cov(x, rowvar=False))


def frechet_distance(mu1: np.ndarray, cov1: np.ndarray, mu2: np.ndarray, cov2: np.ndarray, eps: float = 1e-6) -> float:
    """||mu1 - mu2||^2 + tr(C1 + C2 - 2 (C1 C2)^(1/2)), the FID formula on given statistics."""
    with warnings.catch_warnings():  # a singular product is expected for rank-deficient features
        warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)
        root = scipy.linalg.sqrtm(cov1 @ cov2)
    if not np.isfinite(root).all():  # singular covariances (features that are always 0): regularise
        offset = np.eye(len(cov1)) * eps
        root = scipy.linalg.sqrtm((cov1 + offset) @ (cov2 + offset))
    if np.iscomplexobj(root):
        root = root.real  # numerical noise of a near-singular product
    value = np.sum((mu1 - mu2) ** 2) + np.trace(cov1) + np.trace(cov2) - 2 * np.trace(root)
    return float(max(value, 0.0))
