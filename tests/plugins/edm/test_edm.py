"""Spec section 3, the EDM teacher: weighting, noise-level distribution, loss, Heun sampler.

The Heun step is checked against the exact probability-flow ODE of Gaussian data N(m, s^2 I):
its ideal denoiser is D(x, sigma) = (s^2 x + sigma^2 m) / (s^2 + sigma^2), so
dx/dsigma = (x - D) / sigma = sigma (x - m) / (s^2 + sigma^2), solved by
x(sigma) = m + (x0 - m) sqrt((s^2 + sigma^2) / (s^2 + sigma0^2)).
"""

import math

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from genkit.build import build
from genkit.cli.main import build_app
from genkit.maths import PerSampleNoise, euler_step, heun_sample, heun_step
from genkit_edm.formulas import edm_loss, edm_loss_weight, heun_levels, lognormal_sigmas

from conftest import TINY

M = torch.tensor([0.3, -0.2], dtype=torch.float64)  # mean of the Gaussian data
S = 0.5  # its standard deviation


def gaussian_denoiser(x, sigma):
    sigma = torch.as_tensor(sigma, dtype=x.dtype).reshape(-1, *([1] * (x.ndim - 1)))
    return (S**2 * x + sigma**2 * M) / (S**2 + sigma**2)


def exact_solution(x0, sigma0, sigma):
    return M + (x0 - M) * math.sqrt((S**2 + sigma**2) / (S**2 + sigma0**2))


class CountingDenoiser:
    """Wraps a denoiser and records the noise level of every call."""

    def __init__(self, denoiser):
        self.denoiser, self.sigmas, self.inputs = denoiser, [], []

    def __call__(self, x, sigma):
        self.sigmas.append(torch.as_tensor(sigma).flatten()[0].item())
        self.inputs.append(x.clone())
        return self.denoiser(x, sigma)

    def eval(self):
        return self


# ----------------------------------------------------------------------------- formulas


def test_edm_weighting_values():
    sigma = torch.tensor([0.1, 0.5, 2.0], dtype=torch.float64)
    # (sigma^2 + 0.25) / (0.25 sigma^2): 0.26 / 0.0025, 0.5 / 0.0625, 4.25 / 1
    torch.testing.assert_close(edm_loss_weight(sigma, 0.5), torch.tensor([104.0, 8.0, 4.25], dtype=torch.float64))


def test_edm_weighting_makes_the_effective_weight_one():
    # EDM's design: lambda(sigma) c_out(sigma)^2 = 1 at every noise level.
    sigma = torch.logspace(-3, 2, 50, dtype=torch.float64)
    for sigma_data in (0.5, 1.0):
        c_out_squared = sigma**2 * sigma_data**2 / (sigma**2 + sigma_data**2)
        torch.testing.assert_close(edm_loss_weight(sigma, sigma_data) * c_out_squared, torch.ones_like(sigma))


def test_lognormal_sigmas_have_the_published_moments():
    torch.manual_seed(0)
    sigma = lognormal_sigmas(400_000, -1.2, 1.2, dtype=torch.float64)
    log_sigma = sigma.log()
    assert log_sigma.mean().item() == pytest.approx(-1.2, abs=0.01)
    assert log_sigma.std().item() == pytest.approx(1.2, abs=0.01)
    assert sigma.median().item() == pytest.approx(math.exp(-1.2), rel=0.01)  # 0.3012
    assert sigma.mean().item() == pytest.approx(math.exp(-1.2 + 1.2**2 / 2), rel=0.02)  # 0.6188


def test_edm_loss_is_weighted_squared_error_per_sample():
    x = torch.tensor([[0.5, -0.5], [1.0, 0.0], [0.0, 0.2]], dtype=torch.float64)
    sigma = torch.tensor([0.1, 1.0, 3.0], dtype=torch.float64)
    denoiser = lambda x_noisy, s: 0.5 * x_noisy  # noqa: E731
    torch.manual_seed(3)
    n = torch.randn_like(x)
    expected = [
        (sigma[i] ** 2 + 0.25) / (sigma[i] * 0.5) ** 2 * ((0.5 * (x[i] + sigma[i] * n[i]) - x[i]) ** 2).sum()
        for i in range(3)
    ]
    torch.manual_seed(3)
    torch.testing.assert_close(edm_loss(denoiser, x, sigma, 0.5), torch.stack(expected))


def test_edm_method_loss_draws_lognormal_sigma_then_noise(tiny_config, registries):
    method = build(tiny_config("edm"), registries).method
    x = torch.randn(8, 2)
    torch.manual_seed(11)
    sigma = (-1.2 + 1.2 * torch.randn(8)).exp()
    n = torch.randn_like(x)
    with torch.no_grad():
        denoised = method.model(x + sigma[:, None] * n, sigma)
    expected = ((sigma**2 + 0.25) / (0.5 * sigma) ** 2 * ((denoised - x) ** 2).sum(dim=1)).mean()
    torch.manual_seed(11)
    loss, _ = method.loss(x, step=1)
    torch.testing.assert_close(loss, expected)
    loss.backward()
    assert all(p.grad is not None for p in method.model.parameters() if p.requires_grad)


def test_edm_rejects_nonpositive_p_std(tiny_config, registries):
    from genkit.errors import GenkitError

    with pytest.raises(GenkitError, match="p_std"):
        build(tiny_config("edm", extra=["methods.edm.p_std=0"]), registries)


# ----------------------------------------------------------------------------- Heun vs the exact ODE


def one_step_errors(step, sigma0=2.0):
    x0 = torch.tensor([[1.4, -0.9], [-0.6, 0.8]], dtype=torch.float64)
    exact = exact_solution(x0, sigma0, sigma0 - step)
    heun = heun_step(gaussian_denoiser, x0, sigma0, sigma0 - step)
    euler = euler_step(gaussian_denoiser, x0, sigma0, sigma0 - step)
    return (heun - exact).abs().max().item(), (euler - exact).abs().max().item()


def test_one_heun_step_matches_the_exact_solution_and_is_second_order():
    heun, euler = one_step_errors(0.2)
    assert heun < 1e-4 and heun < euler / 5
    # local error O(h^3) for Heun, O(h^2) for Euler: halving h divides them by 8 and 4
    (heun_h, euler_h), (heun_half, euler_half) = one_step_errors(0.2), one_step_errors(0.1)
    heun_ratio, euler_ratio = heun_h / heun_half, euler_h / euler_half
    assert heun_ratio == pytest.approx(8, rel=0.15)
    assert euler_ratio == pytest.approx(4, rel=0.15)


def test_heun_integration_converges_with_order_two():
    x0 = torch.tensor([[1.4, -0.9]], dtype=torch.float64)
    exact = exact_solution(x0, 2.0, 0.5)

    def error(steps):
        levels = torch.linspace(2.0, 0.5, steps + 1, dtype=torch.float64).tolist()
        return (heun_sample(gaussian_denoiser, x0, levels) - exact).abs().max().item()

    assert error(8) / error(16) == pytest.approx(4, rel=0.1)  # global error O(h^2)
    assert error(16) < 5e-4


def test_last_step_to_zero_is_euler_and_lands_on_the_denoiser_output():
    x = torch.tensor([[0.7, 0.1]], dtype=torch.float64)
    counting = CountingDenoiser(gaussian_denoiser)
    torch.testing.assert_close(heun_step(counting, x, 0.002, 0.0), gaussian_denoiser(x, 0.002))
    assert len(counting.sigmas) == 1


# ----------------------------------------------------------------------------- the sampler


def test_heun_levels_are_karras_descending_then_zero():
    levels = heun_levels(18, 0.002, 80.0, 7.0)
    assert len(levels) == 19 and levels[0].item() == 80.0 and levels[-2].item() == 0.002 and levels[-1].item() == 0
    ramp = [(80 ** (1 / 7) + i / 17 * (0.002 ** (1 / 7) - 80 ** (1 / 7))) ** 7 for i in range(18)]
    torch.testing.assert_close(levels[:-1], torch.tensor(ramp, dtype=torch.float64))


@pytest.mark.parametrize("steps, evaluations", [(None, 35), (18, 35), (5, 9), (2, 3)])
def test_edm_sampler_evaluates_the_network_2n_minus_1_times(tiny_config, registries, steps, evaluations):
    method = build(tiny_config("edm"), registries).method
    counting = CountingDenoiser(gaussian_denoiser)
    method.sample(counting, PerSampleNoise(range(3)), steps)
    assert len(counting.sigmas) == method.sampling_evaluations(steps) == evaluations
    levels = heun_levels(steps or 18, 0.002, 80.0, 7.0).tolist()
    # a slope at every nonzero level, a second (corrector) slope at every next level above 0
    assert counting.sigmas[0] == pytest.approx(80.0)
    assert counting.sigmas[-1] == pytest.approx(levels[-2])
    assert sorted(set(round(s, 9) for s in counting.sigmas)) == sorted(round(s, 9) for s in levels[:-1])
    assert method.default_sampling_steps() == 18


def test_edm_sampler_starts_at_sigma_max_times_per_sample_noise(tiny_config, registries):
    method = build(tiny_config("edm"), registries).method
    counting = CountingDenoiser(gaussian_denoiser)
    method.sample(counting, PerSampleNoise([7, 8]), 3)
    torch.testing.assert_close(counting.inputs[0].float(), 80.0 * PerSampleNoise([7, 8]).randn(2))


def test_edm_sampler_follows_the_exact_ode_of_gaussian_data(tiny_config, registries):
    method = build(tiny_config("edm"), registries).method
    start = 80.0 * PerSampleNoise(range(2000)).randn(2).double()
    exact = exact_solution(start, 80.0, 0.0)  # the ODE maps N(0, 80^2 I) onto N(m, s^2 I) exactly

    def error(levels):
        samples = method.sample(lambda x, s: gaussian_denoiser(x.double(), s), PerSampleNoise(range(2000)), levels)
        return samples, (samples - exact).abs().max().item()

    samples, error_18 = error(None)
    _, error_36 = error(36)
    assert error_18 < 0.12  # the samples have std 0.5; the largest error is at the farthest start, 3.9 std
    assert error_18 / error_36 == pytest.approx(4.5, rel=0.2)  # second order in the Karras ramp's step
    torch.testing.assert_close(samples.mean(0), M, atol=0.03, rtol=0)
    torch.testing.assert_close(samples.std(0), torch.full((2,), S, dtype=torch.float64), atol=0.04, rtol=0)


def test_edm_sampler_needs_two_levels(tiny_config, registries):
    method = build(tiny_config("edm"), registries).method
    with pytest.raises(ValueError, match="at least 2 Karras levels"):
        method.sample(gaussian_denoiser, PerSampleNoise([0]), 1)


def test_edm_training_evaluations(tiny_config, registries):
    assert build(tiny_config("edm"), registries).method.training_evaluations() == {"student": 1, "teacher": 0}


# ----------------------------------------------------------------------------- end to end


@pytest.mark.slow
def test_edm_trains_and_samples_with_heun_from_the_command_line(tmp_path):
    runner, app = CliRunner(), build_app()
    sets = [part for item in TINY for part in ("--set", item)]
    result = runner.invoke(app, ["train", "--method", "edm", "--steps", "20", "--out", str(tmp_path / "edm"), *sets])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["sample", str(tmp_path / "edm"), "--steps", "6"])
    assert result.exit_code == 0, result.output
    assert "swd" in result.output
    saved = np.load(tmp_path / "edm" / "samples" / "6step-seed0.npz")
    assert saved["samples"].shape == (200, 2) and int(saved["evaluations"]) == 11
    result = runner.invoke(app, ["sample", str(tmp_path / "edm"), "--steps", "1"])
    assert result.exit_code == 1 and "at least 2 Karras levels" in result.output
