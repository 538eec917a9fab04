"""karras_sigmas ascends with no zero (the consistency-models convention); the descending form
with a trailing zero is k-diffusion's get_sigmas_karras, checked against its formula."""

import pytest
import torch

from genkit.maths import karras_sigmas, karras_sigmas_descending


def get_sigmas_karras(n, sigma_min, sigma_max, rho=7.0):
    """k-diffusion's sampling.get_sigmas_karras, written out (Karras et al. 2022, eq. 5)."""
    ramp = torch.linspace(0, 1, n, dtype=torch.float64)
    min_inv_rho, max_inv_rho = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    sigmas = (max_inv_rho + ramp * (min_inv_rho - max_inv_rho)) ** rho
    return torch.cat([sigmas, sigmas.new_zeros([1])])


@pytest.mark.parametrize("n, sigma_min, sigma_max, rho", [(2, 0.002, 80.0, 7.0), (18, 0.002, 80.0, 7.0), (40, 0.01, 5.0, 3.0)])
def test_descending_form_is_k_diffusions(n, sigma_min, sigma_max, rho):
    ours = karras_sigmas_descending(n, sigma_min, sigma_max, rho)
    theirs = get_sigmas_karras(n, sigma_min, sigma_max, rho)
    assert ours.shape == (n + 1,) and ours[-1] == 0 and ours[0] == sigma_max and ours[-2] == sigma_min
    torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=0)
    ascending = karras_sigmas(n, sigma_min, sigma_max, rho)
    assert (ascending[1:] > ascending[:-1]).all() and (ascending > 0).all() and len(ascending) == n
    assert torch.equal(ascending.flip(0), ours[:-1])
