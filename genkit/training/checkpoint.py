"""Checkpoints written atomically and read without running code from the file."""

from __future__ import annotations

import os
import pickle
import tempfile
from pathlib import Path
from typing import Any

import torch

from genkit.errors import GenkitError


def save_atomic(state: dict[str, Any], path: Path) -> None:
    """Write to a temporary file beside ``path``, then rename: a crash leaves the old file whole."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as file:
            torch.save(state, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
        _sync_folder(path.parent)  # the rename itself survives a power cut
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _sync_folder(folder: Path) -> None:
    try:
        handle = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms that cannot open folders
        return
    try:
        os.fsync(handle)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(handle)


def load(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load tensors and plain containers only (``weights_only=True``): no pickled code runs."""
    path = Path(path)
    if not path.is_file():
        raise GenkitError(f"checkpoint not found: {path}")
    if path.stat().st_size == 0:
        raise GenkitError(f"checkpoint {path} is empty (0 bytes): it was not written by a finished save")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        if "Unsupported global" in str(error):  # a pickled class or function: refused, never run
            raise GenkitError(
                f"checkpoint {path} holds code or objects genkit will not load (it reads tensors and plain "
                f"values only); use checkpoints written by genkit train, from a source you trust"
            ) from None
        raise GenkitError(f"{path} is not a genkit checkpoint (not a torch save file, or damaged)") from None
    except Exception as error:
        raise GenkitError(f"{path} is not a readable genkit checkpoint ({type(error).__name__}: {first_line(error)})") from None
    if not isinstance(state, dict) or "step" not in state:
        raise GenkitError(f"{path} is not a genkit checkpoint (no training state in it)")
    return state


def first_line(error: BaseException) -> str:
    """The first line of an error's message, or its type when the message is empty."""
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def restore(state: dict[str, Any], targets: dict[str, Any], context: str) -> None:
    """Load ``state[key]`` into each of ``targets`` (modules, optimizers: anything with
    ``load_state_dict``); ``targets["method"]``'s keys and shapes are compared first, so a
    checkpoint of another config fails with its first difference. One GenkitError starting with
    ``context`` for any mismatch."""
    difference = mismatch(targets["method"], state.get("method", {})) if "method" in targets else ""
    if difference:
        raise GenkitError(f"{context}: {difference}")
    try:
        for key, target in targets.items():
            target.load_state_dict(state[key])
    except (KeyError, RuntimeError, ValueError) as error:
        raise GenkitError(f"{context}: {first_line(error)}") from None


def mismatch(module: torch.nn.Module, state: dict[str, Any]) -> str:
    """'' when ``state`` fits ``module`` exactly, else its first difference, for error messages."""
    mine = module.state_dict()
    for key in sorted(mine.keys() | state.keys()):
        if key not in state:
            return f"'{key}' is missing from the checkpoint"
        if key not in mine:
            return f"the checkpoint has '{key}', which this config's model does not"
        if tuple(mine[key].shape) != tuple(state[key].shape):
            return f"'{key}' has shape {tuple(state[key].shape)} in the checkpoint, {tuple(mine[key].shape)} in this config's model"
    return ""
