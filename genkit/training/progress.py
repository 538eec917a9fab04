"""Training progress: rich's bar on a terminal; elsewhere (a Slurm job, ``> log 2>&1``), where a
live bar prints nothing until it ends, one plain line per log interval, as EDM's training loop
prints its tick lines (Karras et al. 2022, training/training_loop.py)."""

from __future__ import annotations

import math

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


def speed_text(steps_per_s: float | None) -> str:
    """'52 it/s' for a fast run, '3.4 s/it' for a slow one (never '0 it/s'); '-' when unknown."""
    if steps_per_s is None or not math.isfinite(steps_per_s) or steps_per_s <= 0:
        return "-"
    if steps_per_s >= 10:
        return f"{steps_per_s:.0f} it/s"
    if steps_per_s >= 1:
        return f"{steps_per_s:.1f} it/s"
    seconds = 1 / steps_per_s
    return f"{seconds:.1f} s/it" if seconds < 100 else f"{seconds:.0f} s/it"


def duration_text(seconds: float | None) -> str:
    """H:MM:SS, as rich's time columns write it; '-' when unknown."""
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return "-"
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def tick_line(description: str, step: int, total: int | None, loss: str, steps_per_s: float | None, elapsed_s: float | None) -> str:
    """One log interval as a plain line: step, loss, speed, elapsed and estimated time left."""
    left = (total - step) / steps_per_s if total is not None and steps_per_s and steps_per_s > 0 else None
    of = f"/{total}" if total is not None else ""
    return (f"{description} step {step}{of}  loss {loss}  {speed_text(steps_per_s)}  "
            f"elapsed {duration_text(elapsed_s)}  eta {duration_text(left)}")


class TickProgress(Progress):
    """A rich Progress that, when its console is not a terminal, draws no bar and prints instead
    one line each time a task gets a new loss (``update(task, loss=..., rate=steps_per_s)``: the
    Trainer does at every log interval) and one each time a task without a loss changes its
    description or ``note`` (the bench's overall task: which run it trains or scores)."""

    def __init__(self, *columns, disable: bool = False, plain: bool | None = None, **kwargs):
        super().__init__(*columns, disable=disable, **kwargs)
        self.plain = (not disable) and (not self.console.is_terminal if plain is None else plain)
        if self.plain:
            self.disable = True  # no live display: the lines take its place
        self._said: dict = {}

    def update(self, task_id, **kwargs) -> None:
        super().update(task_id, **kwargs)
        if not self.plain:
            return
        task = self._tasks[task_id]
        if kwargs.get("loss", "-") != "-":
            self._say(tick_line(task.description, int(task.completed), None if task.total is None else int(task.total),
                                kwargs["loss"], task.fields.get("rate"), task.fields.get("elapsed_s", task.elapsed)))
        elif "loss" not in task.fields and ("description" in kwargs or "note" in kwargs):
            line = f"{task.description}: {task.fields['note']}" if task.fields.get("note") else task.description
            if self._said.get(task_id) != line:
                self._said[task_id] = line
                self._say(line)

    def _say(self, line: str) -> None:
        file = self.console.file
        file.write(line + "\n")
        file.flush()  # a log file under Slurm shows it now, not when the buffer fills


def training_progress(console=None, disable: bool = False, plain: bool | None = None) -> TickProgress:
    """The Trainer's display: a bar with loss and speed on a terminal, tick lines elsewhere."""
    return TickProgress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]}"),
        TextColumn("{task.fields[speed]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=disable,
        plain=plain,
    )
