"""``genkit edit RUN --task inpaint|colorize|superres|stroke|interpolate|denoise ...``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from genkit import config as configuration
from genkit.cli import console, handles_user_errors
from genkit.errors import GenkitError


def _levels(text: str | None) -> list[float] | None:
    if text is None:
        return None
    try:
        return [float(part) for part in text.replace(" ", "").split(",") if part]
    except ValueError:
        raise GenkitError(f"--levels expects numbers separated by commas, got '{text}'") from None


def _options(assignments: list[str]) -> dict:
    """--set key=value (the value read as TOML, as genkit train's --set) -> the task's options."""
    options: dict = {}
    for text in assignments:
        nested = configuration.parse_assignment(text)
        key = next(iter(nested))
        if isinstance(nested[key], dict):
            raise GenkitError(f"--set {text}: the task's options are plain keys (--set sigma_start=5)")
        options.update(nested)
    return options


@handles_user_errors
def edit_command(
    run: Annotated[Path, typer.Argument(help="A run folder written by genkit train.")],
    task: Annotated[str, typer.Option("--task", help="inpaint, colorize, superres, stroke, interpolate, denoise (or a plugin's).")],
    inputs: Annotated[list[Path], typer.Option("--input", help="An image file or a folder of them (repeatable).")] = [],
    inputs2: Annotated[list[Path], typer.Option("--input2", help="interpolate: the other ends, paired in order with --input.")] = [],
    mask: Annotated[Optional[Path], typer.Option("--mask", help="inpaint: a mask image, white = to fill, the images' size.")] = None,
    mask_name: Annotated[Optional[str], typer.Option("--mask-name", help="inpaint: left-half, centre-box or strokes (random, --set mask_seed=S).")] = None,
    steps: Annotated[Optional[int], typer.Option(help="Sampler steps (default 1, or one more than --levels).")] = None,
    levels: Annotated[Optional[str], typer.Option(help="Levels after the first, descending: 0.821,0.3 (default: the run's sample.multistep_sigmas).")] = None,
    out: Annotated[Optional[Path], typer.Option(help="Output folder (default: RUN/edits/TASK-seedS).")] = None,
    seed: Annotated[int, typer.Option(help="Noise seed: image k uses seed * 2**32 + k, as genkit sample.")] = 0,
    label: Annotated[Optional[int], typer.Option(help="Class of a class-conditional model (default: random per image).")] = None,
    convert: Annotated[bool, typer.Option("--convert", help="Convert colour inputs for a grayscale model, and the reverse.")] = False,
    resize: Annotated[bool, typer.Option("--resize", help="Resize inputs (and the mask) of another size to the model's.")] = False,
    batch_size: Annotated[Optional[int], typer.Option(help="Images per network call (default: sample.batch_size).")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
    assignments: Annotated[list[str], typer.Option("--set", help="A task option: --set factor=2, --set sigma_start=5 (repeatable).")] = [],
) -> None:
    """Zero-shot editing with a run's EMA weights (Song et al. 2023, Algorithm 4).

    Writes each edited image, a side-by-side picture per input (input, what the sampler knew,
    result) and a grid."""
    import genkit
    from genkit_edit.api import edit

    options = _options(assignments)
    if mask_name is not None:
        if "mask_name" in options:
            raise GenkitError("--mask-name and --set mask_name=... both name the mask; give one")
        options["mask_name"] = mask_name
    if mask is not None and mask_name is not None:
        raise GenkitError("--mask (an image) and --mask-name (a named mask) exclude each other; give one")
    if batch_size is not None and batch_size < 1:
        raise GenkitError(f"--batch-size must be positive, got {batch_size}")
    model = genkit.load(run, device)
    result = edit(
        model, task, list(inputs) or None, list(inputs2) or None, mask=mask, steps=steps, levels=_levels(levels),
        seed=seed, label=label, batch_size=batch_size, convert=convert, resize=resize, **options,
    )
    out = out or Path(run) / "edits" / f"{result.task}-seed{seed}"
    result.save(out)
    count = len(result.names)
    what = f"{count} interpolation{'s' if count != 1 else ''} of {result.results.shape[1]} frames" if result.results.ndim == 5 else f"{count} edited image{'s' if count != 1 else ''}"
    levels_text = ", ".join(f"{s:g}" for s in result.sigmas)
    console.print(
        f"{result.task}: {what} at noise levels {levels_text}; wrote them, {count} side-by-side picture{'s' if count != 1 else ''} "
        f"([cyan]{out / 'side-by-side'}[/]) and [cyan]{out / 'grid.png'}[/]",
        highlight=False,
    )
