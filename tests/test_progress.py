"""Progress where stdout is not a terminal (Slurm, ``> log 2>&1``): one plain line per log interval,
for genkit train and the bench; slow runs show s/it, never '0 it/s'."""

import io
import re

from rich.console import Console
from typer.testing import CliRunner

from genkit.cli.main import build_app
from genkit.training.loop import Trainer
from genkit.training.progress import TickProgress, duration_text, speed_text, tick_line, training_progress
from genkit.training.run import RunFolder

from genkit_bench.cli import _progress as bench_progress

TICK = re.compile(r"^ict step (\d+)/20  loss [0-9.e+-]+  [0-9.]+ (it/s|s/it)  elapsed \d+:\d\d:\d\d  eta (\d+:\d\d:\d\d)$")


def test_speed_is_per_second_or_seconds_per_step():
    assert speed_text(52.4) == "52 it/s" and speed_text(3.44) == "3.4 it/s"
    assert speed_text(0.3) == "3.3 s/it" and speed_text(1 / 250) == "250 s/it"  # a slow run: never "0 it/s"
    assert speed_text(0) == speed_text(None) == "-"
    assert duration_text(3725) == "1:02:05" and duration_text(None) == "-"
    assert tick_line("ict", 200, 4000, "0.0123", 0.5, 400.0) == "ict step 200/4000  loss 0.0123  2.0 s/it  elapsed 0:06:40  eta 2:06:40"


def test_train_prints_a_line_per_log_interval_when_stdout_is_not_a_terminal(tmp_path):
    result = CliRunner().invoke(build_app(), [
        "train", "--method", "ict", "--steps", "20", "--out", str(tmp_path / "run"), "--set", "train.log_every=5",
        "--set", "network.width=16", "--set", "network.depth=1", "--set", "train.batch_size=16",
    ])
    assert result.exit_code == 0, result.output
    ticks = [TICK.match(line) for line in result.output.splitlines() if line.startswith("ict step")]
    assert [int(m.group(1)) for m in ticks] == [5, 10, 15, 20]
    assert ticks[-1].group(3) == "0:00:00"  # nothing left at the last step
    assert "━" not in result.output  # no bar


def test_a_terminal_gets_the_bar_not_the_lines():
    terminal = Console(file=io.StringIO(), force_terminal=True, width=120)
    progress = training_progress(console=terminal)
    assert not progress.plain and not progress.disable
    log = Console(file=io.StringIO(), force_terminal=False)
    assert training_progress(console=log).plain and not training_progress(console=log, disable=True).plain  # other ranks: silent


def test_the_bench_prints_which_run_it_works_on_and_each_runs_intervals(tiny_config, registries, tmp_path, capsys):
    progress = bench_progress()
    assert isinstance(progress, TickProgress) and progress.plain  # pytest's stdout is no terminal
    with progress:
        overall = progress.add_task("bench", total=40, completed=0, note="")
        progress.update(overall, description="bench, seed 0: ict (1/2)", completed=0, note="training")
        progress.update(overall, completed=10)  # no new line for a step of the overall bar
        Trainer(tiny_config("ict", steps=20, extra=["train.log_every=10"]), RunFolder(tmp_path / "run"), registries).train(progress=progress)
        progress.update(overall, completed=20, note="scoring")
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "bench, seed 0: ict (1/2): training"
    assert [int(TICK.match(line).group(1)) for line in lines[1:3]] == [10, 20]
    assert lines[3:] == ["bench, seed 0: ict (1/2): scoring"]
