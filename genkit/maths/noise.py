"""Per-sample random streams, so samples do not depend on batch size or process count."""

from __future__ import annotations

from typing import Sequence

import torch


class PerSampleNoise:
    """Each sample draws from its own generator seeded by its index in the whole sample set."""

    def __init__(self, seeds: Sequence[int], device: torch.device | str = "cpu"):
        self.generators = [torch.Generator().manual_seed(int(seed)) for seed in seeds]
        self.device = torch.device(device)

    def randn(self, *shape: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        draws = [torch.randn(shape, generator=g, dtype=dtype) for g in self.generators]
        return torch.stack(draws).to(self.device)

    def randint(self, high: int) -> torch.Tensor:
        """One integer in [0, high) per sample (a class label), from the sample's own generator."""
        draws = [torch.randint(high, (), generator=g) for g in self.generators]
        return torch.stack(draws).to(self.device)

    def __len__(self) -> int:
        return len(self.generators)
