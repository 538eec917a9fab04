"""Weights & Biases: every training record as a W&B history row, the resolved config as the
run's W&B config. ``WANDB_MODE=offline`` writes everything under RUN/wandb for a later
``wandb sync``."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from genkit import files
from genkit.config import read_toml
from genkit.errors import GenkitError
from genkit.schema import option

from genkit_loggers.tensorboard import scalars

INSTALL_HINT = "pip install wandb (or pip install 'genkit[wandb]')"
RUN_ID_FILE = Path("wandb") / "run-id"  # in the run folder: a resumed run goes on logging into the same W&B run


def wandb_module():
    """The wandb package, or a one-line error naming it."""
    try:
        import wandb
    except ImportError:
        raise GenkitError(f"logger 'wandb' needs the wandb package: {INSTALL_HINT}") from None
    return wandb


class WandB:
    """Logs each number of a record at its step (``loss``, ``elapsed_s``, the method's logs,
    ``eval/<metric>``) to one W&B run per run folder, resumed with the folder."""

    @dataclass
    class Config:
        project: str = option("genkit", "W&B project the run is logged to")
        entity: Optional[str] = option(None, "W&B team or user; unset: your default entity")
        name: Optional[str] = option(None, "W&B run name; unset: the run folder's name")

    def __init__(self, options: "WandB.Config | None" = None, ctx=None):
        self.options = options or self.Config()
        if ctx is None or ctx.run_path is None:
            raise GenkitError("logger 'wandb' logs a run folder; it is built by the training loop")
        self.wandb = wandb_module()  # checked now, before training starts
        self.path = Path(ctx.run_path)
        self.run = None

    def _start(self) -> None:
        id_file = self.path / RUN_ID_FILE
        run_id = id_file.read_text().strip() if id_file.is_file() else secrets.token_hex(8)
        files.write_atomic(id_file, run_id + "\n")
        config_file = self.path / "config.toml"
        self.run = self.wandb.init(
            project=self.options.project, entity=self.options.entity, name=self.options.name or self.path.name,
            dir=str(self.path), id=run_id, resume="allow", config=read_toml(config_file) if config_file.is_file() else {},
        )

    def log(self, record: dict[str, Any]) -> None:
        if self.run is None:  # at the first record, so a run that fails to start logs nothing
            self._start()
        self.run.log(dict(scalars(record)), step=int(record["step"]))

    def close(self) -> None:
        if self.run is not None:
            self.run.finish()
            self.run = None
