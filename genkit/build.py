"""Turn a validated Config into live components through the registries."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch

from genkit.components import BuildContext, Dataset, Method
from genkit.config import Config
from genkit.errors import GenkitError


@dataclass
class Built:
    config: Config
    ctx: BuildContext
    dataset: Dataset
    method: Method


@dataclass(frozen=True)
class DataFacts:
    """All the network and the samplers need to know of the data: one sample's shape, the range
    samples are clamped to, and the number of classes (0: unconditional). An export stores them,
    so it samples where the dataset's files are missing."""

    shape: tuple[int, ...]
    clamp: tuple[float, float] | None = None
    label_dim: int = 0

    @classmethod
    def of(cls, dataset: Dataset) -> "DataFacts":
        clamp = getattr(dataset, "clamp", None)
        return cls(tuple(int(n) for n in dataset.shape), None if clamp is None else (float(clamp[0]), float(clamp[1])),
                   int(getattr(dataset, "label_dim", 0)))

    def to_dict(self) -> dict[str, Any]:
        return {"shape": list(self.shape), "clamp": None if self.clamp is None else list(self.clamp), "label_dim": self.label_dim}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "DataFacts":
        clamp = values.get("clamp")
        return cls(tuple(int(n) for n in values["shape"]), None if clamp is None else (float(clamp[0]), float(clamp[1])),
                   int(values.get("label_dim", 0)))


class DeferredDataset:
    """The dataset of a model rebuilt from its data facts: ``shape``, ``clamp`` and ``label_dim``
    are known at once, and the dataset itself is built only when something else is asked of it
    (held-out data for scores), so sampling never needs the dataset's files."""

    def __init__(self, make: Callable[[], Dataset], facts: DataFacts):
        self._make, self._dataset = make, None
        self.shape, self.clamp, self.label_dim = facts.shape, facts.clamp, facts.label_dim

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        if self._dataset is None:
            self._dataset = self._make()
        return getattr(self._dataset, name)


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise GenkitError(f"unknown device '{name}'; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise GenkitError(f"train.device is '{name}' but no CUDA device is available")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise GenkitError(f"train.device is '{name}' but this machine has {torch.cuda.device_count()} CUDA device(s)")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise GenkitError(f"train.device is '{name}' but no MPS (Apple GPU) device is available")
    return device


def build(config: Config, registries, device: torch.device | None = None, data: DataFacts | None = None) -> Built:
    """Dataset first (it fixes the sample shape), then the network, then the method around it.

    Parts only training needs (loss, teacher...) are built later by ``method.prepare_training()``.
    ``data``: the data's facts, known already (an export's): the dataset is then built only when
    used (a DeferredDataset), so a model samples without the dataset's files.
    """
    device = device or pick_device(config.train.device)
    ctx = BuildContext(
        registries=registries,
        noise=config.noise,
        sample=config.sample,
        total_steps=config.train.steps,
        device=device,
        network=config.network,
    )
    if data is None:
        dataset = registries.datasets.build(config.data, ctx)
        data = DataFacts.of(dataset)
    else:
        dataset = DeferredDataset(lambda: registries.datasets.build(config.data, ctx), data)
    ctx.data_shape, ctx.clamp, ctx.label_dim = data.shape, data.clamp, data.label_dim
    network = registries.networks.build(config.network, ctx)
    if int(getattr(network, "label_dim", 0)) != ctx.label_dim:
        raise GenkitError(
            f"the data has {ctx.label_dim} classes of labels but network '{config.network.name}' is built for "
            f"{int(getattr(network, 'label_dim', 0))} (set network.label_dim = {ctx.label_dim}, or data.labels = false to train unconditionally)"
        )
    method = registries.methods.get(config.method)(config.method_options, ctx, network)
    return Built(config, ctx, dataset, method.to(device))
