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

from genkit import files
from genkit.errors import GenkitError, TrainingDiverged
from genkit.schema import to_toml
from genkit.training import checkpoint, lock
from genkit.training.loop import Trainer
from genkit.training.run import MARKER_FILE, RunFolder

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
    with pytest.raises(GenkitError):
        files.read_npz(tmp_path / "a.npz")
    assert not (tmp_path / "it-ran").exists()


def test_an_image_bomb_given_to_edit_is_one_line(tmp_path, monkeypatch):
    from PIL import Image

    from genkit_edit import io

    Image.new("L", (64, 64)).save(tmp_path / "bomb.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 64 * 64 // 4)  # PIL refuses twice its limit
    with pytest.raises(GenkitError, match="DecompressionBombError"):
        io._open(tmp_path / "bomb.png")


# ----------------------------------------------------------------------------- 2. planted links


def test_a_lock_file_planted_as_a_link_leaves_its_target_alone(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / lock.LOCK_FILE).symlink_to(victim)
    with pytest.raises(GenkitError, match="symbolic link") as error:
        lock.acquire(tmp_path / "run")
    one_line(error)
    assert victim.read_text() == "precious\n"
    os.unlink(tmp_path / "run" / lock.LOCK_FILE)
    os.link(victim, tmp_path / "run" / lock.LOCK_FILE)  # a hard link reaches the same contents
    with pytest.raises(GenkitError, match="not a regular file of its own"):
        lock.acquire(tmp_path / "run")
    assert victim.read_text() == "precious\n"


@pytest.mark.parametrize("name", ["metrics.jsonl", "config.toml", "checkpoint.pt"])
def test_resume_refuses_a_run_file_planted_as_a_link(trained_run, registries, tmp_path, name):
    config = RunFolder(trained_run).read_config(registries)
    victim = tmp_path / "victim.txt"
    victim.write_bytes((trained_run / name).read_bytes())
    before = victim.read_bytes()
    (trained_run / name).unlink()
    (trained_run / name).symlink_to(victim)
    with pytest.raises(GenkitError, match="symbolic link") as error:
        Trainer(config, RunFolder(trained_run), registries, resume=True).train()
    one_line(error)
    assert victim.read_bytes() == before


def test_metrics_are_never_appended_or_cut_through_a_link(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text('{"step": 99}\n')
    folder = RunFolder(tmp_path / "run")
    folder.path.mkdir()
    folder.metrics_path.symlink_to(victim)
    with pytest.raises(GenkitError, match="symbolic link"):
        folder.append_metrics({"step": 1})
    with pytest.raises(GenkitError, match="symbolic link"):
        folder.truncate_metrics(0)
    assert victim.read_text() == '{"step": 99}\n'


@pytest.mark.parametrize("shape", [(50, 2), (4, 1, 8, 8)])
def test_pictures_are_never_written_through_a_link(tmp_path, shape):
    from genkit.pictures import save_samples_picture

    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    (tmp_path / "grid.png").symlink_to(victim)
    with pytest.raises(GenkitError, match="symbolic link"):
        save_samples_picture(torch.rand(shape), tmp_path / "grid.png")
    assert victim.read_text() == "precious\n"


def test_atomic_writes_follow_the_umask_and_leave_no_temporary_file(tmp_path):
    previous = os.umask(0o022)
    try:
        checkpoint.save_atomic({"step": 1}, tmp_path / "checkpoint.pt")
        files.write_atomic(tmp_path / "a.json", "{}")
    finally:
        os.umask(previous)
    assert (tmp_path / "checkpoint.pt").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "checkpoint.pt"]


def test_one_atomic_writer_in_the_code_base():
    """Renames and temporary files live in genkit/files.py only, so every write gets its checks."""
    root = Path(__file__).resolve().parents[1]
    found = []
    for path in [*root.glob("genkit/**/*.py"), *root.glob("plugins/**/*.py")]:
        if path.name == "files.py" and path.parent.name == "genkit":
            continue
        text = path.read_text()
        found += [f"{path.relative_to(root)}: {word}" for word in ("os.replace(", "os.rename(", "mkstemp(", "NamedTemporaryFile(") if word in text]
    assert found == []


# ----------------------------------------------------------------------------- 3. a user's folder is no run


def test_a_folder_of_user_files_with_a_genkit_config_is_not_taken_for_a_run(tmp_path, registries, tiny_config, trained_run):
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "config.toml").write_text((trained_run / "config.toml").read_text())  # a copy, header and all
    (notes / "notes.txt").write_text("mine\n")
    (notes / "metrics.jsonl").write_text('{"step": 1, "mine": true}\n')
    config = tiny_config("ict", steps=4)
    with pytest.raises(GenkitError, match="not empty and not a genkit run folder") as error:
        Trainer(config, RunFolder(notes), registries)
    one_line(error)
    assert (notes / "metrics.jsonl").read_text() == '{"step": 1, "mine": true}\n'
    assert (notes / "config.toml").read_text() == (trained_run / "config.toml").read_text()
    assert_one_line_error(invoke("train", "--steps", 2, "--out", notes, *[f"--set={s}" for s in TINY]), "not a genkit run folder")


def test_a_run_is_marked_first_and_runs_without_the_mark_still_work(trained_run, registries):
    assert (trained_run / MARKER_FILE).is_file()
    (trained_run / MARKER_FILE).unlink()  # a run from before the marker: checkpoint.pt and config.toml
    assert invoke("sample", trained_run, "--num", 8).exit_code == 0
    config = RunFolder(trained_run).read_config(registries)
    config.train.steps = 12
    trainer = Trainer(config, RunFolder(trained_run), registries, resume=True)
    trainer.train()
    assert checkpoint.load(trained_run / "checkpoint.pt")["step"] == 12


# ----------------------------------------------------------------------------- 5. non-finite weights


def test_one_step_to_infinite_weights_is_not_reported_done(tmp_path):
    result = invoke("train", "--out", tmp_path / "run", "--steps", 1, *[f"--set={s}" for s in TINY], "--set", "train.lr=1e39")
    assert_one_line_error(result, "the weights became NaN or infinite by step 1", "no checkpoint was written")
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


def test_the_last_good_checkpoint_is_finite(tmp_path):
    args = ["--steps", 10, *[f"--set={s}" for s in TINY], "--set", "train.lr=1e39", "--set", "train.checkpoint_every=1"]
    result = invoke("train", "--out", tmp_path / "run", *args)
    # step 1 already made the weights infinite: there is no good checkpoint to speak of
    assert_one_line_error(result, "the weights became NaN or infinite by step 1", "no checkpoint was written")
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


def test_save_refuses_non_finite_weights_with_the_last_good_checkpoint_kept(tiny_config, registries, tmp_path):
    trainer = Trainer(tiny_config("ict", steps=20), RunFolder(tmp_path), registries)
    trainer.train(until=10)
    trainer = Trainer(trainer.config, RunFolder(tmp_path), registries, resume=True)
    with torch.no_grad():
        next(trainer.ema.model.parameters())[0] = float("inf")  # the loss stays finite: only the EMA is bad
    with pytest.raises(TrainingDiverged, match=r"weights became NaN or infinite by step 10; the last good checkpoint \(step 10\) is kept"):
        trainer.save()
    trainer.close()
    assert checkpoint.all_finite(checkpoint.load(tmp_path / "checkpoint.pt")["ema"].values())


def test_all_finite():
    assert checkpoint.all_finite([torch.full((3,), 3e38), torch.zeros(0), torch.ones(2, dtype=torch.float16), torch.arange(3)])
    assert not checkpoint.all_finite([torch.ones(3), torch.tensor([1.0, float("nan")])])
    assert not checkpoint.all_finite([torch.tensor([float("-inf")], dtype=torch.bfloat16)])


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


# ----------------------------------------------------------------------------- 7. unwritable run files


def test_a_checkpoint_path_that_is_a_folder_fails_before_training(tiny_config, registries, tmp_path):
    config = tiny_config("ict", steps=20)
    Trainer(config, RunFolder(tmp_path / "run"), registries).close()  # a run that never saved
    (tmp_path / "run" / "checkpoint.pt").mkdir()
    with pytest.raises(GenkitError, match="checkpoint.pt is not a regular file") as error:
        Trainer(config, RunFolder(tmp_path / "run"), registries)
    one_line(error)
    assert not (tmp_path / "run" / "metrics.jsonl").exists()  # not a step was trained


# ----------------------------------------------------------------------------- 13. damaged files


def test_resume_drops_a_metrics_line_cut_short_by_a_kill(trained_run, registries):
    with open(trained_run / "metrics.jsonl", "a") as log:
        log.write('{"step": 10, "lo')
    config = RunFolder(trained_run).read_config(registries)
    Trainer(config, RunFolder(trained_run), registries, resume=True).close()
    assert [r["step"] for r in RunFolder(trained_run).metrics()] == [5, 10]


def test_damaged_metrics_are_one_line(trained_run, registries):
    (trained_run / "metrics.jsonl").write_bytes(b'{"step": 5}\n\xff\xfe\n{"step": 10}\n')
    config = RunFolder(trained_run).read_config(registries)
    with pytest.raises(GenkitError, match="metrics.jsonl is not JSON lines: line 2") as error:
        Trainer(config, RunFolder(trained_run), registries, resume=True)
    one_line(error)
    assert_one_line_error(invoke("curves", trained_run), "line 2")


@pytest.mark.parametrize("damage", [b'[{"step": 10, "ste', b"\xff\xfe", b'{"a": 1}'])
def test_a_damaged_eval_json_is_one_line(trained_run, damage):
    (trained_run / "eval.json").write_bytes(damage)
    assert_one_line_error(invoke("eval", trained_run, "--num", 8), "eval.json is damaged")
    assert (trained_run / "eval.json").read_bytes() == damage  # the user's records are not replaced


def test_a_damaged_statistics_cache_is_computed_again(tmp_path, monkeypatch):
    from genkit.evaluation import cache

    monkeypatch.setenv("GENKIT_CACHE", str(tmp_path))
    key = {"data": "toy", "split": "test"}
    cache.cached(key, lambda: {"mu": np.ones(2)})
    [stored] = list((tmp_path / "stats").glob("*.npz"))
    stored.write_bytes(stored.read_bytes()[:40])  # cut short
    again = cache.cached(key, lambda: {"mu": np.full(2, 2.0)})
    assert again["mu"].tolist() == [2.0, 2.0]
    assert cache.cached(key, lambda: pytest.fail("computed a third time"))["mu"].tolist() == [2.0, 2.0]


def test_damaged_bench_caches_are_computed_again(tmp_path):
    from genkit import plugins
    from genkit_bench import runner, score, write
    from genkit_bench import spec as bench_spec
    from test_bench import TINY_BENCH

    (tmp_path / "tiny.toml").write_text(TINY_BENCH)
    spec = bench_spec.load_spec(str(tmp_path / "tiny.toml"), ["bench.runs.cd.role=reference", "bench.compare=['ict', 'ct']"])
    spec.run_list = [r for r in spec.run_list if r.name in ("ict", "ct")]  # no teacher needed
    out = tmp_path / "out"
    first = runner.run_bench(spec, out, plugins.load())
    cache = sorted(out.rglob(score.EVAL_FILE))[0]
    cache.write_bytes(cache.read_bytes()[:50])  # cut short
    (out / write.WALL_FILE).write_bytes(b"\xff\xfe")
    again = runner.run_bench(spec, out, plugins.load())
    assert [r["scores"] for r in again["runs"]] == [r["scores"] for r in first["runs"]]  # scored again, the same
    assert json.loads(cache.read_text())["scores"] in [r["scores"] for r in first["runs"]]
    assert len(json.loads((out / write.WALL_FILE).read_text())["invocations_s"]) == 1  # counting started again


@pytest.mark.parametrize("damage", [b"", b'{"a": ', b"\xff", b'"text"'])
def test_the_json_readers_turn_damage_into_one_line(tmp_path, damage):
    (tmp_path / "x.json").write_bytes(damage)
    if damage == b'"text"':
        assert files.read_json(tmp_path / "x.json") == "text"
        return
    with pytest.raises(GenkitError, match="x.json is damaged") as error:
        files.read_json(tmp_path / "x.json")
    one_line(error)
    assert files.read_cached_json(tmp_path / "x.json") is None


def test_partial_checkpoints_left_by_a_kill_do_not_bother_readers(trained_run, registries):
    (trained_run / ".checkpoint.pt.k3j2x1z0").write_bytes(b"\0" * 100)
    assert invoke("sample", trained_run, "--num", 8).exit_code == 0
    assert invoke("eval", trained_run, "--num", 8).exit_code == 0
    assert (trained_run / ".checkpoint.pt.k3j2x1z0").exists()  # readers leave it; the next training start removes it
    Trainer(RunFolder(trained_run).read_config(registries), RunFolder(trained_run), registries, resume=True).close()
    assert not list(trained_run.glob(".checkpoint.pt.*"))
