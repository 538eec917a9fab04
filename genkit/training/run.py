"""The run folder: resolved config, checkpoint, metrics and samples of one training run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

from genkit import config as configuration
from genkit.errors import GenkitError

CONFIG_FILE = "config.toml"
CHECKPOINT_FILE = "checkpoint.pt"
METRICS_FILE = "metrics.jsonl"


class RunFolder:
    def __init__(self, path: Path | str):
        self.path = Path(path)

    @property
    def config_path(self) -> Path:
        return self.path / CONFIG_FILE

    @property
    def checkpoint_path(self) -> Path:
        return self.path / CHECKPOINT_FILE

    @property
    def metrics_path(self) -> Path:
        return self.path / METRICS_FILE

    def has_checkpoint(self) -> bool:
        return self.checkpoint_path.is_file()

    def write_config(self, resolved: configuration.Config) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(configuration.to_toml(resolved.to_dict()))

    def read_config(self, registries, lenient: frozenset[str] = frozenset()) -> configuration.Config:
        if not self.path.is_dir():
            raise GenkitError(f"run folder not found: {self.path}")
        if not self.config_path.is_file():
            raise GenkitError(f"{self.path} is not a genkit run folder (no {CONFIG_FILE})")
        layers = configuration.Layers()
        layers.add(configuration.read_toml(self.config_path), str(self.config_path))
        return configuration.resolve(layers, registries, lenient)

    def append_metrics(self, record: dict[str, Any]) -> None:
        with self.metrics_path.open("a") as handle:
            handle.write(json.dumps(record) + "\n")

    def metrics(self) -> Iterator[dict[str, Any]]:
        if not self.metrics_path.is_file():
            return
        for line in self.metrics_path.read_text().splitlines():
            if line.strip():
                yield json.loads(line)

    def truncate_metrics(self, after_step: int) -> None:
        """Drop records past the checkpoint being resumed, so the log matches the weights."""
        kept = [r for r in self.metrics() if r.get("step", 0) <= after_step]
        self.metrics_path.write_text("".join(json.dumps(r) + "\n" for r in kept))


def new_run_path(base: Path) -> Path:
    """``base`` if unused, else ``base-2``, ``base-3``...: a new run never overwrites an old one."""
    if not base.exists():
        return base
    suffix = 2
    while base.with_name(f"{base.name}-{suffix}").exists():
        suffix += 1
    return base.with_name(f"{base.name}-{suffix}")
