"""Reference statistics computed once per dataset and feature network, then read from disk.

An evaluator keys its statistics by everything they depend on (feature network and its weights,
dataset name and options, split); a changed key computes them anew. The folder is
``$GENKIT_CACHE/stats`` (default ``~/.cache/genkit/stats``).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Callable

import numpy as np

from genkit import files


def cache_folder() -> Path:
    return Path(os.environ.get("GENKIT_CACHE", "~/.cache/genkit")).expanduser() / "stats"


def cached(key: dict[str, Any], compute: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """The arrays stored under ``key``, computed by ``compute()`` and saved the first time."""
    text = json.dumps(key, sort_keys=True, default=str)
    path = cache_folder() / f"{hashlib.sha256(text.encode()).hexdigest()[:20]}.npz"
    stored = files.read_cached_npz(path)  # None when missing or damaged: computed again and replaced
    if stored is not None and "key" in stored and str(stored["key"]) == text:
        return {name: value for name, value in stored.items() if name != "key"}
    values = compute()
    files.write_atomic(path, lambda file: np.savez(file, key=np.array(text), **values))
    return values
