"""Turn a validated Config into live components through the registries."""

from __future__ import annotations

from dataclasses import dataclass

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


def build(config: Config, registries, device: torch.device | None = None) -> Built:
    """Dataset first (it fixes the sample shape), then the network, then the method around it.

    Parts only training needs (loss, teacher...) are built later by ``method.prepare_training()``.
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
    dataset = registries.datasets.build(config.data, ctx)
    ctx.data_shape = tuple(dataset.shape)
    ctx.clamp = dataset.clamp
    ctx.label_dim = int(getattr(dataset, "label_dim", 0))
    network = registries.networks.build(config.network, ctx)
    if int(getattr(network, "label_dim", 0)) != ctx.label_dim:
        raise GenkitError(
            f"the data has {ctx.label_dim} classes of labels but network '{config.network.name}' is built for "
            f"{int(getattr(network, 'label_dim', 0))} (set network.label_dim = {ctx.label_dim}, or data.labels = false to train unconditionally)"
        )
    method = registries.methods.get(config.method)(config.method_options, ctx, network)
    return Built(config, ctx, dataset, method.to(device))
