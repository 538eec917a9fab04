"""Image datasets: Fashion-MNIST, MNIST, CIFAR-10, ImageNet 64x64, any image folder, any .npz.

Each is ``Dataset(options, ctx)`` with ``shape``, ``clamp``, ``evaluators``, ``label_dim``,
``stream(batch_size, seed, rank, world_size)`` (endless, exactly resumable batches) and
``reference(n, seed)`` (held-out images); nothing is downloaded unless ``download = true``.
"""

from genkit.hookspecs import hookimpl
from genkit_images.datasets import CIFAR10, MNIST, FashionMNIST, ImageFolder, ImageNet64, NpzImages

DATASETS = {
    "fmnist": FashionMNIST,
    "mnist": MNIST,
    "cifar10": CIFAR10,
    "imagenet64": ImageNet64,
    "image-folder": ImageFolder,
    "npz": NpzImages,
}


@hookimpl
def register_datasets(register):
    for name, factory in DATASETS.items():
        register(name, factory)
