"""An endless, resumable stream of training batches.

Each rank of ``world_size`` reads its own slice of every epoch's permutation (seeded by
(seed, epoch)); its slices, epoch after epoch, form one endless sequence of examples that is
cut into batches, so a batch may straddle two epochs and nothing is dropped but the
``size % world_size`` examples no rank gets in an epoch. Batch k of the stream is a pure
function of (seed, rank, world_size, batch_size, k), flips included, so the position (batches
handed to the caller) is all the state a checkpoint needs.
"""

from __future__ import annotations

import itertools
import os
from typing import Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader

from genkit.errors import GenkitError
from genkit_images.geometry import flip_some, to_float

ORDER, FLIPS, REFERENCE = 1, 2, 3  # what a derived generator is for
PREFETCH = 4  # batches each worker loads ahead


def derived_generator(*numbers: int) -> torch.Generator:
    """A CPU generator seeded by a hash of ``numbers``: independent streams that never touch torch's global RNG."""
    words = np.random.SeedSequence([n % 2**63 for n in numbers]).generate_state(2, np.uint32)
    return torch.Generator().manual_seed(int(words[0]) << 32 | int(words[1]))


def default_workers(option: int | None) -> int:
    return min(4, os.cpu_count() or 1) if option is None else option


class Order:
    """Which example sits at each offset of one rank's endless sequence."""

    def __init__(self, size: int, seed: int, rank: int, world_size: int):
        if not 0 <= rank < world_size:
            raise GenkitError(f"rank must lie in 0..{world_size - 1}, got {rank}")
        if size < world_size:
            raise GenkitError(f"{size} images cannot be shared among {world_size} ranks")
        self.size, self.seed, self.rank, self.share = size, seed, rank, size // world_size
        self._cached: tuple[int, torch.Tensor] | None = None

    def epoch(self, epoch: int) -> torch.Tensor:
        """This rank's slice of the permutation of epoch ``epoch``."""
        if self._cached is None or self._cached[0] != epoch:
            permutation = torch.randperm(self.size, generator=derived_generator(ORDER, self.seed, epoch))
            self._cached = (epoch, permutation[self.rank * self.share : (self.rank + 1) * self.share])
        return self._cached[1]

    def take(self, start: int, count: int) -> torch.Tensor:
        """The examples at offsets start .. start + count - 1."""
        pieces = []
        while count > 0:
            epoch, offset = divmod(start, self.share)
            piece = self.epoch(epoch)[offset : offset + count]
            pieces.append(piece)
            start, count = start + len(piece), count - len(piece)
        return torch.cat(pieces)


class IndexBatches:
    """The index lists of batches ``start``, ``start + 1``, ...: a DataLoader sampler."""

    def __init__(self, order: Order, batch_size: int, start: int):
        self.order, self.batch_size, self.start = order, batch_size, start

    def __iter__(self) -> Iterator[list[int]]:
        for position in itertools.count(self.start):
            yield self.order.take(position * self.batch_size, self.batch_size).tolist()


class _Failure:
    """A GenkitError raised in a worker, carried back as a value so it stays one line."""

    def __init__(self, message: str):
        self.message = message


class _Batches:
    """Map-style dataset whose item is a whole batch: ``dataset[indices] -> (float images, labels)``."""

    def __init__(self, source):
        self.source = source

    def __getitem__(self, indices: list[int]):
        try:
            images, labels = self.source.load(indices)
        except GenkitError as error:
            return _Failure(str(error))
        return to_float(images), labels


def load_batches(source, batches, num_workers: int, pin: bool = True) -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
    """Float batches in [-1, 1] for the index lists ``batches`` yields, in order; in DataLoader
    workers when the source decodes and ``num_workers`` > 0; pinned when ``pin`` and CUDA is available."""
    pin = pin and torch.cuda.is_available()
    if num_workers == 0 or not source.decodes:
        for indices in batches:
            images, labels = source.load(indices)
            images = to_float(images)
            yield (images.pin_memory() if pin else images), labels
        return
    loader = DataLoader(
        _Batches(source), sampler=batches, batch_size=None, num_workers=num_workers, pin_memory=pin,
        prefetch_factor=PREFETCH, generator=torch.Generator(),  # its own generator: the global RNG stays untouched
    )
    for item in loader:
        if isinstance(item, _Failure):
            raise GenkitError(item.message)
        yield item[0], item[1]


class ImageStream:
    """``next() -> (images, labels)``: float32 (batch, C, R, R) in [-1, 1], labels (batch,) or None."""

    def __init__(self, source, batch_size: int, seed: int, rank: int = 0, world_size: int = 1, *,
                 flip: bool = False, labels: bool = True, num_workers: int = 0):
        if batch_size <= 0:
            raise GenkitError(f"batch_size must be positive, got {batch_size}")
        self.source, self.batch_size, self.flip, self.labels = source, batch_size, flip, labels
        self.seed, self.rank, self.world_size, self.num_workers = seed, rank, world_size, num_workers
        self.order = Order(len(source), seed, rank, world_size)
        self.position = 0  # batches handed to the caller
        self._batches: Iterator | None = None

    def next(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self._batches is None:
            self._batches = load_batches(self.source, IndexBatches(self.order, self.batch_size, self.position), self.num_workers)
        images, labels = next(self._batches)
        if self.flip:
            flips = torch.rand(len(images), generator=derived_generator(FLIPS, self.seed, self.rank, self.position)) < 0.5
            flip_some(images, flips)
        self.position += 1
        return images, labels if self.labels else None

    def _identity(self) -> dict[str, int]:
        return {"batch_size": self.batch_size, "seed": self.seed, "rank": self.rank,
                "world_size": self.world_size, "size": len(self.source)}

    def state_dict(self) -> dict[str, int]:
        return {"batches": self.position, **self._identity()}

    def load_state_dict(self, state: dict) -> None:
        """Go on after the batches ``state`` counts; the stream must be built with the same arguments."""
        changed = [f"{k} {state.get(k)} -> {v}" for k, v in self._identity().items() if state.get(k) != v]
        if changed:
            raise GenkitError(f"the data stream cannot resume: it was saved with other settings ({', '.join(changed)})")
        self.close()
        self.position = int(state["batches"])

    def close(self) -> None:
        """Stop the workers; the next ``next()`` starts them again at the current position."""
        if self._batches is not None:
            self._batches.close()
        self._batches = None
