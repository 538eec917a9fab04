"""Pictures people would rather look at than read: scatter plots and image grids."""

from __future__ import annotations

import io
from pathlib import Path

import torch

from genkit import files
from genkit.errors import GenkitError


def save_samples_picture(samples: torch.Tensor, path: Path, title: str = "", reference: torch.Tensor | None = None) -> Path:
    """A scatter plot for 2-D points, an image grid for images."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if samples.ndim == 2 and samples.shape[1] == 2:
        _scatter(samples, path, title, reference)
    elif samples.ndim == 4:
        _grid(samples, path)
    else:
        raise ValueError(f"no picture for samples of shape {tuple(samples.shape)}")
    return path


def _scatter(samples, path, title, reference):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(4.5, 4.5), dpi=110)
    if reference is not None:
        axes.scatter(*reference.T.numpy(), s=1, c="0.75", label="data", rasterized=True)
    axes.scatter(*samples.T.numpy(), s=1, c="tab:blue", label="samples", rasterized=True)
    axes.set_aspect("equal")
    limit = 1.5 * float(reference.abs().max()) if reference is not None else None
    if limit:
        axes.set_xlim(-limit, limit)
        axes.set_ylim(-limit, limit)
    axes.set_title(title, fontsize=9)
    if reference is not None:
        axes.legend(loc="upper right", fontsize=7, markerscale=6)
    figure.tight_layout()
    save_figure(figure, path)
    plt.close(figure)


def save_figure(figure, path: Path) -> Path:
    """Rendered in memory, then written whole and never through a link planted at ``path``."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format=Path(path).suffix.lstrip(".") or "png")
    return files.write_atomic(path, buffer.getvalue())


def _grid(samples, path):
    from torchvision.utils import save_image

    columns = int(len(samples) ** 0.5) or 1
    buffer = io.BytesIO()
    save_image((samples[: columns * columns] + 1) / 2, buffer, nrow=columns, format=Path(path).suffix.lstrip(".") or "png")
    files.write_atomic(path, buffer.getvalue())


def save_pngs(samples: torch.Tensor, folder: Path, seeds) -> Path:
    """One PNG per image in [-1, 1], named by its per-sample seed (000000.png, ...), as EDM's
    generate.py names them, for FID tools that read a folder."""
    from torchvision.utils import save_image

    if samples.ndim != 4:
        raise GenkitError(f"`png_dir` writes images; these samples have shape {tuple(samples.shape[1:])}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for image, seed in zip(samples, seeds):
        buffer = io.BytesIO()
        save_image((image + 1) / 2, buffer, format="png")
        files.write_atomic(folder / f"{seed:06d}.png", buffer.getvalue())
    return folder


def stage_boundaries(records: list[dict]) -> list[int]:
    """Steps at which the discretization changed (``num_levels``, N(k), differs from the log line
    before): a consistency loss jumps there by construction, not because the model learned."""
    levels = [(r["step"], r["num_levels"]) for r in records if isinstance(r.get("num_levels"), (int, float)) and "loss" in r]
    return [step for (_, before), (step, now) in zip(levels, levels[1:]) if now != before]


def save_training_curves(records: list[dict], path: Path, title: str = "") -> Path:
    """The training loss (log scale) and each evaluation metric against the training step, one
    panel each, from metrics.jsonl records; missing (null) values are left out. Dotted lines mark
    where the curriculum changed N(k); log axes are labelled with plain numbers."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import LogLocator, ScalarFormatter

    losses = [(r["step"], r["loss"]) for r in records if isinstance(r.get("loss"), (int, float))]
    metrics = list(dict.fromkeys(name for r in records for name in r.get("eval", {})))
    panels = [("training loss", losses)] + [
        (metric, [(r["step"], r["eval"][metric]) for r in records if isinstance(r.get("eval", {}).get(metric), (int, float))])
        for metric in metrics
    ]
    panels = [(name, points) for name, points in panels if points]
    boundaries = stage_boundaries(records)
    figure, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4), dpi=110, squeeze=False)
    for axis, (name, points) in zip(axes[0], panels):
        steps, values = zip(*points)
        axis.plot(steps, values, marker="o" if len(points) < 30 else None, markersize=3)
        if min(values) > 0 and (name == "training loss" or max(values) / min(values) > 10):
            axis.set_yscale("log")  # losses (and often distances) fall by orders of magnitude
            axis.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
            axis.yaxis.set_major_formatter(ScalarFormatter())  # 0.02, not 2 x 10^-2
            axis.yaxis.set_minor_formatter(plt.NullFormatter())
        for k, step in enumerate(boundaries):
            axis.axvline(step, linestyle=":", color="grey", alpha=0.7, label="N(k) changes" if k == 0 else None)
        if boundaries:
            axis.legend(fontsize=7, loc="upper right")
        axis.set_xlabel("training step")
        axis.set_ylabel(name)
        axis.grid(alpha=0.3)
    if title:
        figure.suptitle(title, fontsize=9)
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_figure(figure, path)
    plt.close(figure)
    return path
