"""A run's evaluation (EMA) weights and resolved config in one file that loads without pickle,
and such a file loaded back (``genkit.load("model.safetensors")``, ``genkit sample FILE``).

    from safetensors.torch import load_file
    from safetensors import safe_open
    weights = load_file("RUN/export/model.safetensors")        # the EMA model's state_dict
    config_toml = safe_open("RUN/export/model.safetensors", "pt").metadata()["config"]

The metadata also holds ``data`` (JSON: the data's shape, clamp range and label_dim), so the
model is rebuilt without its dataset; the dataset is built only to score samples.
"""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

import torch

import genkit
from genkit import config as configuration
from genkit import files
from genkit.build import DataFacts, build, pick_device
from genkit.errors import GenkitError
from genkit.trained import TrainedModel, read_saved_run
from genkit.training import checkpoint

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

FORMATS = ("safetensors",)
EXPORT_FILE = Path("export") / "model.safetensors"


def export_run(
    run: str | Path, registries, out: str | Path | None = None, file_format: str = "safetensors", ema: float | None = None
) -> Path:
    """Write ``run``'s EMA weights, with its resolved config as TOML in the file's metadata, to
    ``out`` (default RUN/export/model.safetensors; RUN/export/model-emaRATE.safetensors for
    another than the first of train.ema_rates). The weights are the checkpoint's evaluation EMA
    at rate ``ema`` (None: the first, the one `genkit sample` uses), read without building the
    run, so the dataset need not be present."""
    if file_format not in FORMATS:
        raise GenkitError(f"unknown export format '{file_format}'; known: {', '.join(FORMATS)}")
    saved = read_saved_run(run, registries, ema)
    folder, resolved, state, rate = saved.folder, saved.config, saved.state, saved.ema_rate
    weights = ema_weights({"ema": saved.ema_state}, folder.checkpoint_path)
    default = EXPORT_FILE if rate == resolved.train.evaluation_ema_rates[0] else EXPORT_FILE.with_name(f"model-ema{rate!r}.safetensors")
    metadata = {
        "format": "pt",  # the safetensors convention for torch tensors (transformers checks it)
        "genkit_version": genkit.__version__,
        "genkit_weights": "ema",
        "genkit_ema_rate": repr(rate),
        "genkit_step": str(int(state["step"])),
        "genkit_elapsed_s": repr(float(state.get("elapsed_s", 0.0))),
        "method": resolved.method,
        "config": configuration.to_toml(resolved.to_dict()),
        "data": json.dumps(data_facts(state, resolved, registries).to_dict()),
    }
    return write_safetensors(weights, metadata, Path(out or folder.path / default))


def ema_weights(state: dict, path: Path) -> dict[str, torch.Tensor]:
    """The EMA model's tensors, each with storage of its own: safetensors refuses shared or
    strided memory (tied weights, views)."""
    weights = state.get("ema")
    if not isinstance(weights, dict) or not weights or not all(isinstance(v, torch.Tensor) for v in weights.values()):
        raise GenkitError(f"checkpoint {path} holds no EMA weights to export")
    return {name: tensor.detach().cpu().clone(memory_format=torch.contiguous_format) for name, tensor in weights.items()}


def write_safetensors(weights: dict[str, torch.Tensor], metadata: dict[str, str], out: Path) -> Path:
    """Written beside ``out`` and renamed, so an interrupted export never leaves half a file."""
    from safetensors.torch import save

    return files.write_atomic(out, save(weights, metadata=metadata))


def data_facts(state: dict, resolved: configuration.Config, registries) -> DataFacts:
    """The data facts the checkpoint holds; a checkpoint from before they were saved has its
    dataset built to learn them (that needs the dataset's files)."""
    saved = state.get("data_facts")
    if isinstance(saved, dict):
        try:
            return DataFacts.from_dict(saved)
        except (KeyError, TypeError, ValueError):
            pass
    return DataFacts.of(build(resolved, registries, torch.device("cpu")).dataset)


# ----------------------------------------------------------------------------- loading an export


def is_export(path: str | Path) -> bool:
    """A file (not a run folder): what ``genkit.load`` and the commands read as an export."""
    return Path(path).is_file()


def load_export(path: str | Path, registries, device: torch.device | None = None, ema: float | None = None) -> TrainedModel:
    """The model an export holds, rebuilt from its config and data facts with its EMA weights:
    the same model ``load_trained`` gives for the run it came from, without the dataset's files.
    An export holds one EMA: ``ema``, when given, must be its rate."""
    from safetensors import SafetensorError, safe_open
    from safetensors.torch import load_file

    path = Path(path)
    try:
        with safe_open(str(path), "pt") as handle:
            metadata = handle.metadata() or {}
    except (SafetensorError, OSError, ValueError) as error:
        raise GenkitError(f"{path} is not a safetensors file genkit can read ({checkpoint.first_line(error)})") from None
    if "config" not in metadata:
        raise GenkitError(f"{path} is not a genkit export (no config in its metadata; write one with genkit export RUN)")
    layers = configuration.Layers()
    try:
        layers.add(configuration.checked_depth(tomllib.loads(metadata["config"]), str(path)), f"{path} (its config)")
    except tomllib.TOMLDecodeError as error:
        raise GenkitError(f"{path}: the config in its metadata is not TOML ({error})") from None
    config = configuration.resolve(layers, registries, lenient=configuration.TRAINING_ONLY | {"evaluators"})
    facts = None
    if "data" in metadata:  # exports from before the facts were stored build the dataset
        try:
            facts = DataFacts.from_dict(json.loads(metadata["data"]))
        except (KeyError, TypeError, ValueError):
            raise GenkitError(f"{path}: the data facts in its metadata are damaged") from None
    rate = _number(metadata, "genkit_ema_rate", float) if "genkit_ema_rate" in metadata else config.train.evaluation_ema_rates[0]
    if ema is not None and float(ema) != rate:
        raise GenkitError(f"`ema` {ema}: {path} holds the evaluation EMA at rate {rate!r} only (export another with genkit export RUN --ema RATE)")
    device = device or pick_device("auto")
    built = build(config, registries, device, data=facts)
    model = copy.deepcopy(built.method.model).eval().requires_grad_(False)
    weights = load_file(str(path), device=str(device))
    difference = checkpoint.mismatch(model, weights)
    if difference:
        raise GenkitError(f"{path} does not match its own config: {difference}")
    model.load_state_dict(weights)
    return TrainedModel(built, model, _number(metadata, "genkit_step", int), _number(metadata, "genkit_elapsed_s", float), rate)


def _number(metadata: dict, key: str, kind):
    try:
        return kind(metadata.get(key, 0))
    except ValueError:
        return kind(0)
