"""Data-parallel training on the CPU (gloo, DistributedDataParallel): a run split across ranks
matches one process with the same global batch, ranks stay in sync, and checkpoints resume."""

import gc
import os

import pytest
import torch
import torch.distributed
import torch.multiprocessing as mp

from genkit import config as configuration
from genkit import plugins
from genkit.errors import GenkitError
from genkit.training.loop import Trainer
from genkit.training.run import RunFolder

from conftest import TINY, assert_close_tensors, assert_same_tensors


class TableStream:
    """Global batch k is rows [k G, (k + 1) G) of a fixed table (G: the global batch size);
    rank r reads its share of it, so the data do not depend on how the batch is split."""

    def __init__(self, table: torch.Tensor, batch_size: int, rank: int, world_size: int):
        self.table, self.batch_size, self.rank, self.world_size, self.k = table, batch_size, rank, world_size, 0

    def next(self):
        start = (self.k * self.world_size + self.rank) * self.batch_size
        self.k += 1
        return self.table[torch.arange(start, start + self.batch_size) % len(self.table)], None

    def state_dict(self) -> dict:
        return {"k": self.k}

    def load_state_dict(self, state: dict) -> None:
        self.k = state["k"]


class TableDataset:
    shape, clamp, evaluators, label_dim = (2,), None, ("swd",), 0

    def __init__(self, options=None, ctx=None):
        self.table = torch.rand(1000, 2, generator=torch.Generator().manual_seed(5)) * 2 - 1

    def stream(self, batch_size, seed, rank=0, world_size=1):
        return TableStream(self.table, batch_size, rank, world_size)

    def reference(self, n, seed):
        return torch.rand(n, 2, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def table_registries():
    """Registries of a plugin set of their own with the table dataset added (the session's stay as they are)."""
    own = plugins.PluginSet()
    own.load_entry_points()
    own.collect()
    own.registries.datasets.add("table", TableDataset, plugin="tests")
    return own.registries


def train_weights(folder, steps: int, extra=(), until=None, resume=False, registries=None) -> dict:
    """Train a tiny toy config in this process (or this rank); the model's weights after."""
    registries = registries or plugins.registries()
    config = configuration.load_config(
        registries, "toy2d", assignments=TINY + ["train.device='cpu'", *extra], flags={"train.steps": steps}
    )
    trainer = Trainer(config, RunFolder(folder), registries, resume=resume)
    trainer.train(until=until)
    return {k: v.clone() for k, v in trainer.method.model.state_dict().items()}


def worker(rank: int, world_size: int, rendezvous: str, folder: str, steps: int, until, resume: bool, extra, table: bool) -> None:
    os.environ.update(WORLD_SIZE=str(world_size), RANK=str(rank), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    # a file rendezvous: no port to race for
    torch.distributed.init_process_group("gloo", init_method=f"file://{rendezvous}", rank=rank, world_size=world_size)
    registries = table_registries() if table else None
    weights = train_weights(folder, steps, extra, until, resume, registries)
    torch.save(weights, f"{folder}/rank{rank}.pt")
    gc.collect()  # the trainer's modules form reference cycles: free them before the group goes
    torch.distributed.destroy_process_group()


def launch(folder, steps, until=None, resume=False, world_size=2, extra=(), table=False):
    rendezvous = f"{folder}.rendezvous-{os.getpid()}-{resume}-{until}"
    if os.path.exists(rendezvous):
        os.remove(rendezvous)
    args = (world_size, rendezvous, str(folder), steps, until, resume, list(extra), table)
    mp.spawn(worker, args=args, nprocs=world_size, join=True)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["ict", "edm"])
def test_two_ranks_match_one_process_with_the_same_global_batch(tmp_path, method):
    """DDP over 2 ranks (32 samples each, chunks of 16) against one process (64 at once): the
    same data and draws, so the same weights to float tolerance."""
    extra = ["data='table'", f"method='{method}'"]
    single = train_weights(tmp_path / "single", 6, extra, registries=table_registries())
    launch(tmp_path / "ddp", steps=6, extra=extra + ["train.microbatch=16"], table=True)
    assert_close_tensors(single, torch.load(tmp_path / "ddp" / "rank0.pt"), atol=1e-5)
    assert_same_tensors(torch.load(tmp_path / "ddp" / "rank0.pt"), torch.load(tmp_path / "ddp" / "rank1.pt"))


@pytest.mark.slow
def test_two_ranks_stay_identical_and_resume_exactly(tmp_path):
    straight, stopped = tmp_path / "straight", tmp_path / "stopped"
    launch(straight, steps=8, extra=["network.dropout=0.1"])
    rank0, rank1 = torch.load(straight / "rank0.pt"), torch.load(straight / "rank1.pt")
    assert_same_tensors(rank0, rank1)  # averaged gradients keep the replicas equal
    state = torch.load(straight / "checkpoint.pt", weights_only=True)
    assert state["step"] == 8 and len(state["rng"]) == 2
    assert not torch.equal(state["rng"][0]["cpu"], state["rng"][1]["cpu"])  # each rank its own stream

    launch(stopped, steps=8, until=5, extra=["network.dropout=0.1"])  # as if killed after the checkpoint at step 5
    launch(stopped, steps=8, resume=True, extra=["network.dropout=0.1"])
    assert_same_tensors(rank0, torch.load(stopped / "rank0.pt"))

    # a single process cannot take over a two-process checkpoint
    registries = plugins.registries()
    config = RunFolder(straight).read_config(registries)  # the same config, one process
    with pytest.raises(GenkitError, match="written by 2 process"):
        Trainer(config, RunFolder(straight), registries, resume=True)


def bench_worker(rank: int, world_size: int, rendezvous: str, out: str) -> None:
    os.environ.update(WORLD_SIZE=str(world_size), RANK=str(rank), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    torch.distributed.init_process_group("gloo", init_method=f"file://{rendezvous}", rank=rank, world_size=world_size)
    from typer.testing import CliRunner

    from genkit.cli.main import build_app

    args = ["bench", "cd-vs-ict", "--set", "steps=6", "--set", "batch_size=32", "--set", "eval_samples=200",
            "--set", "curve_every=0", "--set", "overrides.network.width=16", "--set", "overrides.train.device='cpu'", "--out", out]
    result = CliRunner().invoke(build_app(), args)
    assert result.exit_code == 0, result.output
    gc.collect()
    torch.distributed.destroy_process_group()


@pytest.mark.slow
def test_the_bench_runs_under_two_processes_and_rank_0_reports(tmp_path):
    mp.spawn(bench_worker, args=(2, str(tmp_path / "rendezvous"), str(tmp_path / "bench")), nprocs=2, join=True)
    import json

    results = json.loads((tmp_path / "bench" / "results.json").read_text())
    assert {run["step"] for run in results["runs"]} == {6} and (tmp_path / "bench" / "report.md").is_file()
    state = torch.load(tmp_path / "bench" / "runs" / "seed0" / "ict" / "checkpoint.pt", weights_only=True)
    assert len(state["rng"]) == 2  # trained by both processes


def sampling_worker(rank: int, world_size: int, rendezvous: str, run: str, out: str) -> None:
    os.environ.update(WORLD_SIZE=str(world_size), RANK=str(rank), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    torch.distributed.init_process_group("gloo", init_method=f"file://{rendezvous}", rank=rank, world_size=world_size)
    from genkit.trained import load_trained
    from genkit.evaluation import draw_samples
    from genkit.training.distributed import Distributed

    trained = load_trained(run, plugins.registries(), torch.device("cpu"))
    samples = draw_samples(trained.built.method, trained.model, 7, 2, seed=3, batch_size=2, dist=Distributed.from_environment())
    if rank == 0:
        torch.save(samples, out)
    else:
        assert samples is None
    torch.distributed.destroy_process_group()


@pytest.mark.slow
def test_samples_drawn_in_shares_across_ranks_equal_one_process(tmp_path):
    from genkit.trained import load_trained
    from genkit.evaluation import draw_samples

    train_weights(tmp_path / "run", 2)
    args = (2, str(tmp_path / "rendezvous"), str(tmp_path / "run"), str(tmp_path / "shared.pt"))
    mp.spawn(sampling_worker, args=args, nprocs=2, join=True)
    trained = load_trained(tmp_path / "run", plugins.registries(), torch.device("cpu"))
    alone = draw_samples(trained.built.method, trained.model, 7, 2, seed=3, batch_size=4)
    shared = torch.load(tmp_path / "shared.pt")  # 7 samples: shares of 4 and 3
    # the same seeds in the same order; batches of other sizes may round matrix products apart
    torch.testing.assert_close(shared, alone, rtol=1e-5, atol=1e-6)
