"""``genkit eval``: score a run's samples with chosen metrics at chosen step counts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from genkit import files
from genkit.api import load
from genkit.cli.errors import console, handles_user_errors
from genkit.errors import GenkitError

EVAL_FILE = "eval.json"


@handles_user_errors
def evaluate(
    run: Annotated[Path, typer.Argument(help="A run folder written by genkit train, or a file written by genkit export.")],
    metric: Annotated[list[str], typer.Option("--metric", help="An evaluator (repeatable; default: the run's eval.metrics, else the dataset's).")] = [],
    num: Annotated[Optional[int], typer.Option(help="Samples per score (default: sample.num of the run).")] = None,
    steps: Annotated[list[int], typer.Option("--steps", help="Sampling steps (repeatable: --steps 1 --steps 2).")] = [],
    seed: Annotated[int, typer.Option(help="Sample k uses its own seed, seed * 2**32 + k.")] = 0,
    floor: Annotated[bool, typer.Option(help="Also score held-out data the same way (the data-vs-data floor).")] = False,
    ema: Annotated[Optional[float], typer.Option(help="Which evaluation EMA: a rate of train.ema_rates (default: the first).")] = None,
    out: Annotated[Optional[Path], typer.Option(help="The JSON file the scores are added to (default: RUN/eval.json; for an export FILE, STEM-eval.json beside it).")] = None,
) -> None:
    """Score a run's EMA weights (or an export's): a table, and the scores added to RUN/eval.json."""
    model = load(run, ema=ema)
    out = out or model.beside(EVAL_FILE)
    read_records(out)  # a damaged file fails now, not after the scoring
    step_counts = steps or [model.trained.built.method.default_sampling_steps()]
    records = []
    for count in step_counts:
        scores = model.evaluate(num, count, seed, floor=floor, metrics=metric)
        record = {"step": model.step, "steps": count, "num": num or model.config.sample.num, "seed": seed, "scores": scores}
        records.append(record if model.default_ema else {**record, "ema": model.ema_rate})
    path = save_records(out, records)
    console.print(score_table(records))
    console.print(f"added to [cyan]{path}[/]")


def save_records(path: Path, records: list[dict]) -> Path:
    """Add ``records`` to the JSON list at ``path``, replacing any with the same settings."""
    settings = lambda r: (r["step"], r["steps"], r["num"], r["seed"], r.get("ema"), tuple(sorted(r["scores"])))  # noqa: E731
    kept = read_records(path)
    new = {settings(r) for r in records}
    return files.write_atomic(path, json.dumps([r for r in kept if settings(r) not in new] + records, indent=2) + "\n")


def read_records(path: Path) -> list[dict]:
    """The records of an eval.json (none when missing); damage is one line, never a traceback."""
    kept = files.read_json(path, default=[])
    keys = {"step", "steps", "num", "seed", "scores"}
    if not isinstance(kept, list) or not all(isinstance(r, dict) and keys <= set(r) and isinstance(r["scores"], dict) for r in kept):
        raise GenkitError(f"{path} is damaged (not a list of genkit eval records); move it away and run the command again")
    return kept


def score_table(records: list[dict]) -> Table:
    names = sorted({name for record in records for name in record["scores"]})
    table = Table(title=f"step {records[0]['step']}, {records[0]['num']} samples, seed {records[0]['seed']}")
    table.add_column("sampling steps")
    for name in names:
        table.add_column(name)
    for record in records:
        table.add_row(str(record["steps"]), *(f"{record['scores'].get(name, float('nan')):.5g}" for name in names))
    return table


def register(app: typer.Typer) -> None:
    app.command("eval")(evaluate)
