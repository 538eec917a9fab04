"""2-D distributions drawn on the fly, scaled to roughly [-1, 1] so sigma_data = 0.5 fits."""

from __future__ import annotations

import math
from typing import Callable

import torch

Generator = torch.Generator | None


def checkerboard(n: int, g: Generator) -> torch.Tensor:
    """Uniform on the 8 dark cells of a 4x4 board over [-1, 1]^2."""
    x = torch.rand(n, generator=g) * 2 - 1
    column = ((x + 1) / 0.5).floor().clamp(max=3)
    row = 2 * torch.randint(0, 2, (n,), generator=g) + column.long() % 2
    y = -1 + 0.5 * row + 0.5 * torch.rand(n, generator=g)
    return torch.stack([x, y], dim=1)


def eight_gaussians(n: int, g: Generator) -> torch.Tensor:
    angle = torch.randint(0, 8, (n,), generator=g) * (2 * math.pi / 8)
    centers = torch.stack([angle.cos(), angle.sin()], dim=1)
    return 0.9 * centers + 0.05 * torch.randn(n, 2, generator=g)


def two_moons(n: int, g: Generator) -> torch.Tensor:
    t = torch.rand(n, generator=g) * math.pi
    upper = torch.rand(n, generator=g) < 0.5
    x = torch.where(upper, t.cos(), 1 - t.cos())
    y = torch.where(upper, t.sin(), 0.5 - t.sin())
    points = torch.stack([x - 0.5, y - 0.25], dim=1) * 0.8
    return points + 0.04 * torch.randn(n, 2, generator=g)


def swiss_roll(n: int, g: Generator) -> torch.Tensor:
    t = 1.5 * math.pi * (1 + 2 * torch.rand(n, generator=g))
    points = torch.stack([t * t.cos(), t * t.sin()], dim=1) / 10
    return points + 0.03 * torch.randn(n, 2, generator=g)


TOY_DISTRIBUTIONS: dict[str, Callable[[int, Generator], torch.Tensor]] = {
    "checkerboard": checkerboard,
    "eight-gaussians": eight_gaussians,
    "moons": two_moons,
    "swiss-roll": swiss_roll,
}


class ToyStream:
    """Fresh points for every batch from torch's global generator, whose state the training
    checkpoint already holds: the stream itself has no state."""

    def __init__(self, draw, batch_size: int):
        self.draw, self.batch_size = draw, batch_size

    def next(self) -> tuple[torch.Tensor, None]:
        return self.draw(self.batch_size, None), None

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


class ToyDataset:
    shape = (2,)
    clamp = None
    evaluators = ("swd", "frechet2d")
    label_dim = 0

    def __init__(self, name: str):
        self.name = name
        self.draw = TOY_DISTRIBUTIONS[name]

    @classmethod
    def factory(cls, name: str):
        def make(options, ctx) -> "ToyDataset":
            return cls(name)

        make.__doc__ = f"2-D toy distribution '{name}'"
        return make

    def stream(self, batch_size: int, seed: int, rank: int = 0, world_size: int = 1) -> ToyStream:
        return ToyStream(self.draw, batch_size)  # each rank's global generator is seeded apart

    def reference(self, n: int, seed: int) -> torch.Tensor:
        return self.draw(n, torch.Generator().manual_seed(10_000 + seed))
