"""The mathematics of EDM (Karras et al. 2022) and consistency models (Song et al. 2023) as small pure functions."""

from genkit.maths.karras import karras_sigmas, karras_sigmas_descending
from genkit.maths.noise import PerSampleNoise
from genkit.maths.ode import euler_step, heun_step, pf_ode_derivative
from genkit.maths.precond import (
    as_column,
    ConsistencyFunction,
    EDMDenoiser,
    conditioned,
    consistency_scalings,
    edm_scalings,
)
from genkit.maths.sampling import consistency_sample, heun_sample

__all__ = [
    "as_column",
    "ConsistencyFunction",
    "EDMDenoiser",
    "conditioned",
    "PerSampleNoise",
    "consistency_sample",
    "consistency_scalings",
    "edm_scalings",
    "euler_step",
    "heun_sample",
    "heun_step",
    "karras_sigmas",
    "karras_sigmas_descending",
    "pf_ode_derivative",
]
