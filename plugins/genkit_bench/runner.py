"""Running a bench: claim the output folder, plan every (seed, run), train what is not
finished, score every model, assemble the results (write.py lays out the folder).

Each run's config is resolved once (plan.py) and each run built once: the Trainer that trains
(or resumes) it builds it, and its EMA weights are scored from there (train.py, score.py).
Rerunning with the same OUT skips finished runs and scores, and resumes an interrupted run
from its last checkpoint (the Trainer restores weights, optimizer, EMA and random state).
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from genkit.evaluation import build_evaluators
from genkit.training import lock
from genkit.training.distributed import Distributed

from genkit_bench.plan import PlannedRun, all_missing, missing_error, plan, seeds_of  # noqa: F401 (the bench's API)
from genkit_bench.score import baselines, check_metric, curve_of, directions, floors, level_search_of, score_run
from genkit_bench.spec import BenchSpec
from genkit_bench.train import train_run  # noqa: F401 (the bench's API)
from genkit_bench.write import RunResult, claim, result_of, results_of


def run_bench(spec: BenchSpec, out: Path, plugin_set, progress=None) -> dict[str, Any] | None:
    """Train and score every planned run, then return the results dictionary (results.json).

    ``out`` must be new, empty or the bench's own (write.claim), checked before anything is
    written. Under torchrun every rank trains (data-parallel, as genkit train does) and rank 0
    alone scores and writes; the other ranks return None. Every rank draws a share of the
    samples, which rank 0 gathers and scores.
    """
    main = Distributed.from_environment().is_main
    claim(out, write=main)
    with torch_threads(spec.torch_threads):
        if main:
            lock.acquire(out)  # one bench per output folder at a time
        try:
            return _run_bench(spec, out, plugin_set, progress)
        finally:
            if main:
                lock.release(out)


@contextmanager
def torch_threads(count: int):
    """torch's CPU threads set to ``count`` (bench.torch_threads; 0: left as they are) for the block."""
    threads = torch.get_num_threads()
    if count:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _run_bench(spec: BenchSpec, out: Path, plugin_set, progress) -> dict[str, Any] | None:
    registries = plugin_set.registries
    out = Path(out).resolve()
    started = time.perf_counter()
    planned = plan(spec, out, registries)
    missing = all_missing(planned)
    if missing:
        raise missing_error(spec, missing)
    dist = Distributed.from_environment()
    if dist.is_main:
        check_metric(spec, planned[0], registries)
    dist.barrier()

    total = len(planned) * spec.steps
    overall = progress.add_task("bench", total=total, completed=0, note="") if progress else None
    results: dict[str, RunResult] = {}
    found_directions: dict[str, str] = {}
    floor: dict[str, float] = {}
    curve_floor: dict[str, float] = {}
    trivial: dict[str, dict[str, float]] = {}
    for index, item in enumerate(planned):
        base = index * spec.steps
        if progress:
            label = f"seed {item.seed}: {item.run.label} ({index + 1}/{len(planned)})"
            progress.update(overall, description=f"bench, {label}", completed=base, note="training")
        on_step = (lambda step, base=base: progress.update(overall, completed=base + step)) if progress else None
        trained = train_run(item, registries, progress, on_step)
        if progress:
            progress.update(overall, completed=base + spec.steps, note="scoring")
        evaluators = build_evaluators(trained.built) if dist.is_main else {}
        scores = score_run(spec, item, trained, evaluators, out, dist)  # every rank samples a share
        if not dist.is_main:  # rank 0 scores; the others wait for it
            dist.barrier()
            continue
        if not results:  # the same data for every run: the floor and the baselines of the first one
            floor, curve_floor = floors(spec, trained.built.dataset, evaluators)
            trivial = baselines(spec, trained.built.dataset, evaluators)
        found_directions.update(directions(evaluators, [key for s in scores for key in s["scores"]]))
        results[item.key] = _result(item, trained, scores, results)
        dist.barrier()

    if not dist.is_main:
        return None
    return results_of(
        spec, out, list(results.values()), floor, curve_floor, plugin_set, time.perf_counter() - started, found_directions, trivial
    )


def _result(item: PlannedRun, trained, scores: list[dict], results: dict[str, RunResult]) -> RunResult:
    teacher = results.get(f"seed{item.seed}/{item.run.teacher}") if item.run.teacher else None
    result = result_of(item, trained.step, trained.elapsed_s, dict(trained.built.method.training_evaluations()), teacher)
    result.scores, result.curve, result.level_search = scores, curve_of(item), level_search_of(item)
    return result
