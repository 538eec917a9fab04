"""Planning a bench: every (seed, run) with its config, resolved once, before anything is trained."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from genkit import config as configuration
from genkit.components import BuildContext
from genkit.errors import GenkitError

from genkit_bench.spec import BenchSpec, Missing, RunSpec, missing_components, run_layers, validate_partially


@dataclass
class PlannedRun:
    """One run at one seed, before anything is trained."""

    run: RunSpec
    seed: int
    folder: Path
    layers: configuration.Layers
    missing: list[Missing]
    config: configuration.Config | None = None  # resolved (once) when nothing is missing

    @property
    def key(self) -> str:
        return f"seed{self.seed}/{self.run.name}"


def seeds_of(spec: BenchSpec) -> list[int]:
    return list(range(spec.seeds))


def plan(spec: BenchSpec, out: Path, registries) -> list[PlannedRun]:
    """Every (seed, run) with its config layers; resolved where every component is installed."""
    out = Path(out).resolve()
    planned = []
    for seed in seeds_of(spec):
        for run in spec.run_list:
            folder = out / "runs" / f"seed{seed}" / run.name
            teacher_folder = out / "runs" / f"seed{seed}" / run.teacher if run.teacher else None
            layers = run_layers(spec, run, seed, teacher_folder, teacher_key(run, registries))
            missing = missing_components(layers, registries, run)
            if spec.metric not in registries.evaluators:  # the verdict's metric
                missing.append(Missing("evaluator", spec.metric, "bench.metric"))
            item = PlannedRun(run, seed, folder, layers, missing)
            if not missing:
                item.config = configuration.resolve(layers, registries)
            else:
                validate_partially(layers, registries)  # a wrong key still fails here, before the missing part
            planned.append(item)
    _check_same_data(planned)
    return planned


def teacher_key(run: RunSpec, registries) -> str | None:
    """The option a run's method reads its teacher folder from (None while the method is missing)."""
    if not run.teacher or run.method not in registries.methods:
        return None
    key = getattr(registries.methods.get(run.method), "teacher_run_key", None)
    if not key:
        raise GenkitError(f"bench.runs.{run.name}.teacher: method '{run.method}' takes no teacher run")
    return key


def _check_same_data(planned: list[PlannedRun]) -> None:
    names = {}
    for item in planned:
        data = item.layers.data.get("data", {})
        names[item.run.name] = data if isinstance(data, str) else data.get("name") if isinstance(data, dict) else None
    if len(set(names.values())) > 1:
        listing = ", ".join(f"{run}: {name}" for run, name in names.items())
        raise GenkitError(f"every run of a bench must train on the same data, got {listing}")


def all_missing(planned: list[PlannedRun]) -> list[Missing]:
    unique: dict[tuple[str, str], Missing] = {}
    for item in planned:
        for missing in item.missing:
            unique.setdefault((missing.kind, missing.name), missing)
    return list(unique.values())


def missing_error(spec: BenchSpec, missing: list[Missing]) -> GenkitError:
    listing = ", ".join(f"{m} (run '{m.needed_by}')" if m.kind == "method" else str(m) for m in missing)
    return GenkitError(
        f"bench preset '{spec.name}' needs components no installed plugin registers: {listing}; "
        f"`genkit plugins` lists what is installed, `--dry-run` prints the plan"
    )


def cost_estimate(spec: BenchSpec) -> str:
    """Training seconds the bench will take, estimated before anything runs: steps x the preset's
    measured seconds per step of each run (bench.seconds_per_step), scaled linearly from the batch
    size they were measured at to this one, times the seeds. Labelled an estimate: a measurement
    of another machine (or batch) says little about this one."""
    hints = spec.seconds_per_step
    if not hints:
        return "cost estimate: none (the preset gives no seconds_per_step)"
    measured_at = spec.seconds_per_step_batch or spec.batch_size
    scale = spec.batch_size / measured_at
    parts, per_seed = [], 0.0
    for run in spec.run_list:
        hint = hinted_seconds_per_step(spec, run)
        if hint is None:
            parts.append(f"{run.label} no hint")
            continue
        seconds = spec.steps * hint
        per_seed += seconds
        parts.append(f"{run.label} {spec.steps} x {hint:.3g} s = {_seconds(seconds)} s")
    source = f"measured on {spec.seconds_per_step_on}" if spec.seconds_per_step_on else "measured"
    batch = f" at batch {measured_at}" + (f", scaled linearly to batch {spec.batch_size} (rough)" if scale != 1 else "")
    partial = " for the runs with a hint" if len(parts) > sum(run.name in hints for run in spec.run_list) else ""
    return (
        f"cost estimate (an estimate from the preset's seconds_per_step, {source}{batch}; not a measurement of this machine): "
        f"{', '.join(parts)}; {_seconds(per_seed)} s per seed{partial}, {_seconds(per_seed * spec.seeds)} s of training for {spec.seeds} "
        f"seed{'s' if spec.seeds > 1 else ''}; level search, scoring and curve points come on top"
    )


def hinted_seconds_per_step(spec: BenchSpec, run: RunSpec) -> float | None:
    """A run's seconds per step from the preset (bench.seconds_per_step), scaled linearly from the
    batch it was measured at to bench.batch_size; None when the preset gives none."""
    hint = spec.seconds_per_step.get(run.name)
    if hint is None:
        return None
    return hint * spec.batch_size / (spec.seconds_per_step_batch or spec.batch_size)


def _seconds(value: float) -> str:
    return f"{value:.0f}" if value >= 10 else f"{value:.2g}"


def data_problem(planned: list[PlannedRun], registries) -> str:
    """Why the runs' data cannot be read here ('' when it can): the dataset is built, not the
    networks, so a dry run of a large preset stays quick and still names a dataset not on disk."""
    item = next((p for p in planned if p.config is not None), None)
    if item is None:
        return ""
    config = item.config
    ctx = BuildContext(registries=registries, noise=config.noise, sample=config.sample, total_steps=config.train.steps,
                       network=config.network, device=torch.device("cpu"))
    try:
        registries.datasets.build(config.data, ctx)
    except GenkitError as error:
        return str(error)
    return ""
