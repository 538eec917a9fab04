"""Bad inputs a clumsy or hostile user gives genkit, and how each one ends.

Every case runs the command line in this process (typer's CliRunner) and is classed as:
- error: a non-zero exit with one line starting 'error:' and no traceback (the goal);
- traceback: an exception escaped;
- accepted: exit 0 although the input was bad (silent acceptance);
- unclear: a non-zero exit without a one-line error;
- harm: whatever the exit, the input did damage (ran a command, wrote through a planted link,
  deleted or replaced the user's files, saved NaN or infinite weights).

    python benchmarks/hostile_inputs.py          # prints one row per case and the counts
"""

from __future__ import annotations

import os
import pickle
import shutil
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np
import torch
from typer.testing import CliRunner

TINY = ["--set", "network.width=16", "--set", "network.depth=1", "--set", "train.batch_size=32", "--set", "train.log_every=5"]


def cases(work: Path, run: Path) -> list[tuple]:
    """(label, arguments, preparation[, harmed]) per bad input; preparation damages a copy of the
    run; ``harmed()`` says whether the command did damage that its exit does not show."""

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
        *hostile_files(work, run, copy),
        *hostile_config(work, run, copy),
    ]
    return listed


class RunsACommand:
    """Pickled, it makes pickle.load run a shell command (here: create a file)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch '{self.marker}'",))


def hostile_files(work: Path, run: Path, copy) -> list[tuple]:
    """Files planted or damaged where genkit reads or writes: code in a dataset, links, a folder
    of the user's own files, damaged logs and caches."""
    victims: dict[str, bytes] = {}

    def victim(name: str, text: bytes) -> Path:
        """A file of the user's outside the folder, which a planted link points to."""
        path = work / f"victim-{name}"
        path.write_bytes(text)
        victims[name] = text
        return path

    def untouched(name: str):
        return lambda: (work / f"victim-{name}").read_bytes() != victims[name]

    marker = work / "code-ran"
    cifar = work / "cifar" / "cifar-10-batches-py"
    cifar.mkdir(parents=True, exist_ok=True)
    for name in [f"data_batch_{i}" for i in range(2, 6)] + ["test_batch"]:
        (cifar / name).write_bytes(b"")
    (cifar / "data_batch_1").write_bytes(pickle.dumps({"data": RunsACommand(marker), "labels": []}, protocol=2))
    mine = work / "mine"
    mine.mkdir(exist_ok=True)
    (mine / "config.toml").write_text((run / "config.toml").read_text())  # a copy of a run's config, as users keep
    (mine / "notes.txt").write_text("mine\n")
    (mine / "metrics.jsonl").write_text('{"step": 1, "mine": true}\n')
    mine_lost = lambda: not (mine / "metrics.jsonl").is_file() or "mine" not in (mine / "metrics.jsonl").read_text()  # noqa: E731
    locked = work / "locked"
    locked.mkdir(exist_ok=True)
    if not (locked / ".lock").is_symlink():
        (locked / ".lock").symlink_to(victim("lock", b"precious\n"))

    def link_to_victim(name):
        def damage(target):  # the victim holds what the file held, so genkit reads on to its write
            (target / name).rename(victim(name, (target / name).read_bytes()))
            (target / name).symlink_to(work / f"victim-{name}")

        return damage

    def checkpoint_folder(target):
        (target / "checkpoint.pt").unlink()
        (target / "checkpoint.pt").mkdir()

    def non_finite_saved(folder):
        def harmed():
            if not (folder / "checkpoint.pt").is_file():
                return False
            state = torch.load(folder / "checkpoint.pt", weights_only=True)
            return not all(torch.isfinite(v).all() for v in state["ema"].values() if v.is_floating_point())

        return harmed

    train = ["train", "--steps", "4", *TINY]
    resume = ["train", "--resume", "--steps", "12", "--out", "{run}"]
    return [
        ("CIFAR-10 batch that runs a command", ["train", "--steps", "1", "--preset", "cifar10", "--set", f"data.root='{cifar.parent}'", "--out", str(work / "cifar-run")], lambda: None, marker.exists),
        (".lock planted as a link", [*train, "--out", str(locked)], lambda: None, untouched("lock")),
        ("metrics.jsonl planted as a link", resume, copy("link-metrics", link_to_victim("metrics.jsonl")), untouched("metrics.jsonl")),
        ("config.toml planted as a link", resume, copy("link-config", link_to_victim("config.toml")), untouched("config.toml")),
        ("--out holds the user's config and log", [*train, "--out", str(mine)], lambda: None, mine_lost),
        ("one step to infinite weights", [*train, "--steps", "1", "--set", "train.lr=1e39", "--out", str(work / "inf1")], lambda: None, non_finite_saved(work / "inf1")),
        ("infinite weights, checkpoint every step", [*train, "--steps", "10", "--set", "train.lr=1e39", "--set", "train.checkpoint_every=1", "--out", str(work / "inf2")], lambda: None, non_finite_saved(work / "inf2")),
        ("checkpoint.pt is a folder", ["train", "--steps", "4", *TINY, "--out", "{run}"], copy("ckpt-folder", checkpoint_folder)),
        ("non-UTF-8 metrics.jsonl on resume", resume, copy("metrics-utf", lambda r: (r / "metrics.jsonl").write_bytes(b'{"step": 5}\n\xff\xfe\n'))),
        ("damaged eval.json", ["eval", "{run}", "--num", "8"], copy("eval-json", lambda r: (r / "eval.json").write_text('[{"step": 10, "st'))),
    ]


def hostile_config(work: Path, run: Path, copy) -> list[tuple]:
    """Values that passed validation and crashed later, tables that were silently ignored or
    replaced, unbounded reads, and requests the API took and the CLI refused."""
    deep = work / "deep.toml"
    deep.write_text("x = " + "{a = " * 3000 + "1" + "}" * 3000 + "\n")
    flat = work / "flat.npz"
    np.savez(flat, images=np.zeros((8, 12, 12), np.uint8))
    train = ["train", "--steps", "4", *TINY]
    resume = ["train", "--resume", "--steps", "12", "--out", "{run}"]
    edit = lambda old, new: lambda r: (r / "config.toml").write_text((r / "config.toml").read_text().replace(old, new))  # noqa: E731
    return [
        ("--set methods.nosuch.x=1", [*train, "--set", "methods.nosuch.x=1"], lambda: None),
        ("misspelled method table", [*train, "--set", "methods.itc.loss='l2'"], lambda: None),
        ("--set train=5 (a scalar for a table)", [*train, "--set", "train=5"], lambda: None),
        ("--set embedding_dim=3 (odd)", [*train, "--set", "network.embedding_dim=3"], lambda: None),
        ("--set rho=1e-9 (overflows)", [*train, "--set", "noise.rho=1e-9"], lambda: None),
        ("curriculum s0 = s1 = 1e8", [*train, "--set", "methods.ict.curriculum.s0=100000000", "--set", "methods.ict.curriculum.s1=100000000"], lambda: None),
        ("--set batch_size=1e11", [*train, "--set", "train.batch_size=100000000000"], lambda: None),
        ("--set threads=100000", [*train, "--set", "train.threads=100000"], lambda: None),
        ("--set device=mps without one", [*train, "--set", "train.device='mps'"], lambda: None),
        ("--config nested 3000 deep", [*train, "--config", str(deep)], lambda: None),
        ("--config /dev/zero", [*train, "--config", "/dev/zero"], lambda: None),
        ("--set a list 3000 deep", [*train, "--set", "a=" + "[" * 3000 + "]" * 3000], lambda: None),
        ("npz images with 3 axes", [*train, "--set", "data={name = 'npz', path = '" + str(flat) + "'}", "--set", "network.name='ddpmpp'"], lambda: None),
        ("eval --num 0", ["eval", str(run), "--num", "0"], lambda: None),
        ("sample --label 5 (unconditional)", ["sample", str(run), "--label", "5", "--num", "4"], lambda: None),
        ("config.toml edited to another method", ["sample", "{run}", "--num", "4"], copy("other-method", edit('method = "ict"', 'method = "edm"'))),
        ("config.toml seed edited, then resume", resume, copy("other-seed", edit("seed = 0", "seed = 7"))),
    ]


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
        for label, args, prepare, *harmed in cases(work, run):
            target = prepare()
            args = [str(target) if a == "{run}" else a for a in args]
            result = runner.invoke(app, args)
            kind = "harm" if harmed and harmed[0]() else outcome(result)
            counts[kind] += 1
            shown = result.output.strip().splitlines()[-1][:110] if result.output.strip() else repr(result.exception)[:110]
            print(f"{kind:9}  {label:36}  {shown.replace(tmp, 'TMP')}")
        print(f"\n{sum(counts.values())} bad inputs: {counts['error']} clear one-line errors, {counts['traceback']} tracebacks, "
              f"{counts['accepted']} silently accepted, {counts['unclear']} unclear, {counts['harm']} did harm")


if __name__ == "__main__":
    main()
