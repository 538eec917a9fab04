"""--resume --set KEY=V for the keys that leave the trained function alone
(configuration.RESUMABLE_CHANGES); any other key is refused with one line naming it."""

import pytest
import torch
from typer.testing import CliRunner

import genkit
from genkit.cli.main import build_app
from genkit.errors import GenkitError
from genkit.training import checkpoint
from genkit.training.run import RunFolder

from conftest import assert_one_line_error

TINY = dict(network__width=16, network__depth=1, train__batch_size=16, train__log_every=5, train__checkpoint_every=5)


def invoke(*args):
    return CliRunner().invoke(build_app(), [str(a) for a in args], env={"COLUMNS": "250"})


@pytest.fixture
def run(tmp_path):
    genkit.train("toy2d", out=tmp_path / "run", method="ict", steps=10, **TINY)
    return tmp_path / "run"


def test_resume_on_the_command_line_with_harmless_changes(run, registries):
    result = invoke("train", "--resume", "--out", run, "--steps", "20", "--set", "train.log_every=2",
                    "--set", "train.checkpoint_every=4", "--set", "sample.num=77", "--set", "train.eval_every=0")
    assert result.exit_code == 0, result.output
    saved = RunFolder(run).read_config(registries)  # written into the run's config.toml
    assert (saved.train.log_every, saved.train.checkpoint_every, saved.sample.num, saved.train.steps) == (2, 4, 77, 20)
    steps = [r["step"] for r in RunFolder(run).metrics() if "loss" in r]
    assert steps == [5, 10, 12, 14, 16, 18, 20]  # the new log interval from the resumed step on
    assert checkpoint.load(run / "checkpoint.pt")["step"] == 20


@pytest.mark.parametrize("assignment, key", [
    ("train.lr=0.0123", "train.lr"),
    ("network.width=32", "network.width"),
    ("methods.ict.curriculum.s1=10", "methods.ict.curriculum.s1"),
    ("train.ema_rate=0.5", "train.ema_rate"),
])
def test_resume_refuses_a_change_of_the_trained_function_naming_the_key(run, assignment, key):
    before = (run / "config.toml").read_text()
    result = invoke("train", "--resume", "--out", run, "--set", "train.log_every=2", "--set", assignment)
    assert_one_line_error(result, f"--set {assignment}: {key} changes the function the run trains", "train.log_every")
    assert (run / "config.toml").read_text() == before  # nothing written


def test_resume_through_the_api_takes_the_same_changes(run, registries):
    model = genkit.train(out=run, resume=True, steps=15, train__log_every=3, sample__num=33)
    assert model.step == 15 and model.config.sample.num == 33 and model.config.train.log_every == 3
    with pytest.raises(GenkitError, match=r"genkit.train\(train__lr=...\): train.lr changes the function the run trains"):
        genkit.train(out=run, resume=True, steps=20, train__lr=1e-2)
    assert RunFolder(run).read_config(registries).train.lr != 1e-2


def test_a_harmless_change_leaves_the_weights_exact(tmp_path, registries):
    """Resumed with another log and checkpoint interval, a run ends with the weights of one
    trained straight through."""
    genkit.train("toy2d", out=tmp_path / "straight", method="ict", steps=10, **TINY)
    genkit.train("toy2d", out=tmp_path / "resumed", method="ict", steps=5, **TINY)
    genkit.train(out=tmp_path / "resumed", resume=True, steps=10, train__log_every=1, train__checkpoint_every=3)
    a, b = (checkpoint.load(tmp_path / name / "checkpoint.pt")["ema"] for name in ("straight", "resumed"))
    assert all(torch.equal(a[k], b[k]) for k in a)
