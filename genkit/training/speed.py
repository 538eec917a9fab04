"""How a training step uses the hardware: threads, memory layout, DistributedDataParallel,
torch.compile, mixed precision and its gradient scaler. None of it changes the recipe: the
loss, the draws and the optimizer are the method's and the loop's."""

from __future__ import annotations

import ctypes
import sys
from contextlib import nullcontext

import torch
from torch import nn

from genkit.errors import GenkitError

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


class TrainingSpeed:
    """The settings of ``train`` that concern speed, applied to one run's model and steps."""

    def __init__(self, train, device: torch.device):
        self.device = device
        self.dtype = PRECISIONS[train.precision]
        self.compile = train.compile
        self.compile_scope, self.compile_mode = train.compile_scope, train.compile_mode
        self.channels_last = train.channels_last
        if device.type == "cuda":  # process-wide in torch: the run's setting holds for its whole process
            torch.backends.cuda.matmul.allow_tf32 = train.tf32
            torch.backends.cudnn.allow_tf32 = train.tf32
        if train.threads:
            torch.set_num_threads(train.threads)
        if device.type == "cpu":
            keep_freed_memory()
        # fp16 overflows where bf16 does not: scale the loss and skip steps with inf gradients
        self.scaler = torch.amp.GradScaler(device.type) if train.precision == "fp16" else None
        self.ddp: nn.Module | None = None

    def prepare(self, model: nn.Module, dist) -> nn.Module:
        """The module the gradient pass calls: ``model`` wrapped in DDP and compiled as asked.
        The wrappers share ``model``'s parameters, which the optimizer and EMA keep using."""
        if self.channels_last:
            model.to(memory_format=torch.channels_last)
        if self.compile and self.compile_scope == "blocks":
            compile_blocks(model, self.compile_mode)  # in place, before DDP wraps the module
        student = dist.wrap(model, self.device)
        self.ddp = student if student is not model else None
        if self.compile and self.compile_scope == "model":
            student = _compiled(student, self.compile_mode)
        return student

    def batch_to_device(self, batch: torch.Tensor) -> torch.Tensor:
        batch = batch.to(self.device, non_blocking=True)
        if self.channels_last and batch.dim() == 4:
            batch = batch.contiguous(memory_format=torch.channels_last)
        return batch

    def autocast(self):
        if self.dtype is None:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def accumulating(self, last: bool):
        """DDP reduces gradients on the last microbatch only; earlier ones just accumulate."""
        return nullcontext() if last or self.ddp is None else self.ddp.no_sync()

    def backward(self, loss: torch.Tensor) -> None:
        (loss if self.scaler is None else self.scaler.scale(loss)).backward()

    def unscale(self, optimizer: torch.optim.Optimizer) -> None:
        """True gradients before clipping (fp16 only scales them)."""
        if self.scaler is not None:
            self.scaler.unscale_(optimizer)

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        if self.scaler is None:
            optimizer.step()
        else:
            self.scaler.step(optimizer)
            self.scaler.update()

    def scaler_state(self) -> dict:
        return self.scaler.state_dict() if self.scaler is not None else {}

    def load_scaler_state(self, state: dict | None) -> None:
        if self.scaler is not None and state:
            self.scaler.load_state_dict(state)


def keep_freed_memory() -> None:
    """Keep freed activations in the process (glibc on Linux; elsewhere nothing happens).

    By default glibc serves large blocks with mmap and gives them back on free, so every step's
    activations fault fresh zeroed pages in again: on 2 CPU cores that made a small U-Net's
    step 11% slower than the same work reusing memory (benchmarks/step_overhead.py). Serving
    blocks up to 32 MiB from the heap and never trimming it keeps them for the next step; the
    cost is a resident size that stays at its peak."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # another C library (musl): leave it as it is
        return
    m_trim_threshold, m_mmap_threshold = -1, -3  # glibc's mallopt parameters
    libc.mallopt(m_mmap_threshold, 32 * 2**20)
    libc.mallopt(m_trim_threshold, 2**31 - 1)


def _compiled(module: nn.Module, mode: str = "default") -> nn.Module:
    try:
        return torch.compile(module, mode=mode)
    except RuntimeError as error:  # e.g. a Python version torch.compile does not support yet
        raise GenkitError(f"train.compile: torch.compile is unavailable here ({error}); set train.compile=false") from None


def compile_blocks(model: nn.Module, mode: str = "default") -> int:
    """Regional compilation: every module held in a ModuleList (the U-Nets' and the MLP's
    repeated blocks) compiled in place on its own, so blocks of the same shape share one compiled
    graph and the warm-up is a few blocks' instead of the whole network's. Parameters and
    state_dict keys are unchanged. Returns how many blocks were compiled."""
    blocks = [block for container in model.modules() if isinstance(container, nn.ModuleList) for block in container]
    try:
        for block in blocks:
            block.compile(mode=mode, dynamic=False)  # a graph per block shape, never a symbolic one
    except RuntimeError as error:
        raise GenkitError(f"train.compile: torch.compile is unavailable here ({error}); set train.compile=false") from None
    return len(blocks)
