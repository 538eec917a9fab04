"""Offline sample-quality measures for Fashion-MNIST in the features of genkit's own small
classifier: a Frechet distance (``fd_fmnist``) and precision and recall (``pr_fmnist``,
Kynkaanniemi et al. 2019). Named apart from FID: other features give numbers that are not
comparable to published FIDs. The reference is the training set, as for FID in the papers."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources

import numpy as np
import torch

from genkit.evaluation import frechet_distance, gaussian_stats
from genkit.evaluation.cache import cached
from genkit.schema import at_least, option, positive
from genkit_fid.fmnist_classifier import WEIGHTS, features


def weights_digest() -> str:
    """Part of every cache key: new weights mean new reference statistics."""
    data = (resources.files("genkit_fid") / WEIGHTS).read_bytes()
    return hashlib.sha256(data).hexdigest()[:16]


def fmnist_refusal(dataset) -> str:
    shape = tuple(dataset.shape)
    return "" if shape == (1, 32, 32) else f"it scores 1x32x32 grey images (the fmnist dataset's), this data has shape {shape}"


def training_features(dataset, batch_size: int) -> np.ndarray:
    return torch.cat([features(images, batch_size) for images in dataset.training_images()]).double().numpy()


class FrechetFMNIST:
    """||mu_s - mu_t||^2 + tr(C_s + C_t - 2 (C_s C_t)^(1/2)) between the classifier features of the
    samples and of the 60,000 training images (lower is better)."""

    @dataclass
    class Config:
        batch_size: int = option(512, "images per classifier call", positive)

    def __init__(self, options: "FrechetFMNIST.Config", ctx=None):
        self.batch_size = (options or self.Config()).batch_size
        self.reference_stats: tuple[np.ndarray, np.ndarray] | None = None

    accepts = staticmethod(fmnist_refusal)

    def prepare(self, dataset, data_options: dict) -> None:
        key = {"evaluator": "fd_fmnist", "weights": weights_digest(), "data": data_options, "split": "train"}
        stats = cached(key, lambda: dict(zip(("mu", "cov"), gaussian_stats(torch.from_numpy(training_features(dataset, self.batch_size))))))
        self.reference_stats = (stats["mu"], stats["cov"])

    def __call__(self, samples: torch.Tensor, reference: torch.Tensor | None = None) -> float:
        """Against the prepared training-set statistics, else against ``reference``'s features."""
        target = self.reference_stats or gaussian_stats(features(reference, self.batch_size))
        return frechet_distance(*gaussian_stats(features(samples, self.batch_size)), *target)


def manifold_radii(points: torch.Tensor, k: int) -> torch.Tensor:
    """Distance from each point to its k-th nearest other point: the radius of its ball."""
    return torch.cat([torch.cdist(chunk, points).kthvalue(k + 1, dim=1).values for chunk in points.split(1024)])


def coverage(queries: torch.Tensor, centres: torch.Tensor, radii: torch.Tensor) -> float:
    """The fraction of ``queries`` inside at least one ball (centre, radius)."""
    inside = [(torch.cdist(chunk, centres) <= radii[None, :]).any(dim=1) for chunk in queries.split(1024)]
    return float(torch.cat(inside).double().mean())


def precision_recall(real: torch.Tensor, fake: torch.Tensor, k: int = 3) -> dict[str, float]:
    """Kynkaanniemi et al. (2019): precision = share of samples inside the real manifold (union of
    k-NN balls of real features), recall = share of real points inside the samples' manifold."""
    return {
        "precision": coverage(fake, real, manifold_radii(real, k)),
        "recall": coverage(real, fake, manifold_radii(fake, k)),
    }


class PrecisionRecallFMNIST:
    """Precision and recall (higher is better) in the same classifier features, against a fixed
    random subset of the training images as large as the sample set (capped by the options)."""

    higher_is_better = frozenset({"precision", "recall"})  # shares of points covered: 1 is best

    @dataclass
    class Config:
        k: int = option(3, "the k of the k-nearest-neighbour balls (the paper's 3)", at_least(1))
        reference_samples: int = option(10000, "training images whose features form the real manifold", positive)
        batch_size: int = option(512, "images per classifier call", positive)

    def __init__(self, options: "PrecisionRecallFMNIST.Config", ctx=None):
        self.options = options or self.Config()
        self.real: torch.Tensor | None = None

    accepts = staticmethod(fmnist_refusal)

    def prepare(self, dataset, data_options: dict) -> None:
        o = self.options
        key = {"evaluator": "pr_fmnist", "weights": weights_digest(), "data": data_options, "split": "train", "n": o.reference_samples}

        def compute() -> dict[str, np.ndarray]:
            all_features = training_features(dataset, o.batch_size)
            chosen = np.random.default_rng(0).permutation(len(all_features))[: o.reference_samples]
            return {"features": all_features[np.sort(chosen)]}

        self.real = torch.from_numpy(cached(key, compute)["features"]).float()

    def __call__(self, samples: torch.Tensor, reference: torch.Tensor | None = None) -> dict[str, float]:
        fake = features(samples, self.options.batch_size).float()
        real = self.real if self.real is not None else features(reference, self.options.batch_size).float()
        return precision_recall(real[: max(len(fake), self.options.k + 1)], fake, self.options.k)
