"""Intermediate levels of multistep consistency sampling: checks, and the greedy search of Song
et al. (2023), Section 6 / Appendix: tau_1 for 2-step sampling by a ternary search minimising a
sample-quality metric, then tau_2 below it for 3 steps with tau_1 fixed, and so on.

The search works on ln(tau): the levels span 0.002 to 80, and a metric's dependence on the level
is far closer to unimodal, and better resolved, per factor than per unit of sigma.

``ternary_search`` and ``greedy_levels`` are pure; ``search_levels`` runs them on a loaded model
(genkit.api.Model) against held-out data and caches the result in the run folder (levels.json).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import torch

from genkit import files
from genkit.errors import GenkitError
from genkit.maths.levels import Levels
from genkit.schema import to_plain
from genkit.evaluation.scoring import build_evaluators, draw_samples

CACHE_FILE = "levels.json"
SCALE = "log"  # the search runs on ln(tau)
DEFAULT_ITERATIONS = 12  # each shrinks the ln-interval to 2/3: ln(80/0.002) = 10.6 -> 0.08, levels to within ~8%
DEFAULT_SEARCH_SAMPLES = 2000
# The search draws its own samples and held-out points, apart from those `genkit sample` and
# `genkit eval` score with (sample seed 0, reference seed REFERENCE_SEED), so a score printed
# after a search is not biased by the search having tuned to it.
SEARCH_SEED = 1  # sample seed of the search's samples
SEARCH_REFERENCE_SEED = 3  # held-out draw the search scores against
# Each level is searched below DEFAULT_RATIO times the one before it. Without a gap the search
# may choose two almost equal levels (0.0572 then 0.0564 on a toy run): the second step then
# adds noise and denoises at nearly the same level, an evaluation that changes nothing. At 0.9
# every step lowers the level by 10% or more, above the ~4-8% the default 12 iterations resolve.
DEFAULT_RATIO = 0.9


# ----------------------------------------------------------------------------- the pure search


def ternary_search(
    objective: Callable[[float], float], low: float, high: float, iterations: int = DEFAULT_ITERATIONS, log: bool = True
) -> tuple[float, float]:
    """The minimiser of ``objective`` over the open interval (low, high), assumed unimodal, and its
    value: ``iterations`` times, evaluate at the thirds and drop the outer third on the worse side;
    then evaluate the middle of what is left. ``log``: thirds of ln(tau) (needs 0 < low).

    Returns the best point evaluated (for a unimodal objective, the middle of the final interval;
    for a noisy one, e.g. a metric on finite samples, never a point worse than one seen). Costs
    2 * iterations + 1 evaluations; every point lies strictly inside (low, high)."""
    if not low < high:
        raise ValueError(f"ternary_search needs low < high, got ({low}, {high})")
    if iterations < 0:
        raise ValueError(f"ternary_search needs iterations >= 0, got {iterations}")
    if log and low <= 0:
        raise ValueError(f"a search on a log scale needs low > 0, got {low}")
    to_x = math.exp if log else (lambda u: u)
    a, b = (math.log(low), math.log(high)) if log else (low, high)
    seen: list[tuple[float, float]] = []

    def evaluate(u: float) -> float:
        x = min(max(to_x(u), math.nextafter(low, high)), math.nextafter(high, low))  # strictly inside
        value = float(objective(x))
        value = value if math.isfinite(value) else math.inf  # NaN (diverged samples) loses to any number
        seen.append((value, x))
        return value

    for _ in range(iterations):
        left, right = a + (b - a) / 3, b - (b - a) / 3
        if evaluate(left) <= evaluate(right):
            b = right
        else:
            a = left
    evaluate((a + b) / 2)
    value, x = min(seen, key=lambda pair: pair[0])
    return x, value


def greedy_levels(
    objective_for_levels: Callable[[list[float]], float],
    k: int,
    sigma_min: float,
    sigma_max: float,
    iterations: int = DEFAULT_ITERATIONS,
    fixed: Sequence[float] = (),
    on_level: Callable[[int, float, float], None] | None = None,
    log: bool = True,
    ratio: float = DEFAULT_RATIO,
) -> tuple[list[float], list[float]]:
    """The k - 1 levels of k-step sampling, chosen greedily: tau_1 in (sigma_min, sigma_max)
    minimising ``objective_for_levels([tau_1])`` (2-step sampling), then tau_2 in (sigma_min,
    ratio * tau_1) minimising ``objective_for_levels([tau_1, tau_2])`` with tau_1 fixed, and so on:
    ``ratio`` < 1 keeps each level meaningfully below the one before (1: only strictly below).
    A ValueError when no level fits (ratio * the last level <= sigma_min).

    ``fixed``: levels already chosen (a cached shorter search), continued from. ``on_level(i,
    tau_i, value)`` is called as each new level is found (i counted from 1). Returns the levels,
    descending, and the objective at each prefix: values[i] is the metric of (i + 2)-step sampling
    (None for the ``fixed`` levels, whose values the caller knows)."""
    if k < 1:
        raise ValueError(f"k-step sampling needs k >= 1, got {k}")
    if not 0 < ratio <= 1:
        raise ValueError(f"the ratio between levels must be in (0, 1], got {ratio}")
    levels = list(fixed)[: k - 1]
    values: list[float | None] = [None] * len(levels)
    while len(levels) < k - 1:
        high = levels[-1] * ratio if levels else sigma_max
        if high <= sigma_min:
            raise ValueError(
                f"no level for {len(levels) + 2}-step sampling fits between sigma_min {sigma_min:g} and {ratio:g} x the "
                f"last level {levels[-1]:.4g}: {len(levels) + 1} steps are as many as these levels allow"
            )
        tau, value = ternary_search(lambda t: objective_for_levels([*levels, t]), sigma_min, high, iterations, log)
        levels.append(tau)
        values.append(value)
        if on_level:
            on_level(len(levels), tau, value)
    return levels, values


# ----------------------------------------------------------------------------- explicit levels


def check_levels(levels: Sequence[float], sigma_min: float, sigma_max: float, steps: int | None = None) -> list[float]:
    """Levels given by a user: descending, each in (sigma_min, sigma_max), exactly steps - 1 of
    them when ``steps`` is given. Returns them as floats; a GenkitError (one line) otherwise."""
    if steps is not None and steps < 1:
        raise GenkitError(f"the number of steps must be positive, got {steps}")
    if not levels:
        raise GenkitError("levels: give at least one intermediate level (1-step sampling has none)")
    return list(Levels.check(levels, sigma_min, sigma_max, "levels", steps))


def parse_levels(text: str) -> list[float] | str:
    """``--levels``: 'search', or numbers separated by commas ('1.3,0.4')."""
    if text.strip().lower() == "search":
        return "search"
    try:
        return [float(part) for part in text.split(",")]
    except ValueError:
        raise GenkitError(f"`levels` takes descending numbers separated by commas (1.3,0.4) or 'search', got '{text}'") from None


def require_consistency_sampler(built) -> None:
    """Levels are refused for a method whose sampler takes none (it declares what it runs)."""
    if not built.method.takes_levels:
        raise GenkitError(f"levels apply to consistency sampling; method '{built.config.method}' samples with {built.method.sampler}")


# ----------------------------------------------------------------------------- on a trained model


@dataclass
class LevelSearch:
    """The result of ``search_levels``: levels[i] was chosen for (i + 2)-step sampling, where the
    metric scored values[i] (None: not finite); ``one_step`` is the metric without levels;
    ``reused``: how many of the levels were read from the cache rather than searched."""

    levels: list[float]
    values: list[float | None]
    one_step: float | None
    metric: str
    settings: dict = field(default_factory=dict)
    reused: int = 0

    def no_gain(self) -> list[int]:
        """Step counts k whose best levels score no better than k - 1 steps did: a search that
        reports them says fewer steps suffice."""
        found, previous = [], self.one_step
        for index, value in enumerate(self.values):
            if _finite(value) and _finite(previous) and value >= previous:
                found.append(index + 2)
            previous = value if _finite(value) else previous
        return found

    @property
    def cached(self) -> bool:
        """Every level read from the cache: nothing was searched."""
        return self.reused == len(self.levels)


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def search_settings(model, metric: str, num: int, iterations: int, ratio: float = DEFAULT_RATIO,
                    sample_seed: int = SEARCH_SEED) -> dict:
    """What a cached search must agree on to be reused (the steps aside: greedy levels for k steps
    are the first k - 1 of those for more steps, so a longer search serves a shorter one). Another
    EMA than the default (``genkit.load(run, ema=RATE)``) is part of them."""
    other_ema = {} if getattr(model, "default_ema", True) else {"ema": float(model.ema_rate)}
    return {
        **other_ema,
        "checkpoint_step": int(model.step),
        "metric": metric,
        "metric_options": _options_of(model.config, metric),
        "samples": int(num),
        "iterations": int(iterations),
        "scale": SCALE,
        "ratio": float(ratio),
        "sample_seed": int(sample_seed),
        "reference_seed": SEARCH_REFERENCE_SEED,
        "sigma_min": float(model.config.noise.sigma_min),
        "sigma_max": float(model.config.noise.sigma_max),
    }


def _options_of(config, metric: str):
    """The evaluator's options where eval.metrics sets them (they change its scores)."""
    for component in config.eval.metrics or []:
        if component.name == metric:
            return to_plain(component)
    return {}


def choose_metric(built, metric: str | None) -> tuple[str, Callable]:
    """The evaluator the search minimises: ``metric`` or the run's first; one-line errors without one."""
    evaluators = build_evaluators(built)
    if not evaluators:
        raise GenkitError(
            f"a levels search minimises a metric, and this run has no evaluator (dataset '{built.config.data.name}' "
            f"suggests none and eval.metrics is empty); give the levels as numbers (`levels` 1.3,0.4)"
        )
    if metric is None:
        metric = next(iter(evaluators))
    if metric not in evaluators:
        raise GenkitError(f"`metric` '{metric}' is not one of this run's evaluators ({', '.join(evaluators)})")
    return metric, evaluators[metric]


def check_search(model, steps: int | None, metric: str | None, num: int, iterations: int) -> tuple[str, Callable]:
    """One-line errors for a search that cannot run; else the metric's name and evaluator."""
    built = model.trained.built
    require_consistency_sampler(built)
    if steps is None or steps < 2:
        raise GenkitError(f"a levels search chooses the levels of K-step sampling: give `steps` 2 or more (got {steps})")
    if num < 2:
        raise GenkitError(f"`search_samples` must be at least 2, got {num}")
    if iterations < 1:
        raise GenkitError(f"`search_iterations` must be at least 1, got {iterations}")
    return choose_metric(built, metric)


def levels_objective(model, evaluator: Callable, num: int, sample_seed: int = SEARCH_SEED) -> Callable[[list[float]], float]:
    """levels -> the metric of len(levels) + 1-step samples (seed ``sample_seed``) against ``num``
    held-out data points (seed SEARCH_REFERENCE_SEED); inf where samples are not finite."""
    built = model.trained.built
    reference = built.dataset.reference(num, seed=SEARCH_REFERENCE_SEED)
    batch_size = model.config.sample.batch_size

    def objective(levels: list[float]) -> float:
        samples = draw_samples(
            built.method, model.trained.model, num, len(levels) + 1, sample_seed, batch_size, levels=list(levels) or None
        )
        if not torch.isfinite(samples).all():
            return math.inf
        return float(evaluator(samples, reference))

    return objective


def search_levels(
    model,
    steps: int,
    metric: str | None = None,
    num: int = DEFAULT_SEARCH_SAMPLES,
    iterations: int = DEFAULT_ITERATIONS,
    on_level: Callable[[int, float, float], None] | None = None,
    objective_factory: Callable | None = None,
    ratio: float = DEFAULT_RATIO,
    sample_seed: int = SEARCH_SEED,
) -> LevelSearch:
    """The greedy levels of ``steps``-step sampling of a loaded run (genkit.api.Model), minimising
    ``metric`` (default: the run's first evaluator) on ``num`` samples against as many held-out data
    points, ``iterations`` ternary steps per level on ln(tau). Cached in RUN/levels.json: a search
    with the same settings and checkpoint step is reused (beside an export: STEM-levels.json), and a shorter one is continued.
    ``on_level(i, tau_i, value)`` is called for every level in order, read or searched.
    ``objective_factory(model, evaluator, num)``: levels -> metric (default ``levels_objective``).
    ``ratio``: each level at most this times the one before (DEFAULT_RATIO); a search that finds
    no level that fits is one GenkitError saying fewer steps suffice. ``sample_seed``: the seed of
    the search's samples; a caller that scores with several sample seeds (the bench: one per
    training seed) passes one none of them uses."""
    metric, evaluator = check_search(model, steps, metric, num, iterations)
    if not 0 < ratio <= 1:
        raise GenkitError(f"`search_ratio` must be in (0, 1], got {ratio}")
    settings = json.loads(json.dumps(search_settings(model, metric, num, iterations, ratio, sample_seed)))  # as the cache holds it
    path = model.beside(CACHE_FILE) if hasattr(model, "beside") else Path(model.path) / CACHE_FILE
    entries = _read_cache(path)
    entry = next((e for e in entries if e.get("settings") == settings), None)
    cached_levels = list(entry["levels"]) if entry else []
    cached_values = list(entry["values"]) if entry else []
    reused = min(len(cached_levels), steps - 1)
    if on_level:
        for index, (tau, value) in enumerate(zip(cached_levels[:reused], cached_values), start=1):
            on_level(index, tau, value)
    if entry and reused == steps - 1:
        return LevelSearch(cached_levels[:reused], cached_values[:reused], entry["one_step"], metric, settings, reused)

    objective = objective_factory(model, evaluator, num) if objective_factory else levels_objective(model, evaluator, num, sample_seed)
    one_step = entry["one_step"] if entry else float(objective([]))
    noise = model.config.noise
    try:
        levels, values = greedy_levels(objective, steps, noise.sigma_min, noise.sigma_max, iterations, cached_levels, on_level, ratio=ratio)
    except ValueError as error:
        raise GenkitError(f"levels search: {error}") from None
    values = cached_values + values[len(cached_levels) :]
    record = {"settings": settings, "levels": levels, "values": values, "one_step": one_step}
    entries = [e for e in entries if e.get("settings") != settings] + [record]
    _write_cache(path, entries)
    return LevelSearch(levels, values, one_step, metric, settings, reused)


def _read_cache(path: Path) -> list[dict]:
    cache = files.read_cached_json(path)  # None when missing or damaged: searched again and rewritten
    entries = cache.get("searches", []) if isinstance(cache, dict) else []
    if not isinstance(entries, list):
        return []
    return [e for e in entries if isinstance(e, dict) and {"settings", "levels", "values", "one_step"} <= set(e)]


def _write_cache(path: Path, entries: list[dict]) -> None:
    text = files.json_text({"searches": entries}, indent=2) + "\n"
    files.write_atomic(path, text)



