"""LPIPS (Zhang et al., 2018) through the ``lpips`` package, with the VGG backbone the
consistency-model papers use. Images in [-1, 1] (what the package expects) are upsampled
bilinearly to 224x224 when smaller, as in the authors' training code."""

from __future__ import annotations

import contextlib
import io
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from genkit.errors import GenkitError
from genkit.schema import option

# What torchvision downloads for vgg16(pretrained=True), which lpips.LPIPS(net="vgg") calls.
VGG16_URL = "https://download.pytorch.org/models/vgg16-397923af.pth"
VGG16_FILE = VGG16_URL.rsplit("/", 1)[1]
VGG16_HASH_PREFIX = "397923af"  # torchvision checks the file against the hash in its name
SIZE = 224


def backbone_folder() -> Path:
    """Where torchvision looks for (and downloads) ImageNet weights: the torch hub checkpoints dir."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def download(url: str, destination: Path) -> None:
    destination.parent.mkdir(parents=True, exist_ok=True)
    torch.hub.download_url_to_file(url, str(destination), hash_prefix=VGG16_HASH_PREFIX, progress=False)


def ensure_backbone_weights() -> Path:
    """The VGG16 ImageNet weights on disk, downloaded if possible; a GenkitError if they cannot be had."""
    path = backbone_folder() / VGG16_FILE
    if path.is_file():
        return path
    try:
        download(VGG16_URL, path)
    except Exception as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise GenkitError(
            f"LPIPS needs the VGG16 ImageNet weights {VGG16_FILE}, which could not be downloaded ({reason}): "
            f"fetch {VGG16_URL} and put it in {path.parent}"
        ) from None
    return path


def upsample(x: torch.Tensor, size: int = SIZE) -> torch.Tensor:
    """Bilinear resize to size x size when an image is smaller than that; larger ones are kept."""
    if min(x.shape[-2:]) < size:
        return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    return x


class LPIPS:
    """Per-sample LPIPS distance, shape (batch,), differentiable in both inputs.

    Not an nn.Module on purpose: the frozen VGG stays out of the method's state_dict and out of
    every checkpoint. It is placed on the run's device when built.
    """

    @dataclass
    class Config:
        pretrained: bool = option(True, "ImageNet VGG weights; false: a random backbone, for tests only (not a perceptual metric)")

    def __init__(self, options: "LPIPS.Config | None" = None, ctx=None):
        options = options or LPIPS.Config()
        shape = tuple(getattr(ctx, "data_shape", ()) or ())
        if len(shape) != 3 or shape[0] not in (1, 3):
            raise GenkitError(
                f"the lpips loss compares images of shape (channels 1 or 3, height, width), this data has samples "
                f"of shape {shape}; on such data use l2, l1 or pseudo-huber"
            )
        if options.pretrained:
            ensure_backbone_weights()
        self.net = make_network(pretrained=options.pretrained).to(getattr(ctx, "device", "cpu"))

    def __call__(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        if next(self.net.parameters()).device != a.device:
            self.net.to(a.device)
        if a.shape[1] == 1:  # grayscale: the same value in every colour channel
            a, b = a.expand(-1, 3, -1, -1), b.expand(-1, 3, -1, -1)
        return self.net(upsample(a), upsample(b)).reshape(a.shape[0])


def make_network(pretrained: bool = True) -> torch.nn.Module:
    """lpips.LPIPS with the VGG trunk; its calibrated linear layers ship with the package."""
    import lpips

    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore", UserWarning)  # torchvision's 'pretrained' deprecation notes
        net = lpips.LPIPS(net="vgg", pnet_rand=not pretrained, verbose=False)
    return net.eval().requires_grad_(False)
