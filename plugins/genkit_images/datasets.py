"""The registered image datasets: where their files are found, and their options."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch

from genkit.errors import GenkitError
from genkit.schema import non_negative, option, positive
from genkit_images.formats import CIFAR_FOLDER, channels_first, image_files, npz_member, numbered_files, read_cifar
from genkit_images.geometry import Fit
from genkit_images.idx import read_split, split_files
from genkit_images.sources import ArraySource, FolderSource, RowSource, check_labels
from genkit_images.stream import REFERENCE, ImageStream, default_workers, derived_generator, load_batches

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
REFERENCE_BATCH = 256


def cache_folder() -> Path:
    """Where downloads go when data.root is unset (and where genkit looks for them)."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "genkit" / "datasets"


def locate(what: str, places: list[Path], present: Callable[[Path], bool], hint: str, download=None) -> Path:
    """The first place where ``present`` holds, after ``download()`` if none does and one is given;
    else one GenkitError naming every place looked in and how to provide the data."""
    for attempt in range(2 if download else 1):
        if attempt:
            download()
        for place in places:
            if present(place):
                return place
    raise GenkitError(f"{what} not found (looked in {', '.join(map(str, places))}); {hint}")


def torchvision_download(name: str, target: Path) -> Callable[[], None]:
    """Downloads torchvision.datasets.<name> into ``target``; a failure is one GenkitError."""

    def download() -> None:
        import torchvision.datasets

        try:
            getattr(torchvision.datasets, name)(str(target), train=True, download=True)
        except Exception as error:  # offline, refused, broken archive: all one message
            reason = " ".join(str(error).split()) or type(error).__name__  # one line
            raise GenkitError(f"downloading {name} into {target} failed: {reason}") from None

    return download


def as_path(value) -> Path | None:
    return None if value is None else Path(value).expanduser()


# ----------------------------------------------------------------------------- options


def _resolution(default: int):
    return option(default, "side of the square images the model sees, in pixels", positive)


def _resize(default: str):
    return option(default, "how images of another size reach the resolution: 'pad' (centred on black) or 'resize' (centre crop, bilinear)")


def _flip(default: bool):
    return option(default, "random horizontal flips of training images (decided from the seed and the batch position)")


def _labels(default: bool = True):
    return option(default, "deliver class labels (false: labels None and label_dim 0, for unconditional training)")


def _workers():
    return option(None, "DataLoader worker processes that load images (0: the main process; unset: min(4, CPU count))", non_negative)


@dataclass
class FixedSizeConfig:
    """Options of a dataset whose files are found in standard places."""

    root: Optional[Path] = option(None, "folder with the dataset's files (or torchvision's layout under it); unset: the standard places")
    resolution: int = _resolution(32)
    resize: Fit = _resize("pad")
    flip: bool = _flip(False)
    labels: bool = _labels()


@dataclass
class DownloadableConfig(FixedSizeConfig):
    download: bool = option(False, "let torchvision download the files when they are not found (needs a connection)")


# ----------------------------------------------------------------------------- the common part


class ImageDataset:
    """A training source and a lazily loaded held-out source of uint8 images; see stream.py."""

    clamp = (-1.0, 1.0)
    evaluators: tuple[str, ...] = ()  # an FID evaluator comes later

    def setup(self, train, held_out: Callable[[], object], *, flip: bool, labels: bool, classes: int, num_workers: int = 0):
        self.train, self._held_out_factory, self._held_out = train, held_out, None
        self.shape = tuple(train.shape)
        self.label_dim = classes if labels and train.labels is not None else 0
        self.flip, self.num_workers = flip, num_workers

    def stream(self, batch_size: int, seed: int, rank: int = 0, world_size: int = 1) -> ImageStream:
        return ImageStream(self.train, batch_size, seed, rank, world_size, flip=self.flip,
                           labels=self.label_dim > 0, num_workers=self.num_workers)

    def training_images(self, batch_size: int = 1024):
        """Every training image once, in order, in [-1, 1] and unflipped: for reference statistics."""
        indices = torch.arange(len(self.train))
        batches = [chunk.tolist() for chunk in indices.split(batch_size)]
        for images, _ in load_batches(self.train, batches, self.num_workers, pin=False):
            yield images

    def held_out(self):
        """The test split where the dataset has one, else the training images."""
        if self._held_out is None:
            self._held_out = self._held_out_factory()
        return self._held_out

    def reference(self, n: int, seed: int) -> torch.Tensor:
        """n held-out images in [-1, 1], without flips: every image once before any repeats."""
        source = self.held_out()
        generator = derived_generator(REFERENCE, seed)
        rounds = math.ceil(n / len(source))
        order = torch.cat([torch.randperm(len(source), generator=generator) for _ in range(rounds)])[:n]
        batches = [chunk.tolist() for chunk in order.split(REFERENCE_BATCH)]
        images = [images for images, _ in load_batches(source, batches, self.num_workers, pin=False)]
        return torch.cat(images) if images else torch.empty(0, *self.shape)


# ----------------------------------------------------------------------------- MNIST-style


class IdxImages(ImageDataset):
    """28x28 grey images with 10 classes in IDX files."""

    Config = DownloadableConfig
    title = folder = "MNIST"  # name in messages; torchvision's class and folder name
    debian: Path | None = None
    hint = "set data.root=DIR (its IDX files), or data.download=true when online"

    def __init__(self, options: DownloadableConfig | None = None, ctx=None):
        options = options or self.Config()
        root = as_path(options.root)
        places = [root, root / self.folder / "raw"] if root else []
        places += [self.debian] if self.debian else []
        places += [] if root else [cache_folder() / self.folder / "raw"]
        download = torchvision_download(self.folder, root or cache_folder()) if options.download else None
        found = locate(self.title, places, lambda place: split_files(place, "train") is not None, self.hint, download)
        self.setup(self.read(found, "train", options), lambda: self.read(found, "test", options),
                   flip=options.flip, labels=options.labels, classes=10)

    def read(self, folder: Path, split: str, options: DownloadableConfig) -> ArraySource:
        files = split_files(folder, split)
        if files is None:
            raise GenkitError(f"{self.title} {split} split not found in {folder} (it has the other one)")
        images, labels = read_split(files)
        return ArraySource.fitted(images[:, None], check_labels(labels, 10, files[1]), options.resolution, options.resize)


class FashionMNIST(IdxImages):
    """Fashion-MNIST (Xiao et al. 2017): 60000 + 10000 28x28 grey images of clothes, 10 classes."""

    title, folder, debian = "Fashion-MNIST", "FashionMNIST", DEBIAN_FASHION_MNIST
    hint = "install Debian's dataset-fashion-mnist, or set data.root=DIR, or data.download=true when online"


class MNIST(IdxImages):
    """MNIST: 60000 + 10000 28x28 grey digits, 10 classes."""


# ----------------------------------------------------------------------------- CIFAR-10


class CIFAR10(ImageDataset):
    """CIFAR-10: 50000 + 10000 32x32 colour images, 10 classes; flipped by default as in EDM and CM."""

    @dataclass
    class Config(DownloadableConfig):
        resize: Fit = _resize("resize")
        flip: bool = _flip(True)

    def __init__(self, options: "CIFAR10.Config | None" = None, ctx=None):
        options = options or self.Config()
        root = as_path(options.root)
        places = [root / CIFAR_FOLDER, root] if root else [cache_folder() / CIFAR_FOLDER]
        download = torchvision_download("CIFAR10", root or cache_folder()) if options.download else None
        hint = f"set data.root=DIR (with {CIFAR_FOLDER}/ from cifar-10-python.tar.gz), or data.download=true when online"
        found = locate("CIFAR-10", places, lambda place: (place / "data_batch_1").is_file(), hint, download)
        self.setup(self.read(found, "train", options), lambda: self.read(found, "test", options),
                   flip=options.flip, labels=options.labels, classes=10)

    @staticmethod
    def read(folder: Path, split: str, options: "CIFAR10.Config") -> ArraySource:
        images, labels = read_cifar(folder, split)
        return ArraySource.fitted(images, check_labels(labels, 10, folder), options.resolution, options.resize)


# ----------------------------------------------------------------------------- ImageNet 64x64


class ImageNet64(ImageDataset):
    """Downsampled ImageNet (Chrabaszcz et al. 2017) from its .npz batches: 1281167 + 50000 images, 1000 classes."""

    @dataclass
    class Config(FixedSizeConfig):
        root: Optional[Path] = option(
            None, "folder with train_data_batch_1..10.npz and val_data.npz (or one level below); unset: the standard place"
        )
        resolution: int = _resolution(64)
        resize: Fit = _resize("resize")
        flip: bool = _flip(True)
        num_workers: Optional[int] = _workers()

    def __init__(self, options: "ImageNet64.Config | None" = None, ctx=None):
        options = options or self.Config()
        root = as_path(options.root)
        hint = "download Imagenet64_train and Imagenet64_val (npz) from image-net.org, unzip them and set data.root=DIR"
        places = [root] if root else [cache_folder() / "imagenet64"]
        found = locate("ImageNet 64x64", places, lambda place: bool(numbered_files(place, "train_data_batch_{}.npz")), hint)
        train = self.read(numbered_files(found, "train_data_batch_{}.npz"), options)
        self.setup(train, lambda: self.read(self.val_files(found), options), flip=options.flip,
                   labels=options.labels, classes=1000, num_workers=default_workers(options.num_workers))

    @staticmethod
    def val_files(folder: Path) -> list[Path]:
        files = [*folder.glob("val_data.npz"), *folder.glob("*/val_data.npz")]
        if not files:
            raise GenkitError(
                f"ImageNet 64x64 val_data.npz not found (looked in {folder} and its subfolders); reference images come from it"
            )
        return files[:1]

    @staticmethod
    def read(files: list[Path], options: "ImageNet64.Config") -> RowSource:
        arrays = [npz_member(f, "data") for f in files]
        widths = {a.shape[1] if a.ndim == 2 else -1 for a in arrays}
        side = math.isqrt(max(widths) // 3)
        if len(widths) != 1 or 3 * side * side != max(widths) or any(a.dtype != np.uint8 for a in arrays):
            raise GenkitError(f"ImageNet batches in {files[0].parent} are not all uint8 rows of 3*S*S pixels of one size S")
        labels = [np.asarray(npz_member(f, "labels")).reshape(-1) - 1 for f in files]  # stored 1-based
        if any(len(l) != len(a) for l, a in zip(labels, arrays)):
            raise GenkitError(f"ImageNet batches in {files[0].parent}: 'labels' and 'data' differ in length")
        labels = check_labels(np.concatenate(labels), 1000, files[0].parent)
        return RowSource(arrays, labels, (3, side, side), options.resolution, options.resize)


# ----------------------------------------------------------------------------- any images


class ImageFolder(ImageDataset):
    """PNG/JPEG files under a folder (all depths), centre-cropped and resized; subfolders are classes with labels = true."""

    @dataclass
    class Config:
        root: Optional[Path] = option(None, "the folder of PNG/JPEG images (required)")
        resolution: int = _resolution(64)
        flip: bool = _flip(False)
        labels: bool = _labels(False)
        num_workers: Optional[int] = _workers()

    def __init__(self, options: "ImageFolder.Config | None" = None, ctx=None):
        options = options or self.Config()
        root = as_path(options.root)
        if root is None:
            raise GenkitError("image-folder needs data.root=DIR: a folder of PNG or JPEG images")
        files = image_files(root) if root.is_dir() else []
        if not files:
            raise GenkitError(f"no PNG or JPEG images found (looked in {root} and its subfolders); set data.root=DIR")
        labels, classes = self.classes(root, files) if options.labels else (None, 0)
        source = FolderSource(files, labels, options.resolution)
        self.setup(source, lambda: source, flip=options.flip, labels=options.labels, classes=classes,
                   num_workers=default_workers(options.num_workers))

    @staticmethod
    def classes(root: Path, files: list[Path]) -> tuple[torch.Tensor, int]:
        """Labels from the first subfolder below root, in sorted order of the subfolder names."""
        parts = [f.relative_to(root).parts for f in files]
        loose = [f for f, p in zip(files, parts) if len(p) == 1]
        if loose:
            raise GenkitError(
                f"labels = true needs every image in a class subfolder of {root}; {loose[0].name} is not (or set data.labels=false)"
            )
        names = sorted({p[0] for p in parts})
        index = {name: i for i, name in enumerate(names)}
        return torch.tensor([index[p[0]] for p in parts], dtype=torch.long), len(names)


class NpzImages(ImageDataset):
    """Images in one .npz file: 'images' uint8 (N, H, W, C) or (N, C, H, W), optional 'labels' 0..K-1."""

    @dataclass
    class Config:
        path: Optional[Path] = option(None, "the .npz file (required)")
        resolution: Optional[int] = option(None, "side of the square images the model sees (unset: the images' own size)", positive)
        resize: Fit = _resize("resize")
        flip: bool = _flip(False)
        labels: bool = _labels()

    def __init__(self, options: "NpzImages.Config | None" = None, ctx=None):
        options = options or self.Config()
        path = as_path(options.path)
        if path is None or not path.is_file():
            raise GenkitError(f"npz images not found (looked in {path or 'data.path, which is unset'}); set data.path=FILE.npz")
        images = channels_first(np.asarray(npz_member(path, "images")), path)
        if images.dtype != np.uint8:
            raise GenkitError(f"{path}: 'images' must be uint8 in [0, 255], got {images.dtype}")
        labels = npz_member(path, "labels", required=False)
        classes = int(labels.max()) + 1 if labels is not None and labels.size else 0
        if labels is not None and labels.shape != (len(images),):
            raise GenkitError(f"{path}: 'labels' has shape {labels.shape}, expected ({len(images)},)")
        height, width = images.shape[-2:]
        resolution = options.resolution or (max if options.resize == "pad" else min)(height, width)
        checked = None if labels is None else check_labels(labels, classes, path)
        source = ArraySource.fitted(images, checked, resolution, options.resize)
        self.setup(source, lambda: source, flip=options.flip, labels=options.labels, classes=classes)
