"""A run's evaluation (EMA) weights and resolved config in one file that loads without pickle.

    from safetensors.torch import load_file
    from safetensors import safe_open
    weights = load_file("RUN/export/model.safetensors")        # the EMA model's state_dict
    config_toml = safe_open("RUN/export/model.safetensors", "pt").metadata()["config"]
"""

from __future__ import annotations

from pathlib import Path

import torch

import genkit
from genkit import config as configuration
from genkit import files
from genkit.errors import GenkitError
from genkit.training import checkpoint
from genkit.training.run import RunFolder

FORMATS = ("safetensors",)
EXPORT_FILE = Path("export") / "model.safetensors"


def export_run(run: str | Path, registries, out: str | Path | None = None, file_format: str = "safetensors") -> Path:
    """Write ``run``'s EMA weights, with its resolved config as TOML in the file's metadata, to
    ``out`` (default RUN/export/model.safetensors). The weights are the checkpoint's "ema"
    state, the ones `genkit sample` uses, read without building the run, so the dataset need
    not be present."""
    if file_format not in FORMATS:
        raise GenkitError(f"unknown export format '{file_format}'; known: {', '.join(FORMATS)}")
    folder = RunFolder(run)
    resolved = folder.read_config(registries, lenient=configuration.TRAINING_ONLY | {"evaluators"})
    state = checkpoint.load(folder.checkpoint_path)
    configuration.check_same_function(state.get("config"), resolved, f"checkpoint {folder.checkpoint_path}", resuming=False)
    metadata = {
        "format": "pt",  # the safetensors convention for torch tensors (transformers checks it)
        "genkit_version": genkit.__version__,
        "genkit_weights": "ema",
        "genkit_step": str(int(state["step"])),
        "method": resolved.method,
        "config": configuration.to_toml(resolved.to_dict()),
    }
    return write_safetensors(ema_weights(state, folder.checkpoint_path), metadata, Path(out or folder.path / EXPORT_FILE))


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
