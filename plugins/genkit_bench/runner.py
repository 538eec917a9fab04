"""Running a bench: plan every (seed, run), train what is not finished, score every model.

Layout of the output folder::

    OUT/runs/seed{S}/{RUN}/      a genkit run folder (config.toml, checkpoint.pt, metrics.jsonl)
                                  plus bench-eval.json, the cached scores of its final weights
    OUT/pictures/                 one picture per model and sampling setting
    OUT/results.json, report.md, curves.png

Rerunning with the same OUT skips finished runs and scores, and resumes an interrupted run
from its last checkpoint (the Trainer restores weights, optimizer, EMA and random state).
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

import genkit
from genkit import config as configuration
from genkit import files
from genkit.build import build
from genkit.trained import load_trained
from genkit.errors import GenkitError
from genkit.evaluation import REFERENCE_SEED, build_evaluators, data_floor, draw_samples, reference_data, score
from genkit.pictures import save_samples_picture
from genkit.training.loop import Trainer, TrainingInterrupted
from genkit.training import lock
from genkit.training.distributed import Distributed
from genkit.training.run import RunFolder

from genkit_bench.spec import (
    BenchSpec,
    Missing,
    RunSpec,
    display_source,
    missing_components,
    run_layers,
    sampling_levels,
    validate_partially,
)
from genkit_bench.stats import Comparison, summarize, verdict_sentence

EVAL_FILE = "bench-eval.json"
WALL_FILE = "wall-time.json"  # wall-clock seconds of every invocation on this output folder


@dataclass
class PlannedRun:
    """One run at one seed, before anything is trained."""

    run: RunSpec
    seed: int
    folder: Path
    layers: configuration.Layers
    missing: list[Missing]
    config: configuration.Config | None = None  # resolved when nothing is missing

    @property
    def key(self) -> str:
        return f"seed{self.seed}/{self.run.name}"


@dataclass
class RunResult:
    """What one trained model cost and scored."""

    name: str
    label: str
    method: str
    role: str
    seed: int
    folder: str
    step: int
    elapsed_s: float  # training seconds (survives resume)
    evaluations_per_sample: dict[str, int]  # network evaluations per training sample: student / teacher
    nfe_student: int  # steps x batch x student evaluations
    nfe_teacher_passes: int  # steps x batch x teacher evaluations (CD's ODE step)
    nfe_teacher_training: int  # everything its teacher run spent (0 without a teacher)
    teacher_elapsed_s: float  # its teacher run's training seconds (0 without a teacher)
    scores: list[dict[str, Any]] = field(default_factory=list)  # {"steps", "nfe", "scores", "picture"}
    curve: list[dict[str, Any]] = field(default_factory=list)  # {"step", "eval": {metric: value}}
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def nfe_total(self) -> int:
        return self.nfe_student + self.nfe_teacher_passes + self.nfe_teacher_training


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


# ----------------------------------------------------------------------------- one run


def _differences(saved: dict, planned: dict, prefix: str = "") -> list[str]:
    keys = sorted(set(saved) | set(planned))
    found = []
    for key in keys:
        dotted = f"{prefix}{key}"
        a, b = saved.get(key), planned.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            found += _differences(a, b, dotted + ".")
        elif a != b:
            found.append(f"{dotted}: {a!r} there, {b!r} now")
    return found


def _is_teacher_key(difference: str, item: PlannedRun, registries) -> bool:
    """A difference in the run's teacher folder (methods.cd.teacher.run, say)."""
    key = teacher_key(item.run, registries)
    return bool(key) and difference.split(":")[0] == f"methods.{item.run.method}.{key}"


SAMPLING_KEYS = ("sample.multistep_sigmas",)  # how a run is sampled, not trained: a change rescores it


def _is_sampling_key(difference: str) -> bool:
    return difference.split(":")[0] in SAMPLING_KEYS


def _without_other_methods(values: dict, method: str) -> dict:
    """Options of methods a run does not train cannot change it (a newer preset may add some)."""
    return {**values, "methods": {k: v for k, v in values.get("methods", {}).items() if k == method}}


def train_run(item: PlannedRun, registries, progress=None, on_step: Callable[[int], None] | None = None) -> tuple[int, float]:
    """Train one run to the budget, resuming a checkpoint; returns (step, training seconds)."""
    folder = RunFolder(item.folder)
    config = item.config
    if folder.has_checkpoint():
        saved = folder.read_config(registries)
        differences = _differences(
            _without_other_methods(saved.to_dict(), config.method), _without_other_methods(config.to_dict(), config.method)
        )
        if any(not _is_teacher_key(d, item, registries) and not _is_sampling_key(d) for d in differences):
            raise GenkitError(
                f"{folder.path} holds a run with another config ({'; '.join(differences[:3])}); "
                f"rerun with the bench settings it was made with, or pick another --out"
            )
        if differences and Distributed.from_environment().is_main:  # the teacher folder moved or the levels changed
            folder.write_config(config)
        trainer = Trainer(config, folder, registries, resume=True)
    else:  # the Trainer clears a log left from before a first checkpoint
        trainer = Trainer(config, folder, registries, resume=False)
    if trainer.step < config.train.steps:
        callback = (lambda record: on_step(record["step"])) if on_step else None
        try:
            trainer.train(progress=progress, on_log=callback)
        except TrainingInterrupted:
            raise TrainingInterrupted(
                f"interrupted in run {item.key} at step {trainer.step}; rerun the same command with the same --out to continue"
            ) from None
    return trainer.step, trainer.elapsed


# ----------------------------------------------------------------------------- scoring


def _eval_settings(spec: BenchSpec, item: PlannedRun, step: int, steps_list: list[int]) -> dict[str, Any]:
    levels = sampling_levels(spec, item.run)
    settings = {
        "step": step,
        "eval_samples": spec.eval_samples,
        "sampling_steps": steps_list,
        "two_step_sigma": levels[0],
        "sample_seed": item.seed,
        "reference_seed": REFERENCE_SEED,
    }
    if item.run.role != "teacher" and max(steps_list) > 2:  # benches at 1 and 2 steps keep their cached scores
        settings["levels"] = levels[: max(steps_list) - 1]
    return settings


def levels_for(spec: BenchSpec, item: PlannedRun, steps: int) -> list[float] | None:
    """The intermediate levels of a consistency model's ``steps``-step sampling (None: the teacher,
    or one step)."""
    if item.run.role == "teacher" or steps < 2:
        return None
    return spec.run_levels(item.run)[: steps - 1]


def evaluators_of(trained, registries) -> dict[str, Any]:
    return build_evaluators(trained.built)


def score_run(spec: BenchSpec, item: PlannedRun, trained, registries, out: Path, dist=None) -> list[dict] | None:
    """Score the run's EMA weights at each sampling setting; cached in the run folder. Under
    torchrun every rank calls it and samples a share; rank 0 scores and writes (the others get None)."""
    method, dataset = trained.built.method, trained.built.dataset
    main = dist is None or dist.is_main
    evaluators = evaluators_of(trained, registries) if main else {}
    if main and spec.metric not in evaluators:
        raise GenkitError(f"bench.metric '{spec.metric}' is not one of this run's evaluators ({', '.join(evaluators) or 'none'})")
    steps_list = [method.default_sampling_steps()] if item.run.role == "teacher" else list(spec.sampling_steps)
    settings = _eval_settings(spec, item, trained.step, steps_list)
    cache = item.folder / EVAL_FILE
    cached = files.read_cached_json(cache)  # None when missing or damaged: scored again
    if isinstance(cached, dict) and isinstance(cached.get("scores"), list):
        pictures_there = all(isinstance(s, dict) and (out / str(s.get("picture"))).is_file() for s in cached["scores"])
        if cached.get("settings") == settings and pictures_there:
            return cached["scores"] if main else None
    reference = reference_data(dataset, spec.eval_samples) if main else None
    scores = []
    for steps in steps_list:
        samples = draw_samples(
            method, trained.model, spec.eval_samples, steps, seed=item.seed, batch_size=item.config.sample.batch_size,
            levels=levels_for(spec, item, steps), dist=dist,
        )
        if not main:
            continue
        nfe = method.sampling_evaluations(steps)
        picture = Path("pictures") / f"{item.run.name}-seed{item.seed}-{nfe}nfe.png"
        title = f"{item.run.label}, {_sampling_phrase(item.run.role, steps, nfe)}, seed {item.seed}, step {trained.step}"
        shown = samples[:2000] if samples.ndim == 2 else samples[: item.config.sample.grid_size]  # points, or a grid of images
        save_samples_picture(shown, out / picture, title, reference=reference[:2000] if samples.ndim == 2 else None)
        scores.append({"steps": steps, "nfe": nfe, "scores": score(samples, reference, evaluators), "picture": str(picture)})
    if not main:
        return None
    files.write_atomic(cache, json.dumps({"settings": settings, "scores": scores}, indent=2))
    return scores


def _sampling_phrase(role: str, steps: int, nfe: int) -> str:
    if role == "teacher":
        return f"Heun, {steps} levels ({nfe} NFE)"
    return f"{steps} step" if steps == 1 else f"{steps} steps"


def curve_of(item: PlannedRun) -> list[dict[str, Any]]:
    return [{"step": r["step"], "eval": r["eval"]} for r in RunFolder(item.folder).metrics() if "eval" in r]


# ----------------------------------------------------------------------------- the whole bench


def result_of(item: PlannedRun, step: int, elapsed: float, per_sample: dict[str, int], teacher: RunResult | None) -> RunResult:
    config = item.config
    samples_seen = step * config.train.batch_size
    return RunResult(
        name=item.run.name,
        label=item.run.label,
        method=item.run.method,
        role=item.run.role,
        seed=item.seed,
        folder=str(item.folder),
        step=step,
        elapsed_s=elapsed,
        evaluations_per_sample=per_sample,
        nfe_student=samples_seen * per_sample.get("student", 0),
        nfe_teacher_passes=samples_seen * per_sample.get("teacher", 0),
        nfe_teacher_training=teacher.nfe_total if teacher else 0,
        teacher_elapsed_s=(teacher.elapsed_s + teacher.teacher_elapsed_s) if teacher else 0.0,
        config=config.to_dict(),
    )


def aggregate(spec: BenchSpec, results: list[RunResult]) -> list[dict[str, Any]]:
    """One row per (run, sampling setting): every number as mean, spread and per-seed values."""
    rows = []
    for run in spec.run_list:
        mine = sorted((r for r in results if r.name == run.name), key=lambda r: r.seed)
        if not mine:
            continue
        for index, first in enumerate(mine[0].scores):
            per_seed = [r.scores[index] for r in mine]
            metrics = {name: summarize([s["scores"][name] for s in per_seed]).to_dict() for name in first["scores"]}
            rows.append(
                {
                    "run": run.name,
                    "label": run.label,
                    "method": run.method,
                    "role": run.role,
                    "steps": first["steps"],
                    "nfe": first["nfe"],
                    "seeds": [r.seed for r in mine],
                    "metrics": metrics,
                    "train_time_s": summarize([r.elapsed_s for r in mine]).to_dict(),
                    "train_time_with_teacher_s": summarize([r.elapsed_s + r.teacher_elapsed_s for r in mine]).to_dict(),
                    "train_nfe": summarize([r.nfe_student for r in mine]).to_dict(),
                    "train_nfe_with_teacher": summarize([r.nfe_total for r in mine]).to_dict(),
                }
            )
    return rows


def comparisons(spec: BenchSpec, rows: list[dict[str, Any]]) -> list[Comparison]:
    a, b = spec.compare
    found = []
    for steps in spec.sampling_steps:
        row_a = next((r for r in rows if r["run"] == a and r["steps"] == steps), None)
        row_b = next((r for r in rows if r["run"] == b and r["steps"] == steps), None)
        if row_a is None or row_b is None:
            continue
        found.append(
            Comparison(
                steps,
                spec.run(a).label,
                spec.run(b).label,
                summarize(row_a["metrics"][spec.metric]["values"]),
                summarize(row_b["metrics"][spec.metric]["values"]),
            )
        )
    return found


def machine_info() -> dict[str, Any]:
    info = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": sys.version.split()[0],
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
    return info


def versions(plugin_set) -> dict[str, Any]:
    import numpy

    return {
        "genkit": genkit.__version__,
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "plugins": {info.name: info.version for info in plugin_set.info.values()},
    }


def run_bench(spec: BenchSpec, out: Path, plugin_set, progress=None) -> dict[str, Any] | None:
    """Train and score every planned run, then return the results dictionary (results.json).

    Under torchrun every rank trains (data-parallel, as genkit train does) and rank 0 alone
    scores and writes; the other ranks return None. Every rank draws a share of the samples,
    which rank 0 gathers and scores.
    """
    threads = torch.get_num_threads()
    if spec.torch_threads:
        torch.set_num_threads(spec.torch_threads)
    main = Distributed.from_environment().is_main
    if main:
        lock.acquire(out)  # one bench per output folder at a time
    try:
        return _run_bench(spec, out, plugin_set, progress)
    finally:
        if main:
            lock.release(out)
        torch.set_num_threads(threads)


def check_metric(spec: BenchSpec, item: PlannedRun, registries) -> None:
    """Before any training: the verdict's metric is one of the runs' evaluators and can score
    their data; its reference statistics are prepared now (and cached)."""
    evaluators = build_evaluators(build(item.config, registries, torch.device("cpu")))
    if spec.metric not in evaluators:
        raise GenkitError(f"bench.metric '{spec.metric}' is not one of the runs' evaluators ({', '.join(evaluators) or 'none'}); set eval.metrics in bench.overrides")


def _run_bench(spec: BenchSpec, out: Path, plugin_set, progress) -> dict[str, Any]:
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
        out.mkdir(parents=True, exist_ok=True)
    dist.barrier()

    total = len(planned) * spec.steps
    overall = progress.add_task("bench", total=total, completed=0, note="") if progress else None
    results: dict[str, RunResult] = {}
    floor: dict[str, float] = {}
    curve_floor: dict[str, float] = {}
    for index, item in enumerate(planned):
        base = index * spec.steps
        label = f"seed {item.seed}: {item.run.label} ({index + 1}/{len(planned)})"
        if progress:
            progress.update(overall, description=f"bench, {label}", completed=base, note="training")
        on_step = (lambda step, base=base: progress.update(overall, completed=base + step)) if progress else None
        step, elapsed = train_run(item, registries, progress, on_step)
        if progress:
            progress.update(overall, completed=base + spec.steps, note="scoring")
        trained = load_trained(item.folder, registries)
        scores = score_run(spec, item, trained, registries, out, dist)  # every rank samples a share
        if not dist.is_main:  # rank 0 scores; the others wait for it
            dist.barrier()
            continue
        teacher = results.get(f"seed{item.seed}/{item.run.teacher}") if item.run.teacher else None
        result = result_of(item, step, elapsed, dict(trained.built.method.training_evaluations()), teacher)
        result.scores = scores
        if spec.floor and not floor:
            evaluators = evaluators_of(trained, registries)
            floor = data_floor(trained.built.dataset, evaluators, spec.eval_samples)
            curve_floor = data_floor(trained.built.dataset, evaluators, spec.curve_samples) if spec.curve_every else {}
        result.curve = curve_of(item)
        results[item.key] = result
        dist.barrier()

    if not dist.is_main:
        return None
    ordered = list(results.values())
    rows = aggregate(spec, ordered)
    found = comparisons(spec, rows)
    elapsed = time.perf_counter() - started
    return {
        "bench": "cd-vs-ict",
        "preset": spec.name,
        "preset_file": display_source(spec),
        "spec": {**spec.to_dict(), "source": display_source(spec)},
        "seeds": seeds_of(spec),
        "budget": {
            "steps": spec.steps,
            "batch_size": spec.batch_size,
            "training_samples": spec.steps * spec.batch_size,
        },
        "evaluation": {
            "metric": spec.metric,
            "samples": spec.eval_samples,
            "reference": f"{spec.eval_samples} held-out data points (reference seed {REFERENCE_SEED})",
            "two_step_sigma": spec.two_step_sigma,
            "levels": spec.levels[: max(spec.max_sampling_steps - 1, 1)],  # k steps use the first k - 1
        },
        "floor": floor,  # held-out data vs held-out data at eval_samples points
        "curve_floor": curve_floor,  # the same at curve_samples points, for the metric-vs-step plot
        "rows": rows,
        "verdict": {
            "sentence": verdict_sentence(found, spec.metric, spec.seeds),
            "comparisons": [c.to_dict() for c in found],
        },
        "runs": [relative_paths(_run_dict(r), out) for r in ordered],
        "versions": versions(plugin_set),
        "machine": machine_info(),
        "wall_time_s": _add_wall_time(out, elapsed),  # every invocation on this folder
        "wall_time_this_invocation_s": elapsed,
        "training_time_s": sum(r.elapsed_s for r in ordered),
    }


def relative_paths(values: Any, out: Path) -> Any:
    """Paths inside the output folder written relative to it ('runs/seed0/edm'), so results name
    no folder of the machine they ran on."""
    if isinstance(values, dict):
        return {key: relative_paths(value, out) for key, value in values.items()}
    if isinstance(values, list):
        return [relative_paths(value, out) for value in values]
    if isinstance(values, str) and values.startswith(str(out) + os.sep):
        return values[len(str(out)) + 1 :]
    return values


def _add_wall_time(out: Path, seconds: float) -> float:
    """Total wall-clock seconds spent on ``out`` so far, this invocation included."""
    path = out / WALL_FILE
    stored = files.read_cached_json(path)  # damaged: counting starts again
    invocations = stored.get("invocations_s") if isinstance(stored, dict) else None
    invocations = [s for s in invocations if isinstance(s, (int, float))] if isinstance(invocations, list) else []
    invocations.append(round(seconds, 3))
    files.write_atomic(path, json.dumps({"invocations_s": invocations}) + "\n")
    return sum(invocations)


def _run_dict(result: RunResult) -> dict[str, Any]:
    values = dict(result.__dict__)
    values["nfe_total"] = result.nfe_total
    return values
