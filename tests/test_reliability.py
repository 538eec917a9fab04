"""Hostile and clumsy use: no lost runs, no silent divergence, one-line errors instead of tracebacks."""

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from genkit import config as configuration
from genkit.api import load
from genkit.errors import GenkitError, TrainingDiverged
from genkit.training import checkpoint, lock
from genkit.cli.errors import resume_command
from genkit.training.loop import Trainer
from genkit.training.run import RunFolder

from conftest import TINY, assert_one_line_error

runner = CliRunner()


def invoke(*args):
    from genkit.cli.main import build_app

    return runner.invoke(build_app(), [str(a) for a in args])


@pytest.fixture
def trained_run(tiny_config, registries, tmp_path):
    Trainer(tiny_config("ict", steps=10), RunFolder(tmp_path / "run"), registries).train()
    return tmp_path / "run"


def genkit_process(*args, **popen):
    """The installed command in a new process (the same interpreter, so the same install)."""
    code = "from genkit.cli.main import run; run()"
    return subprocess.Popen([sys.executable, "-c", code, *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)


def wait_for(predicate, seconds: float = 60):
    deadline = time.time() + seconds
    while not predicate():
        if time.time() > deadline:
            raise TimeoutError("gave up waiting")
        time.sleep(0.1)


SLOW_TRAIN = ["train", "--steps", "100000", *[f"--set={s}" for s in TINY], "--set", "train.checkpoint_every=20"]


# ----------------------------------------------------------------------------- data loss


@pytest.mark.slow
def test_a_second_process_is_refused_and_a_killed_holder_blocks_nothing(tmp_path, registries, tiny_config):
    run = tmp_path / "run"
    holder = genkit_process(*SLOW_TRAIN, "--out", run)
    try:
        wait_for(lambda: (run / "checkpoint.pt").is_file())
        with pytest.raises(GenkitError, match=rf"{run} is in use by process {holder.pid} on host \S+ \(.*train"):
            lock.acquire(run)
        with pytest.raises(GenkitError, match="is in use by process"):  # a resume is refused as well
            Trainer(RunFolder(run).read_config(registries), RunFolder(run), registries, resume=True)
    finally:
        holder.kill()  # kill -9: no handler runs, the lock file stays behind
        holder.wait()
    assert (run / lock.LOCK_FILE).is_file()
    resumed = Trainer(RunFolder(run).read_config(registries), RunFolder(run), registries, resume=True)
    assert resumed.step >= 20
    resumed.close()


@pytest.mark.slow
def test_double_ctrl_c_says_what_happened_and_exits_130(tmp_path):
    process = genkit_process(*SLOW_TRAIN, "--out", tmp_path / "run")
    wait_for(lambda: (tmp_path / "run" / "metrics.jsonl").is_file())
    process.send_signal(signal.SIGINT)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130
    assert "error:" in stderr and "genkit train --resume --out" in stderr and "Traceback" not in stderr


def test_a_new_run_goes_only_into_an_empty_folder_or_a_genkit_run(tmp_path, registries, tiny_config, trained_run):
    config = tiny_config("ict", steps=4)
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "config.toml").write_text("mine = 1\n")
    (tmp_path / "notes" / "metrics.jsonl").write_text("precious\n")
    with pytest.raises(GenkitError, match="notes is not empty and not a genkit run folder"):
        Trainer(config, RunFolder(tmp_path / "notes"), registries)
    assert (tmp_path / "notes" / "metrics.jsonl").read_text() == "precious\n"
    with pytest.raises(GenkitError, match="already holds a run"):
        Trainer(config, RunFolder(trained_run), registries)
    (tmp_path / "file").write_text("x")
    assert_one_line_error(invoke("train", "--out", tmp_path / "file", "--steps", 2), "is a file, not a run folder")
    assert_one_line_error(invoke("train", "--out", tmp_path / "file" / "run", "--steps", 2), "Not a directory")
    # a genkit run that never reached its first checkpoint may be started over
    Trainer(config, RunFolder(tmp_path / "fresh"), registries).close()  # as after a kill before the first save
    assert not (tmp_path / "fresh" / "checkpoint.pt").exists() and (tmp_path / "fresh" / "config.toml").is_file()
    Trainer(config, RunFolder(tmp_path / "fresh"), registries).train()


def test_partial_checkpoint_files_are_removed_on_the_next_start(trained_run, registries):
    (trained_run / ".checkpoint.pt.k3j2x1").write_bytes(b"\0" * 100)  # left by a kill -9 mid-write
    trainer = Trainer(RunFolder(trained_run).read_config(registries), RunFolder(trained_run), registries, resume=True)
    trainer.close()
    assert not list(trained_run.glob(".checkpoint.pt.*"))


def test_the_folder_entry_is_synced_after_the_rename(tmp_path, monkeypatch):
    from genkit import files

    synced = []
    monkeypatch.setattr(files, "sync_folder", synced.append)
    checkpoint.save_atomic({"step": 1}, tmp_path / "checkpoint.pt")
    assert synced == [tmp_path]


# ----------------------------------------------------------------------------- divergence


def test_a_non_finite_loss_stops_training_and_keeps_the_last_good_checkpoint(tiny_config, registries, tmp_path):
    trainer = Trainer(tiny_config("ict", steps=40), RunFolder(tmp_path), registries)  # log every 5, save every 10
    real_loss = trainer.method.loss
    trainer.method.loss = lambda x, step, labels=None, draws=None: (real_loss(x, step, labels, draws)[0] * (float("nan") if step == 12 else 1.0), {})
    with pytest.raises(TrainingDiverged, match=r"by step 15; the last good checkpoint \(step 10\) is kept"):
        trainer.train()
    saved = checkpoint.load(tmp_path / "checkpoint.pt")
    assert saved["step"] == 10 and all(torch.isfinite(v).all() for v in saved["ema"].values())
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]  # strict JSON
    assert [r["step"] for r in records] == [5, 10]


def test_a_huge_learning_rate_fails_with_one_line(tmp_path):
    result = invoke("train", "--out", tmp_path / "run", "--steps", 40, *[f"--set={s}" for s in TINY], "--set", "train.lr=1e30")
    assert_one_line_error(result, "training diverged: a loss was NaN or infinite by step 5")


@pytest.mark.parametrize("value", ["nan", "inf"])
def test_a_non_finite_setting_is_refused(registries, value):
    with pytest.raises(GenkitError, match=f"train.lr must be a finite number, got {value}"):
        configuration.load_config(registries, "toy2d", assignments=[f"train.lr={value}"])


def test_sampling_refuses_to_write_non_finite_samples(trained_run, registries):
    state = checkpoint.load(trained_run / "checkpoint.pt")
    state["ema"] = {k: torch.full_like(v, float("nan")) if v.is_floating_point() else v for k, v in state["ema"].items()}
    checkpoint.save_atomic(state, trained_run / "checkpoint.pt")
    assert_one_line_error(invoke("sample", trained_run, "--num", 10), "10 of 10 samples are NaN or infinite")
    assert not (trained_run / "samples").exists()


# ----------------------------------------------------------------------------- one line, not a traceback


def test_broken_files_in_a_run_folder_are_one_line_errors(trained_run):
    config_text = (trained_run / "config.toml").read_text()
    (trained_run / "checkpoint.pt").write_bytes(b"")
    assert_one_line_error(invoke("sample", trained_run), "is empty (0 bytes)")
    (trained_run / "config.toml").write_bytes(b"method = \"\xff\xfe\"\n")
    assert_one_line_error(invoke("sample", trained_run), "invalid TOML")
    (trained_run / "config.toml").write_text("")
    assert_one_line_error(invoke("sample", trained_run), "config.toml is empty")
    (trained_run / "config.toml").write_text(config_text)


def test_a_checkpoint_of_another_network_names_the_first_mismatch(trained_run):
    text = (trained_run / "config.toml").read_text().replace("width = 32", "width = 48")
    (trained_run / "config.toml").write_text(text)
    assert_one_line_error(invoke("sample", trained_run), "was trained with another config: network.width differs")
    state = checkpoint.load(trained_run / "checkpoint.pt")
    del state["config"]  # as checkpoints written before configs were saved in them
    torch.save(state, trained_run / "checkpoint.pt")
    assert_one_line_error(invoke("sample", trained_run), "'model.net.blocks.0.layers.0.bias' has shape (32,) in the checkpoint, (48,) in this config's model")


def test_another_methods_checkpoint_of_the_same_shapes_is_refused(tiny_config, registries, trained_run, tmp_path):
    Trainer(tiny_config("edm", steps=10), RunFolder(tmp_path / "edm"), registries).train()
    shutil.copy(tmp_path / "edm" / "checkpoint.pt", trained_run / "checkpoint.pt")
    for command in (["sample", trained_run], ["export", trained_run], ["train", "--resume", "--out", trained_run, "--steps", "20"]):
        assert_one_line_error(invoke(*command), "was trained with another config: method")


@pytest.mark.parametrize(
    "edit, refused",
    [
        (("seed = 0", "seed = 1"), "seed differs"),
        (("lr = 0.001", "lr = 0.002"), "train.lr differs"),
        (("log_every = 5", "log_every = 2"), None),  # how the run is watched, not what it trains
    ],
)
def test_an_edited_config_is_resumed_only_when_the_trained_function_is_the_same(trained_run, edit, refused):
    text = (trained_run / "config.toml").read_text()
    assert edit[0] in text
    (trained_run / "config.toml").write_text(text.replace(edit[0], edit[1]))
    result = invoke("train", "--resume", "--out", trained_run, "--steps", "12")
    if refused:
        assert_one_line_error(result, refused)
    else:
        assert result.exit_code == 0, result.output


@pytest.mark.parametrize(
    "args, message",
    [
        (["--num", "0"], "--num must be at least 1, got 0"),
        (["--seed", "4294967296"], "--seed must be in [0, 2**32), got 4294967296"),
        (["--label", "5"], "--label 5: this model is unconditional"),
        (["--batch-size", "0"], "--batch-size must be at least 1, got 0"),
    ],
)
def test_bad_sampling_requests_are_refused(trained_run, args, message):
    assert_one_line_error(invoke("sample", trained_run, *args), message)


@pytest.mark.skipif(torch.backends.mps.is_available(), reason="this machine has an Apple GPU")
def test_a_device_the_machine_lacks_is_refused_before_any_work():
    from genkit.build import pick_device

    with pytest.raises(GenkitError, match="train.device is 'mps' but no MPS"):
        pick_device("mps")


def test_eval_refuses_zero_samples_instead_of_scoring_the_default(trained_run):
    assert_one_line_error(invoke("eval", trained_run, "--num", "0"), "--num must be at least 1, got 0")


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda m: m.sample(0), "`num` must be at least 1, got 0"),
        (lambda m: m.sample(2.5), "`num` must be a whole number, got 2.5"),
        (lambda m: m.sample(4, steps=0), "`steps` must be at least 1, got 0"),
        (lambda m: m.sample(4, seed=-1), "`seed` must be at least 0, got -1"),
        (lambda m: m.sample(4, label=5), "`label` 5: this model is unconditional"),
        (lambda m: m.sample(4, batch_size=True), "`batch_size` must be a whole number, got True"),
        (lambda m: m.evaluate(num=0), "`num` must be at least 1, got 0"),
    ],
)
def test_the_python_api_refuses_what_the_cli_refuses(trained_run, call, message):
    with pytest.raises(GenkitError) as error:
        call(load(trained_run))
    assert message in str(error.value)


@pytest.mark.parametrize(
    "assignment, message",
    [
        ("network.width=0", "network.width must be positive, got 0"),
        ("seed=4294967296", "seed must be in [0, 2**32), got 4294967296"),
        ("train.batch_size=-1", "train.batch_size must be in [1, 1.67772e+07], got -1"),
        ("train.batch_size=100000000000", "train.batch_size must be in [1, 1.67772e+07], got 100000000000"),
        ("train.threads=100000", "train.threads must be in [0, 4096], got 100000"),
        ("noise.rho=1e-9", "noise.rho must be in [0.1, 1000], got 1e-09"),
        ("network.embedding_dim=3", "network.embedding_dim must be a positive even number, got 3"),
        ("methods.ict.curriculum.s1=100000000", "methods.ict.curriculum.s1 must be in [1, 1.67772e+07], got 100000000"),
        ("methods.ct.curriculum.s0=100000000", "methods.ct.curriculum.s0 must be in [1, 1.67772e+07], got 100000000"),
        ("methods.nosuch.x=1", "methods.nosuch: unknown method 'nosuch'"),
        ("methods.itc.loss='l2'", "methods.itc: unknown method 'itc' (did you mean 'ict'?)"),
        ("train=5", "train is a table (preset toy2d); --set train=5 sets it to 5: set its keys instead"),
    ],
)
def test_nonsense_sizes_are_refused(registries, assignment, message):
    with pytest.raises(GenkitError) as error:
        configuration.load_config(registries, "toy2d", assignments=[assignment])
    assert message in str(error.value)


def test_one_sample_is_not_scored_instead_of_warning(trained_run):
    result = invoke("sample", trained_run, "--num", 1)
    assert result.exit_code == 0
    assert "scores need at least 2 samples" in result.output and "inf" not in result.output


def test_ctrl_c_in_any_command_is_a_message_and_exit_130():
    import typer

    from genkit.cli.errors import handles_user_errors

    @handles_user_errors
    def command():
        raise KeyboardInterrupt

    with pytest.raises(typer.Exit) as stop:
        command()
    assert stop.value.exit_code == 130


def test_printed_commands_are_shell_quoted():
    assert resume_command(Path("my runs/it's")) == "genkit train --resume --out 'my runs/it'\"'\"'s'"


def test_config_show_says_which_given_values_are_replaced(tmp_path):
    (tmp_path / "mine.toml").write_text('method = "ct"\n')
    result = invoke("config", "show", "--config", tmp_path / "mine.toml", "--method", "cd")
    assert result.exit_code == 0
    assert f"# note: method = 'ct' from {tmp_path / 'mine.toml'} is replaced by flag for method" in result.output


def test_many_samples_show_progress(trained_run, monkeypatch):
    from genkit.evaluation import scoring

    shown = []
    monkeypatch.setattr(scoring, "track", lambda items, **kw: shown.append(kw["description"]) or items)
    load(trained_run).sample(300, batch_size=100, progress=True)
    assert shown == ["sampling 300"]


def test_folders_that_cannot_be_written_are_one_line_errors(trained_run):
    unwritable = Path("/proc/genkit-test")  # even root cannot create files in /proc
    assert_one_line_error(invoke("train", "--steps", 2, "--out", unwritable / "run"), "cannot use /proc/genkit-test/run as a run folder")
    assert_one_line_error(invoke("sample", trained_run, "--num", 4, "--out", unwritable / "x.npz"), "/proc/genkit-test")


def test_an_option_added_since_a_run_was_saved_does_not_block_its_resume(trained_run):
    state = checkpoint.load(trained_run / "checkpoint.pt")
    del state["config"]["train"]["grad_clip"]  # as a run saved before the option existed
    torch.save(state, trained_run / "checkpoint.pt")
    result = invoke("train", "--resume", "--out", trained_run, "--steps", "12")
    assert result.exit_code == 0, result.output
