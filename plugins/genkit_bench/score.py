"""Scoring a trained run at each sampling setting of the bench, through genkit's one scoring
path (genkit.evaluation.score_against_data); the scores are cached in the run folder.

With ``bench.level_search`` each consistency model's k-step levels are its own: the greedy search
of Song et al. (2023) (genkit.evaluation.levels.search_levels) on the verdict's metric, run per
model and seed before scoring. It never sees the scoring draw: its samples use a sample seed no
score uses (SEARCH_SEED_BASE + training seed; scores use the training seed) and it scores against
a held-out draw of its own (levels.SEARCH_REFERENCE_SEED; scores use REFERENCE_SEED), so the
level is not tuned to the numbers the table shows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from genkit.build import build
from genkit.trained import TrainedModel
from genkit.errors import GenkitError
from genkit.evaluation import REFERENCE_SEED, build_evaluators, data_floor, draw_samples, reference_data, score_against_data
from genkit.evaluation.levels import SEARCH_REFERENCE_SEED, search_levels
from genkit.pictures import save_samples_picture
from genkit.training.run import RunFolder

from genkit_bench.plan import PlannedRun
from genkit_bench.spec import BenchSpec, RunSpec, sampling_levels
from genkit_bench.write import read_bench_file, write_bench_file

EVAL_FILE = "bench-eval.json"  # in each run folder: the cached scores of its final weights
SEARCH_SEED_BASE = 1_000_000  # the level search samples with this + the training seed: never a scoring seed


def higher_is_better(evaluators: dict, key: str) -> bool:
    """The direction of a score key ('fd_fmnist', 'pr_fmnist/precision') as its evaluator declares
    it (``higher_is_better``: True, or the keys of its values that are); else lower is better."""
    name, _, part = key.partition("/")
    declared = getattr(evaluators.get(name), "higher_is_better", False)
    if isinstance(declared, bool):
        return declared
    return part in declared


def directions(evaluators: dict, keys) -> dict[str, str]:
    """'higher' or 'lower' (is better) for every score key, as results.json records them."""
    return {key: "higher" if higher_is_better(evaluators, key) else "lower" for key in keys}


@dataclass
class _Searchable:
    """What search_levels reads of a loaded model (genkit.api.Model), from the bench's own."""

    trained: TrainedModel
    path: Path

    @property
    def config(self):
        return self.trained.built.config

    @property
    def step(self) -> int:
        return self.trained.step


def searched_levels(spec: BenchSpec, item: PlannedRun, trained: TrainedModel, evaluators: dict, dist=None) -> dict[str, Any] | None:
    """The run's own k-step levels from the greedy search (None when the bench does not search
    them for this run); cached in the run folder (levels.json) by search_levels. Rank 0 searches
    and every rank gets the result."""
    if not _searches(spec, item.run, trained.built.method):
        return None
    found = None
    if dist is None or dist.is_main:
        if higher_is_better(evaluators, spec.metric):
            raise GenkitError(f"bench.level_search minimises bench.metric, and '{spec.metric}' is higher-is-better")
        seed = SEARCH_SEED_BASE + item.seed
        search = search_levels(
            _Searchable(trained, item.folder), spec.max_sampling_steps, spec.metric, spec.search_samples, spec.search_iterations, sample_seed=seed
        )
        found = {
            "levels": search.levels,
            "values": search.values,  # the metric at 2, 3, ... steps on the search's draws
            "one_step": search.one_step,
            "metric": search.metric,
            "samples": spec.search_samples,
            "iterations": spec.search_iterations,
            "sample_seed": seed,
            "reference_seed": SEARCH_REFERENCE_SEED,
        }
    if dist is not None and dist.enabled:
        found = dist.gather(found)[0]
    return found


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
    steps_list = scored_steps(spec, item.run, method)
    search = searched_levels(spec, item, trained, evaluators, dist)
    settings = _eval_settings(spec, item, trained.step, steps_list, search)
    cache = item.folder / EVAL_FILE
    cached = read_bench_file(cache)
    if _usable(cached, settings, out):
        return cached["scores"] if main else None
    reference = reference_data(dataset, spec.eval_samples) if main else None
    scores = []
    for steps, levels, primary in scored_settings(spec, item, method, steps_list, search):
        samples = draw_samples(
            method, trained.model, spec.eval_samples, steps, seed=item.seed, batch_size=item.config.sample.batch_size,
            levels=levels, dist=dist,
        )
        if not main:
            continue
        nfe = method.sampling_evaluations(steps)
        picture = Path("pictures") / f"{item.run.name}-seed{item.seed}-{nfe}nfe{'' if primary else '-fixed'}.png"
        title = f"{item.run.label}, {_sampling_phrase(item.run.role, steps, nfe, levels, primary)}, seed {item.seed}, step {trained.step}"
        shown = samples[:2000] if samples.ndim == 2 else samples[: item.config.sample.grid_size]  # points, or a grid of images
        save_samples_picture(shown, out / picture, title, reference=reference[:2000] if samples.ndim == 2 else None)
        scored = score_against_data(samples, dataset, evaluators, reference=reference)
        scores.append({
            "steps": steps, "nfe": nfe, "scores": scored, "picture": str(picture), "levels": levels or [],
            "levels_from": ("searched" if search and primary else "fixed") if levels else None,
            "primary": primary,  # False: the extra row at the preset's fixed levels beside the searched ones
        })
    if not main:
        return None
    write_bench_file(cache, {"settings": settings, "scores": scores, "level_search": search})
    return scores


def scored_steps(spec: BenchSpec, run: RunSpec, method) -> list[int]:
    """The sampling steps a run is scored at: the teacher's Heun levels, else bench.sampling_steps."""
    return [method.default_sampling_steps()] if run.role == "teacher" else list(spec.sampling_steps)


def _searches(spec: BenchSpec, run: RunSpec, method) -> bool:
    return spec.searches_levels(run) and method.takes_levels  # sCT, MeanFlow: no levels


@dataclass
class ScoringWork:
    """What the bench samples and scores of one run per seed for one purpose: ``calls`` metric
    evaluations on ``samples`` each, drawn with ``evaluations`` network evaluations in all."""

    calls: int
    samples: int
    evaluations: int  # samples x NFE, summed over the calls
    every_metric: bool = True  # every evaluator of the run, else bench.metric alone (the level search)


def scoring_work(spec: BenchSpec, run: RunSpec, method) -> dict[str, ScoringWork]:
    """The bench's scoring of one run per seed: the final scores (score_run, scored_settings), the
    level search (search_levels: a 1-step point, then 2 x iterations + 1 points per level) and the
    curve points the Trainer scores while training (at each multiple of curve_every and the last)."""
    nfe = method.sampling_evaluations
    steps = scored_steps(spec, run, method)
    steps += fixed_level_steps(spec, run, steps, _searches(spec, run, method))  # scored_settings' extra rows
    work = {"final": ScoringWork(len(steps), spec.eval_samples, spec.eval_samples * sum(nfe(k) for k in steps))}
    if _searches(spec, run, method):
        calls = [1] + [2 * spec.search_iterations + 1] * (spec.max_sampling_steps - 1)  # at 1, 2, ... steps
        evaluations = spec.search_samples * sum(n * nfe(k) for k, n in enumerate(calls, start=1))
        work["search"] = ScoringWork(sum(calls), spec.search_samples, evaluations, every_metric=False)
    if spec.curve_every:
        points = math.ceil(spec.steps / spec.curve_every)
        work["curves"] = ScoringWork(points, spec.curve_samples, points * spec.curve_samples * nfe(None))
    return work


def held_out_work(spec: BenchSpec) -> ScoringWork | None:
    """What the bench scores once of held-out data, every metric and no sampling: the floors and
    the baselines (None without bench.floor); one call of all their samples together."""
    if not spec.floor:
        return None
    return ScoringWork(1, 3 * spec.eval_samples + (spec.curve_samples if spec.curve_every else 0), evaluations=0)


def floors(spec: BenchSpec, dataset, evaluators: dict) -> tuple[dict[str, float], dict[str, float]]:
    """Held-out data scored against the reference at eval_samples points (the floor of the table)
    and at curve_samples (the floor of the metric-vs-step plot; empty without curves)."""
    if not spec.floor:
        return {}, {}
    curve = data_floor(dataset, evaluators, spec.curve_samples) if spec.curve_every else {}
    return data_floor(dataset, evaluators, spec.eval_samples), curve


BASELINE_SEED = 7  # the held-out draw whose moments the baselines take, and the seed of their noise


def baselines(spec: BenchSpec, dataset, evaluators: dict) -> dict[str, dict[str, float]]:
    """What a model that has learnt nothing beyond the data's first moments scores, at eval_samples
    points against the scores' reference: every sample the data's mean ('data mean': CT's flat grey
    square when its target lags) and Gaussian noise with the data's per-dimension mean and standard
    deviation, clipped to the data's range ('matched noise'). Empty without the floor."""
    if not spec.floor:
        return {}
    data = dataset.reference(spec.eval_samples, seed=BASELINE_SEED).float()
    mean, std = data.mean(0, keepdim=True), data.std(0, keepdim=True)
    generator = torch.Generator().manual_seed(BASELINE_SEED)
    noise = (mean + std * torch.randn(data.shape, generator=generator)).clamp(data.min(), data.max())
    reference = reference_data(dataset, spec.eval_samples)
    return {
        "data mean": score_against_data(mean.expand_as(data).contiguous(), dataset, evaluators, reference=reference),
        "matched noise": score_against_data(noise, dataset, evaluators, reference=reference),
    }


def _eval_settings(spec: BenchSpec, item: PlannedRun, step: int, steps_list: list[int], search: dict | None = None) -> dict[str, Any]:
    levels = search["levels"] if search else sampling_levels(spec, item.run)
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
    if search:
        settings["level_search"] = {key: search[key] for key in ("metric", "samples", "iterations", "sample_seed", "reference_seed")}
        settings["fixed_levels"] = spec.run_levels(item.run)  # scored again at these, beside the searched ones
    return settings


def scored_settings(spec: BenchSpec, item: PlannedRun, method, steps_list: list[int], search: dict | None):
    """(steps, levels, primary) for every score of a run: each of its sampling steps with its
    levels (searched, else the run's or the bench's; None: the teacher, one step, or a method with
    its own sampler), each followed, when its levels were searched and the bench's fixed levels
    cover it (the paper's level), by the same steps again at those levels (primary False)."""
    takes = method.takes_levels
    fixed, again = spec.run_levels(item.run), fixed_level_steps(spec, item.run, steps_list, bool(search) and takes)
    found = []
    for steps in steps_list:
        found.append((steps, levels_for(spec, item, steps, search) if takes else None, True))
        if steps in again:
            found.append((steps, fixed[: steps - 1], False))
    return found


def fixed_level_steps(spec: BenchSpec, run: RunSpec, steps_list: list[int], searched: bool) -> list[int]:
    """The step counts a run whose levels were searched is scored at again, at the fixed levels."""
    covered = len(spec.run_levels(run)) + 1 if searched else 0
    return [steps for steps in steps_list if 2 <= steps <= covered]


def levels_for(spec: BenchSpec, item: PlannedRun, steps: int, search: dict | None = None) -> list[float] | None:
    """The intermediate levels of a consistency model's ``steps``-step sampling (None: the teacher,
    or one step): the searched ones, else the run's or the bench's."""
    if item.run.role == "teacher" or steps < 2:
        return None
    return (search["levels"] if search else spec.run_levels(item.run))[: steps - 1]


def _sampling_phrase(role: str, steps: int, nfe: int, levels: list[float] | None = None, primary: bool = True) -> str:
    if role == "teacher":
        return f"Heun, {steps} levels ({nfe} NFE)"
    if steps == 1:
        return "1 step"
    at = f" at {', '.join(f'{t:.3g}' for t in levels)}" if levels else ""
    return f"{steps} steps{at}" + ("" if primary else " (fixed)")


def level_search_of(item: PlannedRun) -> dict[str, Any] | None:
    """The level search recorded with the run's cached scores (None: the bench's or the run's own levels)."""
    cached = read_bench_file(item.folder / EVAL_FILE)
    found = cached.get("level_search") if isinstance(cached, dict) else None
    return found if isinstance(found, dict) else None


def curve_of(item: PlannedRun) -> list[dict[str, Any]]:
    """The run's scores during training, each with its step and the training seconds spent by then
    (``elapsed_s``: the anytime view, score against seconds, where methods of different cost per
    step compare at equal compute)."""
    records = list(RunFolder(item.folder).metrics())
    clock = {r["step"]: float(r["elapsed_s"]) for r in records if "elapsed_s" in r}  # a resumed run's later record wins
    return [{"step": r["step"], "elapsed_s": elapsed_at(clock, r["step"]), "eval": r["eval"]} for r in records if "eval" in r]


def elapsed_at(clock: dict[int, float], step: int) -> float | None:
    """Training seconds at ``step`` from the log records' (step, elapsed_s): exact at a logged
    step, else linear between the logged steps around it (from step 0 at 0 s); None past the last."""
    if step in clock:
        return clock[step]
    points = sorted({0: 0.0, **clock}.items())
    for (s0, t0), (s1, t1) in zip(points, points[1:]):
        if s0 < step < s1:
            return t0 + (t1 - t0) * (step - s0) / (s1 - s0)
    return None


def _usable(cached, settings: dict, out: Path) -> bool:
    """A cache of the same settings whose pictures are all there (else, damaged or stale: score again)."""
    if not isinstance(cached, dict) or cached.get("settings") != settings or not isinstance(cached.get("scores"), list):
        return False
    return all(isinstance(s, dict) and isinstance(s.get("picture"), str) and (out / s["picture"]).is_file() for s in cached["scores"])
