"""fd_fmnist and pr_fmnist: offline measures in the features of genkit's Fashion-MNIST classifier."""

from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from genkit import config as configuration
from genkit.build import build
from genkit.errors import GenkitError
from genkit.evaluation import build_evaluators, score
from genkit_fid import evaluators as fmnist_evaluators
from genkit_fid.evaluators import precision_recall

DEBIAN = Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")


def garment_npz(tmp_path: Path) -> Path:
    """120 grey 32x32 'garments': bright rectangles of varied size on black."""
    rng = np.random.default_rng(1)
    images = np.zeros((120, 32, 32, 1), dtype=np.uint8)
    for image in images:
        top, left, height, width = rng.integers(2, 8), rng.integers(2, 8), rng.integers(10, 24), rng.integers(8, 22)
        image[top : top + height, left : left + width] = rng.integers(120, 255)
    np.savez(tmp_path / "garments.npz", images=images)
    return tmp_path / "garments.npz"


def built_with(registries, data: Path, metrics='["fd_fmnist", "pr_fmnist"]'):
    config = configuration.load_config(
        registries, "fmnist", assignments=["data.name=npz", f"data.path={data}", f"eval.metrics={metrics}"], flags={"method": "ict"}
    )
    return build(config, registries)


def test_training_statistics_are_prepared_once_and_score_the_data_near_zero(registries, tmp_path, monkeypatch):
    built = built_with(registries, garment_npz(tmp_path))
    calls = []
    real = fmnist_evaluators.training_features
    monkeypatch.setattr(fmnist_evaluators, "training_features", lambda *a: calls.append(1) or real(*a))
    evaluators = build_evaluators(built)
    build_evaluators(built)  # the cache answers: no second pass over the training images
    assert len(calls) == 2  # one for fd_fmnist's statistics, one for pr_fmnist's features
    training = torch.cat(list(built.dataset.training_images()))
    scores = score(training, None, evaluators)
    assert scores["fd_fmnist"] == pytest.approx(0, abs=1e-3)
    assert scores["pr_fmnist/precision"] == 1.0 and scores["pr_fmnist/recall"] == 1.0
    noise = score(torch.rand_like(training) * 2 - 1, None, evaluators)
    assert noise["fd_fmnist"] > 10 and noise["pr_fmnist/precision"] < 0.5


def test_precision_and_recall_follow_their_definitions():
    real = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    inside, outside = real + 0.1, real + 10
    assert precision_recall(real, inside, k=1)["precision"] == 1.0
    assert precision_recall(real, outside, k=1) == {"precision": 0.0, "recall": 0.0}


def test_fd_fmnist_refuses_data_it_cannot_score(registries, tiny_config):
    config = tiny_config("ict", extra=['eval.metrics=["fd_fmnist"]'])
    with pytest.raises(GenkitError, match=r"evaluator 'fd_fmnist' cannot score data 'checkerboard': it scores 1x32x32 grey images"):
        build_evaluators(build(config, registries))


@pytest.mark.slow
@pytest.mark.skipif(not DEBIAN.is_file(), reason="Debian's dataset-fashion-mnist is not installed")
def test_the_fmnist_bench_runs_end_to_end_at_a_tiny_budget(tmp_path):
    from genkit.cli.main import build_app

    args = ["bench", "cd-vs-ict", "--preset", "fmnist", "--set", "steps=2", "--set", "eval_samples=20", "--set", "search_samples=20", "--set", "search_iterations=1", "--out", str(tmp_path / "bench")]
    result = CliRunner().invoke(build_app(), args)
    assert result.exit_code == 0, result.output
    report = (tmp_path / "bench" / "report.md").read_text()
    assert "fd_fmnist" in report and "pr_fmnist/precision" in report and "verdict" in report.lower()
