"""Draw samples from a trained model and score them against reference data."""

from __future__ import annotations

from typing import Sequence

import torch
from rich.progress import track

from genkit.errors import GenkitError
from genkit.maths import PerSampleNoise
from genkit.schema import Component, to_plain

REFERENCE_SEED = 1  # the held-out data every score compares against
FLOOR_SEED = 2  # a second held-out draw: data vs data is the floor a perfect model would reach


def sample_seeds(seed: int, num: int) -> range:
    """The per-sample seeds of ``num`` samples drawn with ``seed``: sample k uses seed * 2**32 + k."""
    return range(seed * 2**32, seed * 2**32 + num)


@torch.no_grad()
def draw_samples(method, model, num: int, steps: int | None, seed: int = 0, batch_size: int = 256, device=None,
                 progress: bool = False, label: int | None = None, levels: Sequence[float] | None = None,
                 dist=None):
    """``num`` samples, the same whatever the batch size: each draws its noise (and, for a
    class-conditional network, its class unless ``label`` fixes it) from its own seed.
    ``progress`` shows a bar when there is more than one batch. ``levels``: the intermediate
    levels of multistep consistency sampling, instead of sample.multistep_sigmas (a method whose
    sampler takes none, EDM's Heun, refuses them). ``dist`` (a genkit Distributed under
    torchrun): every rank draws a contiguous share of the seeds and rank 0 gets them all, in
    order, so the samples are the same as one process draws; the other ranks get None."""
    extra = {}
    if levels is not None:
        if not method.takes_levels:
            raise GenkitError(f"levels apply to consistency sampling; {type(method).__name__} samples with {method.sampler}")
        extra["levels"] = list(levels)
    seeds = sample_seeds(seed, num)
    if dist is None or not dist.enabled:
        return _draw(method, model, seeds, steps, batch_size, device, progress, label, extra)
    share = -(-num // dist.world_size)
    mine = seeds[dist.rank * share : (dist.rank + 1) * share]
    shares = dist.gather_to_main(_draw(method, model, mine, steps, batch_size, device, progress and dist.is_main, label, extra))
    return torch.cat([part for part in shares if len(part)]) if dist.is_main else None


def _draw(method, model, seeds: range, steps: int | None, batch_size: int, device, progress: bool, label: int | None, extra: dict) -> torch.Tensor:
    device = device or next(model.parameters()).device
    label_dim = int(getattr(getattr(model, "net", None), "label_dim", 0))
    model.eval()
    chunks = []
    starts = range(0, len(seeds), batch_size)
    if progress and len(starts) > 1:
        starts = track(starts, description=f"sampling {len(seeds)}", transient=True)
    for start in starts:
        noise = PerSampleNoise(seeds[start : start + batch_size], device)
        labels = None
        if label_dim:
            labels = noise.randint(label_dim) if label is None else torch.full((len(noise),), label, device=device)
        chunks.append(method.sample(model, noise, steps, labels, **extra).cpu())
    return torch.cat(chunks) if chunks else torch.empty(0)


def score(samples: torch.Tensor, reference: torch.Tensor, evaluators: dict) -> dict[str, float]:
    """Every evaluator's score of the samples against the reference (evaluators with prepared
    statistics use those instead); one giving several values (precision and recall) adds
    'name/value' entries."""
    scores: dict[str, float] = {}
    for name, evaluate in evaluators.items():
        value = evaluate(samples, reference)
        if isinstance(value, dict):
            scores.update({f"{name}/{key}": float(v) for key, v in value.items()})
        else:
            scores[name] = float(value)
    return scores


def build_evaluators(built, prepare: bool = True, metrics: Sequence[str] = ()) -> dict:
    """The evaluators named in ``metrics`` (with their default options), else those
    ``eval.metrics`` chooses (with their options), else the ones the dataset suggests, built for
    the run ``built`` (a genkit.build.Built), checked against its data and, with ``prepare``,
    holding their reference statistics."""
    chosen = [Component(name) for name in metrics] or built.config.eval.metrics or [Component(n) for n in built.dataset.evaluators]
    names = [component.name for component in chosen]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise GenkitError(f"eval.metrics names evaluator '{repeated[0]}' twice; scores are keyed by name")
    evaluators = {c.name: built.ctx.registries.evaluators.build(c, built.ctx) for c in chosen}
    for name, evaluator in evaluators.items():
        refusal = evaluator.accepts(built.dataset) if hasattr(evaluator, "accepts") else ""
        if refusal:
            raise GenkitError(f"evaluator '{name}' cannot score data '{built.config.data.name}': {refusal}")
    if prepare:
        prepare_evaluators(evaluators, built)
    return evaluators


def prepare_evaluators(evaluators: dict, built) -> None:
    """Reference statistics of the evaluators that keep them (cached on disk across runs)."""
    for evaluator in evaluators.values():
        if hasattr(evaluator, "prepare"):
            evaluator.prepare(built.dataset, to_plain(built.config.data))


def reference_data(dataset, num: int) -> torch.Tensor:
    return dataset.reference(num, seed=REFERENCE_SEED)


def data_floor(dataset, evaluators: dict, num: int) -> dict[str, float]:
    """Held-out data scored against the reference: what a perfect model scores at ``num`` points."""
    return score(dataset.reference(num, seed=FLOOR_SEED), reference_data(dataset, num), evaluators)


def score_against_data(samples: torch.Tensor, dataset, evaluators: dict, reference: torch.Tensor | None = None,
                       floor: bool = False) -> dict[str, float]:
    """Drawn samples scored by every evaluator against as many held-out data points (the
    reference draw; pass ``reference`` when it is at hand already). ``floor=True`` adds
    ``<metric>/floor``: a second held-out draw of that size scored the same way, what a perfect
    model reaches. The one scoring path of ``genkit sample``, ``Model.evaluate`` and the bench."""
    num = len(samples)
    scores = score(samples, reference_data(dataset, num) if reference is None else reference, evaluators)
    if floor:
        scores.update({f"{name}/floor": value for name, value in data_floor(dataset, evaluators, num).items()})
    return scores
