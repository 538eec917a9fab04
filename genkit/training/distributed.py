"""Data-parallel training with torch.distributed, started by torchrun.

Every rank holds the full model and reads its own batches; DistributedDataParallel averages the
gradients during the backward pass (NCCL on GPUs, gloo on CPUs). The per-sample draws (noise,
levels) come from one generator all ranks share, each taking its rows of the global batch, and
dropout masks from each rank's own stream. The curriculum depends on the step alone, so all
ranks agree on N(k). Rank 0 writes the run folder.
"""

from __future__ import annotations

import inspect
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from genkit.build import pick_device
from genkit.errors import GenkitError


@dataclass
class Distributed:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_environment(cls) -> "Distributed":
        """Join the process group torchrun describes in the environment; a single process otherwise."""
        world_size = int(os.environ.get("WORLD_SIZE", "1"))
        if world_size == 1:
            return cls()
        if not dist.is_initialized():
            backend = "nccl" if torch.cuda.is_available() else "gloo"
            dist.init_process_group(backend)
        return cls(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))

    def device(self, name: str) -> torch.device:
        """cuda:LOCAL_RANK for every rank of a GPU run (a cuda:N of the config means a single process)."""
        if self.enabled and torch.cuda.is_available() and (name == "auto" or name.startswith("cuda")):
            torch.cuda.set_device(self.local_rank)
            return torch.device("cuda", self.local_rank)
        return pick_device(name)

    def local_batch_size(self, batch_size: int) -> int:
        if batch_size % self.world_size:
            raise GenkitError(f"train.batch_size {batch_size} is not divisible by the {self.world_size} processes")
        return batch_size // self.world_size

    def wrap(self, model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
        """DistributedDataParallel around ``model`` for the gradient pass: it averages gradients
        in buckets while the backward pass still runs. ``model`` itself is left as it is."""
        if not self.enabled:
            return model
        ids = [device.index] if device.type == "cuda" else None
        # no buffers to keep in sync at each forward pass (no batch norm); the option's name
        # changed in recent torch versions
        named = "forward_sync_buffers" if "forward_sync_buffers" in inspect.signature(DistributedDataParallel).parameters else "broadcast_buffers"
        return DistributedDataParallel(model, device_ids=ids, **{named: False})

    def mean(self, value: torch.Tensor) -> torch.Tensor:
        if not self.enabled:
            return value
        value = value.clone()
        dist.all_reduce(value)
        return value / self.world_size

    def gather(self, obj):
        """Every rank's ``obj`` as a list indexed by rank."""
        if not self.enabled:
            return [obj]
        gathered = [None] * self.world_size
        dist.all_gather_object(gathered, obj)
        return gathered

    def gather_to_main(self, obj) -> list | None:
        """Every rank's ``obj`` on rank 0, as a list indexed by rank (None on the other ranks)."""
        if not self.enabled:
            return [obj]
        gathered = [None] * self.world_size if self.is_main else None
        dist.gather_object(obj, gathered, dst=0)
        return gathered

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()
