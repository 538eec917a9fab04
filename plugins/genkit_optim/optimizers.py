"""The optimizers of the papers: RAdam (CD, CT and iCT in Song et al. 2023 and Song & Dhariwal
2023) and Adam (EDM, Karras et al. 2022). A factory's object turns (parameters, lr) into a
``torch.optim.Optimizer``; the loop sets each step's learning rate on its parameter groups."""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Literal

import torch

from genkit.schema import Check, non_negative, option, positive

betas_check = Check(lambda b: all(0 <= v < 1 for v in b), "must be two numbers in [0, 1)")


@dataclass
class AdamOptions:
    betas: tuple[float, float] = option((0.9, 0.999), "decay rates of the first and second moment estimates", betas_check)
    eps: float = option(1e-8, "added to the denominator for numerical stability", positive)
    weight_decay: float = option(0.0, "L2 penalty added to the gradient (not decoupled)", non_negative)
    kernels: Literal["auto", "fused", "foreach", "for-loop"] = option(
        "auto", "how torch updates the tensors: auto takes the fused kernel where torch has one for this optimizer, else foreach"
    )


class AdamFamily:
    """An optimizer of torch's Adam family built with the options above."""

    Config = AdamOptions
    torch_class: type[torch.optim.Optimizer]

    def __init__(self, options: AdamOptions, ctx=None):
        self.options = options or AdamOptions()

    def __call__(self, parameters, lr: float) -> torch.optim.Optimizer:
        o = self.options
        parameters = list(parameters)
        kernels = self._kernels(parameters[0].device if parameters else torch.device("cpu"))
        return self.torch_class(parameters, lr=lr, betas=o.betas, eps=o.eps, weight_decay=o.weight_decay, **kernels)

    def _kernels(self, device: torch.device) -> dict[str, bool]:
        """One kernel launch for all tensors (fused) or one per operation (foreach) instead of a
        Python loop over tensors: the same update with less overhead per step. ``auto`` takes
        the fused kernel where torch has one, else foreach on an accelerator; on a CPU the plain
        loop, which measured faster than foreach there (benchmarks/step_overhead.py)."""
        choice = self.options.kernels
        if choice == "auto":
            fused = "fused" in inspect.signature(self.torch_class).parameters
            choice = "fused" if fused else "for-loop" if device.type == "cpu" else "foreach"
        if choice == "fused":
            return {"fused": True}
        return {"foreach": choice == "foreach"}


class RAdam(AdamFamily):
    """Rectified Adam (Liu et al. 2020)."""

    torch_class = torch.optim.RAdam


class Adam(AdamFamily):
    """Adam (Kingma & Ba 2015)."""

    torch_class = torch.optim.Adam
