"""genkit.load, genkit sample and genkit eval on a file written by genkit export: the same model as
its run folder, sampled without the dataset's files."""

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import genkit
from genkit import config as configuration
from genkit import plugins
from genkit.cli.main import build_app
from genkit.errors import GenkitError
from genkit.export import export_run
from genkit.training.loop import Trainer
from genkit.training.run import RunFolder

from conftest import TINY, assert_one_line_error

METHODS = {  # every built-in method, with what it needs to train on toy2d
    "ict": [],
    "ct": [],
    "edm": [],
    "cd": ["methods.cd.teacher.run='{edm}'"],
    "meanflow": ["network.second_time=true"],
    "sct": [],
}


def invoke(*args):
    return CliRunner().invoke(build_app(), [str(a) for a in args], env={"COLUMNS": "250"})


@pytest.fixture(scope="module")
def runs(tmp_path_factory, registries):
    """Each method trained for 4 tiny steps (cd from the edm run), and exported."""
    root = tmp_path_factory.mktemp("export")
    made = {}
    for method, extra in METHODS.items():
        assignments = TINY + [e.format(edm=made.get("edm")) for e in extra]
        config = configuration.load_config(registries, "toy2d", assignments=assignments, flags={"method": method, "train.steps": 4})
        Trainer(config, RunFolder(root / method), registries).train()
        made[method] = root / method
    return {method: (run, export_run(run, registries)) for method, run in made.items()}


@pytest.mark.parametrize("method", list(METHODS))
def test_an_export_samples_exactly_as_its_run(runs, method):
    run, exported = runs[method]
    from_run, from_file = genkit.load(run, device="cpu"), genkit.load(exported, device="cpu")
    assert from_file.step == from_run.step == 4 and from_file.config.to_dict() == from_run.config.to_dict()
    for steps in (None, 2):  # the method's default, and 2 consistency steps (EDM: 2 Heun levels)
        assert torch.equal(from_file.sample(50, steps=steps, seed=3), from_run.sample(50, steps=steps, seed=3)), steps
    assert from_file.network.state_dict().keys() == from_run.network.state_dict().keys()
    assert from_file.evaluate(num=50) == from_run.evaluate(num=50)


def test_an_export_samples_without_its_dataset(runs, registries, monkeypatch, tmp_path):
    """The data's shape, range and classes come from the export: a dataset whose files are missing
    is built only to score, and `genkit sample` then says why it did not score."""
    _, exported = runs["ict"]
    with_data = genkit.load(exported, device="cpu").sample(20, steps=1)

    def missing(component, ctx):
        raise GenkitError("dataset 'checkerboard' not found in /nowhere")

    monkeypatch.setattr(plugins.registries().datasets, "build", missing)  # the live registries: tests before may have reloaded plugins
    model = genkit.load(exported, device="cpu")
    assert torch.equal(model.sample(20, steps=1), with_data)
    with pytest.raises(GenkitError, match="not found in /nowhere"):
        model.evaluate(num=20)
    result = invoke("sample", exported, "--num", "20", "--steps", "1")
    assert result.exit_code == 0, result.output
    assert "not scored: dataset 'checkerboard' not found" in result.output
    written = exported.parent / "model-samples" / "1step-seed0.npz"  # beside the export
    np.testing.assert_array_equal(np.load(written)["samples"], with_data.numpy())
    assert (exported.parent / "model-samples" / "1step-seed0.png").is_file()


def test_sample_and_eval_of_an_export_write_beside_it_or_to_out(runs, tmp_path):
    run, exported = runs["ict"]
    copy = tmp_path / "mine.safetensors"
    copy.write_bytes(exported.read_bytes())
    assert invoke("eval", copy, "--num", "30", "--steps", "1").exit_code == 0
    records = json.loads((tmp_path / "mine-eval.json").read_text())
    assert records[0]["step"] == 4 and records[0]["steps"] == 1
    assert invoke("eval", copy, "--num", "30", "--out", tmp_path / "scores.json").exit_code == 0
    assert (tmp_path / "scores.json").is_file()
    result = invoke("sample", copy, "--num", "30", "--no-evaluate", "--out", tmp_path / "x.npz")
    assert result.exit_code == 0, result.output
    np.testing.assert_array_equal(np.load(tmp_path / "x.npz")["samples"], genkit.load(run, device="cpu").sample(30).numpy())


def test_a_file_that_is_no_export_is_one_line(tmp_path):
    other = tmp_path / "weights.safetensors"
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, str(other))
    assert_one_line_error(invoke("sample", other), "is not a genkit export")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a safetensors file")
    assert_one_line_error(invoke("sample", junk), "is not a safetensors file genkit can read")
