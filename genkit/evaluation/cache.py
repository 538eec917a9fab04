"""Reference statistics computed once per dataset and feature network, then read from disk.

An evaluator keys its statistics by everything they depend on (feature network and its weights,
dataset name and options, split); a changed key computes them anew. The folder is
``$GENKIT_CACHE/stats`` (default ``~/.cache/genkit/stats``).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy as np


def cache_folder() -> Path:
    return Path(os.environ.get("GENKIT_CACHE", "~/.cache/genkit")).expanduser() / "stats"


def cached(key: dict[str, Any], compute: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """The arrays stored under ``key``, computed by ``compute()`` and saved the first time."""
    text = json.dumps(key, sort_keys=True, default=str)
    path = cache_folder() / f"{hashlib.sha256(text.encode()).hexdigest()[:20]}.npz"
    if path.is_file():
        with np.load(path) as stored:
            if str(stored["key"]) == text:
                return {name: stored[name] for name in stored.files if name != "key"}
    values = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=".stats-", suffix=".npz", dir=path.parent)
    with os.fdopen(handle, "wb") as file:
        np.savez(file, key=np.array(text), **values)
    os.replace(temporary, path)  # a crash mid-write leaves no half file under the real name
    return values
