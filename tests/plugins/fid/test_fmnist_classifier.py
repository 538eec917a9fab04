"""The shipped Fashion-MNIST feature classifier behind fd_fmnist: it loads, its features have the
documented shape, and it still classifies the test images about as well as its training run reported."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from genkit_fid.fmnist_classifier import FEATURE_DIM, TEST_ACCURACY, features, load_classifier

DEBIAN = Path("/usr/share/datasets/fashion-mnist")


def test_shipped_weights_load_in_eval_mode():
    model = load_classifier()
    assert not model.training
    assert all(p.dtype == torch.float32 and p.device.type == "cpu" for p in model.parameters())


def test_features_shape_dtype_and_batching():
    images = torch.rand(7, 1, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    out = features(images, batch_size=3)
    assert out.shape == (7, FEATURE_DIM) and out.dtype == torch.float64 and not out.requires_grad
    assert torch.allclose(out, features(images), atol=1e-5)  # batch size does not matter in eval mode
    assert features(images[:0]).shape == (0, FEATURE_DIM)
    with pytest.raises(ValueError, match="32, 32"):
        features(torch.zeros(2, 1, 28, 28))


@pytest.mark.skipif(not DEBIAN.is_dir(), reason=f"needs Fashion-MNIST in {DEBIAN}")
def test_accuracy_on_1000_test_images_matches_the_reported_figure():
    from genkit_images.geometry import fit, to_float
    from genkit_images.idx import read_split, split_files

    images, labels = read_split(split_files(DEBIAN, "test"))
    x = to_float(fit(torch.from_numpy(images[:1000, None].copy()), 32, "pad"))
    with torch.no_grad():
        predicted = load_classifier()(x).argmax(1)
    accuracy = (predicted == torch.from_numpy(labels[:1000])).double().mean().item()
    assert abs(accuracy - TEST_ACCURACY) <= 0.02, f"accuracy {accuracy:.4f} vs reported {TEST_ACCURACY:.4f}"
