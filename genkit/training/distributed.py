"""Data-parallel training with torch.distributed, started by torchrun.

Every rank holds the full model, draws its own batch, noise and indices from its own random
stream, and averages gradients before each optimizer step. The curriculum depends on the step
alone, so all ranks agree on N(k). Rank 0 writes the run folder.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

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

    def average_gradients(self, parameters) -> None:
        if not self.enabled:
            return
        grads = [p.grad for p in parameters if p.grad is not None]
        flat = torch.cat([g.flatten() for g in grads])  # one collective instead of one per tensor
        dist.all_reduce(flat)
        flat /= self.world_size
        offset = 0
        for g in grads:
            g.copy_(flat[offset : offset + g.numel()].view_as(g))
            offset += g.numel()

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

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()
