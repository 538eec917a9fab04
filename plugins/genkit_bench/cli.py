"""``genkit bench``: the command group, ``--list``, ``run --preset NAME`` and ``cd-vs-ict`` (the default preset)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, ProgressColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from genkit import plugins
from genkit.cli import console, handles_user_errors
from genkit.errors import GenkitError
from genkit.training.loop import TrainingInterrupted
from genkit.training.progress import TickProgress

from genkit_bench import estimate, plan, report, runner, spec as bench_spec, write
from genkit_bench.stats import format_number

bench_app = typer.Typer(
    help="Train several methods under one budget and compare them honestly.",
    invoke_without_command=True,
    rich_markup_mode="rich",
)


@bench_app.callback()
@handles_user_errors
def bench(
    ctx: typer.Context,
    list_presets: Annotated[bool, typer.Option("--list", help="List the built-in bench presets and exit.")] = False,
) -> None:
    """Benchmarks: `genkit bench run --preset NAME`, or `genkit bench cd-vs-ict`."""
    if list_presets:
        _list_presets()
        raise typer.Exit()
    if ctx.invoked_subcommand is None:
        console.print(ctx.get_help())
        raise typer.Exit()


def _list_presets() -> None:
    table = Table(title="bench presets (or pass your own TOML file to --preset)")
    for column in ("preset", "title", "budget", "seeds", "metric", "runs"):
        table.add_column(column)
    for name in bench_spec.preset_names():
        spec = bench_spec.load_spec(name)
        table.add_row(
            name,
            spec.title,
            f"{spec.steps} steps x batch {spec.batch_size}",
            str(spec.seeds),
            f"{spec.metric}, {spec.eval_samples} samples",
            ", ".join(r.label for r in spec.run_list),
        )
    console.print(table)


class _RunInfoColumn(ProgressColumn):
    """Loss and speed for a training bar (the Trainer's fields), a note for the overall bar."""

    def render(self, task) -> Text:
        fields = task.fields
        if "loss" in fields:
            return Text(f"loss {fields['loss']}  {fields['speed']}")  # '52 it/s' or '3.4 s/it'
        return Text(str(fields.get("note", "")))


def _progress(disable: bool = False) -> TickProgress:
    """Bars on a terminal; elsewhere (Slurm, a log file) plain lines: which run the bench trains
    or scores, and each run's log intervals (step, loss, speed, time left)."""
    return TickProgress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        _RunInfoColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=disable,
    )


def _bench_assignment(text: str) -> str:
    return text if text.strip().startswith("bench.") else f"bench.{text.strip()}"


PresetOption = Annotated[str, typer.Option(help="Bench preset: a built-in name (see --list) or a TOML file.")]
SeedsOption = Annotated[Optional[int], typer.Option(help="Number of seeds (0..N-1); default: the preset's.")]
DryRunOption = Annotated[bool, typer.Option("--dry-run", help="Validate the preset and print the plan; train nothing.")]
EstimateOption = Annotated[bool, typer.Option(
    "--estimate", help="With --dry-run: time a few training steps and one sampling batch of each run on this machine's "
    "device (in a temporary folder) and print each run's and the bench's expected time.")]
EstimateStepsOption = Annotated[Optional[int], typer.Option(
    help=f"With --estimate: steps timed per run after {estimate.WARMUP_STEPS} warm-up steps (default {estimate.TIMED_STEPS}).")]
SetOption = Annotated[list[str], typer.Option("--set", help="Override a bench key: --set steps=500, --set overrides.network.width=64 (repeatable).")]
OUT_HELP = "Output folder: new, empty or one genkit bench wrote; rerun with the same one to resume (default: {default})."
DEFAULT_PRESET = "toy2d"  # what `genkit bench cd-vs-ict` runs


@bench_app.command("run")
@handles_user_errors
def run(
    preset: Annotated[str, typer.Option(help="Bench preset: a built-in name (see --list) or a TOML file.", show_default=False)],
    seeds: SeedsOption = None,
    out: Annotated[Optional[Path], typer.Option(help=OUT_HELP.format(default="runs/bench-PRESET"))] = None,
    dry_run: DryRunOption = False,
    estimate_time: EstimateOption = False,
    estimate_steps: EstimateStepsOption = None,
    assignments: SetOption = [],
) -> None:
    """Run any bench preset: train its runs per seed under one budget, score them, report."""
    timed = _timed_steps(estimate_time, estimate_steps, dry_run)
    _run_preset("run", preset, seeds, out, dry_run, assignments, default_out="bench-{name}", timed_steps=timed)


@bench_app.command("cd-vs-ict")
@handles_user_errors
def cd_vs_ict(
    preset: PresetOption = DEFAULT_PRESET,
    seeds: SeedsOption = None,
    out: Annotated[Optional[Path], typer.Option(help=OUT_HELP.format(default="runs/bench-cd-vs-ict-PRESET"))] = None,
    dry_run: DryRunOption = False,
    estimate_time: EstimateOption = False,
    estimate_steps: EstimateStepsOption = None,
    assignments: SetOption = [],
) -> None:
    """EDM teacher, CD from it, iCT and CT from scratch, per seed; score at 1, 2 (or bench.sampling_steps) steps; report.
    The same as `genkit bench run --preset toy2d` (its default preset)."""
    timed = _timed_steps(estimate_time, estimate_steps, dry_run)
    _run_preset("cd-vs-ict", preset, seeds, out, dry_run, assignments, default_out="bench-cd-vs-ict-{name}", timed_steps=timed)


def _timed_steps(estimate_time: bool, steps: int | None, dry_run: bool) -> int:
    """The steps --estimate times per run (0: no estimate), checked before anything is loaded."""
    if steps is not None and not estimate_time:
        raise GenkitError("--estimate-steps goes with --estimate")
    if not estimate_time:
        return 0
    if not dry_run:
        raise GenkitError("--estimate goes with --dry-run: it times a few steps of each run instead of training the bench")
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise GenkitError("--estimate times the runs in one process: run it without torchrun")
    if steps is not None and steps < 1:
        raise GenkitError("--estimate-steps must be at least 1")
    return estimate.TIMED_STEPS if steps is None else steps


def _run_preset(command: str, preset: str, seeds: int | None, out: Path | None, dry_run: bool, assignments: list[str],
                default_out: str, timed_steps: int = 0) -> None:
    if seeds is not None and seeds < 1:
        raise GenkitError("--seeds must be at least 1")
    spec = bench_spec.load_spec(preset, [_bench_assignment(a) for a in assignments], seeds)
    if out is None and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise GenkitError("under torchrun, name the output folder with --out so every process uses the same one")
    out = out or Path("runs") / default_out.format(name=spec.name)
    plugin_set = plugins.load()
    if dry_run:
        _print_plan(command, spec, out, plan.plan(spec, out, plugin_set.registries))
        if timed_steps:
            _print_estimate(spec, plugin_set.registries, timed_steps)
        return
    main = int(os.environ.get("RANK", "0")) == 0
    if main:
        console.print(plan.cost_estimate(spec), highlight=False)
    try:
        with _progress(disable=not main) as progress:
            results = runner.run_bench(spec, out, plugin_set, progress if main else None)
    except KeyboardInterrupt:
        raise TrainingInterrupted(f"interrupted; rerun the same command with --out {out} to continue") from None
    if results is None:  # a rank other than 0 under torchrun: rank 0 reports
        return
    out = Path(out)
    curves = write.write_outputs(results, out)
    report.print_table(console, results)
    console.print(f"[bold]verdict:[/] {results['verdict']['sentence']}", highlight=False)
    for sentence in (results["verdict"]["over_training"], results["verdict"]["not_learning"]):
        if sentence:
            console.print(sentence, highlight=False)
    console.print(
        f"wrote [cyan]{out / 'results.json'}[/], [cyan]{out / 'report.md'}[/]"
        + (f", [cyan]{curves}[/]" if curves else "")
        + f" and pictures in [cyan]{out / 'pictures'}[/]; wall time {format_number(results['wall_time_this_invocation_s'])} s "
        f"({format_number(results['wall_time_s'])} s over every run of this command on {out})"
    )


# ----------------------------------------------------------------------------- --dry-run


def _compact(options: dict) -> str:
    return ", ".join(f"{k}={_part(v)}" for k, v in options.items() if k not in ("name", "unvalidated"))


def _part(value) -> str:
    """A component table as name(option=value, ...); other values as they are."""
    if isinstance(value, dict) and "name" in value:
        inner = _compact(value)
        return f"{value['name']}({inner})" if inner else value["name"]
    return str(value)


def _and_list(values: list) -> str:
    """1 and 2; 1, 2 and 3."""
    words = [str(v) for v in values]
    return " and ".join(words) if len(words) < 3 else f"{', '.join(words[:-1])} and {words[-1]}"


def _levels_phrase(sampling_steps: list[int], levels: list[float]) -> str:
    """'2-step level 0.821' for benches at 1 and 2 steps; the levels k steps draw from otherwise."""
    most = max(sampling_steps)
    if most <= 2:
        return f"2-step level {levels[0]}"
    return f"levels {', '.join(map(str, levels[: most - 1]))} (k steps use the first k - 1)"


def _print_plan(command: str, spec: bench_spec.BenchSpec, out: Path, planned: list[plan.PlannedRun]) -> None:
    console.print(f"[bold]plan: genkit bench {command} --preset {spec.name}[/]  ({spec.title})", highlight=False)
    console.print(f"  preset file       {bench_spec.display_source(spec)}", highlight=False)
    console.print(f"  training preset   {spec.training_preset}", highlight=False)
    console.print(f"  seeds             {', '.join(map(str, plan.seeds_of(spec)))}", highlight=False)
    console.print(
        f"  budget            {spec.steps} steps x batch {spec.batch_size} = {spec.steps * spec.batch_size:.4g} "
        f"training samples, the same for every method",
        highlight=False,
    )
    levels = (
        f"each model's own levels by the greedy search ({spec.search_samples} samples, {spec.search_iterations} steps per level; "
        f"a run's own levels kept), else {_levels_phrase(spec.sampling_steps, spec.levels)}"
        if spec.level_search
        else _levels_phrase(spec.sampling_steps, spec.levels)
    )
    console.print(
        f"  scoring           {spec.metric} on {spec.eval_samples} samples vs as many held-out data points; "
        f"sampling steps {spec.sampling_steps}, {levels}; "
        f"curve every {spec.curve_every or '-'} steps on {spec.curve_samples} samples",
        highlight=False,
    )
    console.print(f"  output            {out}", highlight=False)
    console.print(f"  {plan.cost_estimate(spec)}", highlight=False)
    registries = plugins.registries()
    console.print("[bold]runs[/] (per seed, in this order; each one a genkit run folder under OUT/runs/seedS/)")
    for item in [p for p in planned if p.seed == plan.seeds_of(spec)[0]]:
        view = item.config.to_dict() if item.config else bench_spec.validate_partially(item.layers, registries)
        network, train = view["network"], view["train"]
        options = view["methods"].get(item.run.method, {})
        if item.run.teacher:
            options = {**options, "teacher": f"OUT/runs/seedS/{item.run.teacher}"}
        absent = " [yellow](missing)[/]"
        sampling = (
            f"Heun, {view['sample']['heun_levels']} levels"
            if item.run.role == "teacher"
            else f"{_and_list(spec.sampling_steps)} step(s), levels searched after training"
            if spec.searches_levels(item.run)
            else f"{_and_list(spec.sampling_steps)} step(s), {_levels_phrase(spec.sampling_steps, view['sample']['multistep_sigmas'])}"
        )
        console.print(
            f"  [bold]{item.run.label}[/]: method {item.run.method}{absent if item.run.method not in registries.methods else ''}, "
            f"{item.run.role}",
            highlight=False,
        )
        console.print(f"      network   {network.get('name')}{absent if network.get('unvalidated') else ''}: {_compact(network)}", highlight=False)
        console.print(
            f"      train     lr {train['lr']} ({_part(train['lr_schedule'])}), {_part(train['optimizer'])}, grad clip {train['grad_clip'] or 'none'}, "
            f"evaluation EMA {train['ema_rate']}, device {train['device']}",
            highlight=False,
        )
        console.print(f"      method    {_compact(options) or '(defaults)'}", highlight=False)
        data_options = _compact(view["data"])
        console.print(f"      data      {view['data'].get('name')}{': ' + data_options if data_options else ''}", highlight=False)
        console.print(f"      sampling  {sampling}", highlight=False)
    for note in spec.notes:
        console.print(f"  note: {note}", highlight=False)
    missing = plan.all_missing(planned)
    if missing:
        listing = ", ".join(str(m) for m in missing)
        console.print(
            f"[yellow]not runnable here yet:[/] no installed plugin registers {listing}. Everything else validated; "
            f"without --dry-run this preset stops with an error naming them.",
            highlight=False,
        )
    elif problem := plan.data_problem(planned, plugins.registries()):
        console.print(f"[yellow]not runnable here yet:[/] every component is installed, but the data is not: {problem}", highlight=False)
    else:
        console.print("[green]every component is installed and the data is readable: the plan is runnable.[/]")


def _print_estimate(spec: bench_spec.BenchSpec, registries, timed_steps: int) -> None:
    def announce(index: int, count: int, run: bench_spec.RunSpec) -> None:
        console.print(f"  timing {run.label} ({index + 1}/{count})", highlight=False, markup=False)

    console.print("[bold]estimate[/]: timing each run of seed 0 for a few steps in a temporary folder", highlight=False)
    timings = estimate.time_runs(spec, registries, timed_steps, announce)
    for line in estimate.estimate_lines(spec, timings, timed_steps):
        console.print(line, highlight=False, markup=False)
