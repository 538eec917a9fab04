"""The bench's output folder: claimed before anything is written in it, then filled with
results.json, report.md and curves.png (report.py draws them), from the results assembled here.

Layout of the output folder::

    OUT/.genkit-bench               the marker: this folder is the bench's own (written first)
    OUT/runs/seed{S}/{RUN}/         a genkit run folder (config.toml, checkpoint.pt, metrics.jsonl)
                                    plus bench-eval.json, the cached scores of its final weights
    OUT/pictures/                   one picture per model and sampling setting
    OUT/results.json, report.md, curves.png, wall-time.json
"""

from __future__ import annotations

import os
import platform
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

import genkit
from genkit import files
from genkit.errors import GenkitError
from genkit.evaluation import REFERENCE_SEED
from genkit.training import lock

from genkit_bench import report
from genkit_bench.spec import BenchSpec, display_source
from genkit_bench.stats import Comparison, same_when_printed, summarize, verdict_sentence

MARKER = ".genkit-bench"
WALL_FILE = "wall-time.json"  # wall-clock seconds of every invocation on this output folder
# what a bench folder written before the marker existed holds (and nothing else)
BENCH_ENTRIES = {"runs", "pictures", "results.json", "report.md", "curves.png", WALL_FILE, lock.LOCK_FILE}


# ----------------------------------------------------------------------------- the folder


def claim(out: Path, write: bool = True) -> None:
    """Make ``out`` the bench's own before anything is written in it, or refuse with one line.

    A new or empty folder is marked (``MARKER``) and so is one holding a bench's layout from
    before the marker existed (runs/seedS/... and the bench's own files, nothing else); any other
    folder with something in it is refused, so no user file (a report.md, a run's curves.png) is
    ever replaced. ``write=False`` checks only (the ranks other than 0 under torchrun)."""
    out = Path(out)
    if (out / MARKER).is_file():
        return
    if out.exists() and not out.is_dir():
        raise GenkitError(f"--out {out} is a file; name a new or empty folder (or one genkit bench wrote)")
    entries = sorted(p.name for p in out.iterdir()) if out.is_dir() else []
    if entries and not _has_bench_layout(out, entries):
        shown = ", ".join(entries[:4]) + (", ..." if len(entries) > 4 else "")
        raise GenkitError(
            f"--out {out} holds files genkit bench did not write ({shown}); it writes only into a new or empty "
            f"folder or one it made: pick another --out"
        )
    if write:
        out.mkdir(parents=True, exist_ok=True)
        files.refuse_link(out / MARKER)
        files.create_new(out / MARKER, b"This folder is the output of genkit bench, which writes only into folders marked so.\n")


def _has_bench_layout(out: Path, entries: list[str]) -> bool:
    runs = out / "runs"
    if not set(entries) <= BENCH_ENTRIES or not runs.is_dir():
        return False
    return all(seed.is_dir() and re.fullmatch(r"seed\d+", seed.name) for seed in runs.iterdir())


def read_bench_file(path: Path) -> Any:
    """One of the bench's own JSON files (bench-eval.json, wall-time.json), None when absent or
    damaged: a cache is recomputed, never a reason to stop."""
    return files.read_cached_json(path)


def write_bench_file(path: Path, values: Any) -> None:
    files.write_atomic(path, files.json_text(values, indent=2) + "\n")


def add_wall_time(out: Path, seconds: float) -> float:
    """Total wall-clock seconds spent on ``out`` so far, this invocation included."""
    path = Path(out) / WALL_FILE
    stored = read_bench_file(path)
    invocations = stored.get("invocations_s") if isinstance(stored, dict) else None
    invocations = [x for x in invocations if isinstance(x, (int, float))] if isinstance(invocations, list) else []
    invocations.append(round(seconds, 3))
    write_bench_file(path, {"invocations_s": invocations})
    return sum(invocations)


def write_outputs(results: dict[str, Any], out: Path) -> Path | None:
    """results.json, curves.png (when there are curves: its path, else None) and report.md."""
    out = Path(out)
    report.write_json(results, out)
    curves = report.plot_curves(results, out)
    report.write_report(results, out, curves)
    return curves


# ----------------------------------------------------------------------------- the results


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
    curve: list[dict[str, Any]] = field(default_factory=list)  # {"step", "elapsed_s", "eval": {metric: value}}
    level_search: dict[str, Any] | None = None  # the run's searched levels (bench.level_search), how they were found
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def nfe_total(self) -> int:
        return self.nfe_student + self.nfe_teacher_passes + self.nfe_teacher_training

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "nfe_total": self.nfe_total}


def result_of(item, step: int, elapsed: float, per_sample: dict[str, int], teacher: RunResult | None) -> RunResult:
    """A planned run's result after training (``teacher``: the result of its teacher run)."""
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
                    "levels": [r.scores[index].get("levels", []) for r in mine],  # per seed: the intermediate levels used
                    "levels_from": first.get("levels_from"),  # "searched", "fixed" or None (no levels)
                    "primary": first.get("primary", True),  # False: the extra row at the fixed levels beside searched ones
                    "metrics": metrics,
                    "train_time_s": summarize([r.elapsed_s for r in mine]).to_dict(),
                    "train_time_with_teacher_s": summarize([r.elapsed_s + r.teacher_elapsed_s for r in mine]).to_dict(),
                    "train_nfe": summarize([r.nfe_student for r in mine]).to_dict(),
                    "train_nfe_with_teacher": summarize([r.nfe_total for r in mine]).to_dict(),
                }
            )
    return rows


def mark_not_learning(rows: list[dict[str, Any]], trivial: dict[str, dict[str, float]], metric: str, higher: bool) -> None:
    """``no_better_than``: the baselines a row's mean does not beat on the verdict's metric (a tie
    at the printed precision counts as not beating): such a model has not started learning."""
    for row in rows:
        mean = row["metrics"][metric]["mean"] if metric in row["metrics"] else None
        row["no_better_than"] = [
            name for name, scores in trivial.items() if mean is not None and metric in scores and not _beats(mean, scores[metric], higher)
        ]


def _beats(mean: float, other: float, higher: bool) -> bool:
    """Better than ``other`` by a difference the printed figures show."""
    return not same_when_printed(mean, other) and (mean > other if higher else mean < other)


def comparisons(spec: BenchSpec, rows: list[dict[str, Any]], directions: dict[str, str] | None = None) -> list[Comparison]:
    a, b = spec.compare
    found = []
    for steps in spec.sampling_steps:
        row_a = next((r for r in rows if r["run"] == a and r["steps"] == steps and r["primary"]), None)
        row_b = next((r for r in rows if r["run"] == b and r["steps"] == steps and r["primary"]), None)
        if row_a is None or row_b is None:
            continue
        found.append(
            Comparison(
                steps,
                spec.run(a).label,
                spec.run(b).label,
                summarize(row_a["metrics"][spec.metric]["values"]),
                summarize(row_b["metrics"][spec.metric]["values"]),
                higher_is_better=(directions or {}).get(spec.metric) == "higher",
            )
        )
    return found


def results_of(
    spec: BenchSpec, out: Path, ordered: list[RunResult], floor: dict, curve_floor: dict, plugin_set, elapsed: float,
    directions: dict[str, str] | None = None, trivial: dict[str, dict[str, float]] | None = None,
) -> dict[str, Any]:
    """The results dictionary (results.json); adds this invocation to the folder's wall time.
    ``directions``: 'higher' or 'lower' (is better) per score key, as the evaluators declare;
    ``trivial``: the baselines' scores (score.baselines), which mark the rows no better than one."""
    rows = aggregate(spec, ordered)
    mark_not_learning(rows, trivial or {}, spec.metric, (directions or {}).get(spec.metric) == "higher")
    found = comparisons(spec, rows, directions)
    results = {
        "bench": "cd-vs-ict",
        "preset": spec.name,
        "preset_file": display_source(spec),
        "spec": {**spec.to_dict(), "source": display_source(spec)},
        "seeds": list(range(spec.seeds)),
        "budget": {
            "steps": spec.steps,
            "batch_size": spec.batch_size,
            "training_samples": spec.steps * spec.batch_size,
        },
        "preset_budget": spec.preset_budget,  # as the preset file sets it: a --set or --seeds change shows
        "directions": directions or {},  # score key -> "higher" | "lower" (is better)
        "evaluation": {
            "metric": spec.metric,
            "samples": spec.eval_samples,
            "reference": f"{spec.eval_samples} held-out data points (reference seed {REFERENCE_SEED})",
            "two_step_sigma": spec.two_step_sigma,
            "levels": spec.levels[: max(spec.max_sampling_steps - 1, 1)],  # k steps use the first k - 1
            "level_search": spec.level_search,  # True: each consistency model's own levels (runs.level_search)
        },
        "floor": floor,  # held-out data vs held-out data at eval_samples points
        "curve_floor": curve_floor,  # the same at curve_samples points, for the metric-vs-step plot
        "baselines": trivial or {},  # name -> scores of a model that learnt only the data's moments
        "rows": rows,
        "verdict": {
            "sentence": verdict_sentence(found, spec.metric, spec.seeds),
            "comparisons": [c.to_dict() for c in found],
        },
        "runs": [relative_paths(r.to_dict(), out) for r in ordered],
        "versions": versions(plugin_set),
        "machine": machine_info(),
        "wall_time_s": add_wall_time(out, elapsed),  # every invocation on this folder
        "wall_time_this_invocation_s": elapsed,
        "training_time_s": sum(r.elapsed_s for r in ordered),
    }
    results["verdict"]["over_training"] = report.ordering_over_training(results)  # '' without curves
    results["verdict"]["not_learning"] = report.not_learning_sentence(results)  # '' when every row beats the baselines
    return results


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


def machine_info() -> dict[str, Any]:
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": sys.version.split()[0],
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def versions(plugin_set) -> dict[str, Any]:
    import numpy

    return {
        "genkit": genkit.__version__,
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "plugins": {info.name: info.version for info in plugin_set.info.values()},
    }
