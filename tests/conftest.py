"""Shared fixtures: the loaded registries and tiny configurations that train in a second.

Layout: the core's tests here, each built-in plugin's in tests/plugins/NAME (a third-party
plugin keeps its tests beside it, as examples/genkit-ect does). Test modules import helpers of
other test modules by name (``from test_bench import TINY_BENCH``), so every test folder is on
sys.path whatever order pytest collects them in.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

for _folder in sorted(p for p in (Path(__file__).parent / "plugins").iterdir() if p.is_dir()):
    if str(_folder) not in sys.path:
        sys.path.append(str(_folder))

from genkit import config as configuration
from genkit import plugins
from genkit.training.loop import Trainer
from genkit.training.run import RunFolder

torch.set_num_threads(1)  # tiny models: threads cost more than they give, and CI has 2 cores

TINY = [
    "network.width=32",
    "network.depth=1",
    "network.embedding_dim=16",
    "train.batch_size=64",
    "train.log_every=5",
    "train.checkpoint_every=10",
    "sample.num=200",
]


@pytest.fixture(scope="session")
def registries():
    return plugins.registries()


@pytest.fixture
def tiny_config(registries):
    """A toy2d config small enough to train for a few dozen steps in well under a second."""

    def make(method: str = "ict", steps: int = 20, extra: list[str] = ()) -> configuration.Config:
        return configuration.load_config(
            registries, "toy2d", assignments=TINY + list(extra), flags={"method": method, "train.steps": steps}
        )

    return make


def trained_tiny_run(registries, folder: Path, method: str, steps: int) -> Path:
    """A run of the tiny toy2d config (TINY) trained for ``steps`` in ``folder``: a teacher or a
    model for module-scoped fixtures, which cannot use the function-scoped ``tiny_config``."""
    config = configuration.load_config(registries, "toy2d", assignments=TINY, flags={"method": method, "train.steps": steps})
    Trainer(config, RunFolder(folder), registries).train()
    return folder


def build_for_training(config, registries, device=None):
    """``build`` then ``method.prepare_training()``, as the Trainer does: the method with the parts
    only training needs (curriculum, index schedule, teacher, loss)."""
    from genkit.build import build

    built = build(config, registries, device)
    built.method.prepare_training()
    return built


def straight_and_resumed(config, registries, folder, stop_at: int):
    """Train ``config`` straight through, and again stopped at ``stop_at`` then resumed in a new
    Trainer (as after a kill); returns both trainers for comparison."""
    straight = Trainer(config, RunFolder(folder / "straight"), registries)
    straight.train()
    Trainer(config, RunFolder(folder / "resumed"), registries).train(until=stop_at)
    resumed = Trainer(config, RunFolder(folder / "resumed"), registries, resume=True)
    assert resumed.step == stop_at
    resumed.train()
    return straight, resumed


def assert_same_tensors(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def assert_close_tensors(a: dict, b: dict, rtol: float = 1e-5, atol: float = 1e-6) -> None:
    """The same keys, and tensors equal to float tolerance (runs that split the work differently)."""
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=rtol, atol=atol, msg=key)


def assert_one_line_error(result, *fragments) -> None:
    """A CLI result that failed with one line starting 'error:' (the last line printed), no
    traceback, and every fragment in that line."""
    assert result.exit_code != 0, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and result.output.rstrip().splitlines()[-1] == errors[0], result.output
    for fragment in fragments:
        assert fragment in errors[0], errors[0]


@pytest.fixture(autouse=True, scope="session")
def private_statistics_cache(tmp_path_factory):
    """Reference statistics the tests compute go to a temporary folder, not the user's cache."""
    import os

    previous = os.environ.get("GENKIT_CACHE")
    os.environ["GENKIT_CACHE"] = str(tmp_path_factory.mktemp("genkit-cache"))
    yield
    if previous is None:
        os.environ.pop("GENKIT_CACHE", None)
    else:
        os.environ["GENKIT_CACHE"] = previous
