"""Karras et al. (2022) discretization of [sigma_min, sigma_max]."""

import torch


def karras_sigmas(
    n: int,
    sigma_min: float = 0.002,
    sigma_max: float = 80.0,
    rho: float = 7.0,
    dtype: torch.dtype = torch.float64,
) -> torch.Tensor:
    """N ascending noise levels sigma_1 = sigma_min < ... < sigma_N = sigma_max."""
    if n < 2:
        raise ValueError(f"a Karras discretization needs at least 2 levels, got {n}")
    ramp = torch.linspace(0, 1, n, dtype=torch.float64)
    lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    sigmas = (lo + ramp * (hi - lo)) ** rho
    # Rounding in the power above moves the endpoints by an ulp; the recipes need them exact.
    sigmas[0], sigmas[-1] = sigma_min, sigma_max
    return sigmas.to(dtype)
