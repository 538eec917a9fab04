"""Bad inputs a clumsy or hostile user gives genkit, and how each one ends.

Every case runs the command line in this process (typer's CliRunner) and is classed as:
- error: a non-zero exit with one line starting 'error:' and no traceback (the goal);
- traceback: an exception escaped;
- accepted: exit 0 although the input was bad (silent acceptance);
- unclear: a non-zero exit without a one-line error.

    python benchmarks/hostile_inputs.py          # prints one row per case and the counts
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections import Counter
from pathlib import Path

import torch
from typer.testing import CliRunner

TINY = ["--set", "network.width=16", "--set", "network.depth=1", "--set", "train.batch_size=32", "--set", "train.log_every=5"]


def cases(work: Path, run: Path) -> list[tuple[str, list[str], callable]]:
    """(label, arguments, preparation) per bad input; preparation damages a copy of the run."""

    def copy(name: str, damage=None):
        def prepare() -> Path:
            target = work / name
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(run, target)
            if damage:
                damage(target)
            return target

        return prepare

    def nothing():
        return None

    file = work / "a-file"
    file.write_text("x")
    notes = work / "notes"
    notes.mkdir(exist_ok=True)
    (notes / "config.toml").write_text("mine = 1\n")
    train = ["train", "--steps", "4", *TINY]
    listed = [
        ("unknown method", [*train, "--method", "ictt"], nothing),
        ("unknown preset", [*train, "--preset", "cifar11"], nothing),
        ("missing --config file", [*train, "--config", str(work / "none.toml")], nothing),
        ("--set without =", [*train, "--set", "train.lr"], nothing),
        ("--set unknown section", [*train, "--set", "foo.bar=1"], nothing),
        ("--set unknown key", [*train, "--set", "train.learning_rate=1"], nothing),
        ("--set wrong type", [*train, "--set", "train.batch_size=many"], nothing),
        ("--set lr=0", [*train, "--set", "train.lr=0"], nothing),
        ("--set lr=nan", [*train, "--set", "train.lr=nan"], nothing),
        ("--set lr=inf", [*train, "--set", "train.lr=inf"], nothing),
        ("--set lr=1e30 (diverges)", [*train, "--steps", "40", "--set", "train.lr=1e30", "--out", str(work / "diverge")], nothing),
        ("--set batch_size=0", [*train, "--set", "train.batch_size=0"], nothing),
        ("--set width=0", [*train, "--set", "network.width=0"], nothing),
        ("--set dropout=1.5", [*train, "--set", "network.dropout=1.5"], nothing),
        ("--set ema_rate=1", [*train, "--set", "train.ema_rate=1"], nothing),
        ("--set sigma_max < sigma_min", [*train, "--set", "noise.sigma_max=0.001"], nothing),
        ("--set multistep not descending", [*train, "--set", "sample.multistep_sigmas=[0.5, 1.0]"], nothing),
        ("--set device=gpu0", [*train, "--set", "train.device='gpu0'"], nothing),
        ("--device cuda without CUDA", [*train, "--device", "cuda"], nothing),
        ("--seed 2**32", [*train, "--seed", "4294967296"], nothing),
        ("--seed -1", [*train, "--seed", "-1"], nothing),
        ("misspelled curriculum", [*train, "--set", "methods.ict.curriculum=doubl"], nothing),
        ("curriculum s1 < s0", [*train, "--set", "methods.ict.curriculum.s1=2"], nothing),
        ("unknown optimizer", [*train, "--set", "train.optimizer=sgd"], nothing),
        ("bad betas", [*train, "--set", "train.optimizer.betas=[0.9, 1.5]"], nothing),
        ("--teacher for ict", [*train, "--teacher", str(run)], nothing),
        ("cd without a teacher", [*train, "--method", "cd", "--out", str(work / "cd")], nothing),
        ("cd with an ict run as teacher", [*train, "--method", "cd", "--teacher", str(run), "--out", str(work / "cd2")], nothing),
        ("--out is a file", [*train, "--out", str(file)], nothing),
        ("--out under a file", [*train, "--out", str(file / "run")], nothing),
        ("--out holds other files", [*train, "--out", str(notes)], nothing),
        ("--out holds a run", [*train, "--out", str(run)], nothing),
        ("--resume without --out", ["train", "--resume"], nothing),
        ("--resume with --set", ["train", "--resume", "--out", str(run), "--set", "train.lr=1"], nothing),
        ("--resume --steps fewer than done", ["train", "--resume", "--out", str(run), "--steps", "2"], nothing),
        ("--resume of an empty folder", ["train", "--resume", "--out", str(work / "empty")], lambda: (work / "empty").mkdir(exist_ok=True)),
        ("sample a missing folder", ["sample", str(work / "nope")], nothing),
        ("sample a folder that is no run", ["sample", str(notes)], nothing),
        ("sample --num 0", ["sample", str(run), "--num", "0"], nothing),
        ("sample --steps 0", ["sample", str(run), "--steps", "0"], nothing),
        ("sample --steps 3 (one level given)", ["sample", str(run), "--steps", "3"], nothing),
        ("sample --seed 2**32", ["sample", str(run), "--seed", "4294967296"], nothing),
        ("sample --out under a file", ["sample", str(run), "--out", str(file / "x.npz")], nothing),
        ("zero-byte checkpoint", ["sample", "{run}"], copy("zero", lambda r: (r / "checkpoint.pt").write_bytes(b""))),
        ("random-byte checkpoint", ["sample", "{run}"], copy("random", lambda r: (r / "checkpoint.pt").write_bytes(os.urandom(4096)))),
        ("pickled-code checkpoint", ["sample", "{run}"], copy("pickle", lambda r: torch.save({"x": Path}, r / "checkpoint.pt"))),
        ("checkpoint without state", ["sample", "{run}"], copy("nostate", lambda r: torch.save({"a": 1}, r / "checkpoint.pt"))),
        ("non-UTF-8 config.toml", ["sample", "{run}"], copy("utf", lambda r: (r / "config.toml").write_bytes(b"x = '\xff'\n"))),
        ("empty config.toml", ["sample", "{run}"], copy("emptyconf", lambda r: (r / "config.toml").write_text(""))),
        ("config.toml of another network", ["sample", "{run}"], copy("other", lambda r: (r / "config.toml").write_text((r / "config.toml").read_text().replace("width = 16", "width = 24")))),
        ("diverged (NaN) weights", ["sample", "{run}", "--num", "10"], copy("nan", _nan_weights)),
        ("config show unknown key", ["config", "show", "--set", "noise.sigma=1"], nothing),
        ("bench unknown preset", ["bench", "cd-vs-ict", "--preset", "mnist"], nothing),
        ("bench --seeds 0", ["bench", "cd-vs-ict", "--seeds", "0"], nothing),
        ("bench misspelled part", ["bench", "cd-vs-ict", "--dry-run", "--set", "overrides.methods.ict.loss=hubr"], nothing),
        ("bench fixed key overridden", ["bench", "cd-vs-ict", "--dry-run", "--set", "overrides.train.steps=5"], nothing),
        ("--set precision=fp8", [*train, "--set", "train.precision='fp8'"], nothing),
        ("--set microbatch=-1", [*train, "--set", "train.microbatch=-1"], nothing),
        ("--set keep_snapshots=-2", [*train, "--set", "train.keep_snapshots=-2"], nothing),
        ("unknown logger", [*train, "--set", "train.loggers=['wandbb']"], nothing),
        ("unknown optimizer kernels", [*train, "--set", "train.optimizer.kernels='cuda'"], nothing),
        ("curves of a missing folder", ["curves", str(work / "nope")], nothing),
        ("curves of a folder that is no run", ["curves", str(notes)], nothing),
        ("export in an unknown format", ["export", str(run), "--format", "onnx"], nothing),
        ("export of a missing folder", ["export", str(work / "nope")], nothing),
        ("export of a zero-byte checkpoint", ["export", "{run}"], copy("zero-export", lambda r: (r / "checkpoint.pt").write_bytes(b""))),
        ("new-plugin with a bad name", ["new-plugin", "my plugin!", "--out", str(work / "plugin")], nothing),
        ("new-plugin into a folder with files", ["new-plugin", "cosine", "--out", str(notes)], nothing),
    ]
    return listed


def _nan_weights(run: Path) -> None:
    from genkit.training import checkpoint

    state = checkpoint.load(run / "checkpoint.pt")
    state["ema"] = {k: torch.full_like(v, float("nan")) if v.is_floating_point() else v for k, v in state["ema"].items()}
    checkpoint.save_atomic(state, run / "checkpoint.pt")


def outcome(result) -> str:
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        return "traceback"
    if result.exit_code == 0:
        return "accepted"
    lines = result.output.rstrip().splitlines()
    errors = [line for line in lines if line.startswith("error:")]
    return "error" if len(errors) == 1 and lines[-1] == errors[0] else "unclear"


def main() -> None:
    from genkit.cli.main import build_app

    torch.set_num_threads(1)
    app, runner = build_app(), CliRunner()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        os.chdir(work)
        run = work / "run"
        assert runner.invoke(app, ["train", "--steps", "10", *TINY, "--out", str(run)]).exit_code == 0
        counts: Counter = Counter()
        for label, args, prepare in cases(work, run):
            target = prepare()
            args = [str(target) if a == "{run}" else a for a in args]
            result = runner.invoke(app, args)
            kind = outcome(result)
            counts[kind] += 1
            shown = result.output.strip().splitlines()[-1][:110] if result.output.strip() else repr(result.exception)[:110]
            print(f"{kind:9}  {label:36}  {shown.replace(tmp, 'TMP')}")
        print(f"\n{sum(counts.values())} bad inputs: {counts['error']} clear one-line errors, {counts['traceback']} tracebacks, "
              f"{counts['accepted']} silently accepted, {counts['unclear']} unclear")


if __name__ == "__main__":
    main()
