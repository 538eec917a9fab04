"""A finished (or checkpointed) run rebuilt from its folder, ready to sample: the layer above
building and training that sampling, evaluation, export and teachers read runs through."""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch

from genkit.build import Built, build, pick_device
from genkit.config import TRAINING_ONLY, Config, check_same_function
from genkit.training import checkpoint
from genkit.training.run import RunFolder


@dataclass
class TrainedModel:
    """A finished (or checkpointed) run, ready to sample: its parts and its EMA weights."""

    built: Built
    model: torch.nn.Module  # the evaluation (EMA) weights inside the method's wrapper
    step: int
    elapsed_s: float
    ema_rate: float | None = None  # the rate of the evaluation EMA loaded (one of train.ema_rates)


@dataclass
class SavedRun:
    """A run folder read for sampling or export: its config, its checkpoint, and the evaluation
    EMA chosen from it."""

    folder: RunFolder
    config: Config
    state: dict
    ema_rate: float
    ema_state: dict


def read_saved_run(run_path, registries, ema: float | None = None, map_location: str | torch.device = "cpu") -> SavedRun:
    """A run's config (read leniently: only the parts sampling builds need be installed) and
    checkpoint, checked to describe the same function, with the evaluation EMA at rate ``ema``
    (one of train.ema_rates; None: the first)."""
    folder = RunFolder(run_path)
    config = folder.read_config(registries, lenient=TRAINING_ONLY | {"evaluators"})
    state = checkpoint.load(folder.checkpoint_path, map_location=map_location)
    check_same_function(state.get("config"), config, f"checkpoint {folder.checkpoint_path}", resuming=False)
    rates = config.train.evaluation_ema_rates
    weights = checkpoint.ema_weights(state, ema, rates, folder.checkpoint_path)
    return SavedRun(folder, config, state, rates[0] if ema is None else float(ema), weights)


def load_trained(run_path, registries, device: torch.device | None = None, ema: float | None = None) -> TrainedModel:
    """Rebuild a run from its folder (config.toml + checkpoint.pt) with the EMA weights loaded:
    those at rate ``ema``, one of train.ema_rates (None: the first).

    Only the plugins of its dataset, network and method need be installed: the parts only
    training used (a plugin loss, say) are read without being built.
    """
    device = device or pick_device("auto")
    saved = read_saved_run(run_path, registries, ema, map_location=device)
    built = build(saved.config, registries, device)
    model = copy.deepcopy(built.method.model).eval().requires_grad_(False)
    context = f"checkpoint {saved.folder.checkpoint_path} does not match {saved.folder.config_path}"
    checkpoint.restore({**saved.state, "ema": saved.ema_state}, {"method": built.method, "ema": model}, context)
    state = saved.state
    return TrainedModel(built, model, int(state["step"]), float(state.get("elapsed_s", 0.0)), saved.ema_rate)
