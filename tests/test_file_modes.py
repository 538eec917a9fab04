"""Every file a run, an export and the commands on them write has the mode the umask gives a new
file (0644 under umask 022: readable by the group and others, as `cp` or `torch.save` would
leave it), never a fixed private 0600; a private umask (077) still keeps them private."""

import os
import stat

import pytest
from typer.testing import CliRunner

from genkit.cli.main import build_app

TRAIN = ["train", "--method", "ict", "--steps", "10", "--set", "network.width=16", "--set", "network.depth=1",
         "--set", "train.batch_size=16", "--set", "train.log_every=5", "--set", "train.checkpoint_every=5",
         "--set", "train.keep_snapshots=2", "--set", "train.grid_every=5", "--set", "train.eval_every=10",
         "--set", "train.eval_samples=20"]


def invoke(*args):
    result = CliRunner().invoke(build_app(), [str(a) for a in args])
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("umask, file_mode, folder_mode", [(0o022, 0o644, 0o755), (0o077, 0o600, 0o700)])
def test_every_file_of_a_run_follows_the_umask(tmp_path, umask, file_mode, folder_mode):
    run = tmp_path / "run"
    previous = os.umask(umask)
    try:
        invoke(*TRAIN, "--out", run)
        invoke("export", run)
        invoke("sample", run, "--num", "20")
        invoke("sample", run / "export" / "model.safetensors", "--num", "20")
        invoke("eval", run, "--num", "20")
        invoke("sample", run, "--steps", "2", "--levels", "search", "--search-samples", "20", "--search-iterations", "1", "--num", "20")
    finally:
        os.umask(previous)
    found = {path.relative_to(run).as_posix(): stat.S_IMODE(path.stat().st_mode) for path in run.rglob("*")}
    for name in ("checkpoint.pt", "config.toml", "metrics.jsonl", ".genkit-run", ".lock", "snapshots/step-0000010.pt",
                 "grids/step-0000005.png", "export/model.safetensors", "export/model-samples/1step-seed0.npz",
                 "samples/1step-seed0.npz", "samples/1step-seed0.png", "eval.json", "levels.json"):
        assert found.get(name) == file_mode, (name, oct(found.get(name) or 0))
    assert {name for name, mode in found.items() if (run / name).is_file() and mode != file_mode} == set()
    assert {name for name, mode in found.items() if (run / name).is_dir() and mode != folder_mode} == set()
