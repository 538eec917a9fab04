"""Spec sections 1, 2 and 7: discretization, preconditioning, ODE steps and samplers."""

import math

import pytest
import torch
from torch import nn

from genkit.maths import (
    ConsistencyFunction,
    EDMDenoiser,
    PerSampleNoise,
    consistency_sample,
    consistency_scalings,
    edm_scalings,
    euler_step,
    heun_sample,
    heun_step,
    karras_sigmas,
)


class Recorder(nn.Module):
    """A raw network that remembers its inputs and returns a fixed function of them."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def forward(self, x_in, c_noise):
        self.calls.append((x_in.clone(), c_noise.clone()))
        return torch.sin(3 * x_in) + c_noise[:, None]


@pytest.mark.parametrize("n", [2, 3, 11, 18, 1281])
def test_karras_endpoints_are_exact_and_levels_ascend(n):
    sigmas = karras_sigmas(n, 0.002, 80.0, 7.0)
    assert len(sigmas) == n
    assert sigmas[0].item() == 0.002 and sigmas[-1].item() == 80.0
    assert torch.all(sigmas[1:] > sigmas[:-1])


def test_karras_interior_level_matches_formula():
    n, i = 18, 7  # i is 1-based in the spec
    expected = (0.002 ** (1 / 7) + (i - 1) / (n - 1) * (80 ** (1 / 7) - 0.002 ** (1 / 7))) ** 7
    assert karras_sigmas(n)[i - 1].item() == pytest.approx(expected, rel=1e-12)


def test_karras_rejects_fewer_than_two_levels():
    with pytest.raises(ValueError):
        karras_sigmas(1)


def test_edm_scalings_values():
    sigma, sd = torch.tensor(1.3, dtype=torch.float64), 0.5
    c_skip, c_out, c_in, c_noise = edm_scalings(sigma, sd)
    assert c_skip.item() == pytest.approx(0.25 / (1.69 + 0.25))
    assert c_out.item() == pytest.approx(1.3 * 0.5 / math.sqrt(1.94))
    assert c_in.item() == pytest.approx(1 / math.sqrt(1.94))  # with the square root
    assert c_noise.item() == pytest.approx(math.log(1.3) / 4)


def test_consistency_scalings_use_sigma_min():
    sigma, sigma_min, sd = torch.tensor(0.7, dtype=torch.float64), 0.002, 0.5
    c_skip, c_out, c_in, c_noise = consistency_scalings(sigma, sigma_min, sd)
    assert c_skip.item() == pytest.approx(0.25 / ((0.7 - 0.002) ** 2 + 0.25), rel=1e-12)
    assert c_out.item() == pytest.approx(0.5 * (0.7 - 0.002) / math.sqrt(0.49 + 0.25), rel=1e-12)
    assert c_in.item() == pytest.approx(1 / math.sqrt(0.49 + 0.25), rel=1e-12)
    assert c_noise.item() == pytest.approx(math.log(0.7) / 4)
    # the bugged variants differ measurably
    assert c_skip.item() != pytest.approx(0.25 / (0.49 + 0.25), rel=1e-6)


def test_consistency_boundary_condition_is_exact():
    f = ConsistencyFunction(Recorder(), sigma_min=0.002, sigma_data=0.5).double()
    x = torch.randn(5, 3, dtype=torch.float64)
    assert torch.equal(f(x, torch.full((5,), 0.002, dtype=torch.float64)), x)


def test_wrappers_feed_the_network_c_in_x_and_c_noise():
    net = Recorder()
    x = torch.randn(4, 2, dtype=torch.float64)
    sigma = torch.tensor([0.1, 1.0, 5.0, 80.0], dtype=torch.float64)
    out = EDMDenoiser(net, sigma_data=0.5)(x, sigma)
    x_in, c_noise = net.calls[-1]
    torch.testing.assert_close(x_in, x / torch.sqrt(sigma**2 + 0.25)[:, None])
    torch.testing.assert_close(c_noise, sigma.log() / 4)
    c_skip = 0.25 / (sigma**2 + 0.25)
    c_out = sigma * 0.5 / torch.sqrt(sigma**2 + 0.25)
    torch.testing.assert_close(out, c_skip[:, None] * x + c_out[:, None] * (torch.sin(3 * x_in) + c_noise[:, None]))


def test_euler_and_heun_steps_on_a_linear_ode():
    # With D(x, sigma) = 0 the ODE is dx/dsigma = x / sigma, solved by x = x0 * sigma / sigma0.
    zero = lambda x, sigma: torch.zeros_like(x)  # noqa: E731
    x = torch.randn(3, 2, dtype=torch.float64)
    torch.testing.assert_close(heun_step(zero, x, 2.0, 1.0), x / 2)
    torch.testing.assert_close(euler_step(zero, x, 2.0, 1.0), x / 2)
    torch.testing.assert_close(heun_step(zero, x, 2.0, 0.0), torch.zeros_like(x))


def test_heun_sample_counts_and_reaches_zero():
    calls = []

    def denoiser(x, sigma):
        calls.append(sigma)
        return torch.zeros_like(x)

    sigmas = list(karras_sigmas(5).flip(0).tolist()) + [0.0]
    out = heun_sample(denoiser, torch.ones(2, 2), sigmas)
    assert len(calls) == 2 * 5 - 1  # Heun per step, Euler for the last
    torch.testing.assert_close(out, torch.zeros(2, 2))


def test_one_step_sampling_is_f_of_sigma_max_z():
    seen = []

    def f(x, sigma):
        seen.append((x.clone(), float(sigma)))
        return x * 0.01

    noise = PerSampleNoise([3, 4])
    z = PerSampleNoise([3, 4]).randn(2)
    out = consistency_sample(f, noise, (2,), sigma_max=80.0, sigma_min=0.002)
    torch.testing.assert_close(seen[0][0], 80.0 * z)
    torch.testing.assert_close(out, 0.8 * z)


def test_multistep_sampling_renoises_with_sqrt_tau2_minus_sigma_min2():
    f = lambda x, sigma: torch.full_like(x, 0.5)  # noqa: E731
    recorded = []

    def spy(x, sigma):
        recorded.append(x.clone())
        return f(x, sigma)

    noise, copy = PerSampleNoise([7]), PerSampleNoise([7])
    consistency_sample(spy, noise, (3,), 80.0, 0.002, intermediate_sigmas=[0.821])
    copy.randn(3)  # the first draw goes to the one-step start
    expected = 0.5 + math.sqrt(0.821**2 - 0.002**2) * copy.randn(3)
    torch.testing.assert_close(recorded[1], expected)


def test_per_sample_noise_does_not_depend_on_batching():
    whole = PerSampleNoise(range(10)).randn(4)
    parts = torch.cat([PerSampleNoise(range(0, 3)).randn(4), PerSampleNoise(range(3, 10)).randn(4)])
    torch.testing.assert_close(whole, parts)


# ----------------------------------------------------------------------------- properties

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(2, 3000),
    sigma_min=st.floats(1e-4, 0.1),
    sigma_max=st.floats(1.0, 500.0),
    rho=st.floats(1.0, 10.0),
)
def test_karras_property_exact_endpoints_and_ascending(n, sigma_min, sigma_max, rho):
    sigmas = karras_sigmas(n, sigma_min, sigma_max, rho)
    assert sigmas[0].item() == sigma_min and sigmas[-1].item() == sigma_max
    assert torch.all(sigmas[1:] >= sigmas[:-1])


@settings(max_examples=25, deadline=None)
@given(sigma_min=st.floats(1e-4, 0.5), sigma_data=st.floats(0.1, 2.0), seed=st.integers(0, 2**31))
def test_boundary_condition_property(sigma_min, sigma_data, seed):
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(3, 3))
    f = ConsistencyFunction(lambda x, c: net(x) * 100, sigma_min=sigma_min, sigma_data=sigma_data)
    x = torch.randn(4, 3, dtype=torch.float64)
    net.double()
    assert torch.equal(f(x, torch.tensor(sigma_min, dtype=torch.float64)), x)


@settings(max_examples=25, deadline=None)
@given(sigma=st.floats(1e-3, 100.0), sigma_data=st.floats(0.1, 2.0))
def test_edm_scalings_property_unit_variance(sigma, sigma_data):
    # EDM keeps the effective target at unit variance: c_skip + (c_out / sigma_data)^2 = 1
    c_skip, c_out, c_in, _ = edm_scalings(torch.tensor(sigma, dtype=torch.float64), sigma_data)
    assert (c_skip + (c_out / sigma_data) ** 2).item() == pytest.approx(1.0)
    assert (c_in**2 * (sigma**2 + sigma_data**2)).item() == pytest.approx(1.0)


# ----------------------------------------------------------------------------- levels and the sampler callback


def test_levels_are_checked_once_with_the_source_named():
    from genkit.errors import GenkitError
    from genkit.maths.levels import Levels

    assert list(Levels.check([1.5, 0.3], 0.002, 80.0)) == [1.5, 0.3]
    for values, message in [([0.3, 1.5], "must descend"), ([80.0], "got 80"), ([0.002], "got 0.002"), ([float("nan")], "got nan")]:
        with pytest.raises(GenkitError, match=message):
            Levels.check(values, 0.002, 80.0, "sample.multistep_sigmas")
    with pytest.raises(GenkitError, match="3-step sampling takes 2 intermediate level"):
        Levels.check([1.0], 0.002, 80.0, steps=3)


def test_the_step_callback_sees_every_step_and_can_change_it():
    from genkit.maths import PerSampleNoise, consistency_sample

    def fn(x, sigma):
        return x / (1 + float(sigma))

    seen = []

    def after_step(x, sigma):
        seen.append(sigma)
        return torch.zeros_like(x) if sigma == 1.0 else x

    plain = consistency_sample(fn, PerSampleNoise(range(3)), (2,), 80.0, 0.002, [1.0, 0.5])
    changed = consistency_sample(fn, PerSampleNoise(range(3)), (2,), 80.0, 0.002, [1.0, 0.5], after_step=after_step)
    assert seen == [80.0, 1.0, 0.5]
    noise = PerSampleNoise(range(3))
    noise.randn(2), noise.randn(2)  # the draws of the first two steps
    assert torch.equal(changed, (0.5**2 - 0.002**2) ** 0.5 * noise.randn(2) / 1.5)  # restarted from 0 at tau = 1
    assert not torch.equal(plain, changed)
