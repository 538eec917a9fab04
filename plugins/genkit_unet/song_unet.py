"""DDPM++ and NCSN++ (Song et al. 2021, "Score-Based Generative Modeling through SDEs") in the
configuration EDM (Karras et al. 2022) trains on CIFAR-10: a U-Net of residual blocks with
sqrt(1/2)-scaled skips, attention at 16x16 and a noise embedding added inside every block."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Optional

import torch
from torch import nn

from genkit.schema import each, non_negative, option, positive
from genkit_unet.layers import BlockStyle, FourierEmbedding, PositionalEmbedding, linear, xavier
from genkit_unet.unet import ConditionalUNet, UNetBackbone, UNetConfig, with_defaults


class SongUNet(ConditionalUNet):
    """DDPM++ with its default options ("ddpmpp"); NCSN++ below differs only in its defaults."""

    @dataclass
    class Config(UNetConfig):
        embedding: Literal["positional", "fourier"] = option(
            "positional", "noise-level features: 'positional' sinusoids (DDPM++) or random 'fourier' features (NCSN++)"
        )
        fourier_scale: float = option(16.0, "std of the random Fourier frequencies (NCSN++: 16, iCT: 0.02)", non_negative)
        noise_channel_multiplier: int = option(1, "width of the noise-level features, in model channels (DDPM++: 1, NCSN++: 2)", positive)
        encoder: Literal["standard", "skip", "residual"] = option(
            "standard", "encoder: 'standard'; 'skip' adds the downsampled input at every level; 'residual' adds a strided image path (NCSN++)"
        )
        decoder: Literal["standard", "skip"] = option(
            "standard", "decoder: 'standard' outputs from the top level; 'skip' sums upsampled outputs of every level"
        )
        resample_filter: tuple[int, ...] = option(
            (1, 1), "FIR filter taps of up/downsampling, an even number (DDPM++: 1 1 box, NCSN++: 1 3 3 1)", each(positive)
        )

        def __post_init__(self):
            super().__post_init__()
            if not self.resample_filter or len(self.resample_filter) % 2:
                raise ValueError(f"resample_filter needs an even number of taps, got {tuple(self.resample_filter)}")

    def __init__(self, options: "SongUNet.Config", ctx):
        options = options or self.Config()
        super().__init__(options, ctx)
        noise_width, width = options.channels * options.noise_channel_multiplier, self.embedding_channels
        if options.embedding == "positional":
            self.noise_features = PositionalEmbedding(noise_width, endpoint=True)
        else:
            self.noise_features = FourierEmbedding(noise_width, options.fourier_scale)
        self.label_features = linear(self.label_dim, noise_width, xavier()) if self.label_dim else None
        self.mapping = nn.Sequential(
            linear(noise_width, width, xavier()), nn.SiLU(), linear(width, width, xavier()), nn.SiLU()
        )
        style = BlockStyle(
            embedding_channels=width,
            dropout=options.dropout,
            skip_scale=math.sqrt(0.5),
            eps=1e-6,
            resample_filter=tuple(options.resample_filter),
            project_resampled_skip=True,
            adaptive_scale=False,
            channels_per_head=None,
            init=xavier(),
            zero_init=xavier(1e-5),
            attention_init=xavier(math.sqrt(0.2)),
            double_normalisation=options.double_normalisation,
        )
        self.unet = UNetBackbone(
            self.image_channels, self.resolution, options, style, stem_channels=options.channels,
            encoder=options.encoder, decoder=options.decoder, attend_all_decoder_blocks=False,
        )
        if options.second_time:
            second = PositionalEmbedding(noise_width, endpoint=True) if options.embedding == "positional" else FourierEmbedding(noise_width, options.fourier_scale)
            self.add_second_time(second, noise_width)

    def embed(self, c_noise: torch.Tensor, classes: Optional[torch.Tensor]) -> torch.Tensor:
        features = self.noise_features(c_noise)
        if classes is not None:  # scaled to unit mean square, like the noise features
            features = features + self.label_features(classes * math.sqrt(self.label_dim))
        return self.mapping(features)


class NCSNpp(SongUNet):
    """NCSN++: Fourier features of twice the width, a residual image path in the encoder and
    the (1, 3, 3, 1) resampling filter ("ncsnpp")."""

    Config = with_defaults(
        SongUNet.Config, embedding="fourier", noise_channel_multiplier=2, encoder="residual", resample_filter=(1, 3, 3, 1)
    )
