"""A small Fashion-MNIST classifier whose penultimate layer is the feature space of ``fd_fmnist``.

Offline and tiny on purpose: its Frechet distance is *not* FID (no Inception network, not
comparable with published numbers). Input: (N, 1, 32, 32) in [-1, 1], the 28x28 images zero-padded
to 32x32 with black = -1, exactly as genkit's ``fmnist`` dataset yields them. The weights ship with
the package; ``python -m genkit_fid.train_fmnist_classifier`` rebuilds them.
"""

from __future__ import annotations

import functools
import io
from importlib import resources

import torch
from torch import nn

FEATURE_DIM = 128
CLASSES = 10
WEIGHTS = "weights/fmnist_classifier.pt"
# top-1 accuracy of the shipped (float16) weights on the 10000 test images, as the training script printed it
TEST_ACCURACY = 0.9091


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class FMNISTClassifier(nn.Module):
    """Three conv stages (32 -> 16 -> 8 -> 4 pixels), global average pooling, a 128-d feature layer, a 10-way head."""

    def __init__(self, widths: tuple[int, int, int] = (16, 32, 64), feature_dim: int = FEATURE_DIM):
        super().__init__()
        a, b, c = widths
        self.body = nn.Sequential(
            _block(1, a), nn.MaxPool2d(2),
            _block(a, b), nn.MaxPool2d(2),
            _block(b, c), _block(c, c), nn.MaxPool2d(2),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )
        self.feature = nn.Sequential(nn.Linear(c, feature_dim), nn.ReLU(inplace=True))
        self.head = nn.Linear(feature_dim, CLASSES)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features (N, feature_dim)."""
        return self.feature(self.body(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits (N, 10)."""
        return self.head(self.features(x))


def load_classifier(device: str | torch.device = "cpu") -> FMNISTClassifier:
    """The classifier with the shipped weights, in eval mode, on ``device``."""
    raw = resources.files(__package__).joinpath(WEIGHTS).read_bytes()
    state = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
    model = FMNISTClassifier()
    model.load_state_dict(state)  # float16 weights are cast to the float32 parameters
    return model.to(device).eval()


@functools.lru_cache(maxsize=1)
def _shipped() -> FMNISTClassifier:
    return load_classifier("cpu")


@torch.no_grad()
def features(images: torch.Tensor, batch_size: int = 512, model: FMNISTClassifier | None = None) -> torch.Tensor:
    """Penultimate features, float64 (N, 128) on the CPU, of images (N, 1, 32, 32) in [-1, 1].

    ``model`` defaults to the shipped classifier; the images are moved to its device batch by batch.
    """
    if images.ndim != 4 or tuple(images.shape[1:]) != (1, 32, 32):
        raise ValueError(f"fd_fmnist features need images of shape (N, 1, 32, 32), got {tuple(images.shape)}")
    model = model if model is not None else _shipped()
    device = next(model.parameters()).device
    out = [model.features(part.to(device, torch.float32)).double().cpu() for part in images.split(batch_size)]
    return torch.cat(out) if out else torch.empty(0, model.head.in_features, dtype=torch.float64)
