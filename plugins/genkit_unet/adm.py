"""ADM, the U-Net of Dhariwal & Nichol 2021 ("Diffusion Models Beat GANs on Image Synthesis"),
as EDM (Karras et al. 2022) trains it on ImageNet-64: wider, multi-head attention at 32, 16
and 8 pixels, and blocks modulated by a scale and a shift (adaptive group norm)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn
from torch.nn.functional import silu

from genkit.schema import option, positive
from genkit_unet.layers import BlockStyle, PositionalEmbedding, linear, torch_default, zeros
from genkit_unet.unet import ConditionalUNet, UNetBackbone, UNetConfig, with_defaults


def unit_normal(layer: nn.Module) -> None:
    nn.init.normal_(layer.weight)  # a class embedding of unit variance, as the noise features


class ADM(ConditionalUNet):
    """The ADM U-Net ("adm"); set label_dim = 1000 for class-conditional ImageNet."""

    @dataclass
    class Config(
        with_defaults(UNetConfig, channels=192, channel_multipliers=(1, 2, 3, 4), blocks_per_resolution=3, attention_resolutions=(32, 16, 8))
    ):
        channels_per_head: int = option(64, "width of one attention head (blocks narrower than this get one head)", positive)

    def __init__(self, options: "ADM.Config", ctx):
        options = options or self.Config()
        super().__init__(options, ctx)
        width = self.embedding_channels
        self.noise_features = PositionalEmbedding(options.channels, endpoint=False, cos_first=True)
        self.mapping = nn.Sequential(
            linear(options.channels, width, torch_default), nn.SiLU(), linear(width, width, torch_default)
        )
        self.label_features = linear(self.label_dim, width, unit_normal, bias=False) if self.label_dim else None
        style = BlockStyle(
            embedding_channels=width,
            dropout=options.dropout,
            skip_scale=1.0,
            eps=1e-5,
            resample_filter=(1, 1),
            project_resampled_skip=False,
            adaptive_scale=True,
            channels_per_head=options.channels_per_head,
            init=torch_default,
            zero_init=zeros,
            attention_init=torch_default,
            double_normalisation=options.double_normalisation,
        )
        stem_channels = options.channels * options.channel_multipliers[0]
        self.unet = UNetBackbone(self.image_channels, self.resolution, options, style, stem_channels=stem_channels)
        if options.second_time:
            self.add_second_time(PositionalEmbedding(options.channels, endpoint=False, cos_first=True), options.channels)

    def embed(self, c_noise: torch.Tensor, classes: Optional[torch.Tensor]) -> torch.Tensor:
        embedding = self.mapping(self.noise_features(c_noise))
        if classes is not None:
            embedding = embedding + self.label_features(classes)
        return silu(embedding)
