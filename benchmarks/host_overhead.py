"""The host's work per training step: a network too small for its arithmetic to matter.

    python benchmarks/host_overhead.py [--methods edm ict ct cd sct meanflow] [--threads 2]
        [--set KEY=VALUE ...] [--compare KEY=VALUE ...] [--device cpu|cuda] [--breakdown] [--jsonl FILE]

The fmnist preset's NCSN++ (every layer of it: the same operators in the same order) at 4
channels on 8x8 random images, batch 8: what remains of a step is the work the host does per
step (Python, dispatch, one kernel launch per operator), which bounds a small network on a GPU.
For each method it prints steps per second (median of interleaved rounds) and the operators
per step, from torch.profiler on the CPU: ``kernels`` counts the leaf aten operators that
compute (those that call no other aten operator, do more than allocate or re-describe memory and
touch more than 0-dim tensors: on a GPU, about one kernel launch each; a foreach or fused
operator once), ``ops`` every aten
operator dispatched. ``--compare`` times a second setting (the base plus its overrides, e.g.
train.compile=true) interleaved with the base in the same process and prints the ratio of their
steps per second. ``--breakdown`` lists the most frequent kernels of each method.
"""

from __future__ import annotations

import argparse
import collections
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch._inductor.config
from torch.profiler import ProfilerActivity, profile

from genkit import config as configuration
from genkit import plugins
from genkit.training.loop import Trainer
from genkit.training.run import RunFolder
from step_overhead import random_images

TINY = ["network.channels=4", "train.batch_size=8", "data.name=npz", "data.labels=false",
        "methods.cd.loss=pseudo-huber", "methods.ct.loss=pseudo-huber"]  # fmt: skip
METHOD_SETS = {"meanflow": ["network.second_time=true"]}


def make_trainer(method: str, folder: Path, teacher: Path | None, extra: list[str], device: str = "cpu") -> Trainer:
    sets = TINY + METHOD_SETS.get(method, []) + list(extra)
    sets += [f"data.path={random_images(folder, count=256, size=8)}", "data.resolution=8", f"train.device='{device}'",
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
    with profile(activities=activities, record_shapes=True) as prof:
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
    return is_leaf and event.name[6:] not in NO_KERNEL and not _scalar_only(event)


def _scalar_only(event) -> bool:
    """An operator on 0-dim tensors alone: on a CPU, a Python number in arithmetic (x * 0.5) is
    cast by a copy of one element; on a GPU that number is passed to the kernel, no launch."""
    shapes = [shape for shape in (event.input_shapes or []) if shape is not None]
    return bool(shapes) and all(len(shape) == 0 for shape in shapes)


def timed_rounds(steps: list, rounds: int, repeats: int) -> list[list[float]]:
    """Seconds per step of each of ``steps``, round by round, interleaved so drift hits all alike."""
    times: list[list[float]] = [[] for _ in steps]
    for _ in range(rounds):
        for index, step in enumerate(steps):
            synchronize()
            started = time.perf_counter()
            for _ in range(repeats):
                step()
            synchronize()
            times[index].append((time.perf_counter() - started) / repeats)
    return times


def measure_method(method: str, folder: Path, teacher: Path | None, args) -> list[dict]:
    """One row per setting (the base, then --compare's): steps/s, kernels and operators per step,
    and each setting's median ratio of steps/s to the base's over the interleaved rounds."""
    settings = [args.assignments] + ([args.assignments + args.compare] if args.compare else [])
    trainers = [make_trainer(method, folder / f"setting{i}", teacher, sets, args.device) for i, sets in enumerate(settings)]
    torch.set_num_threads(args.threads)
    counts = []
    for trainer in trainers:
        started = time.perf_counter()
        for _ in range(3):  # warm-up: allocator, first-call paths, compile
            trainer.train_step()
        warmup = time.perf_counter() - started
        counts.append((warmup, *count_operators(trainer.train_step, args.device)))
    times = timed_rounds([t.train_step for t in trainers], args.rounds, args.repeats)
    for trainer in trainers:
        trainer.close()
    rows = []
    for sets, (warmup, kernels, ops, leaves), seconds in zip(settings, counts, times):
        speedup = statistics.median(base / mine for base, mine in zip(times[0], seconds))
        rows.append({"method": method, "device": args.device, "sets": sets, "steps_per_s": 1 / statistics.median(seconds),
                     "speedup": speedup, "warmup_s": warmup, "kernels": kernels, "ops": ops, "top": leaves.most_common(12),
                     "threads": args.threads, "torch": torch.__version__})  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", nargs="+", default=["edm", "ict", "ct", "cd", "sct", "meanflow"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu", help="cpu or cuda: on a GPU, steps/s of this network is the host's limit")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--set", dest="assignments", action="append", default=[], help="config overrides, as genkit train --set")
    parser.add_argument("--compare", action="append", default=[], help="also time the step with these overrides on top, interleaved: the ratio")
    parser.add_argument("--breakdown", action="store_true", help="the 12 most frequent kernels per method")
    parser.add_argument("--jsonl", type=Path, help="append one JSON line per method and setting")
    args = parser.parse_args()
    torch._inductor.config.cpp.enable_kernel_profile = True  # compiled C++ kernels show in the profile
    print(f"torch {torch.__version__}, {args.threads} thread(s), {args.device}; steps/s: median of {args.rounds} interleaved rounds")
    print(f"{'method':>9} {'setting':>28} {'steps/s':>8} {'ratio':>6} {'warm-up s':>9} {'kernels':>8} {'ops':>6}")
    with tempfile.TemporaryDirectory() as tmp:
        folder, teacher = Path(tmp), None
        for method in args.methods:
            if method == "cd" and teacher is None:  # CD needs an EDM run to distil
                edm = make_trainer("edm", folder / "teacher", None, args.assignments, args.device)
                edm.train(until=1)
                teacher = folder / "teacher" / "edm"
            for row in measure_method(method, folder / method, teacher if method == "cd" else None, args):
                setting = " ".join(row["sets"][len(args.assignments):]) or "base"
                print(f"{method:>9} {setting[:28]:>28} {row['steps_per_s']:>8.2f} {row['speedup']:>6.3f} {row['warmup_s']:>9.1f} "
                      f"{row['kernels']:>8} {row['ops']:>6}", flush=True)
                if args.breakdown:
                    print("          " + ", ".join(f"{name} {n}" for name, n in row["top"]))
                if args.jsonl:
                    with args.jsonl.open("a") as file:
                        file.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
