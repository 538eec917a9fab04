"""Capture and replay random state, so two network passes draw the same dropout masks."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch


@dataclass
class RNGState:
    cpu: torch.Tensor
    cuda: list[torch.Tensor]


def _cuda_devices(device: torch.device) -> list[int]:
    if device.type != "cuda" or not torch.cuda.is_available():
        return []
    return [device.index if device.index is not None else torch.cuda.current_device()]


def capture(device: torch.device) -> RNGState:
    """The state of the CPU generator and of the device's CUDA generator, if any."""
    devices = _cuda_devices(device)
    return RNGState(torch.get_rng_state(), [torch.cuda.get_rng_state(d) for d in devices])


@contextlib.contextmanager
def replay(state: RNGState, device: torch.device):
    """Run a block with the random state of ``state``; afterwards the state is as before."""
    devices = _cuda_devices(device)
    with torch.random.fork_rng(devices=devices):
        torch.set_rng_state(state.cpu)
        for index, cuda_state in zip(devices, state.cuda):
            torch.cuda.set_rng_state(cuda_state, index)
        yield


def get_all(device: torch.device) -> dict[str, torch.Tensor | list[torch.Tensor]]:
    """The generators this process draws from during training, for checkpoints."""
    state = capture(device)
    return {"cpu": state.cpu, "cuda": state.cuda}


def set_all(states: dict, device: torch.device) -> None:
    torch.set_rng_state(states["cpu"].cpu())
    for index, cuda_state in zip(_cuda_devices(device), states.get("cuda", [])):
        torch.cuda.set_rng_state(cuda_state.cpu(), index)
