"""Preconditioning wrappers around a raw network F(x_in, c_noise) (Karras et al. 2022; Song et al. 2023)."""

from __future__ import annotations

from functools import partial

import torch
from torch import nn


def as_column(sigma: torch.Tensor | float, x: torch.Tensor) -> torch.Tensor:
    """Broadcast a scalar or per-sample sigma (shape (batch,)) against a batch x of any rank."""
    sigma = torch.as_tensor(sigma, dtype=x.dtype, device=x.device)
    if sigma.ndim == 0:
        sigma = sigma.expand(x.shape[0])
    return sigma.reshape(-1, *([1] * (x.ndim - 1)))


def edm_scalings(sigma, sigma_data: float = 0.5):
    """(c_skip, c_out, c_in, c_noise) of the EDM denoiser."""
    total = sigma**2 + sigma_data**2
    c_skip = sigma_data**2 / total
    c_out = sigma * sigma_data / total**0.5
    c_in = 1 / total**0.5
    c_noise = torch.log(torch.as_tensor(sigma)) / 4
    return c_skip, c_out, c_in, c_noise


def consistency_scalings(sigma, sigma_min: float = 0.002, sigma_data: float = 0.5):
    """(c_skip, c_out, c_in, c_noise) of the consistency function; f(x, sigma_min) = x exactly."""
    sigma = torch.as_tensor(sigma)
    # tensor / tensor: `float / tensor` multiplies by a rounded reciprocal, so c_skip could miss 1
    c_skip = sigma.new_tensor(sigma_data**2) / ((sigma - sigma_min) ** 2 + sigma_data**2)
    c_out = sigma_data * (sigma - sigma_min) / (sigma**2 + sigma_data**2) ** 0.5
    c_in = 1 / (sigma**2 + sigma_data**2) ** 0.5
    c_noise = torch.log(torch.as_tensor(sigma)) / 4
    return c_skip, c_out, c_in, c_noise


def conditioned(model, labels: torch.Tensor | None):
    """``model(x, sigma)`` with the class labels bound; the model itself when there are none."""
    return model if labels is None else partial(model, labels=labels)


class _Preconditioned(nn.Module):
    def __init__(self, net: nn.Module, sigma_data: float = 0.5):
        super().__init__()
        self.net = net
        self.sigma_data = sigma_data

    def scalings(self, sigma: torch.Tensor):
        raise NotImplementedError

    def forward(self, x: torch.Tensor, sigma, labels: torch.Tensor | None = None) -> torch.Tensor:
        """``labels``: class indices (batch,) for a class-conditional network, else None."""
        sigma = as_column(sigma, x)
        c_skip, c_out, c_in, c_noise = self.scalings(sigma)
        extra = () if labels is None else (labels,)
        return c_skip * x + c_out * self.net(c_in * x, c_noise.flatten(), *extra)


class EDMDenoiser(_Preconditioned):
    """D(x, sigma) = c_skip x + c_out F(c_in x, c_noise): the diffusion teacher's denoiser."""

    def scalings(self, sigma):
        return edm_scalings(sigma, self.sigma_data)


class ConsistencyFunction(_Preconditioned):
    """f(x, sigma) with the boundary condition f(x, sigma_min) = x built in."""

    def __init__(self, net: nn.Module, sigma_min: float = 0.002, sigma_data: float = 0.5):
        super().__init__(net, sigma_data)
        self.sigma_min = sigma_min

    def scalings(self, sigma):
        return consistency_scalings(sigma, self.sigma_min, self.sigma_data)

