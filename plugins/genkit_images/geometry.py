"""Image geometry and pixel scaling: pad or resize to the training resolution, uint8 -> [-1, 1]."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

from genkit.errors import GenkitError

Fit = Literal["pad", "resize"]


def fit(images: torch.Tensor, resolution: int, mode: Fit, chunk: int = 4096) -> torch.Tensor:
    """uint8 (N, C, H, W) -> uint8 (N, C, R, R): zero padding (black) or a centre crop and bilinear resize."""
    height, width = images.shape[-2:]
    if height == width == resolution:
        return images
    if mode == "pad":
        if height > resolution or width > resolution:
            raise GenkitError(
                f"cannot pad {height}x{width} images to {resolution}x{resolution}: "
                "set data.resize=\"resize\" or a data.resolution of at least the image size"
            )
        top, left = (resolution - height) // 2, (resolution - width) // 2
        return F.pad(images, (left, resolution - width - left, top, resolution - height - top), value=0)
    square = centre_crop(images)
    return torch.cat([_resize(part, resolution) for part in square.split(chunk)]) if len(square) else square


def centre_crop(images: torch.Tensor) -> torch.Tensor:
    """The largest centred square of (..., H, W)."""
    height, width = images.shape[-2:]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    return images[..., top : top + side, left : left + side]


def _resize(images: torch.Tensor, resolution: int) -> torch.Tensor:
    shrinking = images.shape[-1] > resolution
    resized = F.interpolate(images.float(), size=(resolution, resolution), mode="bilinear", align_corners=False, antialias=shrinking)
    return resized.round_().clamp_(0, 255).to(torch.uint8)


def to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float32 [-1, 1]."""
    return images.to(torch.float32).div_(127.5).sub_(1.0)


def flip_some(images: torch.Tensor, flips: torch.Tensor) -> torch.Tensor:
    """Mirror the images (N, C, H, W) where ``flips`` (N,) is True, in place (a pinned batch stays pinned)."""
    if flips.any():
        images[flips] = images[flips].flip(-1)
    return images
