"""Karras et al. (2022) discretization of [sigma_min, sigma_max].

genkit's convention is the consistency-models papers' (Song et al. 2023, Sec. 3): levels ascend,
sigma_1 = sigma_min < ... < sigma_N = sigma_max, with no zero, so the pair (sigma_n, sigma_{n+1})
is a training step. k-diffusion's ``get_sigmas_karras`` and EDM's sampler (Karras et al. 2022,
eq. 5) are the opposite: descending from sigma_max, with a final 0 appended. Port their samplers
with ``karras_sigmas_descending``, which gives exactly that form.
"""

import torch


def karras_sigmas(
    n: int,
    sigma_min: float = 0.002,
    sigma_max: float = 80.0,
    rho: float = 7.0,
    dtype: torch.dtype = torch.float64,
) -> torch.Tensor:
    """N ascending noise levels sigma_1 = sigma_min < ... < sigma_N = sigma_max, no trailing zero
    (the reverse of k-diffusion's get_sigmas_karras: see ``karras_sigmas_descending``):
    sigma_i = (sigma_min^(1/rho) + (i-1)/(N-1) (sigma_max^(1/rho) - sigma_min^(1/rho)))^rho."""
    if n < 2:
        raise ValueError(f"a Karras discretization needs at least 2 levels, got {n}")
    ramp = torch.linspace(0, 1, n, dtype=torch.float64)
    lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    sigmas = (lo + ramp * (hi - lo)) ** rho
    # Rounding in the power above moves the endpoints by an ulp; the recipes need them exact.
    sigmas[0], sigmas[-1] = sigma_min, sigma_max
    return sigmas.to(dtype)


def karras_sigmas_descending(
    n: int,
    sigma_min: float = 0.002,
    sigma_max: float = 80.0,
    rho: float = 7.0,
    dtype: torch.dtype = torch.float64,
) -> torch.Tensor:
    """The N levels of ``karras_sigmas`` in k-diffusion's and EDM's order: sigma_max first,
    descending to sigma_min, then a final 0 (N + 1 values), as ``get_sigmas_karras(n, sigma_min,
    sigma_max, rho)`` returns them (Karras et al. 2022, eq. 5: t_N = 0), for porting samplers
    written against that convention."""
    sigmas = karras_sigmas(n, sigma_min, sigma_max, rho, dtype).flip(0)
    return torch.cat([sigmas, sigmas.new_zeros(1)])
