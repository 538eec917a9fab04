"""Train the fd_fmnist feature classifier and write its weights (float16 state_dict).

    python -m genkit_fid.train_fmnist_classifier [--epochs N] [--out PATH] [--root DIR]

Reads Fashion-MNIST through genkit's ``fmnist`` dataset (28x28 padded to 32x32, [-1, 1]), trains on
the 60000 training images with Adam, a cosine learning-rate decay and random horizontal flips,
from a fixed seed, and reports the accuracy of the written (float16) weights on the 10000 test images.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from genkit_fid.fmnist_classifier import FMNISTClassifier
from genkit_images.datasets import FashionMNIST
from genkit_images.geometry import to_float

DEFAULT_OUT = Path(__file__).parent / "weights" / "fmnist_classifier.pt"


@torch.no_grad()
def accuracy(model: FMNISTClassifier, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 1000) -> float:
    """Top-1 accuracy of ``model`` (eval mode) on uint8 images (N, 1, 32, 32)."""
    model.eval()
    hits = sum(int((model(to_float(x)).argmax(1) == y).sum()) for x, y in zip(images.split(batch_size), labels.split(batch_size)))
    return hits / len(labels)


def half(state: dict) -> dict:
    return {k: v.half() if v.is_floating_point() else v for k, v in state.items()}


def train(epochs: int, batch_size: int = 256, lr: float = 3e-3, seed: int = 0, root: str | None = None) -> tuple[FMNISTClassifier, float]:
    """The trained classifier and its training time in seconds."""
    data = FashionMNIST(FashionMNIST.Config(root=root))
    images, labels = data.train.images, data.train.labels
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    model = FMNISTClassifier()
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    steps = epochs * math.ceil(len(labels) / batch_size)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * step / steps)))
    start = time.perf_counter()
    for epoch in range(epochs):
        model.train()
        total = 0.0
        for batch in torch.randperm(len(labels), generator=generator).split(batch_size):
            x = to_float(images[batch])
            flips = torch.rand(len(batch), generator=generator) < 0.5
            x[flips] = x[flips].flip(-1)
            loss = F.cross_entropy(model(x), labels[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            total += float(loss.detach()) * len(batch)
        print(f"epoch {epoch + 1}/{epochs}: loss {total / len(labels):.4f} ({time.perf_counter() - start:.0f} s)", flush=True)
    return model, time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--root", default=None, help="folder with the Fashion-MNIST IDX files (default: genkit's usual places)")
    args = parser.parse_args(argv)

    model, seconds = train(args.epochs, root=args.root)
    test = FashionMNIST(FashionMNIST.Config(root=args.root)).held_out()
    full = accuracy(model, test.images, test.labels)
    state = half(model.state_dict())
    model.load_state_dict(state)  # measure what ships: the float16-rounded weights
    shipped = accuracy(model, test.images, test.labels)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, args.out)
    params = sum(p.numel() for p in model.parameters())
    print(f"training time {seconds:.1f} s; {params} parameters")
    print(f"test accuracy {100 * shipped:.2f}% (float16 weights; float32: {100 * full:.2f}%) on {len(test)} test images")
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
