"""TensorBoard scalars of every training record, through torch.utils.tensorboard."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from genkit.errors import GenkitError
from genkit.schema import option

INSTALL_HINT = "pip install tensorboard (or pip install 'genkit[tensorboard]')"


def summary_writer_class():
    """SummaryWriter, or a one-line error naming the package to install."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise GenkitError(f"logger 'tensorboard' needs the tensorboard package: {INSTALL_HINT}") from None
    return SummaryWriter


class TensorBoard:
    """Writes each number of a record as a scalar at its step: ``loss``, ``elapsed_s``, the
    method's logs, and ``eval/<metric>`` for evaluations. View with ``tensorboard --logdir RUN``."""

    @dataclass
    class Config:
        folder: str = option("tensorboard", "folder in the run folder the event files go to")

    def __init__(self, options: "TensorBoard.Config | None" = None, ctx=None):
        options = options or self.Config()
        if ctx is None or ctx.run_path is None:
            raise GenkitError("logger 'tensorboard' writes into a run folder; it is built by the training loop")
        self.writer_class = summary_writer_class()  # checked now, before training starts
        self.path = Path(ctx.run_path) / options.folder
        self.writer = None

    def log(self, record: dict[str, Any]) -> None:
        step = int(record["step"])
        if self.writer is None:
            # opened at the first record, so a run that fails to start leaves no folder behind;
            # purge_step hides events a resumed run logged past its checkpoint before it stopped
            self.writer = self.writer_class(log_dir=str(self.path), purge_step=step)
        for tag, value in scalars(record):
            self.writer.add_scalar(tag, value, step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def scalars(record: dict[str, Any], prefix: str = "") -> list[tuple[str, float]]:
    """(tag, number) for each number in a record, nested tables as 'table/key'; step left out."""
    found = []
    for key, value in record.items():
        if not prefix and key == "step":
            continue
        if isinstance(value, dict):
            found += scalars(value, f"{prefix}{key}/")
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            found.append((f"{prefix}{key}", float(value)))
    return found
