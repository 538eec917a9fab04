"""The Python API: train a run, load it, sample and score it, without the command line.

    import genkit
    run = genkit.train("toy2d", out="runs/ict", method="ict", steps=2000, train__lr=1e-3)
    model = genkit.load("runs/ict")
    x = model.sample(64, steps=1, seed=0)
    model.evaluate(num=2000, steps=2)

Overrides are config keys, with ``__`` for the dots (``train__lr``) or as a dict
(``**{"train.lr": 1e-3}``); they layer over the preset exactly like ``--set`` does.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch

from genkit import config as configuration
from genkit import plugins
from genkit.build import pick_device
from genkit.trained import TrainedModel, load_trained
from genkit.config import SEED_LIMIT
from genkit.errors import GenkitError
from genkit.evaluation import build_evaluators, draw_samples, score_against_data
from genkit.evaluation.levels import check_levels, require_consistency_sampler
from genkit.export import is_export, load_export
from genkit.training.loop import Trainer
from genkit.training.run import RunFolder, new_run_path


@dataclass
class Model:
    """A trained run's EMA weights with its method's sampler: from a run folder or an export."""

    path: Path  # the run folder, or the export file
    trained: TrainedModel
    exported: bool = False  # loaded from an export file (genkit export), not a run folder

    def beside(self, name: str) -> Path:
        """Where an output named ``name`` goes: RUN/NAME for a run folder, and STEM-NAME beside an
        export file (model-eval.json beside model.safetensors), so two exports in one folder
        keep theirs apart."""
        return self.path.parent / f"{self.path.stem}-{name}" if self.exported else self.path / name

    @property
    def config(self) -> configuration.Config:
        return self.trained.built.config

    @property
    def step(self) -> int:
        """Training steps the loaded checkpoint has done."""
        return self.trained.step

    @property
    def ema_rate(self) -> float | None:
        """The rate of the evaluation EMA loaded (``genkit.load(run, ema=RATE)``)."""
        return self.trained.ema_rate

    @property
    def default_ema(self) -> bool:
        """The first of train.ema_rates, the one loaded unless another is asked for."""
        return self.ema_rate is None or self.ema_rate == self.config.train.evaluation_ema_rates[0]

    @property
    def network(self) -> torch.nn.Module:
        """The EMA weights inside the method's preconditioning wrapper: ``network(x, sigma)``."""
        return self.trained.model

    def sample(
        self, num: int, steps: int | None = None, seed: int = 0, batch_size: int | None = None,
        progress: bool = False, label: int | None = None, levels: Sequence[float] | None = None,
    ) -> torch.Tensor:
        """``num`` samples on the CPU; sample k always uses its own seed, whatever the batch size
        (default ``sample.batch_size``). ``steps``: consistency steps (1, 2, ...) or EDM's Heun
        levels; None: the method's default, or len(levels) + 1. ``levels``: the steps - 1
        intermediate noise levels of multistep consistency sampling, descending, in (sigma_min,
        sigma_max), instead of sample.multistep_sigmas (genkit.evaluation.levels.search_levels
        chooses them). ``label`` fixes the class of a class-conditional
        model (default: each sample's own random class). Non-finite samples (a diverged model)
        are an error, never returned."""
        whole("num", num, 1)
        whole("steps", steps, 1, optional=True)
        whole("batch_size", batch_size, 1, optional=True)
        whole("seed", seed, 0)
        steps, levels = self.resolve_levels(steps, levels)
        if not seed < SEED_LIMIT:
            raise GenkitError(f"`seed` must be in [0, 2**32), got {seed}")
        self._check_label(label)
        method = self.trained.built.method
        try:
            samples = draw_samples(
                method, self.trained.model, num, steps, seed, batch_size or self.config.sample.batch_size, progress=progress,
                label=label, levels=levels,
            )
        except ValueError as error:  # e.g. 3 steps with 1 level in sample.multistep_sigmas
            raise GenkitError(str(error)) from None
        bad = int((~torch.isfinite(samples.flatten(1))).any(dim=1).sum())
        if bad:
            raise GenkitError(f"{bad} of {num} samples are NaN or infinite: the weights of {self.path} have diverged; nothing written")
        return samples

    def _check_label(self, label: int | None) -> None:
        """A class only for a class-conditional model, and one of its classes."""
        if label is None:
            return
        classes = self.trained.built.ctx.label_dim
        if not classes:
            raise GenkitError(f"`label` {label}: this model is unconditional (it was trained without class labels)")
        whole("label", label, 0)
        if label >= classes:
            raise GenkitError(f"`label` must be a class in [0, {classes}), got {label}")

    def resolve_levels(self, steps: int | None, levels: Sequence[float] | None) -> tuple[int | None, list[float] | None]:
        """(steps, levels) checked: levels only for consistency sampling, descending, in (sigma_min,
        sigma_max), steps - 1 of them (steps None: len(levels) + 1); one-line GenkitErrors otherwise."""
        if levels is None:
            return steps, None
        require_consistency_sampler(self.trained.built)
        noise = self.config.noise
        levels = check_levels(levels, noise.sigma_min, noise.sigma_max, steps)
        return len(levels) + 1, levels

    def evaluate(
        self, num: int | None = None, steps: int | None = None, seed: int = 0, floor: bool = False,
        levels: Sequence[float] | None = None, metrics: Sequence[str] = (),
    ) -> dict[str, float]:
        """The run's evaluators (``metrics`` by name, else ``eval.metrics``, else the dataset's) on
        ``num`` samples against as many held-out data points; ``floor=True`` adds
        ``<metric>/floor``, held-out data scored the same way. ``levels``: as for :meth:`sample`."""
        built = self.trained.built
        num = built.config.sample.num if num is None else num
        whole("num", num, 1)
        evaluators = build_evaluators(built, metrics=metrics)
        return score_against_data(self.sample(num, steps, seed, levels=levels), built.dataset, evaluators, floor=floor)


def whole(name: str, value: Any, minimum: int, optional: bool = False) -> None:
    """An integer argument of the API, checked as the CLI checks its flag: one GenkitError."""
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise GenkitError(f"`{name}` must be a whole number, got {value!r}")
    if value < minimum:
        raise GenkitError(f"`{name}` must be at least {minimum}, got {value}")


def load(run: str | Path, device: str | torch.device | None = None, ema: float | None = None) -> Model:
    """A run folder written by ``genkit train`` (or :func:`train`), or a file written by
    ``genkit export`` (``model.safetensors``: sampled without the dataset's files), ready to sample.
    ``ema``: which evaluation EMA of ``train.ema_rates`` (None: the first)."""
    device = pick_device(device) if isinstance(device, str) else device
    if ema is not None and (isinstance(ema, bool) or not isinstance(ema, (int, float))):
        raise GenkitError(f"`ema` must be a rate of train.ema_rates, got {ema!r}")
    if is_export(run):
        return Model(Path(run), load_export(run, plugins.registries(), device, ema), exported=True)
    return Model(Path(run), load_trained(run, plugins.registries(), device, ema))


def train(
    config: str | Path | dict | configuration.Config | None = None,
    out: str | Path | None = None,
    *,
    resume: bool = False,
    teacher: str | Path | None = None,
    **overrides: Any,
) -> Model:
    """Train a run and return it loaded. ``config`` is a preset name, a TOML file, a dict of
    config values or a Config; ``overrides`` layer over it (``method="cd"``, ``train__steps=500``,
    ``steps=500`` for short); None: the default preset. ``resume=True`` continues the run in ``out`` (``steps=N`` extends it)."""
    registries = plugins.registries()
    if resume:
        if out is None or teacher is not None:
            raise GenkitError("resume=True continues the run in `out` with its saved config; give `out`, and no teacher")
        steps = overrides.pop("steps", None)
        changes = [(configuration.nest(key.replace("__", "."), value), f"genkit.train({key}=...)") for key, value in overrides.items()]
        run, run_config = resumable_run(out, registries, steps=steps, changes=changes)
    else:
        config = configuration.default_preset(registries) if config is None else config
        layers = layers_of(config, registries)
        for key, value in overrides.items():
            dotted = "train.steps" if key == "steps" else key.replace("__", ".")
            layers.add(configuration.nest(dotted, value), f"genkit.train({key}=...)")
        run_config, run = new_run(layers, registries, out, teacher, _config_name(config))
    Trainer(run_config, run, registries, resume=resume).train()
    return load(run.path)


def layers_of(config: str | Path | dict | configuration.Config, registries) -> configuration.Layers:
    layers = configuration.Layers()
    if isinstance(config, configuration.Config):
        layers.add(config.to_dict(), "the Config given")
    elif isinstance(config, dict):
        layers.add(config, "the dict given")
    else:
        layers.add(configuration.read_toml(configuration.preset_path(str(config), registries)), f"preset {config}")
    return layers


def _config_name(config: Any) -> str:
    return Path(str(config)).stem if isinstance(config, (str, Path)) else "custom"


# ----------------------------------------------------------------------------- shared with the CLI


def add_teacher(layers: configuration.Layers, registries, teacher: str | Path) -> None:
    """Set the option the chosen method reads its teacher run from (CD: methods.cd.teacher.run)."""
    name = layers.data.get("method")
    if not isinstance(name, str) or not name:
        raise GenkitError("`teacher` needs a method: set `method`")
    key = getattr(registries.methods.get(name), "teacher_run_key", None)
    if not key:
        raise GenkitError(f"`teacher`: method '{name}' takes no teacher run")
    layers.add(configuration.nest(f"methods.{name}.{key}", str(teacher)), "--teacher")


def new_run(
    layers: configuration.Layers, registries, out: str | Path | None, teacher: str | Path | None, config_name: str
) -> tuple[configuration.Config, RunFolder]:
    """The resolved config of a new run and its folder (default runs/METHOD-CONFIG, numbered if taken)."""
    if teacher is not None:
        add_teacher(layers, registries, teacher)
    config = configuration.resolve(layers, registries)
    if out is None and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise GenkitError("under torchrun, name the run folder with `out` so every process uses the same one")
    run = RunFolder(out or new_run_path(Path("runs") / f"{config.method}-{config_name}"))
    run.check_new()  # again under the run's lock when training starts
    return config, run


def resumable_run(
    out: str | Path, registries, steps: int | None = None, changes: Sequence[tuple[dict, str]] = ()
) -> tuple[RunFolder, configuration.Config]:
    """A run folder to continue and its saved config; ``steps`` extends it to that many steps.
    ``changes``: (values, source) layered over the saved config, each only of a key in
    configuration.RESUMABLE_CHANGES (logging, checkpoints, evaluation, sampling, device, the data's
    location); another is refused, naming it. The Trainer writes the result to RUN/config.toml.

    Extending changes K, the horizon of the curricula that depend on it (sqrt, doubling): the
    steps still to come follow N(k) of the new K, as if the run had been planned that long."""
    run = RunFolder(out)
    config = run.read_config(registries)
    if not run.has_checkpoint():
        raise GenkitError(f"nothing to resume in {out}: it has no checkpoint yet")
    if changes:
        config = configuration.changed_for_resume(config, list(changes), registries, run.path)
    if steps is not None:
        if steps < 1:
            raise GenkitError(f"steps must be positive, got {steps}")
        config.train.steps = steps
    return run, config
