"""genkit curves, genkit export and train.keep_snapshots."""

import os
import sys

import pytest
import torch
from typer.testing import CliRunner

from genkit import config as configuration
from genkit.cli.main import build_app
from genkit.errors import GenkitError
from genkit.training import checkpoint
from genkit.training.loop import Trainer
from genkit.training.run import CONFIG_HEADER, RunFolder

from conftest import assert_one_line_error

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def invoke(*args):
    return CliRunner().invoke(build_app(), [str(a) for a in args])


@pytest.fixture(scope="module")
def trained(tmp_path_factory, registries):
    """One tiny finished run with evaluation records, shared by the read-only tests."""
    config = configuration.load_config(
        registries, "toy2d", flags={"method": "ict", "train.steps": 20},
        assignments=["network.width=32", "network.depth=1", "train.batch_size=64", "train.log_every=5",
                     "train.eval_every=10", "train.eval_samples=64", "train.ema_rate=0.9"],
    )
    run = RunFolder(tmp_path_factory.mktemp("trained") / "run")
    Trainer(config, run, registries).train()
    return run


# ----------------------------------------------------------------------------- curves


def test_curves_draws_a_png_into_the_run_folder_or_out(trained, tmp_path):
    result = invoke("curves", trained.path)
    assert result.exit_code == 0, result.output
    assert (trained.path / "curves.png").read_bytes()[:8] == PNG_MAGIC
    result = invoke("curves", trained.path, "--out", tmp_path / "deeper" / "c.png")
    assert result.exit_code == 0 and (tmp_path / "deeper" / "c.png").read_bytes()[:8] == PNG_MAGIC


def test_curves_of_a_missing_run_or_an_empty_log_is_one_line(trained, tmp_path):
    assert_one_line_error(invoke("curves", tmp_path / "nowhere"), "run folder not found")
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "config.toml").write_text(CONFIG_HEADER + (trained.path / "config.toml").read_text().removeprefix(CONFIG_HEADER))
    result = invoke("curves", empty)
    assert_one_line_error(result, "no training records yet")
    assert result.exit_code == 1
    (empty / "metrics.jsonl").write_text('{"step": 5, "loss": 0.1}\n{"step": 1')
    assert_one_line_error(invoke("curves", empty), "is not JSON lines")


# ----------------------------------------------------------------------------- export


def test_export_writes_the_ema_weights_and_the_config_without_pickle(trained, registries):
    from safetensors import safe_open
    from safetensors.torch import load_file

    result = invoke("export", trained.path, "--format", "safetensors")
    assert result.exit_code == 0, result.output
    path = trained.path / "export" / "model.safetensors"
    weights = load_file(path)
    state = checkpoint.load(trained.checkpoint_path)
    assert weights.keys() == state["ema"].keys()
    assert all(torch.equal(weights[k], state["ema"][k]) for k in weights)
    online = {k: state["method"][f"model.{k}"] for k in weights}
    assert not all(torch.equal(weights[k], online[k]) for k in weights)  # the EMA, not the online weights
    with safe_open(path, "pt") as handle:
        metadata = handle.metadata()
    assert metadata["format"] == "pt" and metadata["genkit_version"] and metadata["genkit_step"] == "20"
    layers = configuration.Layers()
    layers.add(tomllib.loads(metadata["config"]), "export")
    assert configuration.resolve(layers, registries).to_dict() == trained.read_config(registries).to_dict()


def test_export_to_out_and_unknown_format(trained, tmp_path):
    assert invoke("export", trained.path, "--out", tmp_path / "m.safetensors").exit_code == 0
    assert (tmp_path / "m.safetensors").is_file()
    result = invoke("export", trained.path, "--format", "onnx")
    assert_one_line_error(result, "unknown export format 'onnx'", "safetensors")
    assert_one_line_error(invoke("export", tmp_path / "nowhere"), "run folder not found")


# ----------------------------------------------------------------------------- snapshots


def snapshot_config(registries, steps, keep=2):
    return configuration.load_config(
        registries, "toy2d", flags={"method": "ict", "train.steps": steps},
        assignments=["network.width=32", "network.depth=1", "train.batch_size=64", "train.log_every=5",
                     "train.checkpoint_every=10", f"train.keep_snapshots={keep}"],
    )


def steps_of(run):
    return [step for step, _ in run.snapshots()]


def test_snapshots_keep_the_last_n_besides_the_latest_and_resume_ignores_them(registries, tmp_path):
    run = RunFolder(tmp_path / "run")
    Trainer(snapshot_config(registries, 50), run, registries).train()
    assert steps_of(run) == [30, 40, 50]
    assert os.path.samefile(run.snapshots_path / "step-0000050.pt", run.checkpoint_path)  # a link, not a copy
    assert checkpoint.load(run.snapshots_path / "step-0000030.pt")["step"] == 30
    (run.snapshots_path / "notes.txt").write_text("mine")
    stray = run.snapshots_path / "step-0000999.pt"
    stray.write_bytes((run.snapshots_path / "step-0000030.pt").read_bytes())
    resumed = Trainer(snapshot_config(registries, 60), run, registries, resume=True)
    assert resumed.step == 50  # from checkpoint.pt, not the newest snapshot
    resumed.train()
    assert steps_of(run) == [40, 50, 60, 999] and (run.snapshots_path / "notes.txt").is_file()
    assert checkpoint.load(run.snapshots_path / "step-0000050.pt")["step"] == 50


def test_snapshots_are_copied_where_hard_links_fail_and_off_by_default(registries, tmp_path, monkeypatch):
    def no_links(*args):
        raise OSError("hard links not supported")

    monkeypatch.setattr(os, "link", no_links)
    run = RunFolder(tmp_path / "run")
    Trainer(snapshot_config(registries, 20, keep=1), run, registries).train()
    assert steps_of(run) == [10, 20]
    assert not os.path.samefile(run.snapshots_path / "step-0000020.pt", run.checkpoint_path)
    assert checkpoint.load(run.snapshots_path / "step-0000020.pt")["step"] == 20
    assert snapshot_config(registries, 20, keep=0).train.keep_snapshots == 0
    off = RunFolder(tmp_path / "off")
    Trainer(snapshot_config(registries, 10, keep=0), off, registries).train()
    assert not off.snapshots_path.exists()
    with pytest.raises(GenkitError, match="train.keep_snapshots must not be negative"):
        snapshot_config(registries, 10, keep=-1)


def test_curves_mark_where_the_curriculum_changed_the_discretization(trained):
    from genkit.pictures import stage_boundaries

    records = [{"step": 5, "loss": 1.0, "num_levels": 11}, {"step": 10, "loss": 0.9, "num_levels": 11},
               {"step": 10, "eval": {"swd": 0.1}}, {"step": 15, "loss": 1.2, "num_levels": 21}, {"step": 20, "loss": 1.1, "num_levels": 41}]
    assert stage_boundaries(records) == [15, 20]
    assert stage_boundaries([{"step": 5, "loss": 1.0}]) == []  # EDM logs no N(k)
    assert stage_boundaries(list(trained.metrics())) == [10, 15]  # iCT doubling N(k) over 20 steps, capped by step 15
