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
