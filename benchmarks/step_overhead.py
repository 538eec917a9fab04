"""What genkit's training step costs beyond the network work it needs.

    python benchmarks/step_overhead.py [--methods ict edm ct cd] [--nets toy unet] [--threads 2]

For each method and network, times genkit's step (``Trainer.train_step``: data, draws, loss,
backward, optimizer, EMA, logs) against the same network work written flat on the same model,
optimizer and tensors, in the same process, interleaved round by round so drift of the machine
hits both alike. Flat work per step: the passes the method needs (iCT: the target pass without
gradient and the student pass with it; CT: the same through its EMA target, plus the target's
EMA update; CD: the teacher's Heun step too; EDM: one pass), the loss formula, backward, the
optimizer step and the evaluation EMA's update. Prints the median of the per-round ratios.
Measure on a quiet machine: other processes on the same cores make both sides noisy.
"""

from __future__ import annotations

import argparse
import math
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from genkit import config as configuration
from genkit import plugins
from genkit.training.loop import Trainer
from genkit.training.run import RunFolder

NETWORKS = {
    # the toy2d preset as it is (MLP, batch 512)
    "toy": ("toy2d", []),
    # a small NCSN++ at 32x32 RGB on random images, batch 32
    "unet": ("fmnist", [
        "network.name=ncsnpp", "network.channels=32", "network.channel_multipliers=[1, 2, 2]",
        "network.blocks_per_resolution=1", "network.attention_resolutions=[16]", "train.batch_size=32",
        "methods.cd.loss=pseudo-huber", "methods.ct.loss=pseudo-huber",
    ]),
}


def random_images(folder: Path, count: int = 512, size: int = 32) -> Path:
    """An npz of ``count`` random RGB images of size x size in ``folder`` (speed does not depend on the pixels)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "images.npz"
    np.savez(path, images=np.random.default_rng(0).integers(0, 256, (count, size, size, 3), dtype=np.uint8))
    return path


def make_trainer(net: str, method: str, folder: Path, teacher: Path | None, extra: list[str] = ()) -> Trainer:
    registries = plugins.registries()
    preset, sets = NETWORKS[net]
    sets = list(sets) + list(extra) + ["train.device='cpu'", "train.log_every=1000000", "train.checkpoint_every=1000000"]
    if net == "unet":
        sets += ["data.name=npz", f"data.path={random_images(folder)}", "data.labels=false"]
    if teacher is not None:
        sets.append(f"methods.cd.teacher.run={teacher}")
    config = configuration.load_config(registries, preset, assignments=sets, flags={"method": method, "train.steps": 10**6})
    return Trainer(config, RunFolder(folder / method), registries)


def flat_step(trainer: Trainer, x: torch.Tensor, sigma_hi: torch.Tensor, sigma_lo: torch.Tensor, z: torch.Tensor):
    """One step of bare network work for the trainer's method on fixed tensors."""
    method, model, optimizer = trainer.method, trainer.method.model, trainer.optimizer
    name, target = trainer.config.method, getattr(trainer.method, "target", None)
    column = (-1,) + (1,) * (x.dim() - 1)
    x_hi = x + sigma_hi.view(column) * z
    if name == "edm":
        weight = (sigma_hi**2 + 0.25) / (sigma_hi * 0.5) ** 2
        loss = (weight * (model(x_hi, sigma_hi) - x).flatten(1).pow(2).sum(1)).mean()
    else:
        with torch.no_grad():
            if name == "cd":
                x_lo = method.teacher.target_point(x, z, x_hi, sigma_hi, sigma_lo)
            else:
                x_lo = x + sigma_lo.view(column) * z
            goal = (model if target is None else target)(x_lo, sigma_lo)
        difference = (model(x_hi, sigma_hi) - goal).flatten(1)
        c = 0.00054 * math.sqrt(difference.shape[1])
        distance = (difference.pow(2).sum(1) + c * c).sqrt() - c
        loss = (distance / (sigma_hi - sigma_lo)).mean()
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    with torch.no_grad():
        online, averages = flat_tensors(trainer)
        if target is not None:
            torch._foreach_lerp_(averages["target"], online, 0.1)
        torch._foreach_lerp_(averages["ema"], online, 1 - trainer.ema.rate)


_TENSORS: dict[int, tuple] = {}


def flat_tensors(trainer: Trainer) -> tuple[list, dict[str, list]]:
    """The parameter lists the flat EMA updates use, listed once per trainer (as genkit's EMA
    does), so walking the modules is not charged to the flat side."""
    if id(trainer) not in _TENSORS:
        target = getattr(trainer.method, "target", None)
        averages = {"ema": list(trainer.ema.model.parameters())}
        if target is not None:
            averages["target"] = list(target.parameters())
        _TENSORS[id(trainer)] = (list(trainer.method.model.parameters()), averages)
    return _TENSORS[id(trainer)]


def timed(function, repeats: int) -> float:
    started = time.perf_counter()
    for _ in range(repeats):
        function()
    return (time.perf_counter() - started) / repeats


def measure(trainer: Trainer, rounds: int, repeats: int) -> tuple[float, float, float]:
    batch, _ = trainer.batches.next()
    x = batch.to(trainer.device)
    n = len(x)
    sigmas = torch.tensor([0.5, 0.6]).repeat_interleave(n // 2 + 1)[:n]
    sigma_lo, sigma_hi, z = sigmas, sigmas * 1.2, torch.randn_like(x)
    for _ in range(2):  # warm-up: allocator, first-call paths
        trainer.train_step()
        flat_step(trainer, x, sigma_hi, sigma_lo, z)
    genkit_times, flat_times = [], []
    for _ in range(rounds):
        genkit_times.append(timed(trainer.train_step, repeats))
        flat_times.append(timed(lambda: flat_step(trainer, x, sigma_hi, sigma_lo, z), repeats))
    ratios = [g / f for g, f in zip(genkit_times, flat_times)]
    return statistics.median(genkit_times), statistics.median(flat_times), statistics.median(ratios)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", nargs="+", default=["ict", "edm", "ct", "cd"])
    parser.add_argument("--nets", nargs="+", default=list(NETWORKS), choices=list(NETWORKS))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--set", dest="assignments", action="append", default=[], help="config overrides, as genkit train --set")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s); median over {args.rounds} interleaved rounds")
    print(f"{'net':>5} {'method':>6} {'genkit ms':>10} {'flat ms':>9} {'ratio':>6}")
    for net in args.nets:
        repeats = 20 if net == "toy" else 2
        with tempfile.TemporaryDirectory() as tmp:
            folder, teacher = Path(tmp), None
            for method in args.methods:
                if method == "cd" and teacher is None:  # CD needs an EDM run to distil
                    edm = make_trainer(net, "edm", folder / "teacher", None, args.assignments)
                    edm.train(until=1)
                    teacher = folder / "teacher" / "edm"
                trainer = make_trainer(net, method, folder, teacher if method == "cd" else None, args.assignments)
                torch.set_num_threads(args.threads)  # over the preset's train.threads
                genkit_s, flat_s, ratio = measure(trainer, args.rounds, repeats)
                trainer.close()
                print(f"{net:>5} {method:>6} {genkit_s * 1e3:>10.2f} {flat_s * 1e3:>9.2f} {ratio:>6.3f}", flush=True)


if __name__ == "__main__":
    main()
