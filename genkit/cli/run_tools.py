"""``genkit curves`` and ``genkit export``: look at a run's training log, hand its weights on."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from genkit import plugins
from genkit.cli.errors import console, handles_user_errors
from genkit.errors import GenkitError
from genkit.export import EXPORT_FILE, FORMATS, export_run
from genkit.pictures import save_training_curves
from genkit.training.run import METRICS_FILE, RunFolder


@handles_user_errors
def curves(
    run: Annotated[Path, typer.Argument(help="A run folder written by genkit train.")],
    out: Annotated[Optional[Path], typer.Option(help="Output PNG (default: RUN/curves.png).")] = None,
) -> None:
    """Draw the training loss (log scale) and every evaluation metric against the step, from RUN/metrics.jsonl."""
    records = training_records(run)
    path = save_training_curves(records, out or Path(run) / "curves.png", f"{Path(run).name}: {len(records)} records")
    console.print(f"wrote [cyan]{path}[/]")


def training_records(run: Path) -> list[dict]:
    """The records of RUN/metrics.jsonl; a missing run or an empty log is a one-line error."""
    folder = RunFolder(run)
    if not folder.path.is_dir():
        raise GenkitError(f"run folder not found: {folder.path}")
    if not folder.is_run():
        raise GenkitError(f"{folder.path} is not a genkit run folder (no config.toml written by genkit train)")
    try:
        records = [r for r in folder.metrics() if isinstance(r, dict) and isinstance(r.get("step"), int)]
    except ValueError as error:  # a line cut short by a kill, or edited by hand
        raise GenkitError(f"{folder.metrics_path} is not JSON lines: {error}") from None
    if not records:
        raise GenkitError(f"{folder.path} has no training records yet ({METRICS_FILE} is empty or missing)")
    return records


@handles_user_errors
def export(
    run: Annotated[Path, typer.Argument(help="A run folder written by genkit train.")],
    file_format: Annotated[str, typer.Option("--format", help=f"File format: {', '.join(FORMATS)}.")] = "safetensors",
    out: Annotated[Optional[Path], typer.Option(help=f"Output file (default: RUN/{EXPORT_FILE.as_posix()}; RUN/export/model-emaRATE.safetensors for another EMA).")] = None,
    ema: Annotated[Optional[float], typer.Option(help="Which evaluation EMA: a rate of train.ema_rates (default: the first).")] = None,
) -> None:
    """Write a run's EMA weights and resolved config (TOML, in the file's metadata) to a file that loads without pickle."""
    path = export_run(run, plugins.registries(), out, file_format, ema)
    console.print(f"wrote [cyan]{path}[/]: EMA weights, config in its metadata (safetensors.torch.load_file reads it)")


def register(app: typer.Typer) -> None:
    app.command("curves")(curves)
    app.command("export")(export)
