"""Training one planned run: to the bench's budget, resuming its checkpoint, built once."""

from __future__ import annotations

from typing import Callable

from genkit.trained import TrainedModel
from genkit.errors import GenkitError
from genkit.training.distributed import Distributed
from genkit.training.loop import Trainer, TrainingInterrupted
from genkit.training.run import RunFolder

from genkit_bench.plan import PlannedRun, teacher_key

SAMPLING_KEYS = ("sample.multistep_sigmas",)  # how a run is sampled, not trained: a change rescores it


def train_run(item: PlannedRun, registries, progress=None, on_step: Callable[[int], None] | None = None) -> TrainedModel:
    """Train one run to the budget, resuming a checkpoint (a finished run trains nothing); returns
    it as the Trainer built it, with its EMA weights, step and training seconds, to be scored."""
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
    try:
        if trainer.step < config.train.steps:
            callback = (lambda record: on_step(record["step"])) if on_step else None
            try:
                trainer.train(progress=progress, on_log=callback)
            except TrainingInterrupted:
                raise TrainingInterrupted(
                    f"interrupted in run {item.key} at step {trainer.step}; rerun the same command with the same --out to continue"
                ) from None
    finally:
        trainer.close()  # a finished run never trains: give its folder back all the same
    return TrainedModel(trainer.built, trainer.ema.model, trainer.step, trainer.elapsed)


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


def _is_sampling_key(difference: str) -> bool:
    return difference.split(":")[0] in SAMPLING_KEYS


def _without_other_methods(values: dict, method: str) -> dict:
    """Options of methods a run does not train cannot change it (a newer preset may add some)."""
    return {**values, "methods": {k: v for k, v in values.get("methods", {}).items() if k == method}}
