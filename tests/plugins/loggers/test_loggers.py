"""Training loggers: the register_loggers hook, train.loggers, and the built-in tensorboard logger."""

import importlib.metadata
import sys
import types

import pytest
from typer.testing import CliRunner

from genkit import config as configuration
from genkit import hookimpl, plugins
from genkit.api import load
from genkit.errors import GenkitError, LoggerWarning
from genkit.cli.main import build_app
from genkit.api import resumable_run
from genkit.training.loop import Trainer
from genkit.training.run import RunFolder

from conftest import TINY, assert_one_line_error


class FakeLogger:
    """Keeps what it is given, so a test can compare it with metrics.jsonl."""

    built: list["FakeLogger"] = []

    def __init__(self, options, ctx):
        self.run_path, self.records, self.closed = ctx.run_path, [], 0
        FakeLogger.built.append(self)

    def log(self, record):
        self.records.append(record)

    def close(self):
        self.closed += 1


class FakeEntryPoint:
    name, value = "fake-loggers", "fake_loggers"
    dist = types.SimpleNamespace(metadata={"Name": "fake-loggers"}, version="1.0")

    def load(self):
        module = types.ModuleType("fake_loggers")
        module.register_loggers = hookimpl(lambda register: register("fake", FakeLogger))
        return module


@pytest.fixture
def with_fake_logger(monkeypatch):
    """The registries as a third-party plugin that registers logger 'fake' makes them."""
    builtin = [ep for ep in importlib.metadata.entry_points(group="genkit") if plugins._is_builtin(ep)]
    monkeypatch.setattr(plugins, "entry_points", lambda: builtin + [FakeEntryPoint()])
    plugins.reset()
    FakeLogger.built.clear()
    yield plugins.registries()
    plugins.reset()


def tiny(registries, steps=20, extra=()):
    return configuration.load_config(registries, "toy2d", assignments=TINY + list(extra), flags={"method": "ict", "train.steps": steps})


def test_a_plugin_logger_gets_every_record_of_metrics_jsonl_and_is_closed(with_fake_logger, tmp_path):
    config = tiny(with_fake_logger, extra=['train.loggers=["fake"]', "train.eval_every=10", "train.eval_samples=64"])
    run = RunFolder(tmp_path / "run")
    Trainer(config, run, with_fake_logger).train()
    (logger,) = FakeLogger.built
    assert logger.run_path == run.path and logger.closed == 1
    assert logger.records == list(run.metrics())
    assert [r["step"] for r in logger.records if "eval" in r] == [10, 20]
    assert {"step", "loss", "elapsed_s", "num_levels", "distance"} <= set(logger.records[0])


def test_a_logger_that_raises_is_disabled_with_a_warning_and_the_run_goes_on(with_fake_logger, tmp_path, monkeypatch):
    calls = []

    def broken_log(self, record):
        calls.append(record["step"])
        raise ConnectionError("tracker unreachable")

    monkeypatch.setattr(FakeLogger, "log", broken_log)
    run = RunFolder(tmp_path / "run")
    with pytest.warns(LoggerWarning, match="logger FakeLogger disabled: its log\\(\\) failed \\(ConnectionError: tracker unreachable\\)"):
        Trainer(tiny(with_fake_logger, extra=['train.loggers=["fake"]']), run, with_fake_logger).train()
    assert calls == [5]  # disabled after its first failure
    assert [r["step"] for r in run.metrics()] == [5, 10, 15, 20] and FakeLogger.built[0].closed == 1


def test_a_run_logged_by_a_plugin_loads_without_that_plugin(with_fake_logger, tmp_path, monkeypatch):
    run = RunFolder(tmp_path / "run")
    Trainer(tiny(with_fake_logger, steps=5, extra=['train.loggers=["fake"]']), run, with_fake_logger).train()
    builtin = [ep for ep in importlib.metadata.entry_points(group="genkit") if plugins._is_builtin(ep)]
    monkeypatch.setattr(plugins, "entry_points", lambda: builtin)
    plugins.reset()
    assert load(run.path).sample(4).shape == (4, 2)  # loggers are only built for training


def test_loggers_default_to_none_and_an_unknown_one_fails_before_training(registries, tmp_path):
    assert tiny(registries).train.loggers == []
    with pytest.raises(GenkitError, match=r"train\.loggers\[0\]: unknown logger 'tensorbord' \(did you mean 'tensorboard'\?\)"):
        tiny(registries, extra=['train.loggers=["tensorbord"]'])


def test_tensorboard_logger_writes_scalars_into_the_run_folder(registries, tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    config = tiny(registries, extra=['train.loggers=["tensorboard"]', "train.eval_every=10", "train.eval_samples=64"])
    run = RunFolder(tmp_path / "run")
    Trainer(config, run, registries).train()
    assert list((run.path / "tensorboard").glob("events.out.tfevents.*"))
    events = EventAccumulator(str(run.path / "tensorboard"))
    events.Reload()
    assert {"loss", "elapsed_s", "eval/swd"} <= set(events.Tags()["scalars"])
    logged = [(r["step"], r["loss"]) for r in run.metrics() if "loss" in r]
    assert [(e.step, pytest.approx(e.value, rel=1e-6)) for e in events.Scalars("loss")] == logged


def test_missing_tensorboard_is_one_line_before_training(monkeypatch, tmp_path):
    for module in ("tensorboard", "torch.utils.tensorboard"):
        monkeypatch.setitem(sys.modules, module, None)  # import fails as if not installed
    flags = [part for item in TINY + ['train.loggers=["tensorboard"]'] for part in ("--set", item)]
    result = CliRunner().invoke(build_app(), ["train", "--steps", "5", "--out", str(tmp_path / "run"), *flags])
    assert_one_line_error(result, "logger 'tensorboard'", "pip install tensorboard")
    assert not (tmp_path / "run" / "config.toml").exists()


class FakeWandB:
    """Stands in for the wandb package: keeps what the logger gives it."""

    def __init__(self):
        self.inits, self.rows, self.finished = [], [], 0

    def init(self, **settings):
        self.inits.append(settings)
        return self

    def log(self, row, step):
        self.rows.append((step, row))

    def finish(self):
        self.finished += 1


def test_wandb_logger_logs_every_record_with_the_config_and_resumes_the_same_wandb_run(registries, tmp_path, monkeypatch):
    from genkit_loggers import wandb_logger

    fake = FakeWandB()
    monkeypatch.setattr(wandb_logger, "wandb_module", lambda: fake)
    run = RunFolder(tmp_path / "run")
    Trainer(tiny(registries, steps=10, extra=['train.loggers=["wandb"]']), run, registries).train()
    Trainer(resumable_run(run.path, registries, steps=15)[1], run, registries, resume=True).train()
    first, again = fake.inits
    assert first["id"] == again["id"] and first["resume"] == again["resume"] == "allow"  # one W&B run per run folder
    assert first["config"]["method"] == "ict" and first["dir"] == str(run.path) and first["name"] == "run"
    assert [step for step, _ in fake.rows] == [r["step"] for r in run.metrics()] == [5, 10, 15]
    assert fake.rows[-1][1]["loss"] == pytest.approx(list(run.metrics())[-1]["loss"]) and fake.finished == 2


def test_wandb_logger_runs_offline_where_wandb_is_installed(registries, tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    run = RunFolder(tmp_path / "run")
    Trainer(tiny(registries, steps=10, extra=['train.loggers=["wandb"]']), run, registries).train()
    run_id = (run.path / "wandb" / "run-id").read_text().strip()
    assert len(list((run.path / "wandb").glob(f"offline-run-*-{run_id}/run-{run_id}.wandb"))) == 1


def test_wandb_logger_without_the_package_is_one_line_before_training(registries, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)  # as if not installed
    with pytest.raises(GenkitError, match=r"logger 'wandb' needs the wandb package: pip install wandb"):
        Trainer(tiny(registries, steps=5, extra=['train.loggers=["wandb"]']), RunFolder(tmp_path / "run"), registries).train()
    assert not (tmp_path / "run" / "checkpoint.pt").exists()
