"""Short runs of every method on the fmnist preset: a grid each and the training throughput.

    python benchmarks/fmnist_methods.py [--steps 200] [--batch 32] [--ema 0.99] [--out benchmarks/results/fmnist-methods]

EDM trains first; CD distils it; CT and iCT train from scratch, with an evaluation EMA short
enough for the run (the preset's 0.999 would still hold 80% of the initial weights after 200
steps). Each run writes its final grid
(64 fixed seeds, one step, EDM with Heun) to OUT/METHOD.png and a line to OUT/throughput.md.
Needs Debian's dataset-fashion-mnist. Run it with nothing else heavy on the machine.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

import genkit


def train(method: str, folder: Path, steps: int, batch: int, ema: float, **extra) -> tuple[float, int]:
    """Train one method; return (training seconds, steps)."""
    model = genkit.train("fmnist", out=folder, method=method, steps=steps, train__batch_size=batch, train__ema_rate=ema,
                         train__grid_every=steps, train__log_every=steps // 4, **extra)
    return model.trained.elapsed_s, model.step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--ema", type=float, default=0.99)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/fmnist-methods"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    lines = ["| method | steps x batch | training s | images/s |", "| --- | --- | --- | --- |"]
    with tempfile.TemporaryDirectory() as tmp:
        runs = Path(tmp)
        for method in ("edm", "cd", "ct", "ict"):
            extra = {"teacher": runs / "edm"} if method == "cd" else {}
            seconds, steps = train(method, runs / method, args.steps, args.batch, args.ema, **extra)
            shutil.copy(runs / method / "grids" / f"step-{steps:07d}.png", args.out / f"{method}.png")
            lines.append(f"| {method} | {steps} x {args.batch} | {seconds:.0f} | {steps * args.batch / seconds:.0f} |")
            print(lines[-1], flush=True)
    (args.out / "throughput.md").write_text(
        f"Command: `python benchmarks/fmnist_methods.py --steps {args.steps} --batch {args.batch} --ema {args.ema}` "
        f"(the fmnist preset's 1.3M-parameter NCSN++), on a 2-core CPU.\n\n" + "\n".join(lines) + "\n"
    )


if __name__ == "__main__":
    main()
