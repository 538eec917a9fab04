"""Training throughput and model FLOP utilisation of a preset's network (default: the CIFAR-10
NCSN++ configuration).

    python benchmarks/gpu/train_throughput.py [--preset cifar10] [--batch 128] [--steps 20] [--json FILE]
        [--settings fp32:eager,bf16:eager,fp32:model,bf16:model,bf16:blocks,bf16:model:reduce-overhead] [--jsonl FILE]

Trains iCT with the preset's network (cifar10: NCSN++, 56M parameters) at the given batch on
random 32x32 images (speed does not depend on the pixels), in each setting PRECISION:COMPILE:
fp32 or bf16 autocast; eager, the whole network compiled (model) or each repeated block
compiled on its own (blocks: regional compilation). Reports images/s over timed steps after
warm-up (a third field names train.compile_mode: reduce-overhead replays the step's kernels as
CUDA graphs), the warm-up's seconds (compilation happens there), the FLOPs of one step (counted by
torch.utils.flop_counter on one eager step) and the model FLOP utilisation against the device's
dense peak for that precision, where the device is known. ``--jsonl`` appends one line per
setting, so a caller can give every setting a timeout of its own (benchmarks/gpu/run.sh does).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from genkit import config as configuration
from genkit import plugins
from genkit.training.loop import Trainer
from genkit.training.run import RunFolder

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from step_overhead import random_images  # noqa: E402

# dense peak FLOP/s by precision (vendor figures, SXM parts): bf16 tensor cores; fp32 with TF32 off
PEAKS = {"H100": {"bf16": 989e12, "fp32": 67e12}, "H200": {"bf16": 989e12, "fp32": 67e12}, "A100": {"bf16": 312e12, "fp32": 19.5e12}}


def peak(precision: str) -> float | None:
    name = torch.cuda.get_device_name() if torch.cuda.is_available() else ""
    return next((p[precision] for key, p in PEAKS.items() if key in name), None)


def trainer_for(folder: Path, batch: int, precision: str, compiled: str, preset: str = "cifar10", mode: str = "default") -> Trainer:
    registries = plugins.registries()
    sets = [
        "data.name=npz", f"data.path={random_images(folder)}", "data.labels=false", "network.label_dim=0",
        f"train.batch_size={batch}", f"train.precision='{precision}'", f"train.compile={str(compiled != 'eager').lower()}",
        "train.log_every=1000000", "train.checkpoint_every=1000000",
    ]
    sets += [f"train.compile_scope='{compiled}'", f"train.compile_mode='{mode}'"] if compiled != "eager" else []
    config = configuration.load_config(registries, preset, assignments=sets, flags={"method": "ict", "train.steps": 10**6})
    return Trainer(config, RunFolder(folder / f"{precision}-{compiled}-{mode}"), registries)


def synchronize() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def step_flops(trainer: Trainer) -> int:
    with FlopCounterMode(display=False) as counter:
        trainer.train_step()
    return counter.get_total_flops()


def measure(folder: Path, batch: int, precision: str, compiled: str, steps: int, warmup: int, preset: str = "cifar10", mode: str = "default") -> dict:
    trainer = trainer_for(folder, batch, precision, compiled, preset, mode)
    started = time.perf_counter()
    for _ in range(warmup):  # compilation happens here
        trainer.train_step()
    synchronize()
    warmup_s = time.perf_counter() - started
    started = time.perf_counter()
    for _ in range(steps):
        trainer.train_step()
    synchronize()
    seconds = (time.perf_counter() - started) / steps
    flops = step_flops(trainer) if compiled == "eager" else None
    trainer.close()
    return {"preset": preset, "precision": precision, "compiled": compiled, "mode": mode, "batch": batch, "images_per_s": batch / seconds,
            "steps_per_s": 1 / seconds, "step_ms": seconds * 1e3, "warmup_s": warmup_s, "flops_per_step": flops}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--jsonl", type=Path, help="append one JSON line per setting to this file")
    parser.add_argument("--preset", default="cifar10", help="the training preset whose network is measured")
    parser.add_argument("--settings", default="fp32:eager,bf16:eager,fp32:model,bf16:model",
                        help="PRECISION:COMPILE[:MODE], COMPILE one of eager, model, blocks; MODE a train.compile_mode")
    parser.add_argument("--eager-only", action="store_true", help="skip torch.compile (a quick check on a CPU)")
    args = parser.parse_args()
    settings = [(pair.split(":") + ["default"])[:3] for pair in args.settings.split(",")]
    settings = [(p, c, m) for p, c, m in settings if c == "eager" or not args.eager_only]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for precision, compiled, mode in settings:
            try:
                rows.append(measure(Path(tmp), args.batch, precision, compiled, args.steps, args.warmup, args.preset, mode))
            except Exception as error:  # one failing setting (compile, say) must not lose the others
                rows.append({"preset": args.preset, "precision": precision, "compiled": compiled, "mode": mode,
                             "error": f"{type(error).__name__}: {error}"[:500]})
            print(json.dumps(rows[-1]), flush=True)
            if args.jsonl:
                with args.jsonl.open("a") as handle:
                    handle.write(json.dumps(rows[-1]) + "\n")
    flops = next((r["flops_per_step"] for r in rows if r.get("flops_per_step")), None)
    for row in rows:
        top = peak(row["precision"])
        if flops and "images_per_s" in row and top:
            row["mfu"] = flops * row["images_per_s"] / row["batch"] / top
    result = {"device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu", "torch": torch.__version__, "rows": rows}
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
