"""Scoring a trained run at each sampling setting of the bench, through genkit's one scoring
path (genkit.evaluation.score_against_data); the scores are cached in the run folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from genkit.build import build
from genkit.trained import TrainedModel
from genkit.errors import GenkitError
from genkit.evaluation import REFERENCE_SEED, build_evaluators, data_floor, draw_samples, reference_data, score_against_data
from genkit.pictures import save_samples_picture
from genkit.training.run import RunFolder

from genkit_bench.plan import PlannedRun
from genkit_bench.spec import BenchSpec, sampling_levels
from genkit_bench.write import read_bench_file, write_bench_file

EVAL_FILE = "bench-eval.json"  # in each run folder: the cached scores of its final weights


def check_metric(spec: BenchSpec, item: PlannedRun, registries) -> None:
    """Before any training: the verdict's metric is one of the runs' evaluators and can score
    their data; its reference statistics are prepared now (and cached)."""
    evaluators = build_evaluators(build(item.config, registries, torch.device("cpu")))
    if spec.metric not in evaluators:
        raise GenkitError(f"bench.metric '{spec.metric}' is not one of the runs' evaluators ({', '.join(evaluators) or 'none'}); set eval.metrics in bench.overrides")


def score_run(spec: BenchSpec, item: PlannedRun, trained: TrainedModel, evaluators: dict, out: Path, dist=None) -> list[dict] | None:
    """Score the run's EMA weights at each sampling setting with ``evaluators`` (the run's; rank 0
    builds them); cached in the run folder. Under torchrun every rank calls it and samples a
    share; rank 0 scores and writes (the others get None)."""
    method, dataset = trained.built.method, trained.built.dataset
    main = dist is None or dist.is_main
    if main and spec.metric not in evaluators:
        raise GenkitError(f"bench.metric '{spec.metric}' is not one of this run's evaluators ({', '.join(evaluators) or 'none'})")
    steps_list = [method.default_sampling_steps()] if item.run.role == "teacher" else list(spec.sampling_steps)
    settings = _eval_settings(spec, item, trained.step, steps_list)
    cache = item.folder / EVAL_FILE
    cached = read_bench_file(cache)
    if _usable(cached, settings, out):
        return cached["scores"] if main else None
    reference = reference_data(dataset, spec.eval_samples) if main else None
    scores = []
    for steps in steps_list:
        samples = draw_samples(
            method, trained.model, spec.eval_samples, steps, seed=item.seed, batch_size=item.config.sample.batch_size,
            levels=levels_for(spec, item, steps) if method.takes_levels else None, dist=dist,  # sCT, MeanFlow: their own samplers
        )
        if not main:
            continue
        nfe = method.sampling_evaluations(steps)
        picture = Path("pictures") / f"{item.run.name}-seed{item.seed}-{nfe}nfe.png"
        title = f"{item.run.label}, {_sampling_phrase(item.run.role, steps, nfe)}, seed {item.seed}, step {trained.step}"
        shown = samples[:2000] if samples.ndim == 2 else samples[: item.config.sample.grid_size]  # points, or a grid of images
        save_samples_picture(shown, out / picture, title, reference=reference[:2000] if samples.ndim == 2 else None)
        scored = score_against_data(samples, dataset, evaluators, reference=reference)
        scores.append({"steps": steps, "nfe": nfe, "scores": scored, "picture": str(picture)})
    if not main:
        return None
    write_bench_file(cache, {"settings": settings, "scores": scores})
    return scores


def floors(spec: BenchSpec, dataset, evaluators: dict) -> tuple[dict[str, float], dict[str, float]]:
    """Held-out data scored against the reference at eval_samples points (the floor of the table)
    and at curve_samples (the floor of the metric-vs-step plot; empty without curves)."""
    if not spec.floor:
        return {}, {}
    curve = data_floor(dataset, evaluators, spec.curve_samples) if spec.curve_every else {}
    return data_floor(dataset, evaluators, spec.eval_samples), curve


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


def _sampling_phrase(role: str, steps: int, nfe: int) -> str:
    if role == "teacher":
        return f"Heun, {steps} levels ({nfe} NFE)"
    return f"{steps} step" if steps == 1 else f"{steps} steps"


def curve_of(item: PlannedRun) -> list[dict[str, Any]]:
    return [{"step": r["step"], "eval": r["eval"]} for r in RunFolder(item.folder).metrics() if "eval" in r]


def _usable(cached, settings: dict, out: Path) -> bool:
    """A cache of the same settings whose pictures are all there (else, damaged or stale: score again)."""
    if not isinstance(cached, dict) or cached.get("settings") != settings or not isinstance(cached.get("scores"), list):
        return False
    return all(isinstance(s, dict) and isinstance(s.get("picture"), str) and (out / s["picture"]).is_file() for s in cached["scores"])
