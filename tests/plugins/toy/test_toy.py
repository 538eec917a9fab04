"""The 2-D toy data, MLP and sample distances."""

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from genkit.evaluation import frechet_distance, gaussian_stats, sliced_wasserstein
from genkit_toy.data import TOY_DISTRIBUTIONS, ToyDataset, checkerboard
from genkit_toy.mlp import MLP


@pytest.mark.parametrize("name", sorted(TOY_DISTRIBUTIONS))
def test_toy_data_shape_scale_and_reproducible_reference(name):
    data = ToyDataset(name)
    batch, labels = data.stream(4000, seed=0).next()
    assert labels is None and data.label_dim == 0
    assert batch.shape == (4000, 2) and torch.isfinite(batch).all()
    assert 0.2 < batch.std().item() < 1.0  # near sigma_data = 0.5
    assert torch.equal(data.reference(100, seed=3), data.reference(100, seed=3))
    assert not torch.equal(data.reference(100, seed=3), data.reference(100, seed=4))


def test_checkerboard_only_fills_dark_cells():
    points = checkerboard(20_000, torch.Generator().manual_seed(0))
    cells = ((points + 1) / 0.5).floor().long().clamp(0, 3)
    assert torch.all((cells[:, 0] + cells[:, 1]) % 2 == 0)
    assert len(torch.unique(cells, dim=0)) == 8


def test_mlp_maps_to_the_input_shape():
    net = MLP(MLP.Config(width=16, depth=2, embedding_dim=8), SimpleNamespace(data_shape=(2,)))
    out = net(torch.randn(5, 2), torch.randn(5))
    assert out.shape == (5, 2)


def test_sliced_wasserstein_zero_on_identical_sets_and_shift_size():
    a = torch.randn(2000, 2, generator=torch.Generator().manual_seed(0))
    assert sliced_wasserstein(a, a) == 0.0
    # Shifting by v: each direction theta sees |v.theta|; E[(v.theta)^2] = |v|^2 / d.
    shift = torch.tensor([3.0, 4.0])
    assert sliced_wasserstein(a + shift, a, projections=4096) == pytest.approx(5 / math.sqrt(2), rel=0.05)


def test_sliced_wasserstein_needs_equal_sizes():
    with pytest.raises(ValueError):
        sliced_wasserstein(torch.zeros(3, 2), torch.zeros(4, 2))


def test_frechet_distance_closed_forms():
    mu, cov = np.array([1.0, -2.0]), np.array([[2.0, 0.3], [0.3, 1.0]])
    assert frechet_distance(mu, cov, mu, cov) == pytest.approx(0.0, abs=1e-10)
    # Isotropic Gaussians: |mu1 - mu2|^2 + d (s1 - s2)^2
    value = frechet_distance(np.zeros(2), 4 * np.eye(2), np.array([3.0, 4.0]), np.eye(2))
    assert value == pytest.approx(25 + 2 * (2 - 1) ** 2)


def test_gaussian_stats_of_samples():
    x = torch.randn(50_000, 2, generator=torch.Generator().manual_seed(1)) * torch.tensor([1.0, 3.0])
    mu, cov = gaussian_stats(x)
    np.testing.assert_allclose(mu, [0, 0], atol=0.05)
    np.testing.assert_allclose(cov, np.diag([1.0, 9.0]), atol=0.15)
