"""Readers of the files image datasets come in: CIFAR-10 pickles, .npz arrays, PNG/JPEG images."""

from __future__ import annotations

import pickle
import re
import struct
import zipfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from genkit.errors import GenkitError

try:
    from numpy._core import multiarray as _multiarray, numeric as _numeric
except ImportError:  # numpy < 2
    from numpy.core import multiarray as _multiarray, numeric as _numeric

CIFAR_FOLDER = "cifar-10-batches-py"
CIFAR_SPLITS = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg"}


# ----------------------------------------------------------------------------- CIFAR-10


def read_cifar(folder: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images (N, 3, 32, 32) and labels (N,) of a split in torchvision's ``cifar-10-batches-py``
    layout, read directly: torchvision's class insists on the md5 sums of the official files."""
    parts = [_cifar_batch(folder / name) for name in CIFAR_SPLITS[split]]
    images = np.concatenate([p[0] for p in parts])
    return images.reshape(-1, 3, 32, 32), np.concatenate([p[1] for p in parts])


def _latin1(text: str, encoding: str = "latin1") -> bytes:
    """The ``_codecs.encode`` a pickle of bytes calls, limited to the one codec it uses."""
    if encoding != "latin1":
        raise pickle.UnpicklingError(f"codec {encoding!r}")
    return text.encode("latin1")


class CifarUnpickler(pickle.Unpickler):
    """Unpickles what a CIFAR-10 batch holds (dicts, lists, strings, numbers, numpy arrays) and
    nothing else: a plain pickle.load would run whatever callable a crafted file names."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"): _multiarray._reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): _multiarray._reconstruct,
        ("numpy.core.multiarray", "scalar"): _multiarray.scalar,
        ("numpy._core.multiarray", "scalar"): _multiarray.scalar,
        ("numpy.core.numeric", "_frombuffer"): _numeric._frombuffer,
        ("numpy._core.numeric", "_frombuffer"): _numeric._frombuffer,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): _latin1,
        **{(module, t.__name__): t for module in ("builtins", "__builtin__") for t in (list, dict, tuple, set, frozenset, bytes, bytearray, str, int, float, bool, complex)},
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"it names {module}.{name}, which a CIFAR-10 batch never holds; refused, not run")
        return self.ALLOWED[module, name]


def _cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    if not path.is_file():
        raise GenkitError(f"CIFAR-10 file {path} is missing (the folder needs data_batch_1..5 and test_batch)")
    try:
        with open(path, "rb") as file:
            entry = CifarUnpickler(file, encoding="latin1").load()
        if not isinstance(entry, dict):
            raise TypeError(f"a {type(entry).__name__}, not a dict")
        data = np.asarray(entry.get("data", entry.get(b"data")), dtype=np.uint8)
        labels = np.asarray(entry.get("labels", entry.get(b"labels")), dtype=np.int64)
    except Exception as error:  # a pickle can fail in many ways; all mean a broken or hostile file
        raise GenkitError(f"{path}: not a CIFAR-10 batch ({type(error).__name__}: {(str(error).strip().splitlines() or [''])[0]})") from None
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or labels.shape != (len(data),):
        raise GenkitError(f"{path}: not a CIFAR-10 batch (data {data.shape}, labels {labels.shape})")
    return data, labels


# ----------------------------------------------------------------------------- .npz arrays


def npz_member(path: Path, key: str, required: bool = True) -> np.ndarray | None:
    """Array ``key`` of an .npz file, memory-mapped when it is stored uncompressed (ImageNet's
    batches are gigabytes), else read; None when it is missing and not ``required``."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = [n.removesuffix(".npy") for n in archive.namelist()]
            if key not in names:
                if required:
                    raise GenkitError(f"{path}: no array '{key}' (it has {', '.join(names) or 'none'})")
                return None
            info = archive.getinfo(key + ".npy")
            with archive.open(info) as member:
                if info.compress_type != zipfile.ZIP_STORED:
                    return np.lib.format.read_array(member, allow_pickle=False)
                shape, fortran, dtype = _npy_header(member)
                if dtype.hasobject:  # pointers read from a file: refused, as allow_pickle=False does
                    raise ValueError(f"array '{key}' holds Python objects, which genkit does not load")
                offset = _member_start(path, info) + member.tell()
        return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape, order="F" if fortran else "C")
    except (OSError, ValueError, zipfile.BadZipFile) as error:
        raise GenkitError(f"{path}: not a readable .npz file ({error})") from None


def _npy_header(member) -> tuple[tuple[int, ...], bool, np.dtype]:
    version = np.lib.format.read_magic(member)
    read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    return read(member)


def _member_start(path: Path, info: zipfile.ZipInfo) -> int:
    """Where a stored zip member's bytes begin: after its local header, whose name and extra
    field lengths may differ from the central directory's."""
    with open(path, "rb") as file:
        file.seek(info.header_offset)
        header = file.read(30)
    name_length, extra_length = struct.unpack("<HH", header[26:30])
    return info.header_offset + 30 + name_length + extra_length


def channels_first(images: np.ndarray, path: Path) -> np.ndarray:
    """(N, H, W, C) or (N, C, H, W) with C in 1, 3 -> (N, C, H, W). Three axes are refused: one
    image (H, W, C) and a stack of gray ones (N, H, W) look alike."""
    if images.ndim == 3:
        raise GenkitError(
            f"{path}: images of shape {images.shape} have 3 axes; give 4, (N, H, W, C) or (N, C, H, W) "
            f"(a stack of gray images: images[..., None])"
        )
    if images.ndim == 4 and images.shape[1] in (1, 3) and images.shape[3] not in (1, 3):
        return images
    if images.ndim == 4 and images.shape[3] in (1, 3):
        return images.transpose(0, 3, 1, 2)
    raise GenkitError(f"{path}: images of shape {images.shape} are not (N, H, W, C) or (N, C, H, W) with 1 or 3 channels")


def numbered_files(folder: Path, pattern: str) -> list[Path]:
    """Files matching ``pattern`` (one ``{}`` for a number) in ``folder`` and its subfolders, by number;
    a gap in the numbers 1..k is an error (a batch left out of an unzipped archive)."""
    regex = re.compile(re.escape(pattern).replace(r"\{\}", r"(\d+)") + "$")
    found = {}
    for path in [*folder.glob(pattern.format("*")), *folder.glob("*/" + pattern.format("*"))]:
        match = regex.match(path.name)
        if match:
            found.setdefault(int(match.group(1)), path)
    missing = [n for n in range(1, max(found, default=0) + 1) if n not in found]
    if missing:
        raise GenkitError(f"{folder}: {pattern.format(missing[0])} is missing (found {len(found)} of {max(found)} batches)")
    return [found[n] for n in sorted(found)]


# ----------------------------------------------------------------------------- image files


def image_files(root: Path) -> list[Path]:
    """PNG and JPEG files under ``root`` (all depths), in a fixed order."""
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def decode(path: Path, resolution: int) -> torch.Tensor:
    """uint8 (3, R, R): an RGB image, centre-cropped to a square and resized (bicubic, antialiased)."""
    try:
        with Image.open(path) as image:
            image.draft("RGB", (resolution, resolution))  # JPEG: decode at a reduced scale when it can
            image = image.convert("RGB")
            width, height = image.size
            side = min(width, height)
            left, top = (width - side) // 2, (height - side) // 2
            box = (left, top, left + side, top + side)
            image = image.resize((resolution, resolution), Image.Resampling.BICUBIC, box=box)
    except (OSError, ValueError, Image.DecompressionBombError) as error:
        raise GenkitError(f"{path}: cannot read the image ({error})") from None
    return torch.from_numpy(np.array(image, dtype=np.uint8)).permute(2, 0, 1)
