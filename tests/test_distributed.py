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

from conftest import TINY


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def worker(rank: int, world_size: int, port: int, folder: str, steps: int, resume: bool) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(world_size), RANK=str(rank), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    registries = plugins.registries()
    config = configuration.load_config(
        registries, "toy2d", assignments=TINY + ["train.device='cpu'"], flags={"train.steps": steps}
    )
    trainer = Trainer(config, RunFolder(folder), registries, resume=resume)
    trainer.train()
    torch.save({k: v.clone() for k, v in trainer.method.model.state_dict().items()}, f"{folder}/rank{rank}.pt")
    torch.distributed.destroy_process_group()


def launch(folder, steps, resume=False, world_size=2):
    mp.spawn(worker, args=(world_size, free_port(), str(folder), steps, resume), nprocs=world_size, join=True)


@pytest.mark.slow
def test_two_ranks_stay_identical_and_resume(tmp_path):
    launch(tmp_path, steps=6)
    rank0, rank1 = torch.load(tmp_path / "rank0.pt"), torch.load(tmp_path / "rank1.pt")
    for key in rank0:
        assert torch.equal(rank0[key], rank1[key]), key  # averaged gradients keep replicas equal
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert state["step"] == 6 and len(state["rng"]) == 2
    assert not torch.equal(state["rng"][0]["cpu"], state["rng"][1]["cpu"])  # each rank its own stream

    # a single process cannot take over a two-process checkpoint
    registries = plugins.registries()
    config = configuration.load_config(registries, "toy2d", assignments=TINY, flags={"train.steps": 6})
    with pytest.raises(GenkitError, match="written by 2 process"):
        Trainer(config, RunFolder(tmp_path), registries, resume=True)
