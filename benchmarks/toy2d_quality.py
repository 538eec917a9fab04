"""Train one method on a toy2d preset and print its sample quality beside the data floor.

    python benchmarks/toy2d_quality.py [--method ict] [--samples 5000] [--set network.fourier_scale=16.0 ...]

Prints training time and speed, then the sliced W2 and 2-D Frechet distance of 1- and 2-step
samples (EMA weights) against held-out data, next to the distance between two independent data
draws of the same size (the floor), and their ratio.
"""

from __future__ import annotations

import argparse
import tempfile
import time

from genkit import config as configuration
from genkit import plugins
from genkit.evaluation import build_evaluators, data_floor, draw_samples, reference_data, score
from genkit.training.loop import Trainer
from genkit.training.run import RunFolder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", default="ict")
    parser.add_argument("--preset", default="toy2d")
    parser.add_argument("--samples", type=int, default=5000)
    parser.add_argument("--sampling-steps", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--set", dest="assignments", action="append", default=[])
    args = parser.parse_args()

    registries = plugins.registries()
    config = configuration.load_config(registries, args.preset, assignments=args.assignments, flags={"method": args.method})
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        trainer = Trainer(config, RunFolder(folder), registries)
        trainer.train()
        wall = time.perf_counter() - started
    print(f"{args.method} on {config.data.name}: {config.train.steps} steps, batch {config.train.batch_size}")
    print(f"training time {trainer.elapsed:.1f} s ({config.train.steps / trainer.elapsed:.0f} steps/s), wall {wall:.1f} s")

    evaluators = build_evaluators(trainer.built)
    reference = reference_data(trainer.dataset, args.samples)
    floor = data_floor(trainer.dataset, evaluators, args.samples)
    print(f"{args.samples} samples vs {args.samples} held-out points")
    print(f"{'sampling':>10} " + " ".join(f"{name:>22}" for name in evaluators))
    print(f"{'floor':>10} " + " ".join(f"{floor[name]:>22.4f}" for name in evaluators))
    for steps in args.sampling_steps:
        samples = draw_samples(trainer.method, trainer.ema.model, args.samples, steps)
        values = score(samples, reference, evaluators)
        cells = " ".join(f"{values[n]:>12.4f} ({values[n] / floor[n]:5.2f}x)" for n in evaluators)
        print(f"{f'{steps} step':>10} {cells}")


if __name__ == "__main__":
    main()
