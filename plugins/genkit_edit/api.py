"""Editing from Python: ``genkit_edit.edit(genkit.load(run), "inpaint", images)``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch

from genkit.config import SEED_LIMIT
from genkit.errors import GenkitError
from genkit.evaluation.scoring import sample_seeds
from genkit.maths import PerSampleNoise, conditioned
from genkit.maths.levels import Levels
from genkit_edit.maths import edit_sample, interpolate_sample, interpolation_times
from genkit.schema import Component, Parser, to_plain

from genkit_edit import io


@dataclass
class EditResult:
    """What :func:`edit` gives back, on the CPU, images in [-1, 1].

    ``inputs``: the references at the model's resolution, (N, C, H, W); for ``interpolate`` the
    two ends of each pair, (P, 2, C, H, W), or None with seeds. ``degraded``: what the sampler
    knew of each input, A^{-1}[(A y) (1 - Omega)] (the input itself when nothing is put back;
    None for interpolate). ``results``: (N, C, H, W), or (P, frames, C, H, W) for interpolate.
    ``seeds``: the per-sample seeds (sample k of seed S uses S * 2**32 + k, as `genkit sample`).
    """

    task: str
    names: list[str]
    inputs: torch.Tensor | None
    degraded: torch.Tensor | None
    results: torch.Tensor
    sigmas: list[float]
    seeds: Sequence[int]

    def save(self, out: str | Path) -> list[Path]:
        """Edited PNGs, one side-by-side picture per input and a grid, in the folder ``out``."""
        return io.save_edits(self, out)


def build_task(registries, task: Any, ctx, options: dict[str, Any] | None = None) -> tuple[str, Any]:
    """(name, task object) from a registered name, a Component or a built task (kept as is);
    ``options`` are checked against the task's Config (unknown keys, types, ranges)."""
    options = dict(options or {})
    if isinstance(task, Component):
        options = {**(to_plain(task.options) or {}), **options}
        task = task.name
    if not isinstance(task, str):
        if options:
            raise GenkitError("options go with a task name, not with a task already built")
        return type(task).__name__, task
    factory = registries.edit_tasks.get(task)  # unknown: one line with the closest name
    return task, factory(Parser(registries).options(factory, options, task), ctx)


def noise_levels(first: float, steps: int | None, levels: Sequence[float] | None, run_levels: Sequence[float], noise) -> list[float]:
    """t_1 = ``first``, then the ``steps - 1`` levels after it: ``levels`` if given, else the
    run's ``sample.multistep_sigmas``."""
    pool = list(run_levels if levels is None else levels)
    steps = steps if steps is not None else (len(pool) + 1 if levels is not None else 1)
    if steps < 1:
        raise GenkitError(f"--steps must be at least 1, got {steps}")
    if steps - 1 > len(pool):
        source = "--levels gives" if levels is not None else "the run's sample.multistep_sigmas gives"
        raise GenkitError(f"{steps} steps need {steps - 1} levels after the first; {source} {len(pool)}: {pool} (pass --levels a,b,...)")
    what = "the levels after the first" if levels is not None else "the run's sample.multistep_sigmas (pass --levels)"
    after = Levels.check(pool[: steps - 1], noise.sigma_min, float(first), what, bounds="noise.sigma_min and the start level")
    return [float(first), *after]


def _images(images, task, shape, convert: bool, resize: bool, names=None, which: str = "images") -> tuple[torch.Tensor, list[str]]:
    """Inputs as (N, C, R, R) at the model's resolution: tensors are checked, paths are read."""
    channels, resolution = shape[0], shape[-1]
    sizes = task.input_sizes(resolution)
    if isinstance(images, torch.Tensor):
        tensor = images[None] if images.ndim == 3 else images
        if tensor.ndim != 4:
            raise GenkitError(f"{which} must be (N, C, H, W), got shape {tuple(images.shape)}")
        if tensor.shape[1] != channels:
            gray_ok = tensor.shape[1] == 1 and channels == 3 and (task.accepts_gray or convert)
            if tensor.shape[1] == 3 and channels == 1 and convert:
                tensor = tensor.mean(1, keepdim=True)
            elif gray_ok:
                tensor = tensor.expand(-1, 3, -1, -1)
            else:
                raise GenkitError(f"{which} have {tensor.shape[1]} channels but the model draws {channels}-channel images")
        side = tensor.shape[-1]
        if tensor.shape[-2] != side or side not in sizes:
            if not resize:
                raise GenkitError(
                    f"{which} are {tensor.shape[-2]}x{side} but the model's images are {' or '.join(f'{s}x{s}' for s in sizes)}; resize them first"
                )
            tensor = torch.nn.functional.interpolate(tensor.float(), size=(resolution, resolution), mode="bicubic", align_corners=False)
        names = list(names) if names is not None else [f"{k:04d}" for k in range(len(tensor))]
    else:
        tensor, names = io.read_images(images, channels, sizes, resize, convert, task.accepts_gray)
    return task.prepare(tensor.float()), names


def _labels(noise: PerSampleNoise, label: int | None, label_dim: int, device) -> torch.Tensor | None:
    """As `genkit sample` draws them: each sample's own class from its seed, before its noise."""
    if not label_dim:
        return None
    return noise.randint(label_dim) if label is None else torch.full((len(noise),), label, device=device)


@torch.no_grad()
def edit(
    model,
    task: Any,
    images: Any = None,
    images2: Any = None,
    *,
    mask: Any = None,
    steps: int | None = None,
    levels: Sequence[float] | None = None,
    seed: int = 0,
    label: int | None = None,
    batch_size: int | None = None,
    convert: bool = False,
    resize: bool = False,
    names: Sequence[str] | None = None,
    **options: Any,
) -> EditResult:
    """Zero-shot editing with a loaded run (``genkit.load(run)``), Song et al. (2023) Algorithm 4.

    ``task``: a registered editing task (inpaint, colorize, superres, stroke, interpolate,
    denoise, or a plugin's), with its options as keyword arguments (``mask_name="left-half"``,
    ``factor=2``, ``sigma_start=5.0``). ``images``: a tensor (N, C, H, W) in [-1, 1], an image
    file, a folder, or a list of them; ``images2``: the second ends for interpolate. ``mask``:
    for inpaint, a mask image or a tensor (H, W) or (N, H, W), True (white) = to fill.
    ``steps``: sampler steps; the levels after the first are ``levels`` or the run's
    ``sample.multistep_sigmas``. Each image k draws its noise from seed * 2**32 + k, so results do
    not depend on ``batch_size``.
    """
    built = model.trained.built
    ctx, config = built.ctx, built.config
    shape = tuple(ctx.data_shape)
    if len(shape) != 3:
        raise GenkitError(f"editing works on image runs; {model.path}'s samples have shape {shape}")
    if not 0 <= seed < SEED_LIMIT:
        raise GenkitError(f"the seed must be in [0, 2**32), got {seed}")
    label_dim = int(ctx.label_dim)
    if label is not None and not label_dim:
        raise GenkitError("a label needs a class-conditional model; this run's network takes none")
    if label is not None and not 0 <= label < label_dim:
        raise GenkitError(f"label {label} is not a class of this run's model (0 to {label_dim - 1})")
    name, edit_task = build_task(ctx.registries, task, ctx, options)
    edit_task.check(shape)
    network = model.network
    device = next(network.parameters()).device
    batch_size = batch_size or config.sample.batch_size
    if mask is not None and not edit_task.uses_mask:
        raise GenkitError(f"a mask is for inpainting; task '{name}' takes none")
    first = edit_task.first_level(config.noise)

    if edit_task.interpolates:
        if (steps not in (None, 1)) or levels:
            raise GenkitError(f"{name} takes one consistency step at each point of the path; drop --steps and --levels")
        return _interpolate(model, name, edit_task, images, images2, shape, first, seed, label, label_dim, batch_size, convert, resize, device)
    if images is None or images2 is not None:
        raise GenkitError(f"{name} edits one set of input images (--input)" + (", not two" if images2 is not None else ""))
    sigmas = noise_levels(first, steps, levels, config.sample.multistep_sigmas, config.noise)
    inputs, names = _images(images, edit_task, shape, convert, resize, names)
    if mask is not None:
        mask = io.read_mask(mask, shape[-1], resize) if isinstance(mask, (str, Path)) else io.check_mask(mask, len(inputs), shape[-1])
    seeds = sample_seeds(seed, len(inputs))
    degraded, results = [], []
    for start in range(0, len(inputs), batch_size):
        noise = PerSampleNoise(seeds[start : start + batch_size], device)
        labels = _labels(noise, label, label_dim, device)
        y = edit_task.degrade(inputs[start : start + batch_size].to(device), noise)
        batch_mask = mask[start : start + batch_size] if mask is not None and mask.ndim == 3 else mask
        replacement = edit_task.replacement(y, batch_mask)
        x = edit_sample(
            conditioned(network, labels), y, replacement, sigmas, noise, config.noise.sigma_min, ctx.clamp, edit_task.noisy_start
        )
        degraded.append(replacement.known_part(y).cpu())
        results.append(x.cpu())
    result = EditResult(name, list(names), inputs, torch.cat(degraded), torch.cat(results), sigmas, seeds)
    _check_finite(result.results, model)
    return result


def _interpolate(model, name, task, images, images2, shape, sigma, seed, label, label_dim, batch_size, convert, resize, device) -> EditResult:
    network, clamp = model.network, model.trained.built.ctx.clamp
    if (images is None) != (images2 is None):
        raise GenkitError(f"{name} joins two sets of inputs (--input and --input2), or two seeds when neither is given")
    ends = None
    if images is not None:
        first, names0 = _images(images, task, shape, convert, resize, which="images")
        second, names1 = _images(images2, task, shape, convert, resize, which="images2")
        if len(first) != len(second):
            raise GenkitError(f"{name} pairs the inputs in order: --input has {len(first)} images, --input2 {len(second)}")
        ends = torch.stack([first, second], dim=1)
        names = io.unique_names([f"{a}-{b}" for a, b in zip(names0, names1)])
    else:
        names = [f"pair{k}" for k in range(task.options.pairs)]
    pairs = len(names)
    seeds = sample_seeds(seed, 2 * pairs)  # pair k: samples 2k and 2k + 1 of the seed
    times = interpolation_times(task.options.frames)
    chunks = []
    step = max(1, batch_size // 2)
    for start in range(0, pairs, step):
        stop = min(pairs, start + step)
        noise = PerSampleNoise(seeds[2 * start : 2 * stop], device)
        labels = _labels(noise, label, label_dim, device)
        z = noise.randn(*shape)
        y0 = y1 = None
        if ends is not None:
            y0, y1 = ends[start:stop, 0].to(device), ends[start:stop, 1].to(device)
        frame_labels = None if labels is None else (lambda t, l0=labels[0::2], l1=labels[1::2]: l0 if t < 0.5 else l1)
        chunks.append(interpolate_sample(network, z[0::2], z[1::2], times, sigma, clamp, y0, y1, frame_labels).cpu())
    result = EditResult(name, names, ends, None, torch.cat(chunks), [sigma], seeds)
    _check_finite(result.results, model)
    return result


def _check_finite(results: torch.Tensor, model) -> None:
    bad = int((~torch.isfinite(results.flatten(1))).any(dim=1).sum())
    if bad:
        raise GenkitError(f"{bad} edited images are NaN or infinite: the weights of {model.path} have diverged; nothing written")
