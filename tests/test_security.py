"""Hostile files: no code runs from a dataset, no write follows a planted link, no user folder is
taken for a run, no non-finite checkpoint is called good, and damaged files are one-line errors."""

import json
import os
import pickle
import tomllib
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from genkit.errors import GenkitError, TrainingDiverged
from genkit.schema import to_toml
from genkit.training import checkpoint, lock
from genkit.training.loop import Trainer
from genkit.training.run import RunFolder

from conftest import TINY, assert_one_line_error

runner = CliRunner()


def invoke(*args):
    from genkit.cli.main import build_app

    return runner.invoke(build_app(), [str(a) for a in args])


def one_line(error: pytest.ExceptionInfo) -> str:
    message = str(error.value)
    assert "\n" not in message, message
    return message


@pytest.fixture
def trained_run(tiny_config, registries, tmp_path):
    Trainer(tiny_config("ict", steps=10), RunFolder(tmp_path / "run"), registries).train()
    return tmp_path / "run"


# ----------------------------------------------------------------------------- 1. code in dataset files


class RunsACommand:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_crafted_cifar_batch_is_refused_and_runs_nothing(tmp_path):
    from genkit_images import formats
    from test_images import write_cifar

    write_cifar(tmp_path)
    marker = tmp_path / "it-ran"
    batch = tmp_path / "cifar-10-batches-py" / "data_batch_1"
    batch.write_bytes(pickle.dumps({"data": RunsACommand(marker), "labels": []}, protocol=2))
    with pytest.raises(GenkitError) as error:
        formats.read_cifar(tmp_path / "cifar-10-batches-py", "train")
    assert "posix.system" in one_line(error) and "refused" in str(error.value)
    assert not marker.exists()


def test_a_cifar_batch_in_python_2_layout_still_reads(tmp_path):
    """The official batches: protocol 2, numpy arrays under numpy.core (numpy 1's name)."""
    from genkit_images import formats

    data = np.arange(2 * 3072, dtype=np.uint8).reshape(2, 3072)
    raw = pickle.dumps({b"batch_label": b"x", b"labels": [3, 4], b"data": data, b"filenames": [b"a.png", b"b.png"]}, protocol=2)
    (tmp_path / "test_batch").write_bytes(raw.replace(b"numpy._core.multiarray", b"numpy.core.multiarray"))
    images, labels = formats.read_cifar(tmp_path, "test")
    assert images.shape == (2, 3, 32, 32) and labels.tolist() == [3, 4] and np.array_equal(images.reshape(2, -1), data)


def test_an_npz_of_pickled_objects_is_refused(tmp_path):
    from genkit_images import formats

    np.savez(tmp_path / "a.npz", data=np.array([RunsACommand(tmp_path / "it-ran")], dtype=object))
    with pytest.raises(GenkitError):
        formats.npz_member(tmp_path / "a.npz", "data")
    assert not (tmp_path / "it-ran").exists()


# ----------------------------------------------------------------------------- 6. TOML strings


def test_every_control_character_round_trips_through_toml():
    text = "".join(map(chr, range(0x20))) + "\x7f" + "\"quoted\" back\\slash \\u0041 'single' é 日本 😀"
    values = {"data": {"root": text, "paths": [text, "a\nb"]}, "weird key\n": "x", "é": "bare keys are ASCII"}
    assert tomllib.loads(to_toml(values)) == values
    for code in [*range(0x20), 0x7F]:
        assert tomllib.loads(to_toml({"s": chr(code)})) == {"s": chr(code)}


def test_a_newline_in_a_path_leaves_a_readable_run(tmp_path, registries):
    from genkit import config as configuration

    root = str(tmp_path / "data\nroot\t\x1b[31m")
    config = configuration.load_config(registries, "fmnist", assignments=[f"data.root={json.dumps(root)}"])
    RunFolder(tmp_path / "run").write_config(config)
    assert str(RunFolder(tmp_path / "run").read_config(registries).data.options.root) == root

