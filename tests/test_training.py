"""The training loop: exact resume, atomic checkpoints, clean interruption, metrics log."""

import json
import os
import signal

import pytest
import torch

from genkit.errors import GenkitError
from genkit.training import checkpoint
from genkit.training.loop import Trainer, TrainingInterrupted
from genkit.training.run import RunFolder, new_run_path

from conftest import assert_same_tensors, straight_and_resumed


def weights(trainer):
    return {**trainer.method.state_dict(), **{f"ema.{k}": v for k, v in trainer.ema.state_dict().items()}}


def test_interrupted_and_resumed_run_equals_uninterrupted_run(tiny_config, registries, tmp_path):
    # dropout on, so the replayed random state matters too
    config = tiny_config("ict", steps=24, extra=["network.dropout=0.2", "train.checkpoint_every=100"])
    straight, resumed = straight_and_resumed(config, registries, tmp_path, stop_at=13)
    assert resumed.step == straight.step == 24
    assert_same_tensors(weights(straight), weights(resumed))
    logged = lambda run, key: [r[key] for r in RunFolder(run).metrics()]  # noqa: E731
    assert logged(tmp_path / "straight", "step") == logged(tmp_path / "resumed", "step") == [5, 10, 15, 20, 24]
    # the log window straddling the stop (steps 11-15) is checkpointed too
    assert logged(tmp_path / "straight", "loss") == logged(tmp_path / "resumed", "loss")


def interrupt_inside_step(trainer, at_step: int, times: int = 1):
    """Send SIGINT from inside the optimizer step of iteration ``at_step``, as a user's Ctrl-C."""
    real = trainer.optimizer.step

    def step(*args, **kwargs):
        if trainer.step == at_step:
            for _ in range(times):
                os.kill(os.getpid(), signal.SIGINT)
        return real(*args, **kwargs)

    trainer.optimizer.step = step


def test_ctrl_c_mid_step_finishes_the_step_saves_and_resumes_exactly(tiny_config, registries, tmp_path):
    config = tiny_config("ict", steps=20, extra=["network.dropout=0.2", "train.checkpoint_every=1000"])
    straight = Trainer(config, RunFolder(tmp_path / "straight"), registries)
    straight.train()

    interrupted = Trainer(config, RunFolder(tmp_path / "run"), registries)
    interrupt_inside_step(interrupted, at_step=7)
    with pytest.raises(TrainingInterrupted, match="interrupted at step 8") as stop:
        interrupted.train()
    assert stop.value.run_path == tmp_path / "run"  # the CLI adds the resume command for it
    resumed = Trainer(config, RunFolder(tmp_path / "run"), registries, resume=True)
    assert resumed.step == 8
    resumed.train()
    assert_same_tensors(weights(straight), weights(resumed))


def test_second_ctrl_c_stops_at_once_and_keeps_the_last_checkpoint(tiny_config, registries, tmp_path):
    config = tiny_config("ict", steps=20, extra=["train.checkpoint_every=5"])
    trainer = Trainer(config, RunFolder(tmp_path), registries)
    interrupt_inside_step(trainer, at_step=7, times=2)
    with pytest.raises(TrainingInterrupted, match=r"stopped at once; the last checkpoint \(step 5\) is intact"):
        trainer.train()
    assert Trainer(config, RunFolder(tmp_path), registries, resume=True).step == 5


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.pt"
    checkpoint.save_atomic({"step": 1, "w": torch.ones(3)}, path)

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(OSError):
        checkpoint.save_atomic({"step": 2, "w": torch.zeros(3)}, path)
    state = checkpoint.load(path)
    assert state["step"] == 1 and torch.equal(state["w"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]  # no temporary left behind


def test_checkpoint_load_refuses_pickled_code(tmp_path):
    class Payload:
        def __reduce__(self):
            return (print, ("executed!",))

    path = tmp_path / "evil.pt"
    torch.save({"x": Payload()}, path)
    with pytest.raises(GenkitError, match="holds code or objects genkit will not load") as error:
        checkpoint.load(path)
    assert "weights_only=False" not in str(error.value)  # no advice to run the payload


def test_corrupt_checkpoint_is_a_clear_error(tmp_path):
    path = tmp_path / "checkpoint.pt"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(GenkitError, match=r"is not a genkit checkpoint \(not a torch save file, or damaged\)"):
        checkpoint.load(path)


def test_run_folder_holds_config_metrics_and_everything_to_resume(tiny_config, registries, tmp_path):
    config = tiny_config("ict", steps=10)
    trainer = Trainer(config, RunFolder(tmp_path), registries)
    trainer.train()
    assert (tmp_path / "config.toml").is_file()
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [5, 10]
    assert all({"loss", "num_levels", "elapsed_s"} <= r.keys() for r in records)
    state = checkpoint.load(tmp_path / "checkpoint.pt")
    assert {"step", "method", "ema", "optimizer", "rng", "config", "elapsed_s"} <= state.keys()
    assert state["config"] == config.to_dict()


def test_resume_drops_metrics_logged_after_the_checkpoint(tiny_config, registries, tmp_path):
    config = tiny_config("ict", steps=20)
    trainer = Trainer(config, RunFolder(tmp_path), registries)
    trainer.train(until=10)
    RunFolder(tmp_path).append_metrics({"step": 15, "loss": 1.0})  # logged, then killed before a checkpoint
    Trainer(config, RunFolder(tmp_path), registries, resume=True)
    assert [r["step"] for r in RunFolder(tmp_path).metrics()] == [5, 10]


def test_evaluation_during_training_is_logged(tiny_config, registries, tmp_path):
    config = tiny_config("ict", steps=10, extra=["train.eval_every=5", "train.eval_samples=64"])
    Trainer(config, RunFolder(tmp_path), registries).train()
    evals = [r for r in RunFolder(tmp_path).metrics() if "eval" in r]
    assert [r["step"] for r in evals] == [5, 10]
    assert set(evals[0]["eval"]) == {"swd", "frechet2d"}


def test_new_run_path_never_reuses_a_folder(tmp_path):
    base = tmp_path / "ict-toy2d"
    assert new_run_path(base) == base
    base.mkdir()
    assert new_run_path(base).name == "ict-toy2d-2"
