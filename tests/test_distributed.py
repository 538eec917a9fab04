"""Data-parallel training on the CPU (gloo): ranks stay in sync and checkpoints resume."""

import os
import socket

import pytest
import torch
import torch.multiprocessing as mp

from genkit import config as configuration
from genkit import plugins
from genkit.errors import GenkitError
from genkit.training.loop import Trainer
from genkit.training.run import RunFolder

from conftest import TINY, assert_same_tensors


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def worker(rank: int, world_size: int, port: int, folder: str, steps: int, until, resume: bool) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(world_size), RANK=str(rank), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    registries = plugins.registries()
    config = configuration.load_config(
        registries, "toy2d", assignments=TINY + ["train.device='cpu'", "network.dropout=0.1"], flags={"train.steps": steps}
    )
    trainer = Trainer(config, RunFolder(folder), registries, resume=resume)
    trainer.train(until=until)
    torch.save({k: v.clone() for k, v in trainer.method.model.state_dict().items()}, f"{folder}/rank{rank}.pt")
    torch.distributed.destroy_process_group()


def launch(folder, steps, until=None, resume=False, world_size=2):
    mp.spawn(worker, args=(world_size, free_port(), str(folder), steps, until, resume), nprocs=world_size, join=True)


@pytest.mark.slow
def test_two_ranks_stay_identical_and_resume_exactly(tmp_path):
    straight, stopped = tmp_path / "straight", tmp_path / "stopped"
    launch(straight, steps=8)
    rank0, rank1 = torch.load(straight / "rank0.pt"), torch.load(straight / "rank1.pt")
    assert_same_tensors(rank0, rank1)  # averaged gradients keep the replicas equal
    state = torch.load(straight / "checkpoint.pt", weights_only=True)
    assert state["step"] == 8 and len(state["rng"]) == 2
    assert not torch.equal(state["rng"][0]["cpu"], state["rng"][1]["cpu"])  # each rank its own stream

    launch(stopped, steps=8, until=5)  # as if killed after the checkpoint at step 5
    launch(stopped, steps=8, resume=True)
    assert_same_tensors(rank0, torch.load(stopped / "rank0.pt"))

    # a single process cannot take over a two-process checkpoint
    registries = plugins.registries()
    config = configuration.load_config(registries, "toy2d", assignments=TINY, flags={"train.steps": 8})
    with pytest.raises(GenkitError, match="written by 2 process"):
        Trainer(config, RunFolder(straight), registries, resume=True)


def bench_worker(rank: int, world_size: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(world_size), RANK=str(rank), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    from typer.testing import CliRunner

    from genkit.cli.main import build_app

    args = ["bench", "cd-vs-ict", "--set", "steps=6", "--set", "batch_size=32", "--set", "eval_samples=200",
            "--set", "curve_every=0", "--set", "overrides.network.width=16", "--set", "overrides.train.device='cpu'", "--out", out]
    result = CliRunner().invoke(build_app(), args)
    assert result.exit_code == 0, result.output
    torch.distributed.destroy_process_group()


@pytest.mark.slow
def test_the_bench_runs_under_two_processes_and_rank_0_reports(tmp_path):
    mp.spawn(bench_worker, args=(2, free_port(), str(tmp_path / "bench")), nprocs=2, join=True)
    import json

    results = json.loads((tmp_path / "bench" / "results.json").read_text())
    assert {run["step"] for run in results["runs"]} == {6} and (tmp_path / "bench" / "report.md").is_file()
    state = torch.load(tmp_path / "bench" / "runs" / "seed0" / "ict" / "checkpoint.pt", weights_only=True)
    assert len(state["rng"]) == 2  # trained by both processes
