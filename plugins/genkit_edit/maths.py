"""Zero-shot editing with a consistency function (Song et al. 2023, Algorithm 4 and section 6).

The multistep consistency sampler in which, after every denoising step, the known part of the
data is put back through an invertible linear map A:

    x <- A^{-1}[(A y) * (1 - Omega) + (A x) * Omega]

where y is the reference image and Omega a binary mask of the unknown coordinates in A-space.
Here ``known`` is the complement, 1 - Omega, as a boolean tensor. The operators below are
orthogonal, so A^{-1} = A^T. Everything is a small pure function of tensors, like the samplers
in ``genkit.maths.sampling``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch

from genkit.maths.noise import PerSampleNoise
from genkit.maths.sampling import consistency_sample

ConsistencyFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


# ----------------------------------------------------------------------------- what is known


@dataclass(frozen=True)
class Replacement:
    """A (``to_space``), A^{-1} (``from_space``) and the known coordinates of A y.

    ``known`` is a boolean tensor that broadcasts against ``to_space(y)``: True where the
    coordinate of A y is kept (1 - Omega), False where the sampler fills it in (Omega). ``None``
    means nothing is put back and the reference is not masked (Omega = 1 everywhere without
    step 2 of Algorithm 4: SDEdit-like stroke editing, denoising).
    """

    to_space: Callable[[torch.Tensor], torch.Tensor]
    from_space: Callable[[torch.Tensor], torch.Tensor]
    known: torch.Tensor | None

    def known_part(self, y: torch.Tensor) -> torch.Tensor:
        """A^{-1}[(A y) * (1 - Omega)]: the reference with its unknown coordinates set to 0
        (Algorithm 4, line 2); y itself when nothing is known."""
        if self.known is None:
            return y
        a = self.to_space(y)
        return self.from_space(torch.where(self.known, a, torch.zeros_like(a)))

    def put_back(self, x: torch.Tensor, y_space: torch.Tensor) -> torch.Tensor:
        """A^{-1}[(A y) * (1 - Omega) + (A x) * Omega], with ``y_space`` = A y computed once."""
        if self.known is None:
            return x
        return self.from_space(torch.where(self.known, y_space, self.to_space(x)))


def identity(x: torch.Tensor) -> torch.Tensor:
    return x


# ----------------------------------------------------------------------------- orthogonal maps


def luminance_basis(weights: Sequence[float] = (1.0, 1.0, 1.0), dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """An orthogonal 3x3 matrix Q whose first row is ``weights`` normalized (the luminance axis),
    completed to an orthonormal basis by a Householder reflection (Q = Q^T = Q^{-1})."""
    return householder_basis(torch.tensor(weights, dtype=torch.float64)).to(dtype)


def patch_basis(factor: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """An orthogonal (k^2 x k^2) matrix whose first row is 1/k everywhere: the first coordinate
    of a k x k patch is k times its average, the others span what the average does not see."""
    return householder_basis(torch.ones(factor * factor, dtype=torch.float64)).to(dtype)


def householder_basis(first: torch.Tensor) -> torch.Tensor:
    """The Householder reflection H = I - 2 v v^T / (v^T v) with v = e_1 - u, u = first / |first|:
    symmetric and orthogonal, with H e_1 = u, so its first row (and column) is u."""
    u = first.double() / first.double().norm()
    e1 = torch.zeros_like(u)
    e1[0] = 1.0
    v = e1 - u
    if float(v.norm()) < 1e-12:  # first is already e_1
        return torch.eye(len(u), dtype=torch.float64)
    return torch.eye(len(u), dtype=torch.float64) - 2 * torch.outer(v, v) / (v @ v)


def channel_transform(x: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    """Each pixel's channel vector c -> matrix @ c, for x of shape (batch, C, H, W)."""
    return torch.einsum("dc,bchw->bdhw", matrix.to(x.dtype), x)


def to_patches(x: torch.Tensor, factor: int) -> torch.Tensor:
    """(batch, C, H, W) -> (batch, C, H/k, W/k, k*k): each k x k patch as a vector."""
    b, c, h, w = x.shape
    k = factor
    return x.reshape(b, c, h // k, k, w // k, k).permute(0, 1, 2, 4, 3, 5).reshape(b, c, h // k, w // k, k * k)


def from_patches(p: torch.Tensor, factor: int) -> torch.Tensor:
    """The inverse of :func:`to_patches`."""
    b, c, hk, wk, _ = p.shape
    k = factor
    return p.reshape(b, c, hk, wk, k, k).permute(0, 1, 2, 4, 3, 5).reshape(b, c, hk * k, wk * k)


# ----------------------------------------------------------------------------- the samplers


@torch.no_grad()
def edit_sample(
    consistency_fn: ConsistencyFn,
    y: torch.Tensor,
    replacement: Replacement,
    sigmas: Sequence[float],
    noise: PerSampleNoise,
    sigma_min: float,
    clamp: tuple[float, float] | None = None,
    noisy_start: bool = False,
) -> torch.Tensor:
    """Song et al. (2023) Algorithm 4 on a batch of references ``y`` along ``sigmas`` = t_1 > ... > t_N.

    y <- known part of y; x = y + t_1 z; x <- f(x, t_1); put back; then for each t_n:
    x <- x + sqrt(t_n^2 - sigma_min^2) z, x <- f(x, t_n), put back. ``noisy_start``: y is
    already at level t_1 (denoising), so no noise is added before the first step. ``clamp``
    limits each output of f (as the plain sampler does) before the known part is put back, so
    the known part stays exact.
    """
    if not sigmas:
        raise ValueError("editing needs at least one noise level")
    shape = tuple(y.shape[1:])
    y = replacement.known_part(y)
    y_space = replacement.to_space(y) if replacement.known is not None else None
    first = float(sigmas[0])
    start = y if noisy_start else y + first * noise.randn(*shape, dtype=y.dtype)
    return consistency_sample(
        consistency_fn, noise, shape, first, sigma_min, sigmas[1:], clamp, start=start,
        after_step=lambda x, sigma: replacement.put_back(x, y_space), dtype=y.dtype,
    )


def slerp(z0: torch.Tensor, z1: torch.Tensor, t: float) -> torch.Tensor:
    """Spherical interpolation between batches of vectors (one angle per sample); exactly z0 at
    t = 0 and z1 at t = 1, linear when the two are (nearly) parallel."""
    if t == 0:
        return z0.clone()
    if t == 1:
        return z1.clone()
    a, b = z0.flatten(1).double(), z1.flatten(1).double()
    cosine = (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1)).clamp_min(1e-30)
    theta = torch.arccos(cosine.clamp(-1, 1))
    sin = torch.sin(theta)
    parallel = sin.abs() < 1e-6
    safe = torch.where(parallel, torch.ones_like(sin), sin)
    w0 = torch.where(parallel, torch.full_like(theta, 1 - t), torch.sin((1 - t) * theta) / safe)
    w1 = torch.where(parallel, torch.full_like(theta, t), torch.sin(t * theta) / safe)
    mixed = w0[:, None] * a + w1[:, None] * b
    return mixed.reshape(z0.shape).to(z0.dtype)


def interpolation_times(frames: int) -> list[float]:
    """``frames`` points from 0 to 1, both ends included."""
    if frames < 2:
        raise ValueError(f"an interpolation needs at least 2 frames, got {frames}")
    return [k / (frames - 1) for k in range(frames)]


@torch.no_grad()
def interpolate_sample(
    consistency_fn: ConsistencyFn,
    z0: torch.Tensor,
    z1: torch.Tensor,
    times: Sequence[float],
    sigma: float,
    clamp: tuple[float, float] | None = None,
    y0: torch.Tensor | None = None,
    y1: torch.Tensor | None = None,
    labels: Callable[[float], torch.Tensor | None] | None = None,
) -> torch.Tensor:
    """One consistency step from ``sigma`` at each point of the spherical path between the noise
    vectors z0 and z1 (batches of pairs), section 6 of Song et al. (2023).

    The start of frame t is y_t + sigma slerp(z0, z1, t) with y_t = (1 - t) y0 + t y1 (zero
    without references), so at t = 0 and 1 it is exactly the start of the one-step sample of
    z0 (``sigma * z0`` from sigma_max, as Algorithm 1 starts) and of z1. ``labels(t)``: the class
    labels of frame t (None: unconditional). Returns (pairs, frames, *sample shape).
    """
    frames = []
    for t in times:
        start = sigma * slerp(z0, z1, t)
        if y0 is not None and y1 is not None:
            reference = y0 if t == 0 else y1 if t == 1 else (1 - t) * y0 + t * y1
            start = reference + start
        extra = {} if labels is None or labels(t) is None else {"labels": labels(t)}
        x = consistency_fn(start, torch.tensor(float(sigma)), **extra)
        frames.append(x.clamp(*clamp) if clamp else x)
    return torch.stack(frames, dim=1)
