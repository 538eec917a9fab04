"""The run folder: resolved config, checkpoint, metrics and samples of one training run."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Iterator

from genkit import config as configuration
from genkit import files
from genkit.errors import GenkitError
from genkit.training import lock

CONFIG_FILE = "config.toml"
CHECKPOINT_FILE = "checkpoint.pt"
METRICS_FILE = "metrics.jsonl"
MARKER_FILE = ".genkit-run"  # written first into a new run's folder: only such a folder is reused
SNAPSHOTS_FOLDER = "snapshots"
SNAPSHOT_NAME = re.compile(r"step-(\d+)\.pt")
CONFIG_HEADER = "# genkit run: the resolved configuration (genkit train --config this-file repeats the run)\n"


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

    def is_run(self) -> bool:
        """Written by genkit train: its marker, a checkpoint, or a config.toml with genkit's header
        line (runs from before the marker). Enough to read a run; only a marked one is reused."""
        if self.is_marked() or self.has_checkpoint():
            return True
        try:
            with self.config_path.open() as handle:
                return handle.readline() == CONFIG_HEADER
        except (OSError, UnicodeDecodeError):
            return False

    def is_marked(self) -> bool:
        """genkit train started a run here (and wrote its marker before anything else)."""
        return (self.path / MARKER_FILE).is_file() and not (self.path / MARKER_FILE).is_symlink()

    def check_new(self) -> None:
        """A new run may go into a missing or empty folder, or one a run left before its first
        checkpoint (marked as genkit's); never over a run with a checkpoint or into a folder of
        other files: a config.toml and metrics.jsonl there may be the user's own."""
        if self.path.exists() and not self.path.is_dir():
            raise GenkitError(f"{self.path} is a file, not a run folder; pick another `out`")
        if self.has_checkpoint():
            raise GenkitError(f"{self.path} already holds a run; continue it with `resume` or pick another `out`")
        others = [p.name for p in self.path.iterdir() if p.name != lock.LOCK_FILE] if self.path.is_dir() else []
        if others and not self.is_marked():
            raise GenkitError(f"{self.path} is not empty and not a genkit run folder (it holds {others[0]}); pick another `out`")

    def mark(self) -> None:
        """Claim the folder for a new run, before writing anything else into it."""
        self.path.mkdir(parents=True, exist_ok=True)
        if not files.create_new(self.path / MARKER_FILE, b"genkit run folder\n"):
            files.check_writable(self.path / MARKER_FILE)  # a link or folder planted there is refused

    def check_writable(self, snapshots: bool = False) -> None:
        """Before training: the files a run writes can be written (not a folder, link...), so a
        run does not fail at its first save."""
        for path in (self.config_path, self.checkpoint_path, self.metrics_path):
            files.check_writable(path)
        if snapshots:
            files.refuse_link(self.snapshots_path)
            if self.snapshots_path.exists() and not self.snapshots_path.is_dir():
                raise GenkitError(f"{self.snapshots_path} is not a folder, so train.keep_snapshots cannot write there; move it away")

    @property
    def snapshots_path(self) -> Path:
        return self.path / SNAPSHOTS_FOLDER

    def snapshots(self) -> list[tuple[int, Path]]:
        """(step, path) of the snapshots in RUN/snapshots, oldest first; other files are not ours."""
        found = [(SNAPSHOT_NAME.fullmatch(p.name), p) for p in self.snapshots_path.glob("step-*.pt")]
        return sorted((int(match.group(1)), path) for match, path in found if match)

    def snapshot(self, step: int, keep: int) -> Path:
        """The checkpoint just written, also as RUN/snapshots/step-NNNNNNN.pt (a hard link: no
        extra space until checkpoint.pt is replaced), keeping it and the ``keep`` before it.
        Training only ever reads checkpoint.pt, so resuming ignores these."""
        folder = self.snapshots_path
        files.refuse_link(folder)  # old snapshots are deleted there: never in a folder elsewhere
        folder.mkdir(exist_ok=True)
        target = folder / f"step-{step:07d}.pt"
        files.link_atomic(self.checkpoint_path, target)  # a save at the same step again (the final one) replaces it
        earlier = [path for at, path in self.snapshots() if at < step]
        for old in earlier[: max(len(earlier) - keep, 0)]:
            old.unlink(missing_ok=True)
        return target

    def remove_partial_checkpoints(self) -> None:
        """Temporary files of a write that a kill interrupted (``.checkpoint.pt.XXXXXXXX``...);
        readers never look at them, the next training start removes them."""
        for name in (CHECKPOINT_FILE, CONFIG_FILE, METRICS_FILE):
            for partial in self.path.glob(f".{name}.*"):
                partial.unlink(missing_ok=True)

    def write_config(self, resolved: configuration.Config) -> None:
        try:
            files.write_atomic(self.config_path, CONFIG_HEADER + configuration.to_toml(resolved.to_dict()))
        except OSError as error:
            raise GenkitError(f"cannot write the run folder {self.path}: {error.strerror}") from None

    def read_config(self, registries, lenient: frozenset[str] = frozenset()) -> configuration.Config:
        if not self.path.is_dir():
            raise GenkitError(f"run folder not found: {self.path}")
        if not self.config_path.is_file():
            raise GenkitError(f"{self.path} is not a genkit run folder (no {CONFIG_FILE})")
        if not self.is_run():
            raise GenkitError(f"{self.path} is not a genkit run folder (its {CONFIG_FILE} was not written by genkit train)")
        values = configuration.read_toml(self.config_path)
        if not values:
            raise GenkitError(f"{self.config_path} is empty; a run folder's config.toml is written by genkit train")
        layers = configuration.Layers()
        layers.add(values, str(self.config_path))
        return configuration.resolve(layers, registries, lenient)

    def append_metrics(self, record: dict[str, Any]) -> None:
        files.append_text(self.metrics_path, files.json_text(record) + "\n")

    def metrics(self, drop_cut_tail: bool = False) -> Iterator[dict[str, Any]]:
        """The records of metrics.jsonl (none when missing); a damaged line is one GenkitError."""
        return files.read_jsonl(self.metrics_path, drop_cut_tail)

    def truncate_metrics(self, after_step: int) -> None:
        """Drop records past the checkpoint being resumed, so the log matches the weights; a last
        line cut short by a kill mid-write goes too."""
        kept = [r for r in self.metrics(drop_cut_tail=True) if not isinstance(r, dict) or r.get("step", 0) <= after_step]
        files.write_atomic(self.metrics_path, "".join(json.dumps(r) + "\n" for r in kept))


def new_run_path(base: Path) -> Path:
    """``base`` if unused, else ``base-2``, ``base-3``...: a new run never overwrites an old one."""
    if not base.exists():
        return base
    suffix = 2
    while base.with_name(f"{base.name}-{suffix}").exists():
        suffix += 1
    return base.with_name(f"{base.name}-{suffix}")
