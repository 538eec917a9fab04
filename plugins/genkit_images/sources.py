"""What a stream draws images from: ``load(indices) -> (uint8 (b, C, R, R), labels or None)``.

``decodes`` says whether loading costs enough (files to decode, pages to read) that DataLoader
workers pay off; in-memory arrays are indexed in the main process.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from genkit.errors import GenkitError
from genkit_images.formats import decode
from genkit_images.geometry import Fit, fit


def check_labels(labels: np.ndarray, classes: int, where: object) -> torch.Tensor:
    """Class labels as a LongTensor, each in 0..classes-1 (else one GenkitError naming ``where``)."""
    labels = torch.from_numpy(np.array(labels, dtype=np.int64))  # a copy: never a view of a read-only map
    if len(labels) and (labels.min() < 0 or labels.max() >= classes):
        raise GenkitError(f"{where}: labels must lie in 0..{classes - 1}, found {int(labels.min())}..{int(labels.max())}")
    return labels


class ArraySource:
    """Images preloaded as one uint8 tensor at the final resolution: indexing is all it takes."""

    decodes = False

    def __init__(self, images: torch.Tensor, labels: torch.Tensor | None):
        self.images, self.labels = images, labels
        self.shape = tuple(images.shape[1:])

    def __len__(self) -> int:
        return len(self.images)

    def load(self, indices: Sequence[int] | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        indices = torch.as_tensor(indices, dtype=torch.long)
        return self.images[indices], None if self.labels is None else self.labels[indices]

    @classmethod
    def fitted(cls, images: np.ndarray, labels: torch.Tensor | None, resolution: int, mode: Fit) -> "ArraySource":
        """From uint8 (N, C, H, W), padded or resized once to the resolution."""
        return cls(fit(torch.from_numpy(np.array(images, dtype=np.uint8, order="C")), resolution, mode), labels)  # a writable copy


class RowSource:
    """Images stored as rows of C*H*W bytes in several arrays (ImageNet's .npz batches), usually
    memory-mapped, gathered and fitted to the resolution batch by batch."""

    def __init__(self, arrays: list[np.ndarray], labels: torch.Tensor | None, native: tuple[int, int, int], resolution: int, mode: Fit):
        self.arrays, self.labels, self.native, self.mode = arrays, labels, native, mode
        self.starts = np.cumsum([0] + [len(a) for a in arrays])
        self.shape = (native[0], resolution, resolution)
        self.decodes = any(isinstance(a, np.memmap) for a in arrays)

    def __len__(self) -> int:
        return int(self.starts[-1])

    def load(self, indices: Sequence[int] | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        indices = np.asarray(indices, dtype=np.int64)
        chunks = np.searchsorted(self.starts, indices, side="right") - 1
        rows = np.empty((len(indices), int(np.prod(self.native))), dtype=np.uint8)
        for chunk in np.unique(chunks):
            here = chunks == chunk
            rows[here] = self.arrays[chunk][indices[here] - self.starts[chunk]]
        images = fit(torch.from_numpy(rows).view(-1, *self.native), self.shape[-1], self.mode)
        return images, None if self.labels is None else self.labels[torch.from_numpy(indices)]

    def __getstate__(self) -> dict:
        """Workers started by spawn or forkserver reopen the memory maps instead of copying them."""
        state = dict(self.__dict__)
        state["arrays"] = [_reopen_args(a) if isinstance(a, np.memmap) else a for a in self.arrays]
        return state

    def __setstate__(self, state: dict) -> None:
        state["arrays"] = [np.memmap(*a[0], **a[1]) if isinstance(a, tuple) else a for a in state["arrays"]]
        self.__dict__.update(state)


def _reopen_args(array: np.memmap) -> tuple[tuple, dict]:
    order = "F" if array.flags.f_contiguous and not array.flags.c_contiguous else "C"
    return (array.filename,), dict(dtype=array.dtype, mode="r", offset=array.offset, shape=array.shape, order=order)


class FolderSource:
    """Image files decoded, centre-cropped and resized on demand (in DataLoader workers)."""

    decodes = True

    def __init__(self, files: list[Path], labels: torch.Tensor | None, resolution: int):
        self.files, self.labels, self.resolution = files, labels, resolution
        self.shape = (3, resolution, resolution)

    def __len__(self) -> int:
        return len(self.files)

    def load(self, indices: Sequence[int] | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        indices = torch.as_tensor(indices, dtype=torch.long)
        images = torch.stack([decode(self.files[i], self.resolution) for i in indices.tolist()])
        return images, None if self.labels is None else self.labels[indices]
