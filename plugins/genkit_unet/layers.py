"""Building blocks of the image U-Nets: noise embeddings, FIR resampling, residual blocks with
adaptive normalization and self-attention."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Literal, Optional

import torch
from torch import nn
from torch.nn.functional import conv2d, conv_transpose2d, scaled_dot_product_attention, silu

from genkit.nn.layers import Dropout

Init = Callable[[nn.Module], None]  # initializes the weight and bias of a linear or conv layer in place


def torch_default(layer: nn.Module) -> None:
    """Keep PyTorch's initialization: uniform with bound 1/sqrt(fan_in) for weight and bias (ADM's)."""


def zeros(layer: nn.Module) -> None:
    nn.init.zeros_(layer.weight)
    if layer.bias is not None:
        nn.init.zeros_(layer.bias)


def xavier(gain: float = 1.0) -> Init:
    """Xavier-uniform weights times ``gain`` and zero biases (the DDPM++/NCSN++ scheme)."""

    def init(layer: nn.Module) -> None:
        nn.init.xavier_uniform_(layer.weight, gain=gain)
        if layer.bias is not None:
            nn.init.zeros_(layer.bias)

    return init


def linear(inputs: int, outputs: int, init: Init, bias: bool = True) -> nn.Linear:
    layer = nn.Linear(inputs, outputs, bias=bias)
    init(layer)
    return layer


def conv(inputs: int, outputs: int, kernel: int, init: Init, padding: Optional[int] = None) -> nn.Conv2d:
    """A stride-1 convolution, 'same' padding unless told."""
    layer = nn.Conv2d(inputs, outputs, kernel, padding=kernel // 2 if padding is None else padding)
    init(layer)
    return layer


def largest_divisor(n: int, limit: int) -> int:
    """The largest divisor of n that is at most limit (and at least 1)."""
    return next(d for d in range(max(1, min(n, limit)), 0, -1) if n % d == 0)


def pixel_norm(v: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """v / sqrt(mean of v^2 over channels (dim 1) + eps), per sample and position (Karras et al.
    2018's pixel normalisation, with its eps)."""
    return v * torch.rsqrt(v.square().mean(dim=1, keepdim=True) + eps)


def group_norm(channels: int, eps: float) -> nn.GroupNorm:
    """32 groups of at least 4 channels where the channel count allows (fewer groups otherwise)."""
    return nn.GroupNorm(largest_divisor(channels, min(32, channels // 4)), channels, eps=eps)


# ----------------------------------------------------------------------------- noise embeddings


class PositionalEmbedding(nn.Module):
    """Transformer-style sinusoids of c_noise with frequencies 10000^(-i/n), i = 0..n-1
    (``endpoint``: i/(n-1), so the lowest frequency is exactly 1/10000)."""

    def __init__(self, channels: int, endpoint: bool, cos_first: bool = False):
        super().__init__()
        half = channels // 2
        exponents = torch.arange(half, dtype=torch.float32) / max(half - 1 if endpoint else half, 1)
        self.register_buffer("frequencies", 10000.0**-exponents, persistent=False)
        self.cos_first = cos_first

    def forward(self, c_noise: torch.Tensor) -> torch.Tensor:
        return sinusoids(c_noise[:, None] * self.frequencies.to(c_noise.dtype), self.cos_first)


class FourierEmbedding(nn.Module):
    """Random Fourier features of c_noise: frequencies drawn once from N(0, scale^2) (NCSN++)."""

    def __init__(self, channels: int, scale: float):
        super().__init__()
        self.register_buffer("frequencies", torch.randn(channels // 2) * scale)

    def forward(self, c_noise: torch.Tensor) -> torch.Tensor:
        return sinusoids(c_noise[:, None] * (2 * math.pi * self.frequencies).to(c_noise.dtype), cos_first=False)


def sinusoids(angles: torch.Tensor, cos_first: bool) -> torch.Tensor:
    parts = [angles.cos(), angles.sin()] if cos_first else [angles.sin(), angles.cos()]
    return torch.cat(parts, dim=1)


# ----------------------------------------------------------------------------- resampling


class Resample(nn.Module):
    """Doubles or halves the resolution of every channel with the separable FIR filter ``taps``
    (outer product, normalized to sum 1): (1, 1) is box/nearest, (1, 3, 3, 1) bilinear-like."""

    def __init__(self, direction: Literal["up", "down"], taps: tuple[int, ...], padding: Optional[int] = None):
        super().__init__()
        taps_tensor = torch.as_tensor(taps, dtype=torch.float32)
        kernel = torch.outer(taps_tensor, taps_tensor) / taps_tensor.sum() ** 2
        self.register_buffer("kernel", kernel[None, None], persistent=False)
        self.up = direction == "up"
        self.padding = (len(taps) - 1) // 2 if padding is None else padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        channels = x.shape[1]
        kernel = self.kernel.to(x.dtype).expand(channels, -1, -1, -1)
        if self.up:  # zero-stuffing then filtering: the kernel's gain 4 keeps the mean
            return conv_transpose2d(x, kernel * 4, stride=2, padding=self.padding, groups=channels)
        return conv2d(x, kernel, stride=2, padding=self.padding, groups=channels)


# ----------------------------------------------------------------------------- blocks


@dataclass(frozen=True)
class BlockStyle:
    """What the residual blocks of one U-Net family share."""

    embedding_channels: int  # width of the noise (and label) embedding the blocks are modulated by
    dropout: float
    skip_scale: float  # the residual sum is multiplied by this (sqrt(1/2) keeps the variance)
    eps: float  # of the group norms
    resample_filter: tuple[int, ...]
    project_resampled_skip: bool  # a 1x1 conv on the skip path of up/down blocks, even at equal width
    adaptive_scale: bool  # the embedding gives a scale and a shift (ADM), or only a shift (DDPM++)
    channels_per_head: Optional[int]  # attention heads of ~this width; None: a single head
    init: Init
    zero_init: Init  # of the last layer of each residual branch, so every block starts near identity
    attention_init: Init
    double_normalisation: bool = False  # scale and shift pixel-normalised (sCT); shift-only blocks gain a scale

    def heads(self, channels: int) -> int:
        if self.channels_per_head is None:
            return 1
        return largest_divisor(channels, max(1, channels // self.channels_per_head))

    def block(self, inputs: int, outputs: int, resample: Optional[str] = None, attention: bool = False) -> "ResidualBlock":
        return ResidualBlock(inputs, outputs, self, resample, attention)


class SelfAttention(nn.Module):
    """Multi-head self-attention over the pixels of a feature map."""

    def __init__(self, channels: int, style: BlockStyle):
        super().__init__()
        self.heads = style.heads(channels)
        self.norm = group_norm(channels, style.eps)
        self.qkv = conv(channels, channels * 3, 1, style.attention_init)
        self.project = conv(channels, channels, 1, style.zero_init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, channels, height, width = x.shape
        qkv = self.qkv(self.norm(x)).reshape(batch, self.heads, channels // self.heads, 3, height * width)
        q, k, v = (t.transpose(2, 3) for t in qkv.unbind(3))  # each (batch, heads, pixels, head width)
        attended = scaled_dot_product_attention(q, k, v).transpose(2, 3)
        return self.project(attended.reshape(batch, channels, height, width))


class ResidualBlock(nn.Module):
    """BigGAN-style residual block: norm, SiLU, (resample), conv, embedding modulation, norm,
    SiLU, dropout, conv; plus a skip path, then optional self-attention.

    The modulation: a shift added before the norm; with ``adaptive_scale`` norm(h) (1 + s) + b
    (ADM's adaptive group norm); with ``double_normalisation`` norm(h) pnorm(s) + pnorm(b), s and b
    pixel-normalised over channels (Lu & Song 2025, section 4.1: a modulation of fixed size, which
    removed the instability of continuous-time consistency training)."""

    def __init__(self, inputs: int, outputs: int, style: BlockStyle, resample: Optional[str], attention: bool):
        super().__init__()
        self.skip_scale = style.skip_scale
        self.double_normalisation = style.double_normalisation
        self.adaptive_scale = style.adaptive_scale or style.double_normalisation
        self.resample = Resample(resample, style.resample_filter) if resample else nn.Identity()
        self.norm0 = group_norm(inputs, style.eps)
        self.conv0 = conv(inputs, outputs, 3, style.init)
        self.modulation = linear(style.embedding_channels, outputs * (2 if self.adaptive_scale else 1), style.init)
        self.norm1 = group_norm(outputs, style.eps)
        self.dropout = Dropout(style.dropout)
        self.conv1 = conv(outputs, outputs, 3, style.zero_init)
        project = inputs != outputs or (resample is not None and style.project_resampled_skip)
        self.skip = conv(inputs, outputs, 1, style.init) if project else nn.Identity()
        self.attention = SelfAttention(outputs, style) if attention else None

    def forward(self, x: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
        h = self.conv0(self.resample(silu(self.norm0(x))))
        modulation = self.modulation(embedding)[:, :, None, None]
        h = silu(self.modulate(h, modulation))
        h = self.conv1(self.dropout(h))
        x = (h + self.skip(self.resample(x))) * self.skip_scale
        if self.attention is not None:
            x = (x + self.attention(x)) * self.skip_scale
        return x

    def modulate(self, h: torch.Tensor, modulation: torch.Tensor) -> torch.Tensor:
        if not self.adaptive_scale:
            return self.norm1(h + modulation)
        scale, shift = modulation.chunk(2, dim=1)
        if self.double_normalisation:
            return self.norm1(h) * pixel_norm(scale) + pixel_norm(shift)
        return torch.addcmul(shift, self.norm1(h), scale + 1)
