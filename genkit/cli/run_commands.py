"""``genkit train`` and ``genkit sample``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import numpy as np
import typer
from rich.table import Table

from genkit import config as configuration
from genkit import files, plugins
from genkit.api import load, new_run, resumable_run
from genkit.cli.errors import console, handles_user_errors
from genkit.errors import GenkitError
from genkit.evaluation import build_evaluators, reference_data, score_against_data
from genkit.evaluation.levels import CACHE_FILE as LEVELS_FILE
from genkit.evaluation.levels import DEFAULT_ITERATIONS, DEFAULT_RATIO, DEFAULT_SEARCH_SAMPLES, check_search, parse_levels, search_levels
from genkit.evaluation.scoring import sample_seeds
from genkit.pictures import save_pngs, save_samples_picture
from genkit.training.loop import Trainer


@handles_user_errors
def train(
    method: Annotated[Optional[str], typer.Option(help="Training method, e.g. ict, ct, cd, edm.")] = None,
    preset: Annotated[Optional[str], typer.Option(help="A registered preset's name or a TOML file (default: the plugins' default preset).")] = None,
    steps: Annotated[Optional[int], typer.Option(help="Training steps (overrides train.steps; with --resume, extends the run).")] = None,
    out: Annotated[Optional[Path], typer.Option(help="Run folder (default: runs/METHOD-PRESET, numbered if taken).")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run in --out from its last checkpoint.")] = False,
    config_file: Annotated[Optional[Path], typer.Option("--config", help="A TOML file layered over the preset.")] = None,
    assignments: Annotated[list[str], typer.Option("--set", help="Override a key: --set train.lr=3e-4 (repeatable); with --resume, only keys that leave the trained function alone (train.log_every, train.checkpoint_every, train.eval_every, sample.*, ...).")] = [],
    seed: Annotated[Optional[int], typer.Option(help="Random seed (overrides seed).")] = None,
    device: Annotated[Optional[str], typer.Option(help="auto, cpu, cuda or cuda:N (overrides train.device).")] = None,
    teacher: Annotated[Optional[Path], typer.Option(help="Run folder of the teacher, for methods that take one (cd: an edm run).")] = None,
) -> None:
    """Train a model; Ctrl-C saves a checkpoint that --resume continues exactly."""
    registries = plugins.registries()
    if resume:
        if out is None:
            raise GenkitError("--resume needs --out RUN_FOLDER")
        if method or config_file or teacher or seed is not None:
            raise GenkitError(
                "--resume continues a run with its saved config; drop the other options (--steps N extends it, "
                "--set KEY=V changes a key that leaves the trained function alone: logging, checkpoints, evaluation, sampling, device)"
            )
        changes = [(configuration.parse_assignment(text), f"--set {text}") for text in assignments]
        if device is not None:
            changes.append((configuration.nest("train.device", device), "--device"))
        run, config = resumable_run(out, registries, steps, changes)
    else:
        flags = {"method": method, "train.steps": steps, "seed": seed, "train.device": device}
        preset = preset or configuration.default_preset(registries)
        layers = configuration.config_layers(registries, preset, config_file, assignments, flags)
        config, run = new_run(layers, registries, out, teacher, Path(preset).stem)
    out = run.path
    trainer = Trainer(config, run, registries, resume=resume)
    say = console.print if trainer.dist.is_main else (lambda *args: None)
    say(f"[bold]{config.method}[/] on {config.data.name}, {config.train.steps} steps, run folder [cyan]{out}[/]")
    trainer.train()
    say(f"done: step {trainer.step}, {trainer.elapsed:.1f} s of training. Sample with: [bold]genkit sample {out}[/]")


@handles_user_errors
def sample(
    run: Annotated[Path, typer.Argument(help="A run folder written by genkit train, or a file written by genkit export.")],
    steps: Annotated[Optional[int], typer.Option(help="Sampling steps (consistency: 1, 2, ...; EDM: Heun levels).")] = None,
    num: Annotated[Optional[int], typer.Option(help="Number of samples (default: sample.num of the run).")] = None,
    seed: Annotated[int, typer.Option(help="Sample k uses its own seed, seed * 2**32 + k.")] = 0,
    out: Annotated[Optional[Path], typer.Option(help="Output .npz (default: RUN/samples/STEPSstep-seedSEED.npz; for an export FILE, STEM-samples/ beside it).")] = None,
    grid: Annotated[bool, typer.Option(help="Write a picture beside the .npz: an image grid, or a scatter plot of points.")] = True,
    png_dir: Annotated[Optional[Path], typer.Option(help="Also write one PNG per image, named by its seed (what FID tools read).")] = None,
    batch_size: Annotated[Optional[int], typer.Option(help="Samples per network call (default: sample.batch_size).")] = None,
    label: Annotated[Optional[int], typer.Option(help="Class of every sample of a class-conditional model (default: random per sample).")] = None,
    evaluate: Annotated[bool, typer.Option(help="Score the samples against fresh data, with the data-vs-data floor.")] = True,
    levels: Annotated[Optional[str], typer.Option(
        help="Intermediate levels of multistep consistency sampling, descending (1.3,0.4: --steps 3), instead of "
        "sample.multistep_sigmas; or 'search': the greedy search of Song et al. 2023 (ternary on ln sigma), cached in RUN/levels.json.")] = None,
    metric: Annotated[Optional[str], typer.Option(help="With --levels search: the evaluator to minimise (default: the run's first).")] = None,
    search_samples: Annotated[int, typer.Option(help="With --levels search: samples per score, against as many held-out data points.")] = DEFAULT_SEARCH_SAMPLES,
    search_iterations: Annotated[int, typer.Option(help="With --levels search: ternary-search iterations per level (2 scores each).")] = DEFAULT_ITERATIONS,
    search_ratio: Annotated[float, typer.Option(help="With --levels search: each level at most this times the one before, so every step lowers the level meaningfully.")] = DEFAULT_RATIO,
    ema: Annotated[Optional[float], typer.Option(help="Which evaluation EMA: a rate of train.ema_rates (default: the first).")] = None,
) -> None:
    """Draw samples from a run's EMA weights (or an export's); write .npz, a picture and the scores."""
    model = load(run, ema=ema)
    method, dataset = model.trained.built.method, model.trained.built.dataset
    num = model.config.sample.num if num is None else num
    chosen = _levels(model, steps, levels, metric, search_samples, search_iterations, search_ratio)
    steps, chosen = model.resolve_levels(steps, chosen)
    steps = method.default_sampling_steps() if steps is None else steps
    samples = model.sample(num, steps, seed, batch_size, progress=True, label=label, levels=chosen)
    named = f"-levels{'-'.join(f'{t:.4g}' for t in chosen)}" if chosen else ""
    named += "" if model.default_ema else f"-ema{model.ema_rate!r}"  # each EMA its own file
    out = out or model.beside("samples") / f"{steps}step{named}-seed{seed}.npz"
    out.parent.mkdir(parents=True, exist_ok=True)
    extra = {"levels": np.array(chosen)} if chosen else {}
    out = out if out.name.endswith(".npz") else out.with_name(out.name + ".npz")  # as np.savez names it
    arrays = dict(samples=samples.numpy(), steps=steps, seed=seed, evaluations=method.sampling_evaluations(steps), **extra)
    files.write_atomic(out, lambda file: np.savez(file, **arrays))
    wrote = [f"{num} samples to [cyan]{out}[/]"]
    reference = _reference(model, dataset, num)
    if grid:
        at = f" at {', '.join(f'{t:.4g}' for t in chosen)}" if chosen else ""
        title = f"{model.config.method}, {steps} step(s){at}, step {model.step}" + ("" if model.default_ema else f", EMA {model.ema_rate!r}")
        picture = save_samples_picture(
            samples[: model.config.sample.grid_size] if samples.ndim == 4 else samples, out.with_suffix(".png"), title,
            reference=reference if samples.ndim == 2 else None,
        )
        wrote.append(f"a picture to [cyan]{picture}[/]")
    if png_dir is not None:
        save_pngs(samples, png_dir, sample_seeds(seed, num))
        wrote.append(f"{num} PNGs to [cyan]{png_dir}[/]")
    console.print("wrote " + ", ".join(wrote))
    if evaluate and reference is not None:
        _print_scores(samples, reference, model.trained.built, num)


def _reference(model, dataset, num: int):
    """Held-out data to draw beside points and score against; an export whose dataset files are
    missing still samples: it is then neither drawn beside nor scored, and says why."""
    try:
        return reference_data(dataset, num)
    except GenkitError as error:
        if not model.exported:
            raise
        console.print(f"not scored: {error}", highlight=False)
        return None


def _levels(model, steps, text, metric, search_samples, search_iterations, search_ratio=DEFAULT_RATIO) -> list[float] | None:
    """--levels as numbers, or chosen by the greedy search (printed level by level)."""
    parsed = parse_levels(text) if text is not None else None
    if metric is not None and parsed != "search":
        raise GenkitError("--metric chooses what --levels search minimises; add --levels search")
    if parsed != "search":
        return parsed
    chosen_metric, _ = check_search(model, steps, metric, search_samples, search_iterations)

    def found(index: int, tau: float, value) -> None:
        console.print(f"  level {index}: {tau:.6g}  ({index + 1} steps: {chosen_metric} {_number(value)})", highlight=False)

    console.print(
        f"levels for {steps}-step sampling: greedy ternary search on ln(sigma), {search_iterations} iterations per level, "
        f"{chosen_metric} of {search_samples} samples vs as many held-out data points", highlight=False,
    )
    result = search_levels(model, steps, chosen_metric, search_samples, search_iterations, on_level=found, ratio=search_ratio)
    if result.reused:
        console.print(
            f"  ({'all' if result.cached else f'the first {result.reused} of'} these read from [cyan]{model.beside(LEVELS_FILE)}[/]: "
            f"the same search at checkpoint step {model.step})", highlight=False,
        )
    console.print(f"  1 step: {result.metric} {_number(result.one_step)}; levels {','.join(f'{t:.6g}' for t in result.levels)}", highlight=False)
    if result.no_gain():
        k = result.no_gain()[0]
        console.print(f"  note: {k} steps score no better than {k - 1} on {result.metric}: {k - 1} step(s) suffice for this model", highlight=False)
    return list(result.levels)


def _number(value) -> str:
    return "not finite" if value is None or value != value or value in (float("inf"), float("-inf")) else f"{value:.4g}"


def _print_scores(samples, reference, built, num) -> None:
    evaluators = build_evaluators(built)
    if not evaluators:
        return
    if num < 2:
        console.print("scores need at least 2 samples; not scored")
        return
    scores = score_against_data(samples, built.dataset, evaluators, reference=reference, floor=True)
    table = Table(title=f"{num} samples vs {num} held-out data points")
    for column in ("metric", "samples vs data", "data vs data (floor)", "ratio"):
        table.add_column(column)
    for name in evaluators:
        value, floor = scores[name], scores[f"{name}/floor"]
        ratio = f"{value / floor:.2f}x" if floor > 0 else "-"
        table.add_row(name, f"{value:.4f}", f"{floor:.4f}", ratio)
    console.print(table)


def register(app: typer.Typer) -> None:
    app.command("train")(train)
    app.command("sample")(sample)
