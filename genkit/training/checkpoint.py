"""Checkpoints written atomically and read without running code from the file."""

from __future__ import annotations

import os
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
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def load(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load tensors and plain containers only (``weights_only=True``): no pickled code runs."""
    path = Path(path)
    if not path.is_file():
        raise GenkitError(f"checkpoint not found: {path}")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:
        raise GenkitError(f"cannot read checkpoint {path}: {type(error).__name__}: {str(error).splitlines()[0]}") from None
