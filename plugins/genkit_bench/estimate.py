"""``--dry-run --estimate``: the bench's expected time, measured on this machine before anything
is spent. Each run of the first seed trains a few steps in a temporary folder, deleted afterwards,
with the bench's config, batch and device, through the Trainer the bench trains with (a student
from its teacher's few-step folder: the plan puts teachers first), then samples one batch; the
metric is timed once. Those measurements, scaled to the bench's steps, scoring and seeds, are the
estimate; a run's ``paper_budget`` scales them to its paper's steps and batch.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import torch

from genkit.errors import GenkitError
from genkit.evaluation import build_evaluators, data_floor, draw_samples
from genkit.training.checkpoint import first_line
from genkit.training.loop import Trainer
from genkit.training.run import RunFolder

from genkit_bench.plan import PlannedRun, data_problem, hinted_seconds_per_step, plan, seeds_of
from genkit_bench.runner import torch_threads
from genkit_bench.score import ScoringWork, held_out_work, scoring_work
from genkit_bench.spec import BenchSpec, RunSpec

WARMUP_STEPS = 2  # kernel selection, cuDNN autotuning and torch.compile fall in the first steps: timed apart
TIMED_STEPS = 3


@dataclass
class MetricTiming:
    """The runs' evaluators timed once, scoring ``samples`` held-out points against as many (what
    a metric costs does not depend on what it scores), without reference statistics: a metric that
    keeps them (FID) computes both sides here, so up to twice what the bench spends; nothing is
    cached."""

    samples: int
    every_s: float  # every evaluator: the final scores, the curve points, the floor
    search_s: float  # bench.metric alone: the level search

    def seconds(self, work: ScoringWork) -> float:
        """``work``'s metric seconds, linear in the samples scored (rough)."""
        return work.calls * (self.every_s if work.every_metric else self.search_s) * work.samples / self.samples


@dataclass
class RunTiming:
    """One run measured on this machine; ``problem`` says why it was not (the figures are then 0)."""

    run: RunSpec
    problem: str = ""
    device: str = ""
    setup_s: float = 0.0  # building the run: network, data, teacher, optimizer
    warmup_s: float = 0.0  # its first WARMUP_STEPS steps
    step_s: float = 0.0  # median of the timed steps after them
    checkpoint_s: float = 0.0  # writing one checkpoint
    checkpoints: int = 0  # checkpoints the bench writes per run: every train.checkpoint_every steps and the last
    nfe_s: float = 0.0  # one network evaluation of one sample, sampling
    work: dict[str, ScoringWork] = field(default_factory=dict)  # the scoring per seed (score.scoring_work)
    metric: MetricTiming | None = None

    def training_s(self, steps: int) -> float:
        """One seed's training: every step at the timed speed, plus start-up, warm-up and checkpoints."""
        return steps * self.step_s + self.setup_s + self.warmup_s + self.checkpoints * self.checkpoint_s

    @property
    def sampling_s(self) -> float:
        return sum(w.evaluations for w in self.work.values()) * self.nfe_s

    @property
    def metric_s(self) -> float:
        return sum(self.metric.seconds(w) for w in self.work.values()) if self.metric else 0.0

    @property
    def scoring_s(self) -> float:
        return self.sampling_s + self.metric_s


def time_runs(spec: BenchSpec, registries, timed_steps: int = TIMED_STEPS,
              on_run: Callable[[int, int, RunSpec], None] | None = None) -> list[RunTiming]:
    """Time each run of the first seed in plan order; ``on_run(index, count, run)`` before each.
    The metric is timed with the first run that trains here, once for all."""
    with tempfile.TemporaryDirectory(prefix="genkit-bench-estimate-") as folder, torch_threads(spec.torch_threads):
        planned = [p for p in plan(spec, Path(folder), registries) if p.seed == seeds_of(spec)[0]]
        data = data_problem(planned, registries)
        timings: dict[str, RunTiming] = {}
        metric = None
        for index, item in enumerate(planned):
            if on_run:
                on_run(index, len(planned), item.run)
            problem = _problem(item, data, timings)
            timing = RunTiming(item.run, problem) if problem else _time_run(spec, item, registries, timed_steps, metric)
            timings[item.run.name], metric = timing, metric or timing.metric
        return list(timings.values())


def _problem(item: PlannedRun, data: str, timings: dict[str, RunTiming]) -> str:
    """Why a run cannot be timed here, in one line naming what is missing ('' when it can)."""
    if item.missing:
        return f"no installed plugin registers {', '.join(map(str, item.missing))}"
    if data:
        return f"its data is not on disk: {data.split(';')[0]}"  # the plan prints the whole message
    teacher = timings.get(item.run.teacher)
    return f"its teacher run '{teacher.run.label}' could not be timed" if teacher and teacher.problem else ""


def _time_run(spec: BenchSpec, item: PlannedRun, registries, timed_steps: int, metric: MetricTiming | None) -> RunTiming:
    # no curve scoring while timing (it is counted as scoring) and no loggers (this is no real run)
    config = replace(item.config, train=replace(item.config.train, eval_every=0, loggers=[]))
    started = time.perf_counter()
    try:
        trainer = Trainer(config, RunFolder(item.folder), registries)
    except GenkitError as error:
        return RunTiming(item.run, str(error))
    try:
        timing = _measure(spec, item.run, trainer, timed_steps, setup_s=time.perf_counter() - started)
        timing.metric = metric or _time_metric(spec, trainer)
        return timing
    except torch.cuda.OutOfMemoryError:
        return RunTiming(item.run, f"out of memory on {device_name(trainer.device)} at batch {spec.batch_size} (sampling: "
                                   f"{config.sample.batch_size}); time a smaller one with --set batch_size=N or set "
                                   f"overrides.train.microbatch (or overrides.sample.batch_size)")
    except GenkitError as error:
        return RunTiming(item.run, str(error))
    except (RuntimeError, ValueError) as error:  # a run that fails here would fail the bench: one line, not a traceback
        return RunTiming(item.run, f"{type(error).__name__}: {first_line(error)}")
    finally:
        trainer.close()


def _measure(spec: BenchSpec, run: RunSpec, trainer: Trainer, timed_steps: int, setup_s: float) -> RunTiming:
    steps = [_seconds(trainer.train_step, trainer.device) for _ in range(WARMUP_STEPS + timed_steps)]
    return RunTiming(
        run,
        device=device_name(trainer.device),
        setup_s=setup_s,
        warmup_s=sum(steps[:WARMUP_STEPS]),
        step_s=statistics.median(steps[WARMUP_STEPS:]),
        checkpoint_s=_seconds(trainer.save, trainer.device),  # a student's teacher is read from it
        checkpoints=spec.steps // trainer.config.train.checkpoint_every + 1,
        nfe_s=_nfe_seconds(trainer, run),
        work=scoring_work(spec, run, trainer.method),
    )


def _time_metric(spec: BenchSpec, trainer: Trainer) -> MetricTiming:
    """The evaluators timed at the fewest samples the bench scores (MetricTiming says how)."""
    evaluators = build_evaluators(trainer.built, prepare=False)
    searched = {spec.metric: evaluators[spec.metric]} if spec.metric in evaluators else evaluators
    samples = min(spec.eval_samples, spec.search_samples, spec.curve_samples)
    dataset, device = trainer.built.dataset, trainer.device
    every = _seconds(lambda: data_floor(dataset, evaluators, samples), device)
    return MetricTiming(samples, every, _seconds(lambda: data_floor(dataset, searched, samples), device))


def _nfe_seconds(trainer: Trainer, run: RunSpec) -> float:
    """Seconds per network evaluation of one sample: one batch of sample.batch_size from the EMA
    model (after one untimed batch) at the fewest steps its sampler takes, 1, or 2 Heun levels
    (3 evaluations) for a teacher, so that timing a 35-evaluation sampler stays quick."""
    method, batch = trainer.method, trainer.config.sample.batch_size
    steps = 2 if run.role == "teacher" else 1

    def draw():
        draw_samples(method, trainer.ema.model, batch, steps, batch_size=batch)

    draw()
    return _seconds(draw, trainer.device) / (batch * method.sampling_evaluations(steps))


def _seconds(action: Callable[[], object], device: torch.device) -> float:
    """Wall seconds of ``action``, the work it queued on the device included."""
    _synchronize(device)
    started = time.perf_counter()
    action()
    _synchronize(device)
    return time.perf_counter() - started


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "cpu":
        return f"CPU, {_plural(torch.get_num_threads(), 'torch thread')} of {os.cpu_count()} cores"
    return device.type


# ----------------------------------------------------------------------------- the printed estimate


def estimate_lines(spec: BenchSpec, timings: list[RunTiming], timed_steps: int = TIMED_STEPS) -> list[str]:
    """The estimate as printed: per run, the whole bench, then the papers' budgets."""
    devices = sorted({t.device for t in timings if not t.problem})
    where = f"measured on this machine ({', '.join(devices)})" if devices else "nothing could be timed on this machine"
    lines = [f"estimate, {where}: {WARMUP_STEPS} warm-up + {_plural(timed_steps, 'timed step')} of each run at batch "
             f"{spec.batch_size}, one sampling batch each"]
    lines += [line for timing in timings for line in _run_lines(spec, timing)]
    lines += _total_lines(spec, timings)
    return lines + _paper_lines(spec, timings)


def _run_lines(spec: BenchSpec, t: RunTiming) -> list[str]:
    if t.problem:
        hint = hinted_seconds_per_step(spec, t.run)
        fallback = (f"the preset's hint, {hint:.3g} s/step measured on {spec.seconds_per_step_on or 'another machine'}, "
                    f"x {spec.steps} steps = {_duration(hint * spec.steps)} per seed" if hint else "the preset gives no seconds_per_step")
        return [f"  {t.run.label}: not timed: {t.problem}; {fallback}"]
    evaluations = ", ".join(f"{name} {_count(w.evaluations)}" for name, w in t.work.items())
    calls = ", ".join(f"{name} {w.calls} x {w.samples}" for name, w in t.work.items())
    return [
        f"  {t.run.label}: training {t.step_s:.3g} s/step x {spec.steps} steps = {_duration(spec.steps * t.step_s)}, + build "
        f"{_duration(t.setup_s)}, warm-up {_duration(t.warmup_s)} ({_plural(WARMUP_STEPS, 'step')}), {_plural(t.checkpoints, 'checkpoint')} "
        f"{_duration(t.checkpoints * t.checkpoint_s)}: {_per_seed(spec, t.training_s(spec.steps))}",
        f"      scoring: sampling {_duration(t.sampling_s)} (network evaluations {evaluations}, at {t.nfe_s:.3g} s each) "
        f"+ metric {_duration(t.metric_s)} (calls x samples: {calls}): {_per_seed(spec, t.scoring_s)}",
    ]


def _total_lines(spec: BenchSpec, timings: list[RunTiming]) -> list[str]:
    timed = [t for t in timings if not t.problem]
    if not timed:
        return ["  whole bench: no estimate (no run could be timed here)"]
    training, scoring = sum(t.training_s(spec.steps) for t in timed), sum(t.scoring_s for t in timed)
    metric, held_out = timed[0].metric, held_out_work(spec)
    floor = metric.seconds(held_out) if metric and held_out else 0.0
    which = "" if len(timed) == len(timings) else f" ({len(timed)} of {len(timings)} runs: the others could not be timed)"
    return [
        f"  whole bench{which}: training {_duration(training)} + scoring {_duration(scoring)} per seed"
        f"{f', + the floor and baselines {_duration(floor)} once' if floor else ''}: {_duration(spec.seeds * (training + scoring) + floor)} "
        f"for {_plural(spec.seeds, 'seed')}",
        f"  scoring is the sampling and the metric of the level search, the final scores and the curve points; the metric timed "
        f"once on {metric.samples if metric else '-'} held-out samples, scaled linearly, without reference statistics (a metric "
        f"that keeps them, as FID does, costs the bench as little as half that)",
        "  not counted: building reference statistics (once, then cached), pictures, the command's start-up",
    ]


def _paper_lines(spec: BenchSpec, timings: list[RunTiming]) -> list[str]:
    """Hours at each run's paper_budget: the measured seconds per step scaled linearly from the
    timed batch to the paper's (rough: a GPU is often faster per sample at a larger batch)."""
    budgets = [t for t in timings if t.run.paper_budget]
    if not budgets:
        return []
    lines = [f"papers' budgets (steps x batch) on one device, seconds per step scaled linearly from batch {spec.batch_size} "
             f"to the paper's (linear scaling, rough):"]
    hours = 0.0
    for t in budgets:
        budget = t.run.paper_budget
        head = f"  {t.run.label}: {budget.steps} x {budget.batch_size} ({budget.source or 'no source given'})"
        if t.problem:
            lines.append(f"{head}: no hours, the run could not be timed here")
            continue
        run_hours = budget.steps * t.step_s * budget.batch_size / spec.batch_size / 3600
        hours += run_hours
        lines.append(f"{head}: {run_hours:.3g} hours on {t.device}")
    if hours:
        lines.append(f"  every timed run at its paper's budget: {hours:.3g} device-hours")
    return lines


def _per_seed(spec: BenchSpec, seconds: float) -> str:
    if spec.seeds == 1:
        return f"{_duration(seconds)} (1 seed)"
    return f"{_duration(seconds)} per seed, {_duration(spec.seeds * seconds)} for {spec.seeds} seeds"


def _duration(seconds: float) -> str:
    if seconds < 100:
        return f"{seconds:.2g} s" if seconds < 10 else f"{seconds:.0f} s"
    if seconds < 6000:
        return f"{seconds / 60:.3g} min"
    if seconds < 3 * 86400:
        return f"{seconds / 3600:.3g} h"
    return f"{seconds / 86400:.3g} days"


def _count(n: int) -> str:
    return f"{n / 1e6:.3g}M" if n >= 1e6 else f"{n / 1e3:.3g}k" if n >= 1e4 else str(n)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"
