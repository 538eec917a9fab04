"""Image datasets: every file layout, geometry, labels, exact resume, rank sharding, reference images."""

from __future__ import annotations

import dataclasses
import gzip
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from genkit.errors import GenkitError

import genkit_images

from genkit_images.datasets import CIFAR10, MNIST, DEBIAN_FASHION_MNIST, FashionMNIST, ImageFolder, ImageNet64, NpzImages
from genkit_images.stream import Order

RNG = np.random.default_rng(0)


@pytest.fixture(autouse=True)
def no_standard_places(monkeypatch, tmp_path):
    """Nothing outside tmp_path is found: an empty download cache and no Debian package."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(FashionMNIST, "debian", tmp_path / "debian-fashion-mnist")


def pixels(*shape: int, low: int = 0) -> np.ndarray:
    return RNG.integers(low, 256, size=shape, dtype=np.uint8)


# ----------------------------------------------------------------------------- writing layouts


def write_idx(path: Path, array: np.ndarray, gz: bool) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    raw = header + array.astype(np.uint8).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    if gz:
        path.with_name(path.name + ".gz").write_bytes(gzip.compress(raw))
    else:
        path.write_bytes(raw)


def write_mnist(folder: Path, gz: bool, train: int = 20, test: int = 10, low: int = 0) -> dict:
    data = {}
    for prefix, n in (("train", train), ("t10k", test)):
        images, labels = pixels(n, 28, 28, low=low), np.arange(n) % 10
        write_idx(folder / f"{prefix}-images-idx3-ubyte", images, gz)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte", labels, gz)
        data[prefix] = (images, labels)
    return data


def write_cifar(root: Path) -> dict:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    data = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        images, labels = pixels(4, 3 * 32 * 32), list(RNG.integers(0, 10, 4))
        key = b"data" if name == "data_batch_2" else "data"  # the official pickles have bytes keys
        with open(folder / name, "wb") as file:
            pickle.dump({key: images, "labels": labels}, file)
        data[name] = (images.reshape(-1, 3, 32, 32), labels)
    return data


def write_imagenet(root: Path, batches: tuple[int, ...] = (1, 2), per_batch: int = 6) -> None:
    root.mkdir(parents=True, exist_ok=True)
    for i in batches:
        save = np.savez_compressed if i == 2 else np.savez  # stored members are memory-mapped
        save(root / f"train_data_batch_{i}.npz", data=pixels(per_batch, 3 * 64 * 64), labels=RNG.integers(1, 1001, per_batch))
    np.savez(root / "val_data.npz", data=pixels(5, 3 * 64 * 64), labels=RNG.integers(1, 1001, 5))


def write_folder(root: Path) -> None:
    for klass, sizes in (("cats", [(40, 30), (20, 20), (25, 50)]), ("dogs", [(16, 16), (33, 21)])):
        (root / klass).mkdir(parents=True)
        for i, size in enumerate(sizes):
            suffix = ".png" if i % 2 == 0 else ".jpg"
            Image.fromarray(pixels(size[1], size[0], 3)).save(root / klass / f"{i}{suffix}")


def write_npz(path: Path, n: int = 10, channels_last: bool = True, labels: bool = True) -> np.ndarray:
    images = pixels(n, 12, 12, 3) if channels_last else pixels(n, 3, 12, 12)
    arrays = {"images": images, **({"labels": np.arange(n)} if labels else {})}  # label i: image i
    np.savez(path, **arrays)
    return images


def npz_dataset(tmp_path: Path, n: int = 10, **options) -> NpzImages:
    write_npz(tmp_path / "images.npz", n)
    return NpzImages(NpzImages.Config(path=tmp_path / "images.npz", **options))


def folder_dataset(tmp_path: Path, **options) -> ImageFolder:
    write_folder(tmp_path / "folder")
    return ImageFolder(ImageFolder.Config(root=tmp_path / "folder", resolution=16, **options))


def scaled(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(images).float() / 127.5 - 1


def check_batch(images, labels, shape, batch, label_dim) -> None:
    assert images.shape == (batch, *shape) and images.dtype == torch.float32
    assert images.min() >= -1 and images.max() <= 1
    if label_dim:
        assert labels.dtype == torch.long and labels.shape == (batch,)
        assert 0 <= labels.min() and labels.max() < label_dim
    else:
        assert labels is None


# ----------------------------------------------------------------------------- layouts


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("torchvision_layout", [False, True])
def test_idx_layouts_load(tmp_path, gz, torchvision_layout):
    folder = tmp_path / "FashionMNIST" / "raw" if torchvision_layout else tmp_path
    data = write_mnist(folder, gz)
    dataset = FashionMNIST(FashionMNIST.Config(root=tmp_path))
    assert dataset.shape == (1, 32, 32) and dataset.label_dim == 10 and dataset.clamp == (-1.0, 1.0)
    assert dataset.evaluators == ()
    images, labels = dataset.stream(8, seed=0).next()
    check_batch(images, labels, (1, 32, 32), 8, 10)
    reference = dataset.reference(10, seed=0)  # the t10k split, each image once
    expected = torch.nn.functional.pad(scaled(data["t10k"][0]), (2, 2, 2, 2), value=-1)[:, None]
    assert sorted(map(bytes, reference.numpy())) == sorted(map(bytes, expected.numpy()))


def test_pad_is_black_and_resize_fills(tmp_path):
    data = write_mnist(tmp_path, gz=True, low=100)  # no black pixels of their own
    padded = MNIST(MNIST.Config(root=tmp_path, resize="pad")).train.images
    resized = MNIST(MNIST.Config(root=tmp_path, resize="resize")).train.images
    assert padded.shape == resized.shape == (20, 1, 32, 32)
    assert torch.equal(padded[:, 0, 2:30, 2:30], torch.from_numpy(data["train"][0]))
    border = torch.ones(32, 32, dtype=torch.bool)
    border[2:30, 2:30] = False
    assert (padded[:, 0][:, border] == 0).all()  # black: -1 after scaling
    assert (resized >= 100).all()  # stretched over the whole image, no border
    with pytest.raises(GenkitError, match="cannot pad 28x28 images to 16x16"):
        MNIST(MNIST.Config(root=tmp_path, resolution=16))


def test_missing_idx_names_every_place(tmp_path):
    with pytest.raises(GenkitError) as error:
        FashionMNIST(FashionMNIST.Config(root=tmp_path / "mine"))
    message = str(error.value)
    assert "\n" not in message and message.startswith("Fashion-MNIST not found")
    for place in (tmp_path / "mine", tmp_path / "mine" / "FashionMNIST" / "raw", tmp_path / "debian-fashion-mnist"):
        assert str(place) in message
    assert "dataset-fashion-mnist" in message and "data.root=DIR" in message and "data.download=true" in message
    with pytest.raises(GenkitError, match=r"^MNIST not found \(looked in .*cache/genkit/datasets/MNIST/raw\)"):
        MNIST(MNIST.Config())


def test_corrupt_idx_is_one_line(tmp_path):
    write_mnist(tmp_path, gz=False)
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(GenkitError, match=r"train-images-idx3-ubyte: truncated or padded IDX file") as error:
        MNIST(MNIST.Config(root=tmp_path))
    assert "\n" not in str(error.value)


def test_labels_false_gives_none(tmp_path):
    write_mnist(tmp_path, gz=False)
    dataset = MNIST(MNIST.Config(root=tmp_path, labels=False))
    assert dataset.label_dim == 0
    assert dataset.stream(4, seed=0).next()[1] is None


def test_cifar10_folder(tmp_path):
    data = write_cifar(tmp_path)
    dataset = CIFAR10(CIFAR10.Config(root=tmp_path, flip=False))
    assert dataset.shape == (3, 32, 32) and dataset.label_dim == 10 and len(dataset.train) == 20
    assert CIFAR10.Config().flip and not MNIST.Config().flip  # the papers' presets
    check_batch(*dataset.stream(6, seed=1).next(), (3, 32, 32), 6, 10)
    reference = dataset.reference(4, seed=0)
    assert sorted(map(bytes, reference.numpy())) == sorted(map(bytes, scaled(data["test_batch"][0]).numpy()))
    assert CIFAR10(CIFAR10.Config(root=tmp_path, resolution=16)).shape == (3, 16, 16)
    (tmp_path / "cifar-10-batches-py" / "data_batch_4").unlink()
    with pytest.raises(GenkitError, match="data_batch_4 is missing"):
        CIFAR10(CIFAR10.Config(root=tmp_path))
    with pytest.raises(GenkitError, match=r"^CIFAR-10 not found \(looked in .*cifar-10-batches-py, .*\); set data.root"):
        CIFAR10(CIFAR10.Config(root=tmp_path / "elsewhere"))


def test_imagenet64_batches(tmp_path):
    write_imagenet(tmp_path / "imagenet")
    dataset = ImageNet64(ImageNet64.Config(root=tmp_path / "imagenet", num_workers=0))
    assert dataset.shape == (3, 64, 64) and dataset.label_dim == 1000 and len(dataset.train) == 12
    assert dataset.train.decodes  # the stored batch is memory-mapped
    images, labels = dataset.stream(12, seed=0).next()
    check_batch(images, labels, (3, 64, 64), 12, 1000)
    stored = np.concatenate([np.load(tmp_path / "imagenet" / f"train_data_batch_{i}.npz")["labels"] for i in (1, 2)])
    assert sorted(labels.tolist()) == sorted((stored - 1).tolist())  # 1-based on disk
    assert dataset.reference(5, seed=0).shape == (5, 3, 64, 64)
    small = ImageNet64(ImageNet64.Config(root=tmp_path / "imagenet", resolution=32, labels=False, num_workers=0))
    assert small.shape == (3, 32, 32) and small.label_dim == 0
    assert small.stream(3, seed=0).next()[0].shape == (3, 3, 32, 32)


def test_imagenet64_gap_and_missing(tmp_path):
    write_imagenet(tmp_path / "gap", batches=(1, 3))
    with pytest.raises(GenkitError, match="train_data_batch_2.npz is missing"):
        ImageNet64(ImageNet64.Config(root=tmp_path / "gap"))
    with pytest.raises(GenkitError, match=r"^ImageNet 64x64 not found \(looked in .*nothing\); download"):
        ImageNet64(ImageNet64.Config(root=tmp_path / "nothing"))


def test_image_folder_classes(tmp_path):
    dataset = folder_dataset(tmp_path, labels=True, num_workers=0)
    assert dataset.shape == (3, 16, 16) and dataset.label_dim == 2 and len(dataset.train) == 5
    images, labels = dataset.stream(5, seed=0).next()
    check_batch(images, labels, (3, 16, 16), 5, 2)
    assert sorted(labels.tolist()) == [0, 0, 0, 1, 1]
    unlabelled = ImageFolder(ImageFolder.Config(root=tmp_path / "folder", resolution=8, num_workers=0))
    assert unlabelled.label_dim == 0 and unlabelled.stream(2, seed=0).next()[1] is None
    Image.new("RGB", (9, 9)).save(tmp_path / "folder" / "loose.png")
    with pytest.raises(GenkitError, match="needs every image in a class subfolder"):
        ImageFolder(ImageFolder.Config(root=tmp_path / "folder", labels=True))
    with pytest.raises(GenkitError, match=r"^no PNG or JPEG images found \(looked in .*empty and its subfolders\)"):
        ImageFolder(ImageFolder.Config(root=tmp_path / "empty"))


def test_broken_image_is_one_line_from_a_worker(tmp_path):
    dataset = folder_dataset(tmp_path, num_workers=2)
    for path in dataset.train.files:
        path.write_bytes(b"not an image")
    with pytest.raises(GenkitError, match=r"cannot read the image") as error:
        dataset.stream(2, seed=0).next()
    assert "\n" not in str(error.value)


def test_npz_layouts(tmp_path):
    images = write_npz(tmp_path / "last.npz", n=6)
    dataset = NpzImages(NpzImages.Config(path=tmp_path / "last.npz"))
    assert dataset.shape == (3, 12, 12) and dataset.label_dim == 6
    batch, labels = dataset.stream(6, seed=0).next()
    assert torch.equal(batch, scaled(images[labels.numpy()]).permute(0, 3, 1, 2))
    write_npz(tmp_path / "first.npz", n=4, channels_last=False, labels=False)
    first = NpzImages(NpzImages.Config(path=tmp_path / "first.npz", resolution=16))
    assert first.shape == (3, 16, 16) and first.label_dim == 0
    check_batch(*first.stream(3, seed=0).next(), (3, 16, 16), 3, 0)
    padded = NpzImages(NpzImages.Config(path=tmp_path / "first.npz", resolution=16, resize="pad"))
    assert (padded.stream(4, seed=0).next()[0][..., :2, :] == -1).all()
    with pytest.raises(GenkitError, match=r"^npz images not found \(looked in .*missing.npz\)"):
        NpzImages(NpzImages.Config(path=tmp_path / "missing.npz"))
    np.savez(tmp_path / "flat.npz", images=np.zeros((4, 12, 12), np.uint8))  # gray, or one 4-channel image?
    with pytest.raises(GenkitError, match=r"flat.npz: images of shape \(4, 12, 12\) have 3 axes; give 4"):
        NpzImages(NpzImages.Config(path=tmp_path / "flat.npz"))


# ----------------------------------------------------------------------------- streams


def straight_and_resumed(make, stop: int, total: int, **stream):
    straight = make().stream(**stream)
    expected = [straight.next() for _ in range(total)]
    first = make().stream(**stream)
    for _ in range(stop):
        first.next()
    saved = Path(make.folder) / "state.pt"
    torch.save(first.state_dict(), saved)
    first.close()
    resumed = make().stream(**stream)
    resumed.load_state_dict(torch.load(saved, weights_only=True))
    return expected[stop:], [resumed.next() for _ in range(total - stop)]


def same_batches(expected, got) -> bool:
    return all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(expected, got, strict=True))


@pytest.mark.parametrize("stop", [1, 3])  # 10 images, batches of 4: mid-epoch, and past the first boundary
def test_exact_resume_in_memory(tmp_path, stop):
    def make():
        return NpzImages(NpzImages.Config(path=tmp_path / "images.npz", flip=True))

    make.folder = tmp_path
    write_npz(tmp_path / "images.npz", n=10)
    expected, got = straight_and_resumed(make, stop, 7, batch_size=4, seed=5)
    assert same_batches(expected, got)


@pytest.mark.parametrize("workers", [0, 2])
def test_exact_resume_folder(tmp_path, workers):
    write_folder(tmp_path / "folder")

    def make():
        return ImageFolder(ImageFolder.Config(root=tmp_path / "folder", resolution=8, flip=True, labels=True, num_workers=workers))

    make.folder = tmp_path
    for stop in (1, 3):  # 5 images, batches of 2: mid-epoch, and past the first boundary
        expected, got = straight_and_resumed(make, stop, 6, batch_size=2, seed=3)
        assert same_batches(expected, got)


def test_epochs_cover_everything_with_new_orders(tmp_path):
    stream = npz_dataset(tmp_path).stream(5, seed=0)
    epochs = [torch.cat([stream.next()[1] for _ in range(2)]).tolist() for _ in range(3)]
    assert all(sorted(epoch) == list(range(10)) for epoch in epochs)
    assert len({tuple(epoch) for epoch in epochs}) == 3


def test_flips_mirror_some_images(tmp_path):
    write_npz(tmp_path / "images.npz", n=10)
    plain = NpzImages(NpzImages.Config(path=tmp_path / "images.npz")).stream(10, seed=2).next()
    flipped = NpzImages(NpzImages.Config(path=tmp_path / "images.npz", flip=True)).stream(10, seed=2).next()
    assert torch.equal(plain[1], flipped[1])  # the same images in the same order
    mirrored = [not torch.equal(a, b) for a, b in zip(plain[0], flipped[0])]
    assert 0 < sum(mirrored) < 10
    for a, b, m in zip(plain[0], flipped[0], mirrored):
        assert torch.equal(a.flip(-1) if m else a, b)


def test_ranks_share_each_epoch_disjointly(tmp_path):
    dataset = npz_dataset(tmp_path, n=11)
    ranks = [dataset.stream(5, seed=4, rank=r, world_size=2).next()[1].tolist() for r in range(2)]
    assert not set(ranks[0]) & set(ranks[1]) and len(set(ranks[0]) | set(ranks[1])) == 10
    for epoch in range(3):
        shares = [set(Order(11, 4, r, 3).epoch(epoch).tolist()) for r in range(3)]
        assert sum(map(len, shares)) == len(set.union(*shares)) == 9


def test_resume_refuses_other_settings(tmp_path):
    dataset = npz_dataset(tmp_path)
    state = dataset.stream(4, seed=0).state_dict()
    assert all(type(v) is int for v in state.values())
    with pytest.raises(GenkitError, match="batch_size 4 -> 5"):
        dataset.stream(5, seed=0).load_state_dict(state)


@pytest.mark.parametrize("workers", [0, 2])
def test_reference_is_deterministic_and_leaves_global_rng(tmp_path, workers):
    dataset = folder_dataset(tmp_path, num_workers=workers)
    before = torch.get_rng_state()
    first = dataset.reference(7, seed=1)  # more than the 5 images: each once, then again
    assert torch.equal(first, dataset.reference(7, seed=1))
    assert not torch.equal(first, dataset.reference(7, seed=2))
    dataset.stream(2, seed=0).next()
    assert torch.equal(before, torch.get_rng_state())
    assert first.shape == (7, 3, 16, 16) and -1 <= first.min() and first.max() <= 1


# ----------------------------------------------------------------------------- plugin and options


def test_plugin_registers_datasets_with_documented_options(tmp_path):
    from genkit.plugins import PluginSet
    from genkit.schema import Parser

    plugins = PluginSet()
    plugins.add(genkit_images, "images", builtin=True)
    registries = plugins.collect()
    assert set(genkit_images.DATASETS) <= set(registries.datasets.names())
    for factory in genkit_images.DATASETS.values():
        assert all(spec.metadata["help"] for spec in dataclasses.fields(factory.Config))
    write_npz(tmp_path / "images.npz")
    component = Parser(registries).component("datasets", {"name": "npz", "path": str(tmp_path / "images.npz"), "flip": True}, "data")
    dataset = registries.datasets.build(component)
    assert dataset.flip and dataset.shape == (3, 12, 12)
    with pytest.raises(GenkitError, match="data.resize must be one of 'pad', 'resize'"):
        Parser(registries).component("datasets", {"name": "mnist", "resize": "crop"}, "data")


@pytest.mark.skipif(not DEBIAN_FASHION_MNIST.is_dir(), reason="Debian's dataset-fashion-mnist is not installed")
def test_debian_fashion_mnist(monkeypatch):
    monkeypatch.setattr(FashionMNIST, "debian", DEBIAN_FASHION_MNIST)
    dataset = FashionMNIST(FashionMNIST.Config())
    assert len(dataset.train) == 60000 and dataset.label_dim == 10 and dataset.shape == (1, 32, 32)
    check_batch(*dataset.stream(256, seed=0).next(), (1, 32, 32), 256, 10)
    assert dataset.train.images.max() == 255 and dataset.train.labels.bincount().tolist() == [6000] * 10
