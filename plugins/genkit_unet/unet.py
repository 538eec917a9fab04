"""The U-Net skeleton shared by DDPM++/NCSN++ and ADM, their common options and the network
contract: ``forward(x, c_noise, labels=None)`` with labels as class indices."""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass
from typing import Any, Optional

import torch
from torch import nn
from torch.nn.functional import one_hot, silu

from genkit.errors import GenkitError
from genkit.schema import at_least, each, non_negative, option, positive, unit_interval
from genkit_unet.layers import BlockStyle, Resample, conv, group_norm


@dataclass
class UNetConfig:
    """Options every U-Net here takes; each network subclasses this with its own defaults."""

    channels: int = option(128, "model channels: the width at multiplier 1", positive)
    channel_multipliers: tuple[int, ...] = option(
        (2, 2, 2), "width multiplier per resolution level, highest resolution first; each level after the first halves the resolution", each(positive)
    )
    blocks_per_resolution: int = option(4, "residual blocks per level in the encoder (the decoder has one more)", at_least(1))
    attention_resolutions: tuple[int, ...] = option((16,), "resolutions (in pixels) whose blocks have self-attention", each(positive))
    dropout: float = option(0.1, "dropout rate inside the residual blocks", unit_interval)
    label_dim: int = option(0, "number of classes for class-conditional generation (0: unconditional)", non_negative)
    embedding_channel_multiplier: int = option(4, "width of the noise embedding, in model channels", positive)
    second_time: bool = option(
        False, "a second time input c_second with features and mapping of its own, added to the embedding (MeanFlow's (t, t - r)); off: one time input"
    )
    double_normalisation: bool = option(
        False,
        "sCT's adaptive double normalisation (Lu & Song 2025): blocks modulated by norm(h) pnorm(s) + pnorm(b), the embedding's scale and shift pixel-normalised over channels;"
        " DDPM++/NCSN++ blocks, otherwise a shift only, gain the scale; off: the family's own modulation",
    )

    def __post_init__(self):
        if not self.channel_multipliers:
            raise ValueError("channel_multipliers must name at least one level")
        if self.channels % 2:
            raise ValueError(f"channels must be even (the noise features come in sine/cosine pairs), got {self.channels}")


def with_defaults(config: type, **defaults: Any) -> type:
    """A subclass of the options dataclass ``config`` whose fields default to ``defaults``
    (help texts and checks kept): one family of options, two registered configurations."""
    fields = {spec.name: spec for spec in dataclasses.fields(config)}
    hints = typing.get_type_hints(config)
    overrides = [
        (name, hints[name], option(value, fields[name].metadata["help"], fields[name].metadata["check"]))
        for name, value in defaults.items()
    ]
    derived = dataclasses.make_dataclass("Config", overrides, bases=(config,))
    derived.__module__ = config.__module__
    return derived


def image_shape(data_shape: tuple[int, ...], levels: int) -> tuple[int, int]:
    """(channels, resolution) of square images a U-Net of ``levels`` levels can take."""
    if len(data_shape) != 3 or data_shape[1] != data_shape[2]:
        raise GenkitError(f"the U-Net networks need square images (channels, size, size); the data has shape {tuple(data_shape)}")
    channels, resolution, _ = data_shape
    if resolution % 2 ** (levels - 1):
        raise GenkitError(
            f"image size {resolution} is not divisible by 2^{levels - 1}, as {levels} channel_multipliers need; use fewer levels"
        )
    return channels, resolution


class UNetBackbone(nn.Module):
    """Encoder, middle and decoder of residual blocks with skip connections between mirrored
    blocks, modulated by an embedding of the noise level (and class).

    ``encoder``: "standard"; "skip" also feeds the downsampled input image into every level;
    "residual" carries a strided-conv image path alongside (NCSN++). ``decoder``: "standard"
    outputs from the last level; "skip" sums outputs of every level, upsampled (progressive
    growing). ``attend_all_decoder_blocks``: attention in every decoder block at an attention
    resolution (ADM) or only the last of the level (DDPM++).
    """

    def __init__(
        self,
        image_channels: int,
        resolution: int,
        options: UNetConfig,
        style: BlockStyle,
        stem_channels: int,
        encoder: str = "standard",
        decoder: str = "standard",
        attend_all_decoder_blocks: bool = True,
    ):
        super().__init__()
        widths = [options.channels * m for m in options.channel_multipliers]
        attends = [resolution >> level in options.attention_resolutions for level in range(len(widths))]
        self.stem = conv(image_channels, stem_channels, 3, style.init)
        width, skips, image_width = stem_channels, [stem_channels], image_channels
        self.encoder = nn.ModuleList()
        for level, (out_width, attend) in enumerate(zip(widths, attends)):
            stage = Stage()
            if level > 0:
                stage.resample = style.block(width, width, resample="down")
                stage.image_path = image_path(encoder, image_width, width, style)
                image_width = width if encoder == "residual" else image_width
                skips.append(width)
            for _ in range(options.blocks_per_resolution):
                stage.blocks.append(style.block(width, out_width, attention=attend))
                width = out_width
                skips.append(width)
            self.encoder.append(stage)

        self.middle = nn.ModuleList([style.block(width, width, attention=True), style.block(width, width)])

        self.decoder = nn.ModuleList()
        for level in reversed(range(len(widths))):
            stage = Stage()
            if level < len(widths) - 1:
                stage.resample = style.block(width, width, resample="up")
            for index in range(options.blocks_per_resolution + 1):
                last = index == options.blocks_per_resolution
                attend = attends[level] and (attend_all_decoder_blocks or last)
                stage.blocks.append(style.block(width + skips.pop(), widths[level], attention=attend))
                width = widths[level]
            if decoder == "skip" or level == 0:
                stage.output = OutputHead(width, image_channels, style)
            self.decoder.append(stage)
        self.upsample_output = Resample("up", style.resample_filter)

    def forward(self, x: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
        image = x
        x = self.stem(x)
        skips = [x]
        for stage in self.encoder:
            if stage.resample is not None:
                x = stage.resample(x, embedding)
                if stage.image_path is not None:
                    x, image = stage.image_path(x, image)
                skips.append(x)
            for block in stage.blocks:
                x = block(x, embedding)
                skips.append(x)
        for block in self.middle:
            x = block(x, embedding)
        output = None
        for stage in self.decoder:
            if stage.resample is not None:
                x = stage.resample(x, embedding)
            for block in stage.blocks:
                x = block(torch.cat([x, skips.pop()], dim=1), embedding)
            if stage.output is not None:
                level_output = stage.output(x)
                output = level_output if output is None else level_output + self.upsample_output(output)
        return output


class Stage(nn.Module):
    """One resolution level: an up/down block, an image path (encoder), residual blocks and an
    output head (decoder); the parts a level lacks are None."""

    def __init__(self):
        super().__init__()
        self.register_module("resample", None)  # placeholders keep the parameters in forward order
        self.register_module("image_path", None)
        self.blocks = nn.ModuleList()
        self.register_module("output", None)


class OutputHead(nn.Module):
    """Norm, SiLU and a near-zero-initialized conv down to the image channels."""

    def __init__(self, channels: int, image_channels: int, style: BlockStyle):
        super().__init__()
        self.norm = group_norm(channels, style.eps)
        self.conv = conv(channels, image_channels, 3, style.zero_init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(silu(self.norm(x)))


def image_path(kind: str, image_width: int, width: int, style: BlockStyle) -> Optional[nn.Module]:
    if kind == "skip":
        return ImageSkip(image_width, width, style)
    if kind == "residual":
        return ImageResidual(image_width, width, style)
    return None


class ImageSkip(nn.Module):
    """Adds a 1x1 projection of the input image, downsampled to this level, to the features."""

    def __init__(self, image_channels: int, width: int, style: BlockStyle):
        super().__init__()
        self.downsample = Resample("down", style.resample_filter)
        self.project = conv(image_channels, width, 1, style.init)

    def forward(self, x: torch.Tensor, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        image = self.downsample(image)
        return x + self.project(image), image


class ImageResidual(nn.Module):
    """A 3x3 conv then FIR downsampling of the previous level's path, averaged (variance-
    preserving) with the features, which also become the next level's path."""

    def __init__(self, path_channels: int, width: int, style: BlockStyle):
        super().__init__()
        pad = (len(style.resample_filter) - 1) // 2
        self.conv = conv(path_channels, width, 3, style.init, padding=1 + pad)  # filtered after, unpadded
        self.downsample = Resample("down", style.resample_filter, padding=0)

    def forward(self, x: torch.Tensor, path: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = (x + self.downsample(self.conv(path))) / math.sqrt(2)
        return x, x


class ConditionalUNet(nn.Module):
    """The network contract: F(x, c_noise, labels) of x's shape, labels as class indices.
    Subclasses build ``self.unet`` and define ``embed``."""

    unet: UNetBackbone

    def __init__(self, options: UNetConfig, ctx):
        super().__init__()
        self.label_dim = options.label_dim
        self.image_channels, self.resolution = image_shape(tuple(ctx.data_shape), len(options.channel_multipliers))
        self.embedding_channels = options.channels * options.embedding_channel_multiplier

    second_time = False

    def embed(self, c_noise: torch.Tensor, classes: Optional[torch.Tensor]) -> torch.Tensor:
        """The embedding that modulates the blocks, from c_noise (batch,) and one-hot classes."""
        raise NotImplementedError

    def add_second_time(self, features: nn.Module, features_width: int) -> None:
        """The second time input's own features and two-layer mapping into the embedding. Called
        last in a subclass's constructor, so the other weights drawn from a seed are those of the
        network without it; the last layer starts at zero, so the network starts as that one."""
        self.second_time = True
        width = self.embedding_channels
        self.embed_second = nn.Sequential(features, nn.Linear(features_width, width), nn.SiLU(), nn.Linear(width, width))
        nn.init.zeros_(self.embed_second[-1].weight)
        nn.init.zeros_(self.embed_second[-1].bias)

    def forward(
        self, x: torch.Tensor, c_noise: torch.Tensor, labels: Optional[torch.Tensor] = None, c_second: Optional[torch.Tensor] = None
    ) -> torch.Tensor:
        """``c_second`` (batch,): the second time input, required with ``second_time`` and refused without."""
        if (c_second is not None) != self.second_time:
            raise ValueError("this network takes a second time input c_second" if self.second_time else "this network has no second time input (network.second_time = false)")
        embedding = self.embed(c_noise.to(x.dtype), self.one_hot(labels, x))
        if c_second is not None:
            embedding = embedding + self.embed_second(c_second.to(x.dtype))
        return self.unet(x, embedding)

    def one_hot(self, labels: Optional[torch.Tensor], x: torch.Tensor) -> Optional[torch.Tensor]:
        if self.label_dim == 0:
            if labels is not None:
                raise ValueError("this network is unconditional (label_dim = 0) but was given labels")
            return None
        if labels is None:
            raise ValueError(f"this network is class-conditional (label_dim = {self.label_dim}) and needs labels")
        if labels.shape != (x.shape[0],) or labels.dtype.is_floating_point:
            raise ValueError(f"labels must be class indices of shape ({x.shape[0]},), got {labels.dtype} {tuple(labels.shape)}")
        return one_hot(labels, self.label_dim).to(x.dtype)

