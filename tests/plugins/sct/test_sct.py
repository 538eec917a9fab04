"""sCT (Lu & Song 2025): TrigFlow and the continuous-time consistency objective, each formula
pinned against a derivation done here."""

import math

import pytest
import torch
from torch import nn

import genkit
from genkit.build import build
from genkit.errors import GenkitError
from genkit.maths import PerSampleNoise
from genkit_sct.formulas import (
    consistency_output,
    draw_times,
    edm_velocity,
    noisy,
    normalise,
    raw_and_scaled_derivative,
    scm_loss,
    sigma_of_t,
    t_of_sigma,
    tangent,
    training_velocity,
    warmup_factor,
)
from genkit_sct.method import TrigFlowConsistency
from genkit_toy.mlp import MLP

from conftest import TINY, build_for_training, trained_tiny_run

SIGMA_D = 0.5


def tiny_net():
    torch.manual_seed(0)
    ctx = type("Ctx", (), {"data_shape": (2,)})()
    return MLP(MLP.Config(width=16, depth=1, embedding_dim=8, fourier_scale=1.0), ctx).double()


def test_the_jvp_tangent_is_cos_t_times_the_finite_difference_df_dt():
    net = tiny_net()
    torch.manual_seed(1)
    x0, z = torch.randn(5, 2, dtype=torch.float64), SIGMA_D * torch.randn(5, 2, dtype=torch.float64)
    t = torch.tensor([0.1, 0.5, 0.9, 1.2, 1.5], dtype=torch.float64)

    def f_on_path(s):  # f(x_s, s) along the pair's own trajectory x_s = cos(s) x0 + sin(s) z
        x_s = torch.cos(s)[:, None] * x0 + torch.sin(s)[:, None] * z
        return consistency_output(x_s, s, net(x_s / SIGMA_D, s), SIGMA_D)

    h = 1e-6
    df_dt = (f_on_path(t + h) - f_on_path(t - h)) / (2 * h)
    x_t, dxdt = noisy(x0, z, t), training_velocity(x0, z, t)
    torch.testing.assert_close(dxdt, (noisy(x0, z, t + h) - noisy(x0, z, t - h)) / (2 * h))
    raw, scaled = raw_and_scaled_derivative(net, x_t, t, dxdt, SIGMA_D)
    torch.testing.assert_close(raw, net(x_t / SIGMA_D, t))
    g = tangent(raw, scaled, x_t, dxdt, t, 1.0, SIGMA_D)
    torch.testing.assert_close(g, torch.cos(t)[:, None] * df_dt, rtol=1e-6, atol=1e-8)
    # warm-up r = 0 keeps only -cos^2(t) (sigma_d F - dx_t/dt)
    torch.testing.assert_close(tangent(raw, scaled, x_t, dxdt, t, 0.0, SIGMA_D), -torch.cos(t)[:, None] ** 2 * (SIGMA_D * raw - dxdt))


def test_trigflow_and_edm_noise_round_trip():
    t = torch.tensor([0.01, 0.3, 1.0, 1.5], dtype=torch.float64)
    torch.testing.assert_close(t_of_sigma(sigma_of_t(t, SIGMA_D), SIGMA_D), t)
    sigma = torch.tensor([0.002, 0.5, 80.0], dtype=torch.float64)
    torch.testing.assert_close(sigma_of_t(t_of_sigma(sigma, SIGMA_D), SIGMA_D), sigma)
    assert t_of_sigma(torch.tensor(SIGMA_D), SIGMA_D).item() == pytest.approx(math.pi / 4)
    # x_t / cos(t) is the EDM noisy point x0 + sigma n with n = z / sigma_d
    x0, z = torch.randn(4, 3, dtype=torch.float64), SIGMA_D * torch.randn(4, 3, dtype=torch.float64)
    torch.testing.assert_close(noisy(x0, z, t) / torch.cos(t)[:, None], x0 + sigma_of_t(t, SIGMA_D)[:, None] * z / SIGMA_D)


def test_the_edm_teacher_velocity_is_the_exact_pf_ode_of_gaussian_data():
    # Data N(0, s^2): EDM's exact denoiser is D(y, sigma) = s^2 / (s^2 + sigma^2) y, and in TrigFlow
    # E[dx_t/dt | x_t] = E[-sin t x0 + cos t z | x_t] = sin t cos t (sigma_d^2 - s^2) / V x_t with
    # V = cos^2 t s^2 + sin^2 t sigma_d^2, the variance of x_t.
    s = 1.3
    denoiser = lambda y, sigma: (s**2 / (s**2 + sigma**2))[:, None] * y  # noqa: E731
    t = torch.tensor([0.2, 0.7, 1.3], dtype=torch.float64)
    x_t = torch.randn(3, 2, dtype=torch.float64)
    cos, sin = torch.cos(t), torch.sin(t)
    expected = (sin * cos * (SIGMA_D**2 - s**2) / (cos**2 * s**2 + sin**2 * SIGMA_D**2))[:, None] * x_t
    torch.testing.assert_close(edm_velocity(denoiser, x_t, t, SIGMA_D), expected)


def test_the_consistency_function_is_the_identity_at_t_zero_and_minus_sigma_d_f_at_half_pi():
    x, raw = torch.randn(3, 2, dtype=torch.float64), torch.randn(3, 2, dtype=torch.float64)
    assert torch.equal(consistency_output(x, torch.zeros(3, dtype=torch.float64), raw, SIGMA_D), x)
    torch.testing.assert_close(consistency_output(x, torch.full((3,), math.pi / 2, dtype=torch.float64), raw, SIGMA_D), -SIGMA_D * raw)


def test_tangent_normalisation_warmup_and_loss_hand_computed():
    g = torch.tensor([[3.0, 4.0], [0.0, 0.0]])
    torch.testing.assert_close(normalise(g, 0.1), torch.tensor([[3 / 5.1, 4 / 5.1], [0.0, 0.0]]))
    assert [warmup_factor(k, 100) for k in (0, 50, 100, 500)] == [0.0, 0.5, 1.0, 1.0]
    assert warmup_factor(0, 0) == 1.0
    student, target = torch.tensor([[1.0, 2.0]]), torch.tensor([[0.5, 0.0]])
    w = torch.tensor([0.3])  # e^0.3 / 2 * ((1 - 0.5 - 0.1)^2 + (2 - 0 - 0.2)^2) - 0.3
    expected = math.exp(0.3) / 2 * (0.4**2 + 1.8**2) - 0.3
    torch.testing.assert_close(scm_loss(student, target, torch.tensor([[0.1, 0.2]]), w), torch.tensor([expected]))


def test_the_proposal_makes_sigma_lognormal():
    t = draw_times(40_000, -1.0, 1.4, SIGMA_D, torch.Generator().manual_seed(0))
    assert torch.all((t > 0) & (t < math.pi / 2))
    log_sigma = sigma_of_t(t.double(), SIGMA_D).log()  # tan(t) = e^tau / sigma_d: ln sigma = tau
    assert log_sigma.mean().item() == pytest.approx(-1.0, abs=0.03)
    assert log_sigma.std().item() == pytest.approx(1.4, abs=0.03)


class Linear(nn.Module):
    """F(x_in, t) = A x_in + b t."""

    def __init__(self):
        super().__init__()
        self.a = nn.Parameter(torch.tensor([[0.5, -0.2], [0.1, 0.3]]))
        self.b = nn.Parameter(torch.tensor([1.0, -2.0]))

    def forward(self, x_in, t):
        return x_in @ self.a.T + t[:, None] * self.b


def test_one_and_two_step_sampling_on_a_linear_network(registries, tiny_config):
    method = build(tiny_config("sct"), registries).method
    method.clamp = None
    model = TrigFlowConsistency(Linear(), SIGMA_D, adaptive=False)
    a, b = model.net.a.detach(), model.net.b.detach()
    draws = PerSampleNoise([7, 8])
    e1, e2 = draws.randn(2), draws.randn(2)  # the sampler's first and second draws
    half_pi = math.pi / 2
    # f(sigma_d e, pi/2) = cos(pi/2) sigma_d e - sin(pi/2) sigma_d (A e + b pi/2)
    one = math.cos(half_pi) * SIGMA_D * e1 - SIGMA_D * (e1 @ a.T + half_pi * b)
    torch.testing.assert_close(method.sample(model, PerSampleNoise([7, 8]), 1), one)
    x_t = math.cos(1.1) * one + math.sin(1.1) * SIGMA_D * e2
    two = math.cos(1.1) * x_t - math.sin(1.1) * SIGMA_D * (x_t / SIGMA_D @ a.T + 1.1 * b)
    torch.testing.assert_close(method.sample(model, PerSampleNoise([7, 8]), 2), two)
    with pytest.raises(ValueError, match="3-step sampling needs 2 times"):
        method.sample(model, PerSampleNoise([7]), 3)


def test_the_first_loss_is_the_normalised_tangent_squared_over_d(registries, tiny_config):
    # w(t) starts at 0 and F_theta = F^- in value, so the loss is mean ||g / (||g|| + c)||^2 / D
    method = build(tiny_config("sct"), registries).method
    torch.manual_seed(4)
    x = torch.randn(8, 2)
    draws = method.draw(8, 500, None, x.device)
    loss, _ = method.loss(x, 500, draws=draws)
    _, _, g = method.tangent(x, SIGMA_D * draws["noise"], draws["t"], 500)
    torch.testing.assert_close(loss, g.pow(2).sum(dim=1).mean() / 2)
    assert 0.01 < loss.item() < 0.5


def test_sct_trains_and_samples_finite_points(tmp_path):
    overrides = {k.replace(".", "__"): (int(v) if v.isdigit() else v) for k, v in (item.split("=") for item in TINY)}
    model = genkit.train("toy2d", out=tmp_path / "run", method="sct", steps=6, methods__sct__warmup_steps=3, **overrides)
    weight = model.network.weight.linear.weight
    assert weight.abs().max() > 0  # w(t) is trained with the network
    for steps in (1, 2):
        samples = genkit.load(tmp_path / "run").sample(50, steps=steps, seed=1)
        assert samples.shape == (50, 2) and torch.isfinite(samples).all()


@pytest.mark.parametrize(
    "assignment, message",
    [
        ("methods.sct.p_std=0", "must be positive"),
        ("methods.sct.tangent_c=0", "must be positive"),
        ("methods.sct.warmup_steps=-1", "must not be negative"),
        ("methods.sct.intermediate_times=[1.6]", r"descending times in \(0, pi/2\)"),
        ("methods.sct.intermediate_times=[0.5, 1.1]", r"descending times in \(0, pi/2\)"),
        ("methods.sct.intermediate_times=[0.0]", r"descending times in \(0, pi/2\)"),
    ],
)
def test_sct_options_are_range_checked(tiny_config, assignment, message):
    with pytest.raises(GenkitError, match=message):
        tiny_config("sct", extra=[assignment])


# ----------------------------------------------------------------------------- sCD


@pytest.fixture(scope="module")
def edm_run(registries, tmp_path_factory):
    """A tiny EDM teacher (like conftest.TINY), trained for a few steps."""
    return trained_tiny_run(registries, tmp_path_factory.mktemp("teacher") / "edm", "edm", 3)


def test_scd_distils_the_edm_teachers_velocity(registries, tiny_config, edm_run, tmp_path):
    built = build_for_training(tiny_config("scd", extra=[f"methods.scd.teacher_run='{edm_run}'"]), registries)
    method, teacher = built.method, genkit.load(edm_run).network
    torch.manual_seed(5)
    x0, z, t = torch.randn(4, 2), SIGMA_D * torch.randn(4, 2), torch.tensor([0.3, 0.7, 1.0, 1.4])
    x_t = noisy(x0, z, t)
    sigma = SIGMA_D * torch.tan(t)  # dx_t/dt = (cos t x_t - D(x_t / cos t, sigma)) / sin t
    expected = (torch.cos(t)[:, None] * x_t - teacher(x_t / torch.cos(t)[:, None], sigma)) / torch.sin(t)[:, None]
    torch.testing.assert_close(method.velocity(x0, z, x_t, t), expected)
    assert "teacher" not in "".join(method.state_dict())  # the teacher's weights stay out of checkpoints
    model = genkit.train("toy2d", out=tmp_path / "scd", method="scd", teacher=edm_run, steps=4,
                         **{k.replace(".", "__"): (int(v) if v.isdigit() else v) for k, v in (item.split("=") for item in TINY)})
    assert torch.isfinite(model.sample(20, steps=2)).all()


def test_scd_without_a_teacher_is_a_one_line_error(registries, tiny_config):
    with pytest.raises(GenkitError, match="needs a teacher: pass --teacher RUN"):
        build_for_training(tiny_config("scd"), registries)
