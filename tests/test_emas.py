"""Several evaluation EMAs (train.ema_rates): each kept in the checkpoint, chosen with --ema on
sample, eval and export and genkit.load(run, ema=RATE); resume stays exact; old configs with
train.ema_rate alone still load."""

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import genkit
from genkit import config as configuration
from genkit.cli.main import build_app
from genkit.errors import GenkitError
from genkit.export import export_run
from genkit.nn.ema import EMA
from genkit.training import checkpoint
from genkit.training.loop import Trainer
from genkit.training.run import RunFolder

from conftest import assert_one_line_error, assert_same_tensors, straight_and_resumed

RATES = ["train.ema_rates=[0.5, 0.9]"]


def invoke(*args):
    return CliRunner().invoke(build_app(), [str(a) for a in args], env={"COLUMNS": "250"})


@pytest.fixture(scope="module")
def run(tmp_path_factory, registries):
    config = configuration.load_config(registries, "toy2d", flags={"method": "ict", "train.steps": 10}, assignments=[
        "network.width=16", "network.depth=1", "train.batch_size=16", "train.log_every=5", *RATES])
    folder = RunFolder(tmp_path_factory.mktemp("emas") / "run")
    Trainer(config, folder, registries).train()
    return folder.path


def test_each_rate_is_an_average_of_the_online_weights_kept_in_the_checkpoint(tiny_config, registries, tmp_path):
    config = tiny_config("ict", steps=6, extra=RATES)
    assert config.train.ema_rate == 0.5 and config.train.evaluation_ema_rates == [0.5, 0.9]
    trainer = Trainer(config, RunFolder(tmp_path / "run"), registries)
    expected = {rate: EMA(trainer.method.model, rate) for rate in (0.5, 0.9)}
    for _ in range(6):
        trainer.train_step()
        for ema in expected.values():
            ema.update(trainer.method.model)
    trainer.save()
    trainer.close()
    state = checkpoint.load(tmp_path / "run" / "checkpoint.pt")
    assert_same_tensors(state["ema"], expected[0.5].state_dict())  # the first where one EMA always was
    assert list(state["emas"]) == ["0.9"]
    assert_same_tensors(state["emas"]["0.9"], expected[0.9].state_dict())
    assert not all(torch.equal(state["ema"][k], state["emas"]["0.9"][k]) for k in state["ema"])  # two averages


def test_resume_is_exact_for_every_ema(tiny_config, registries, tmp_path):
    straight, resumed = straight_and_resumed(tiny_config("ict", steps=20, extra=RATES), registries, tmp_path, stop_at=10)
    assert_same_tensors(straight.ema.state_dict(), resumed.ema.state_dict())
    for key in ("0.9",):
        assert_same_tensors(straight.other_emas[key].state_dict(), resumed.other_emas[key].state_dict())


def test_load_sample_eval_and_export_choose_the_ema(run, tmp_path):
    first, second = genkit.load(run, device="cpu"), genkit.load(run, ema=0.9, device="cpu")
    assert first.ema_rate == 0.5 and second.ema_rate == 0.9
    assert torch.equal(genkit.load(run, ema=0.5, device="cpu").sample(30), first.sample(30))
    assert not torch.equal(first.sample(30), second.sample(30))
    state = checkpoint.load(run / "checkpoint.pt")
    assert_same_tensors(second.network.state_dict(), state["emas"]["0.9"])

    result = invoke("sample", run, "--num", "30", "--ema", "0.9", "--no-evaluate")
    assert result.exit_code == 0, result.output
    np.testing.assert_array_equal(np.load(run / "samples" / "1step-ema0.9-seed0.npz")["samples"], second.sample(30).numpy())
    assert invoke("eval", run, "--num", "30", "--ema", "0.9").exit_code == 0
    assert invoke("eval", run, "--num", "30").exit_code == 0
    assert sorted(str(r.get("ema")) for r in json.loads((run / "eval.json").read_text())) == ["0.9", "None"]

    assert invoke("export", run, "--ema", "0.9").exit_code == 0
    exported = genkit.load(run / "export" / "model-ema0.9.safetensors", device="cpu")
    assert exported.ema_rate == 0.9 and torch.equal(exported.sample(30), second.sample(30))
    with pytest.raises(GenkitError, match="holds the evaluation EMA at rate 0.9 only"):
        genkit.load(run / "export" / "model-ema0.9.safetensors", ema=0.5)
    assert_one_line_error(invoke("sample", run, "--ema", "0.99"), "`ema` 0.99:", "keeps the evaluation EMAs 0.5, 0.9")


def test_an_old_config_with_ema_rate_alone_loads_and_resumes(tiny_config, registries, tmp_path):
    """A run from before train.ema_rates: its config.toml and its checkpoint's config lack the key."""
    config = tiny_config("ict", steps=5, extra=["train.ema_rate=0.8"])
    assert config.train.evaluation_ema_rates == [0.8]
    folder = RunFolder(tmp_path / "old")
    Trainer(config, folder, registries).train()
    state = checkpoint.load(folder.checkpoint_path)
    assert "emas" not in state  # one EMA: the checkpoint is as before
    del state["config"]["train"]["ema_rates"]
    checkpoint.save_atomic(state, folder.checkpoint_path)
    text = folder.config_path.read_text()
    folder.config_path.write_text("\n".join(line for line in text.splitlines() if not line.startswith("ema_rates")) + "\n")
    assert genkit.load(folder.path, device="cpu").ema_rate == 0.8
    assert genkit.train(out=folder.path, resume=True, steps=8).step == 8


@pytest.mark.parametrize("value, message", [("[0.5, 0.5]", "names a rate twice"), ("[1.5]", "must be numbers in [0, 1)")])
def test_bad_rates_are_one_line(value, message):
    assert_one_line_error(invoke("config", "show", "toy2d", "--set", f"train.ema_rates={value}"), message)
