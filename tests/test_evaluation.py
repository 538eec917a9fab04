"""Evaluators chosen by name, checked against the data, with cached reference statistics, and
`genkit eval`."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from genkit.errors import GenkitError
from genkit.evaluation import frechet_distance, gaussian_stats, score
from genkit.evaluation import cache
from genkit.training.loop import Trainer
from genkit.training.run import RunFolder

from conftest import assert_one_line_error


def test_identical_statistics_are_at_distance_zero():
    import torch

    x = torch.randn(500, 6, dtype=torch.float64)
    assert frechet_distance(*gaussian_stats(x), *gaussian_stats(x)) == pytest.approx(0, abs=1e-9)


def test_statistics_are_computed_once_and_again_when_their_key_changes(tmp_path, monkeypatch):
    monkeypatch.setenv("GENKIT_CACHE", str(tmp_path))
    calls = []

    def compute():
        calls.append(1)
        return {"mu": np.arange(3.0)}

    first = cache.cached({"data": "fmnist", "split": "train"}, compute)
    again = cache.cached({"split": "train", "data": "fmnist"}, compute)  # same key, other order
    other = cache.cached({"data": "fmnist", "split": "test"}, compute)
    assert len(calls) == 2 and np.array_equal(first["mu"], again["mu"]) and np.array_equal(other["mu"], first["mu"])
    assert len(list((tmp_path / "stats").glob("*.npz"))) == 2


class Picky:
    """An evaluator that scores nothing but 3-D data, and keeps prepared statistics."""

    def __init__(self, options=None, ctx=None):
        self.prepared = None

    def accepts(self, dataset) -> str:
        return "" if len(dataset.shape) == 3 else f"it scores images, this data has shape {tuple(dataset.shape)}"

    def prepare(self, dataset, data_options):
        self.prepared = data_options

    def __call__(self, samples, reference):
        return {"precision": 0.5, "recall": 0.25}


def test_an_evaluator_that_cannot_score_the_data_is_refused_before_training(registries, tiny_config, tmp_path, monkeypatch):
    registries.evaluators.add("picky", Picky, plugin="test")
    try:
        config = tiny_config("ict", extra=['eval.metrics=["picky"]', "train.eval_every=5"])
        with pytest.raises(GenkitError, match=r"evaluator 'picky' cannot score data 'checkerboard': it scores images, this data has shape \(2,\)"):
            Trainer(config, RunFolder(tmp_path / "run"), registries)
        assert not (tmp_path / "run" / "checkpoint.pt").exists()
    finally:
        registries.evaluators._entries.pop("picky")


def test_several_values_of_one_evaluator_are_scored_by_name():
    assert score(None, None, {"pr": Picky()}) == {"pr/precision": 0.5, "pr/recall": 0.25}


def test_genkit_eval_prints_and_records_each_step_count(tiny_config, registries, tmp_path):
    from genkit.cli.main import build_app

    Trainer(tiny_config("ict", steps=10), RunFolder(tmp_path / "run"), registries).train()
    args = ["eval", str(tmp_path / "run"), "--metric", "swd", "--steps", "1", "--steps", "2", "--num", "300"]
    result = CliRunner().invoke(build_app(), args)
    assert result.exit_code == 0, result.output
    records = json.loads((tmp_path / "run" / "eval.json").read_text())
    assert [(r["steps"], list(r["scores"])) for r in records] == [(1, ["swd"]), (2, ["swd"])]
    CliRunner().invoke(build_app(), args)  # the same settings again replace, not repeat
    assert len(json.loads((tmp_path / "run" / "eval.json").read_text())) == 2
    assert_one_line_error(CliRunner().invoke(build_app(), ["eval", str(tmp_path / "run"), "--metric", "swdd"]), "unknown evaluator 'swdd' (did you mean 'swd'?)")
