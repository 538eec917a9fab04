"""A finished (or checkpointed) run rebuilt from its folder, ready to sample: the layer above
building and training that sampling, evaluation, export and teachers read runs through."""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch

from genkit.build import Built, build, pick_device
from genkit.config import TRAINING_ONLY, check_same_function
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


def load_trained(run_path, registries, device: torch.device | None = None, ema: float | None = None) -> TrainedModel:
    """Rebuild a run from its folder (config.toml + checkpoint.pt) with the EMA weights loaded:
    those at rate ``ema``, one of train.ema_rates (None: the first).

    Only the plugins of its dataset, network and method need be installed: the parts only
    training used (a plugin loss, say) are read without being built.
    """
    run = RunFolder(run_path)
    config = run.read_config(registries, lenient=TRAINING_ONLY | {"evaluators"})
    device = device or pick_device("auto")
    built = build(config, registries, device)
    state = checkpoint.load(run.checkpoint_path, map_location=device)
    check_same_function(state.get("config"), config, f"checkpoint {run.checkpoint_path}", resuming=False)
    model = copy.deepcopy(built.method.model).eval().requires_grad_(False)
    rates = config.train.evaluation_ema_rates
    weights = checkpoint.ema_weights(state, ema, rates, run.checkpoint_path)
    checkpoint.restore({**state, "ema": weights}, {"method": built.method, "ema": model}, f"checkpoint {run.checkpoint_path} does not match {run.config_path}")
    rate = rates[0] if ema is None else float(ema)
    return TrainedModel(built, model, int(state["step"]), float(state.get("elapsed_s", 0.0)), rate)
