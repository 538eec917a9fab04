"""The IDX format of MNIST and Fashion-MNIST, plain or gzipped, and where its files live."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from genkit.errors import GenkitError

# IDX type byte -> numpy dtype (big-endian, as the format stores numbers)
_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
SPLITS = {"train": "train", "test": "t10k"}


def read_idx(path: Path) -> np.ndarray:
    """The array in an IDX file (``.gz`` or plain); a malformed file is one GenkitError."""
    with open(path, "rb") as file:
        raw = file.read()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as error:
            raise GenkitError(f"{path}: broken gzip data ({error})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _DTYPES:
        raise GenkitError(f"{path}: not an IDX file (bad magic number)")
    dims = raw[3]
    header = 4 + 4 * dims
    shape = tuple(int(d) for d in np.frombuffer(raw[4:header], dtype=">u4")) if len(raw) >= header else ()
    dtype = np.dtype(_DTYPES[raw[2]])
    expected = header + int(np.prod(shape)) * dtype.itemsize
    if len(shape) != dims or len(raw) != expected:
        raise GenkitError(f"{path}: truncated or padded IDX file ({len(raw)} bytes, its header says {expected})")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def idx_file(folder: Path, stem: str) -> Path | None:
    """``folder/stem`` or ``folder/stem.gz``, whichever exists (the plain file first)."""
    for name in (stem, stem + ".gz"):
        if (folder / name).is_file():
            return folder / name
    return None


def split_files(folder: Path, split: str) -> tuple[Path, Path] | None:
    """The (images, labels) IDX files of ``split`` ("train" or "test") in ``folder``, or None."""
    prefix = SPLITS[split]
    images = idx_file(folder, f"{prefix}-images-idx3-ubyte")
    labels = idx_file(folder, f"{prefix}-labels-idx1-ubyte")
    return (images, labels) if images and labels else None


def read_split(files: tuple[Path, Path]) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images (N, H, W) and int64 labels (N,) from an (images, labels) pair of IDX files."""
    images, labels = read_idx(files[0]), read_idx(files[1])
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels) or images.dtype != np.uint8:
        raise GenkitError(
            f"{files[0]} and {files[1]} do not match: images {images.shape} {images.dtype}, labels {labels.shape}"
        )
    return images, labels.astype(np.int64)
