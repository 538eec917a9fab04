"""A residual MLP for 2-D data with a Fourier-feature embedding of the noise level."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from genkit.nn.layers import Dropout
from genkit.schema import even_positive, non_negative, option, positive, unit_interval


class FourierFeatures(nn.Module):
    """[sin(2 pi w c), cos(2 pi w c)] with fixed w ~ N(0, scale^2); a small scale makes the
    network less sensitive to the noise level (iCT uses 0.02 where the original CM used 16)."""

    def __init__(self, dim: int, scale: float):
        super().__init__()
        self.register_buffer("frequencies", torch.randn(dim // 2) * scale)

    def forward(self, c_noise: torch.Tensor) -> torch.Tensor:
        angles = 2 * math.pi * c_noise[:, None] * self.frequencies[None, :]
        return torch.cat([angles.sin(), angles.cos()], dim=1)


class ResidualBlock(nn.Module):
    def __init__(self, width: int, dropout: float):
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.layers = nn.Sequential(nn.Linear(width, width), nn.SiLU(), Dropout(dropout), nn.Linear(width, width))

    def forward(self, h: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
        return h + self.layers(nn.functional.silu(self.norm(h) + embedding))


class MLP(nn.Module):
    """A residual MLP for 2-D points with Fourier features of the noise level."""

    @dataclass
    class Config:
        width: int = option(256, "hidden units per layer", positive)
        depth: int = option(4, "residual blocks", non_negative)
        embedding_dim: int = option(64, "Fourier features of the noise level (a sine and a cosine each)", even_positive)
        fourier_scale: float = option(16.0, "std of the Fourier frequencies (iCT: 0.02, original CM: 16)", non_negative)
        noise_multiplier: float = option(1.0, "c_noise is multiplied by this before the Fourier features")
        dropout: float = option(0.0, "dropout rate inside each residual block", unit_interval)
        second_time: bool = option(
            False, "a second time input c_second with an embedding of its own, added to the first (MeanFlow's (t, t - r)); off: one time input"
        )

    def __init__(self, options: "MLP.Config", ctx):
        super().__init__()
        options = options or MLP.Config()
        (dim,) = ctx.data_shape
        self.noise_multiplier = options.noise_multiplier
        self.embed = nn.Sequential(
            FourierFeatures(options.embedding_dim, options.fourier_scale),
            nn.Linear(options.embedding_dim, options.width),
            nn.SiLU(),
        )
        self.input = nn.Linear(dim, options.width)
        self.blocks = nn.ModuleList(ResidualBlock(options.width, options.dropout) for _ in range(options.depth))
        self.output = nn.Sequential(nn.LayerNorm(options.width), nn.SiLU(), nn.Linear(options.width, dim))
        self.second_time = options.second_time
        if options.second_time:  # built last, so the other weights drawn from a seed stay as they were
            self.embed_second = nn.Sequential(
                FourierFeatures(options.embedding_dim, options.fourier_scale),
                nn.Linear(options.embedding_dim, options.width),
                nn.SiLU(),
            )

    def forward(self, x: torch.Tensor, c_noise: torch.Tensor, c_second: torch.Tensor | None = None) -> torch.Tensor:
        """``c_second`` (batch,): the second time input, required with ``second_time`` and refused without."""
        if (c_second is not None) != self.second_time:
            raise ValueError("this MLP takes a second time input c_second" if self.second_time else "this MLP has no second time input (network.second_time = false)")
        embedding = self.embed(c_noise * self.noise_multiplier)
        if c_second is not None:
            embedding = embedding + self.embed_second(c_second * self.noise_multiplier)
        h = self.input(x)
        for block in self.blocks:
            h = block(h, embedding)
        return self.output(h)
