"""The host's work per training step: a network too small for its arithmetic to matter.

    python benchmarks/host_overhead.py [--methods edm ict ct cd sct meanflow] [--threads 2]
        [--set KEY=VALUE ...] [--breakdown] [--jsonl FILE]

The fmnist preset's NCSN++ (every layer of it: the same operators in the same order) at 4
channels on 8x8 random images, batch 8: what remains of a step is the work the host does per
step (Python, dispatch, one kernel launch per operator), which bounds a small network on a GPU.
For each method it prints steps per second (median of interleaved rounds) and the operators
per step, from torch.profiler on the CPU: ``kernels`` counts the leaf aten operators that
compute (those that call no other aten operator and do more than allocate or re-describe memory:
on a GPU, about one kernel launch each; a foreach or fused operator once), ``ops`` every aten
operator dispatched. ``--breakdown`` lists the most frequent kernels of each method.
"""

from __future__ import annotations

import argparse
import collections
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch._inductor.config
from torch.profiler import ProfilerActivity, profile

from genkit import config as configuration
from genkit import plugins
from genkit.training.loop import Trainer
from genkit.training.run import RunFolder

TINY = ["network.channels=4", "train.batch_size=8", "data.name=npz", "data.labels=false",
        "methods.cd.loss=pseudo-huber", "methods.ct.loss=pseudo-huber"]  # fmt: skip
METHOD_SETS = {"meanflow": ["network.second_time=true"]}


def random_images(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "images.npz"
    np.savez(path, images=np.random.default_rng(0).integers(0, 256, (256, 8, 8, 3), dtype=np.uint8))
    return path


def make_trainer(method: str, folder: Path, teacher: Path | None, extra: list[str], device: str = "cpu") -> Trainer:
    sets = TINY + METHOD_SETS.get(method, []) + list(extra)
    sets += [f"data.path={random_images(folder)}", "data.resolution=8", f"train.device='{device}'",
             "train.log_every=1000000", "train.checkpoint_every=1000000"]  # fmt: skip
    if teacher is not None:
        sets.append(f"methods.cd.teacher.run={teacher}")
    registries = plugins.registries()
    config = configuration.load_config(registries, "fmnist", assignments=sets, flags={"method": method, "train.steps": 10**6})
    return Trainer(config, RunFolder(folder / method), registries)


# operators that only allocate or describe memory: no kernel on a GPU
NO_KERNEL = {
    "empty", "empty_strided", "empty_like", "as_strided", "as_strided_", "view", "alias", "detach", "detach_", "resize_",
    "resolve_conj", "resolve_neg", "is_same_size", "_has_same_storage_numel", "reshape", "_reshape_alias", "expand", "t",
    "transpose", "permute", "unsqueeze", "squeeze", "slice", "select", "_unsafe_view", "unflatten", "flatten", "split",
    "chunk", "narrow", "unbind", "set_", "lift_fresh", "_local_scalar_dense", "to", "contiguous", "result_type",
}  # fmt: skip  (a leaf `to` or `contiguous` had nothing to do: one that copies calls copy_, counted)
GROUPED = ("aten::_foreach_", "aten::_fused_")  # one operator over many tensors: a few launches on a GPU, counted as one


def synchronize() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


COMPILED = ("cpp_fused", "cpp_", "triton_")  # torch.compile's own kernels (C++ on a CPU, Triton on a GPU)


def count_operators(step, device: str = "cpu") -> tuple[int, int, collections.Counter]:
    """(kernels, aten operators, kernels by name) of one call of ``step``. On a GPU the kernels are
    the device's launches as the profiler records them; on a CPU the leaf aten operators that
    compute (not those in NO_KERNEL; a foreach or fused operator once) and torch.compile's
    generated kernels (recorded with inductor's kernel profiling on)."""
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device == "cuda" else [])
    with profile(activities=activities) as prof:
        step()
        synchronize()
    events = prof.events()
    if device == "cuda":
        kernels = collections.Counter(e.name[:60] for e in events if e.device_type == torch.autograd.DeviceType.CUDA)
    else:
        kernels = collections.Counter(e.name[6:] if e.name.startswith("aten::") else e.name[:40] for e in events if _is_kernel(e))
    return sum(kernels.values()), sum(e.name.startswith("aten::") for e in events), kernels


def _is_kernel(event) -> bool:
    parent = event.cpu_parent
    while parent is not None:
        if parent.name.startswith(GROUPED):
            return False  # inside a grouped operator: counted with it
        parent = parent.cpu_parent
    if event.name.startswith(GROUPED) or event.name.startswith(COMPILED):
        return True
    if not event.name.startswith("aten::"):
        return False
    is_leaf = not any(child.name.startswith("aten::") for child in event.cpu_children)
    return is_leaf and event.name[6:] not in NO_KERNEL


def steps_per_second(step, rounds: int, repeats: int) -> float:
    times = []
    for _ in range(rounds):
        synchronize()
        started = time.perf_counter()
        for _ in range(repeats):
            step()
        synchronize()
        times.append((time.perf_counter() - started) / repeats)
    return 1.0 / statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", nargs="+", default=["edm", "ict", "ct", "cd", "sct", "meanflow"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu", help="cpu or cuda: on a GPU, steps/s of this network is the host's limit")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--set", dest="assignments", action="append", default=[], help="config overrides, as genkit train --set")
    parser.add_argument("--breakdown", action="store_true", help="the 12 most frequent leaf operators per method")
    parser.add_argument("--jsonl", type=Path, help="append one JSON line per method")
    args = parser.parse_args()
    torch._inductor.config.cpp.enable_kernel_profile = True  # compiled C++ kernels show in the profile
    print(f"torch {torch.__version__}, {args.threads} thread(s), sets {args.assignments or 'none'}; steps/s: median of {args.rounds} rounds")
    print(f"{'method':>9} {'steps/s':>8} {'ms/step':>8} {'kernels':>8} {'ops':>6}")
    with tempfile.TemporaryDirectory() as tmp:
        folder, teacher = Path(tmp), None
        for method in args.methods:
            if method == "cd" and teacher is None:  # CD needs an EDM run to distil
                edm = make_trainer("edm", folder / "teacher", None, args.assignments, args.device)
                edm.train(until=1)
                teacher = folder / "teacher" / "edm"
            trainer = make_trainer(method, folder, teacher if method == "cd" else None, args.assignments, args.device)
            torch.set_num_threads(args.threads)
            for _ in range(3):  # warm-up: allocator, first-call paths, compile
                trainer.train_step()
            kernels, ops, leaves = count_operators(trainer.train_step, args.device)
            rate = steps_per_second(trainer.train_step, args.rounds, args.repeats)
            trainer.close()
            print(f"{method:>9} {rate:>8.1f} {1e3 / rate:>8.2f} {kernels:>8} {ops:>6}", flush=True)
            if args.breakdown:
                print("          " + ", ".join(f"{name} {n}" for name, n in leaves.most_common(12)))
            if args.jsonl:
                record = {"method": method, "device": args.device, "steps_per_s": rate, "kernels": kernels, "ops": ops, "sets": args.assignments,
                          "threads": args.threads, "torch": torch.__version__}  # fmt: skip
                with args.jsonl.open("a") as file:
                    file.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
