"""Writes the reference weights that tests/test_golden.py compares against.

These files pin what each method's default recipe trains to. They were first written before
methods took their parts (loss, curriculum, index schedule, teacher, optimizer) from config, and
re-pinned once since, when the per-sample draws (noise, levels) moved from torch's global
generator to a generator of their own that every process shares (the same recipe, other random
numbers: with the draws taken from the global generator the new code reproduced the old files
bit for bit). Rerunning this script with newer code only re-pins whatever that code does, so
rerun it only when a change of results is intended and explained in the commit.

    python tests/data/golden/make.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

HERE = Path(__file__).parent
STEPS = 24
TINY = [  # a network and batch small enough to train in a second; method recipes untouched
    "network.width=32",
    "network.depth=1",
    "network.embedding_dim=16",
    "train.batch_size=64",
    "train.log_every=8",
    "train.checkpoint_every=24",
]


def train(method: str, folder: Path, extra: list[str] = ()) -> dict:
    from genkit import config as configuration
    from genkit import plugins
    from genkit.training.loop import Trainer
    from genkit.training.run import RunFolder

    registries = plugins.registries()
    config = configuration.load_config(
        registries, "toy2d", assignments=TINY + list(extra), flags={"method": method, "train.steps": STEPS}
    )
    trainer = Trainer(config, RunFolder(folder), registries)
    trainer.train()
    return {"model": trainer.method.model.state_dict(), "ema": trainer.ema.state_dict()}


def golden_weights(workdir: Path, cd_teacher_flag: str) -> dict[str, dict]:
    """Every built-in method's weights after STEPS steps of the toy2d recipe (CD from the EDM run)."""
    torch.set_num_threads(1)
    weights = {name: train(name, workdir / name) for name in ("edm", "ict", "ct")}
    weights["cd"] = train("cd", workdir / "cd", [f"{cd_teacher_flag}={workdir / 'edm'}"])
    return weights


if __name__ == "__main__":
    import tempfile

    flag = sys.argv[1] if len(sys.argv) > 1 else "methods.cd.teacher"
    with tempfile.TemporaryDirectory() as tmp:
        for name, state in golden_weights(Path(tmp), flag).items():
            torch.save(state, HERE / f"{name}.pt")
            print(f"wrote {name}.pt")
