"""Samples per second of a consistency model at 1 and 2 steps against the EDM teacher's Heun
sampler, on the same network and batch, in one process; and what drawing the per-sample noise
costs, genkit's generator against the one it replaced.

    python benchmarks/sampling_throughput.py [--net unet|toy] [--batch 64] [--heun-levels 18] [--device cpu] [--threads N] [--json FILE]

Both samplers run the same freshly initialised network (speed does not depend on the weights)
through genkit's own sampling path (``draw_samples``: per-sample seeds, preconditioning,
clamping), interleaved round by round. Heun on N Karras levels costs 2N - 1 network
evaluations (35 for N = 18, the CIFAR-10 setting), so the ideal ratio is 35 at 1 step.

"old noise" rows repeat a setting with the per-sample noise genkit drew before (a CPU
torch.Generator per sample, copied to the device: ``GeneratorNoise`` below), so the gain shows
side by side; "noise draw" times one batch's draw of the starting noise alone, both ways.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch

from genkit import config as configuration
from genkit import plugins
from genkit.build import build
from genkit.evaluation import draw_samples
from genkit.evaluation import scoring
from genkit.maths import PerSampleNoise
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


class GeneratorNoise:
    """The per-sample noise genkit used before Philox: a CPU generator per sample, one draw per
    sample per call, stacked and copied to the device (the baseline of the "old noise" rows)."""

    def __init__(self, seeds, device="cpu"):
        self.generators = [torch.Generator().manual_seed(int(seed)) for seed in seeds]
        self.device = torch.device(device)

    def randn(self, *shape: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        return torch.stack([torch.randn(shape, generator=g, dtype=dtype) for g in self.generators]).to(self.device)

    def randint(self, high: int) -> torch.Tensor:
        return torch.stack([torch.randint(high, (), generator=g) for g in self.generators]).to(self.device)

    def __len__(self) -> int:
        return len(self.generators)


def synchronize(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def throughput(method, model, num: int, steps: int | None, batch: int, noise=PerSampleNoise) -> float:
    scoring.PerSampleNoise = noise  # draw_samples's noise source
    try:
        started = time.perf_counter()
        draw_samples(method, model, num, steps, batch_size=batch)
        synchronize(next(model.parameters()).device)
        return num / (time.perf_counter() - started)
    finally:
        scoring.PerSampleNoise = PerSampleNoise


def draw_time(noise, batch: int, shape, device: str, repeats: int = 5) -> float:
    """Seconds for one batch's draw of noise of ``shape`` per sample (median of ``repeats``)."""
    times = []
    for _ in range(repeats):
        synchronize(device)
        started = time.perf_counter()
        noise(range(batch), device).randn(*shape)
        synchronize(device)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--net", default="unet", choices=list(NETWORKS))
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--heun-levels", type=int, default=18)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, help="CPU threads torch uses (default: torch's)")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    consistency = built_method(args.net, "ict", args.device, args.heun_levels)
    teacher = built_method(args.net, "edm", args.device, args.heun_levels)
    teacher.model.net.load_state_dict(consistency.model.net.state_dict())  # the same network weights
    heun_name = f"Heun ({teacher.sampling_evaluations(None)} NFE)"
    settings = {"1 step": (consistency, 1, PerSampleNoise), "2 steps": (consistency, 2, PerSampleNoise),
                heun_name: (teacher, None, PerSampleNoise),
                "1 step, old noise": (consistency, 1, GeneratorNoise), f"{heun_name}, old noise": (teacher, None, GeneratorNoise)}
    rates: dict[str, list[float]] = {name: [] for name in settings}
    shape = consistency.data_shape
    draws: dict[str, list[float]] = {"Philox on the device": [], "a CPU generator per sample": []}
    for name, (method, steps, noise) in settings.items():  # warm-up
        throughput(method, method.model, args.batch, steps, args.batch, noise)
    for _ in range(args.rounds):
        for name, (method, steps, noise) in settings.items():
            num = args.batch * (1 if name.startswith("Heun") else 8)  # similar time per setting
            rates[name].append(throughput(method, method.model, num, steps, args.batch, noise))
        draws["Philox on the device"].append(draw_time(PerSampleNoise, args.batch, shape, args.device))
        draws["a CPU generator per sample"].append(draw_time(GeneratorNoise, args.batch, shape, args.device))
    print(f"{args.net} network, batch {args.batch}, {args.device}, {torch.get_num_threads()} thread(s), torch {torch.__version__}")
    figures = {"net": args.net, "batch": args.batch, "device": args.device, "threads": torch.get_num_threads(),
               "rounds": args.rounds, "samples_per_s": {}, "ratio_to_heun": {}, "noise_draw_ms": {}}
    for name, values in rates.items():
        rate = statistics.median(values)
        heun = statistics.median(rates[f"{heun_name}, old noise" if name.endswith("old noise") else heun_name])
        figures["samples_per_s"][name], figures["ratio_to_heun"][name] = rate, rate / heun
        print(f"{name:>26}: {rate:10.1f} samples/s   {rate / heun:6.1f}x Heun{' (old noise)' if name.endswith('old noise') else ''}")
    for name, values in draws.items():
        figures["noise_draw_ms"][name] = 1e3 * statistics.median(values)
        print(f"noise draw, {args.batch} x {tuple(shape)}, {name}: {1e3 * statistics.median(values):8.2f} ms")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
