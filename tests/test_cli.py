"""The command line through CliRunner, plus one real call of the installed command."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

import genkit
from genkit.cli.main import build_app

from conftest import TINY, assert_one_line_error

runner = CliRunner()


def invoke(*args):
    return runner.invoke(build_app(), [str(a) for a in args])


def tiny_flags():
    return [part for item in TINY for part in ("--set", item)]


def test_version():
    result = invoke("--version")
    assert result.exit_code == 0 and genkit.__version__ in result.output


def test_plugins_json_lists_builtins_and_what_they_register():
    result = invoke("plugins", "--json")
    assert result.exit_code == 0
    rows = {row["name"]: row for row in json.loads(result.output)}
    assert rows["ict"]["registers"] == {"methods": ["ict"]} and rows["ict"]["builtin"]
    assert "pseudo-huber" in rows["losses"]["registers"]["losses"]


def test_plugins_table():
    result = invoke("plugins")
    assert result.exit_code == 0 and "genkit_ict" in result.output


def test_config_show_prints_resolved_toml():
    result = invoke("config", "show", "toy2d", "--set", "train.steps=7")
    assert result.exit_code == 0
    assert "steps = 7" in result.output and "[methods.ict]" in result.output and "s1 = 1280" in result.output


def test_train_sample_and_resume(tmp_path):
    out = tmp_path / "run"
    result = invoke("train", "--method", "ict", "--steps", "20", "--out", out, *tiny_flags())
    assert result.exit_code == 0, result.output
    assert (out / "checkpoint.pt").is_file() and (out / "config.toml").is_file()

    result = invoke("sample", out, "--steps", "2", "--num", "300")
    assert result.exit_code == 0, result.output
    samples = np.load(out / "samples" / "2step-seed0.npz")
    assert samples["samples"].shape == (300, 2) and int(samples["evaluations"]) == 2
    assert (out / "samples" / "2step-seed0.png").stat().st_size > 1000
    assert "swd" in result.output and "data vs data" in result.output

    result = invoke("train", "--out", out, "--method", "ict", *tiny_flags())
    assert_one_line_error(result, "already holds a run")
    result = invoke("train", "--resume", "--out", out)
    assert result.exit_code == 0, result.output  # already finished: nothing left to do


def test_sample_is_independent_of_batch_size_and_repeatable(tmp_path):
    out = tmp_path / "run"
    invoke("train", "--steps", "5", "--out", out, *tiny_flags())
    first = invoke("sample", out, "--num", "50", "--no-evaluate", "--out", tmp_path / "a.npz")
    second = invoke("sample", out, "--num", "50", "--no-evaluate", "--out", tmp_path / "b.npz")
    assert first.exit_code == second.exit_code == 0
    np.testing.assert_array_equal(np.load(tmp_path / "a.npz")["samples"], np.load(tmp_path / "b.npz")["samples"])


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "--method", "ictt"], "unknown method 'ictt' (did you mean 'ict'?)"),
        (["train", "--set", "train.stepz=3"], "unknown key 'train.stepz'"),
        (["train", "--preset", "nope"], "unknown preset 'nope'"),
        (["train", "--resume"], "--resume needs --out"),
        (["sample", "/nonexistent/run"], "run folder not found"),
        (["config", "show", "toy2d", "--set", "train.lr=abc"], "train.lr must be a number"),
    ],
)
def test_user_errors_are_one_line_and_nonzero(args, message):
    assert_one_line_error(invoke(*args), message)


def test_corrupt_checkpoint_and_sample_steps_errors(tmp_path):
    out = tmp_path / "run"
    invoke("train", "--steps", "3", "--out", out, *tiny_flags())
    assert_one_line_error(invoke("sample", out, "--steps", "5"), "5-step sampling needs 4 levels")
    (out / "checkpoint.pt").write_bytes(b"garbage")
    assert_one_line_error(invoke("sample", out), "is not a genkit checkpoint")
    assert_one_line_error(invoke("sample", tmp_path), "not a genkit run folder")


def test_bad_flag_exits_nonzero():
    result = invoke("train", "--stepz", "3")
    assert result.exit_code == 2 and "No such option" in result.output


def test_installed_command_runs_in_a_subprocess():
    executable = shutil.which("genkit")
    assert executable, "the genkit console script is not installed"
    result = subprocess.run([executable, "plugins", "--json"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "ict" in {row["name"] for row in json.loads(result.stdout)}


def test_ctrl_c_while_the_command_line_imports_ends_quietly():
    """A SIGINT that arrives while torch and the commands import: 'interrupted', exit 130, no traceback."""
    interrupt_on_import = (
        "import importlib.abc, os, signal, sys\n"
        "class Interrupt(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path, target=None):\n"
        "        if name == 'genkit.cli.main':\n"
        "            os.kill(os.getpid(), signal.SIGINT)\n"
        "        return None\n"
        "sys.meta_path.insert(0, Interrupt())\n"
        "from genkit.cli.entry import run\n"
        "run()\n"
    )
    result = subprocess.run([sys.executable, "-c", interrupt_on_import, "--version"], capture_output=True, text=True, timeout=120)
    assert (result.returncode, result.stderr) == (130, "interrupted\n")
