"""Checkpoints written atomically and read without running code from the file."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import torch

from genkit import files
from genkit.errors import GenkitError


def save_atomic(state: dict[str, Any], path: Path) -> None:
    """Write to a temporary file beside ``path``, then rename: a crash leaves the old file whole
    (a kill can leave the temporary ``.checkpoint.pt.XXXXXXXX``; readers ignore it, the next
    training start removes it)."""
    files.write_atomic(path, lambda file: torch.save(state, file), sync=True)


def all_finite(tensors) -> bool:
    """No NaN or infinity in any floating-point tensor: the max-abs of each in one fused kernel
    (per device), and one sync for the answer; cheap enough for every save."""
    floats = [t.detach() for t in tensors if isinstance(t, torch.Tensor) and t.is_floating_point() and t.numel()]
    if not floats:
        return True
    norms = torch._foreach_norm(floats, float("inf"))  # max |x|: no overflow, NaN propagates
    return bool(torch.stack([n.to(floats[0].device, torch.float32) for n in norms]).isfinite().all())


def load(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load tensors and plain containers only (``weights_only=True``): no pickled code runs."""
    path = Path(path)
    if not path.is_file():
        raise GenkitError(f"checkpoint not found: {path}")
    if path.stat().st_size == 0:
        raise GenkitError(f"checkpoint {path} is empty (0 bytes): it was not written by a finished save")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        if "Unsupported global" in str(error):  # a pickled class or function: refused, never run
            raise GenkitError(
                f"checkpoint {path} holds code or objects genkit will not load (it reads tensors and plain "
                f"values only); use checkpoints written by genkit train, from a source you trust"
            ) from None
        raise GenkitError(f"{path} is not a genkit checkpoint (not a torch save file, or damaged)") from None
    except Exception as error:
        raise GenkitError(f"{path} is not a readable genkit checkpoint ({type(error).__name__}: {first_line(error)})") from None
    if not isinstance(state, dict) or "step" not in state:
        raise GenkitError(f"{path} is not a genkit checkpoint (no training state in it)")
    return state


def ema_key(rate: float) -> str:
    """The name of an evaluation EMA in a checkpoint's "emas" (train.ema_rates after the first,
    whose weights are "ema", where a run with one EMA keeps them)."""
    return repr(float(rate))


def ema_weights(state: dict[str, Any], rate: float | None, rates: list[float], path: Path) -> dict[str, Any]:
    """The state of the evaluation EMA at ``rate`` (None: the first, the default) of a checkpoint
    whose run keeps ``rates``; one GenkitError naming the rates it has otherwise."""
    if rate is None or float(rate) == float(rates[0]):
        return state.get("ema")
    kept = state.get("emas", {})
    if float(rate) not in [float(r) for r in rates] or ema_key(rate) not in kept:
        raise GenkitError(f"`ema` {rate}: {path} keeps the evaluation EMAs {', '.join(repr(float(r)) for r in rates)} (train.ema_rates)")
    return kept[ema_key(rate)]


def first_line(error: BaseException) -> str:
    """The first line of an error's message, or its type when the message is empty."""
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def restore(state: dict[str, Any], targets: dict[str, Any], context: str) -> None:
    """Load ``state[key]`` into each of ``targets`` (modules, optimizers: anything with
    ``load_state_dict``); ``targets["method"]``'s keys and shapes are compared first, so a
    checkpoint of another config fails with its first difference. One GenkitError starting with
    ``context`` for any mismatch."""
    difference = mismatch(targets["method"], state.get("method", {})) if "method" in targets else ""
    if difference:
        raise GenkitError(f"{context}: {difference}")
    try:
        for key, target in targets.items():
            target.load_state_dict(state[key])
    except (KeyError, RuntimeError, ValueError) as error:
        raise GenkitError(f"{context}: {first_line(error)}") from None


def mismatch(module: torch.nn.Module, state: dict[str, Any]) -> str:
    """'' when ``state`` fits ``module`` exactly, else its first difference, for error messages."""
    mine = module.state_dict()
    for key in sorted(mine.keys() | state.keys()):
        if key not in state:
            return f"'{key}' is missing from the checkpoint"
        if key not in mine:
            return f"the checkpoint has '{key}', which this config's model does not"
        if tuple(mine[key].shape) != tuple(state[key].shape):
            return f"'{key}' has shape {tuple(state[key].shape)} in the checkpoint, {tuple(mine[key].shape)} in this config's model"
    return ""
