"""The built-in editing tasks: what is known of the data, in which space, and where sampling starts.

A task is ``Task(options, ctx)`` (``ctx``: the run's ``genkit.components.BuildContext``) with

- ``to_space(x)`` / ``from_space(a)``: the invertible (here orthogonal) map A and its inverse;
- ``known(y, mask)``: a boolean tensor over A-space, True where A y is kept (1 - Omega), or None
  when nothing is put back;
- ``check(shape)``: a GenkitError when the run's images (C, H, W) do not suit the task;
- ``input_sizes(resolution)``, ``accepts_gray``, ``prepare(images)``: which input images it
  reads and how they reach the model's resolution;
- ``first_level(noise)`` and ``noisy_start``: where the sampler starts (Algorithm 4's t_1);
- ``degrade(y, noise)``: what the sampler is given (the input itself, or the input with noise).

Subclass :class:`EditTask` and register it with the ``register_edit_tasks`` hook to add one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional

import torch

from genkit.errors import GenkitError
from genkit_edit.maths import (
    Replacement,
    channel_transform,
    from_patches,
    luminance_basis,
    patch_basis,
    to_patches,
)
from genkit.maths.noise import PerSampleNoise
from genkit.schema import at_least, non_negative, option, positive, Check

fraction = Check(lambda v: 0 < v <= 1, "must be in (0, 1]")


class EditTask:
    """Algorithm 4 with A = I and everything unknown; subclasses say what is known."""

    Config = None
    inputs: tuple[int, ...] = (1,)  # sets of input images it reads: (1,); interpolate: (0, 2)
    accepts_gray = False  # a colour model may take grayscale inputs without --convert
    uses_mask = False  # reads --mask / a mask image
    noisy_start = False  # the input is already at the first level: add no noise before step 1
    interpolates = False  # slerp between noise vectors instead of Algorithm 4

    def __init__(self, options=None, ctx=None):
        self.options = options
        self.ctx = ctx

    # -- what the task works on

    def check(self, shape: tuple[int, ...]) -> None:
        """A GenkitError when images of this shape (C, H, W) cannot be edited this way."""

    def input_sizes(self, resolution: int) -> tuple[int, ...]:
        """The sides of square input images accepted without --resize."""
        return (resolution,)

    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        """Input images (batch, C, side, side) -> the model's resolution."""
        return images

    # -- the operator A and the mask

    def to_space(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def from_space(self, a: torch.Tensor) -> torch.Tensor:
        return a

    def known(self, y: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor | None:
        """True where A y is kept; None: nothing is put back (Omega = 1, reference unmasked)."""
        return None

    def replacement(self, y: torch.Tensor, mask: torch.Tensor | None = None) -> Replacement:
        return Replacement(self.to_space, self.from_space, self.known(y, mask))

    # -- where sampling starts

    def first_level(self, noise) -> float:
        """t_1 of Algorithm 4; ``noise`` is the run's NoiseConfig."""
        return noise.sigma_max

    def degrade(self, y: torch.Tensor, noise: PerSampleNoise) -> torch.Tensor:
        """The reference the sampler gets (denoise may corrupt a clean input first)."""
        return y


def _level(name: str, value: float, noise) -> float:
    if not noise.sigma_min < value <= noise.sigma_max:
        raise GenkitError(f"{name} must lie in (noise.sigma_min, noise.sigma_max] = ({noise.sigma_min}, {noise.sigma_max}], got {value}")
    return value


# ----------------------------------------------------------------------------- inpaint


class Inpaint(EditTask):
    """Fill the masked pixels (A = I, Omega = the mask); the other pixels stay the input's."""

    @dataclass
    class Config:
        mask_name: Literal["centre-box", "left-half", "strokes"] = option(
            "centre-box", "region to fill when no mask image is given: centre-box, left-half or strokes (random)"
        )
        box: float = option(0.5, "side of the centre box, as a fraction of the image side", fraction)
        strokes: int = option(4, "random strokes of the 'strokes' mask", positive)
        stroke_width: float = option(0.12, "width of each stroke, as a fraction of the image side", fraction)
        mask_seed: int = option(0, "seed of the random strokes (the same mask for every image)", non_negative)

    uses_mask = True

    def __init__(self, options=None, ctx=None):
        super().__init__(options or self.Config(), ctx)

    def named_mask(self, height: int, width: int) -> torch.Tensor:
        """(H, W) bool, True = to fill."""
        options = self.options
        mask = torch.zeros(height, width, dtype=torch.bool)
        if options.mask_name == "left-half":
            mask[:, : width // 2] = True
        elif options.mask_name == "centre-box":
            h, w = max(1, round(height * options.box)), max(1, round(width * options.box))
            top, left = (height - h) // 2, (width - w) // 2
            mask[top : top + h, left : left + w] = True
        else:
            mask = random_strokes(height, width, options.strokes, options.stroke_width, options.mask_seed)
        return mask

    def known(self, y, mask=None):
        fill = self.named_mask(*y.shape[-2:]) if mask is None else mask.bool()
        fill = fill.to(y.device)
        if fill.ndim == 2:  # one mask for every image and channel
            fill = fill[None, None]
        elif fill.ndim == 3:  # one per image
            fill = fill[:, None]
        return ~fill.expand_as(y)


def random_strokes(height: int, width: int, strokes: int, width_fraction: float, seed: int) -> torch.Tensor:
    """(H, W) bool: ``strokes`` random polylines of three segments each, from a seed."""
    generator = torch.Generator().manual_seed(seed)
    rows = torch.arange(height, dtype=torch.float64)[:, None].expand(height, width)
    cols = torch.arange(width, dtype=torch.float64)[None, :].expand(height, width)
    pixels = torch.stack([rows, cols], -1)
    side = float(min(height, width))
    radius = max(0.5, width_fraction * side / 2)
    mask = torch.zeros(height, width, dtype=torch.bool)
    for _ in range(strokes):
        point = torch.rand(2, generator=generator, dtype=torch.float64) * torch.tensor([height - 1, width - 1], dtype=torch.float64)
        for _ in range(3):
            angle = torch.rand((), generator=generator, dtype=torch.float64) * 2 * torch.pi
            length = (0.15 + 0.25 * torch.rand((), generator=generator, dtype=torch.float64)) * side
            end = point + length * torch.stack([torch.sin(angle), torch.cos(angle)])
            end = end.clamp(torch.zeros(2, dtype=torch.float64), torch.tensor([height - 1, width - 1], dtype=torch.float64))
            mask |= _segment_distance(pixels, point, end) <= radius
            point = end
    return mask


def _segment_distance(pixels: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    ab = b - a
    t = ((pixels - a) @ ab / (ab @ ab).clamp_min(1e-12)).clamp(0, 1)
    return (pixels - (a + t[..., None] * ab)).norm(dim=-1)


# ----------------------------------------------------------------------------- colorize


LUMINANCE_WEIGHTS = {"equal": (1.0, 1.0, 1.0), "rec601": (0.299, 0.587, 0.114)}


class Colorize(EditTask):
    """Keep the luminance, fill in the colour: A = an orthogonal 3x3 colour transform whose first
    axis is the luminance (its first coordinate is known)."""

    @dataclass
    class Config:
        luminance: Literal["equal", "rec601"] = option(
            "equal", "the luminance axis: 'equal' (R + G + B) / sqrt(3), or 'rec601' (0.299, 0.587, 0.114) normalized, as the paper's code"
        )

    accepts_gray = True

    def __init__(self, options=None, ctx=None):
        super().__init__(options or self.Config(), ctx)
        self.matrix = luminance_basis(LUMINANCE_WEIGHTS[self.options.luminance])

    def check(self, shape):
        if shape[0] != 3:
            raise GenkitError(f"colorize needs a colour model; this run's images have {shape[0]} channel{'s' if shape[0] != 1 else ''}")

    def to_space(self, x):
        return channel_transform(x, self.matrix.to(x.device))

    def from_space(self, a):
        return channel_transform(a, self.matrix.T.to(a.device))

    def known(self, y, mask=None):
        known = torch.zeros(1, 3, 1, 1, dtype=torch.bool, device=y.device)
        known[:, 0] = True
        return known


# ----------------------------------------------------------------------------- superres


class SuperResolution(EditTask):
    """Keep each k x k patch's average, fill in the detail: A = an orthogonal transform of every
    patch whose first basis vector is 1/k everywhere (the known coordinate)."""

    @dataclass
    class Config:
        factor: int = option(4, "upsampling factor k: the patch averages of k x k patches are kept", at_least(2))

    def __init__(self, options=None, ctx=None):
        super().__init__(options or self.Config(), ctx)
        self.factor = self.options.factor
        self.matrix = patch_basis(self.factor)

    def check(self, shape):
        side = shape[-1]
        if side % self.factor or shape[-2] % self.factor:
            raise GenkitError(f"superres factor {self.factor} does not divide the model's {shape[-2]}x{side} images")

    def input_sizes(self, resolution):
        return (resolution, resolution // self.factor)

    def prepare(self, images):
        """A low-resolution input is upsampled by repeating each pixel k x k times; a full-size one
        is kept (its patch averages are what the sampler knows)."""
        resolution = self.ctx.data_shape[-1] if self.ctx is not None and self.ctx.data_shape else None
        if resolution is not None and images.shape[-1] * self.factor == resolution:
            return images.repeat_interleave(self.factor, -2).repeat_interleave(self.factor, -1)
        return images

    def to_space(self, x):
        return to_patches(x, self.factor) @ self.matrix.T.to(x)

    def from_space(self, a):
        return from_patches(a @ self.matrix.to(a), self.factor)

    def known(self, y, mask=None):
        known = torch.zeros(self.factor**2, dtype=torch.bool, device=y.device)
        known[0] = True
        return known


# ----------------------------------------------------------------------------- stroke


class Stroke(EditTask):
    """Stroke-guided generation (SDEdit-like): noise the stroke painting to ``sigma_start`` and
    run the multistep sampler from there; nothing is put back (A = I, Omega = 1)."""

    @dataclass
    class Config:
        sigma_start: float = option(2.0, "noise level the stroke image is noised to: higher is more realistic, lower more faithful", positive)

    def __init__(self, options=None, ctx=None):
        super().__init__(options or self.Config(), ctx)

    def first_level(self, noise):
        return _level("stroke's sigma_start", self.options.sigma_start, noise)


# ----------------------------------------------------------------------------- denoise


class Denoise(EditTask):
    """The input is a noisy image at level ``sigma``: one consistency step from it at that level
    (and more at the levels below it), nothing put back."""

    @dataclass
    class Config:
        sigma: float = option(0.5, "noise level of the input images (Gaussian, in the [-1, 1] pixel scale)", positive)
        add_noise: bool = option(False, "the inputs are clean: add noise of level sigma to each first (from its own seed)")

    noisy_start = True

    def __init__(self, options=None, ctx=None):
        super().__init__(options or self.Config(), ctx)

    def first_level(self, noise):
        return _level("denoise's sigma", self.options.sigma, noise)

    def degrade(self, y, noise):
        if not self.options.add_noise:
            return y
        return y + self.options.sigma * noise.randn(*y.shape[1:], dtype=y.dtype)


# ----------------------------------------------------------------------------- interpolate


class Interpolate(EditTask):
    """Spherical interpolation between two noise vectors, one consistency step per frame; the ends
    are exactly the one-step samples of the two (samples 2k and 2k+1 of the seed, as `genkit
    sample` draws them), or, with two sets of inputs, the one-step edits of input + sigma z."""

    @dataclass
    class Config:
        frames: int = option(8, "points on the path, both ends included", at_least(2))
        pairs: int = option(1, "interpolations when no inputs are given: pair k joins samples 2k and 2k+1 of --seed", positive)
        sigma_start: Optional[float] = option(
            None, "level of the one step; unset: noise.sigma_max (with input images a lower level keeps more of them)", positive
        )

    inputs = (0, 2)
    interpolates = True

    def __init__(self, options=None, ctx=None):
        super().__init__(options or self.Config(), ctx)

    def first_level(self, noise):
        if self.options.sigma_start is None:
            return noise.sigma_max
        return _level("interpolate's sigma_start", self.options.sigma_start, noise)


TASKS = {
    "inpaint": Inpaint,
    "colorize": Colorize,
    "superres": SuperResolution,
    "stroke": Stroke,
    "interpolate": Interpolate,
    "denoise": Denoise,
}
