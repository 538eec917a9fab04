"""Samples per second of a consistency model at 1 and 2 steps against the EDM teacher's Heun
sampler, on the same network and batch, in one process.

    python benchmarks/sampling_throughput.py [--net unet|toy] [--batch 64] [--heun-levels 18] [--device cpu]

Both samplers run the same freshly initialised network (speed does not depend on the weights)
through genkit's own sampling path (``draw_samples``: per-sample seeds, preconditioning,
clamping), interleaved round by round. Heun on N Karras levels costs 2N - 1 network
evaluations (35 for N = 18, the CIFAR-10 setting), so the ideal ratio is 35 at 1 step.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from genkit import config as configuration
from genkit import plugins
from genkit.build import build
from genkit.evaluation import draw_samples
from step_overhead import random_images

NETWORKS = {
    "toy": ("toy2d", []),
    "unet": ("fmnist", ["network.name=ncsnpp", "network.channels=32", "network.channel_multipliers=[1, 2, 2]",
                        "network.blocks_per_resolution=1", "network.attention_resolutions=[16]"]),
}


def built_method(net: str, method: str, device: str, heun_levels: int):
    registries = plugins.registries()
    preset, sets = NETWORKS[net]
    sets = list(sets) + [f"sample.heun_levels={heun_levels}"]
    if net == "unet":  # random 32x32 RGB images: they only set the network's shape
        sets += ["data.name=npz", f"data.path={random_images(Path(tempfile.mkdtemp()))}", "data.labels=false"]
    config = configuration.load_config(registries, preset, assignments=sets, flags={"method": method})
    torch.manual_seed(0)
    built = build(config, registries, torch.device(device))
    return built.method


def throughput(method, model, num: int, steps: int | None, batch: int) -> float:
    started = time.perf_counter()
    draw_samples(method, model, num, steps, batch_size=batch)
    if next(model.parameters()).is_cuda:
        torch.cuda.synchronize()
    return num / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--net", default="unet", choices=list(NETWORKS))
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--heun-levels", type=int, default=18)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    consistency = built_method(args.net, "ict", args.device, args.heun_levels)
    teacher = built_method(args.net, "edm", args.device, args.heun_levels)
    teacher.model.net.load_state_dict(consistency.model.net.state_dict())  # the same network weights
    settings = {"1 step": (consistency, 1), "2 steps": (consistency, 2),
                f"Heun ({teacher.sampling_evaluations(None)} NFE)": (teacher, None)}
    rates: dict[str, list[float]] = {name: [] for name in settings}
    for name, (method, steps) in settings.items():  # warm-up
        throughput(method, method.model, args.batch, steps, args.batch)
    for _ in range(args.rounds):
        for name, (method, steps) in settings.items():
            num = args.batch * (1 if name.startswith("Heun") else 8)  # similar time per setting
            rates[name].append(throughput(method, method.model, num, steps, args.batch))
    heun = statistics.median(rates[list(settings)[-1]])
    print(f"{args.net} network, batch {args.batch}, {args.device}, {torch.get_num_threads()} thread(s)")
    for name, values in rates.items():
        rate = statistics.median(values)
        print(f"{name:>16}: {rate:9.1f} samples/s   {rate / heun:6.1f}x Heun")


if __name__ == "__main__":
    main()
