"""MeanFlow (Geng et al. 2025): each formula pinned against a derivation done here."""

import math

import pytest
import torch

import genkit
from genkit.build import build
from genkit.errors import GenkitError
from genkit.maths import PerSampleNoise
from genkit_meanflow.formulas import adaptive_weight, draw_times, interpolate, meanflow_target, total_derivative
from genkit_toy.mlp import MLP

from conftest import TINY

SECOND = ["network.second_time=true"]


def tiny_mlp(second_time=True):
    torch.manual_seed(0)
    ctx = type("Ctx", (), {"data_shape": (2,)})()
    return MLP(MLP.Config(width=16, depth=1, embedding_dim=8, fourier_scale=1.0, second_time=second_time), ctx).double()


def test_the_jvp_total_derivative_matches_finite_differences():
    net = tiny_mlp()
    u = lambda z, r, t: net(z, t, c_second=t - r)  # noqa: E731
    torch.manual_seed(1)
    z, v = torch.randn(5, 2, dtype=torch.float64), torch.randn(5, 2, dtype=torch.float64)
    r = torch.tensor([0.1, 0.2, 0.0, 0.5, 0.3], dtype=torch.float64)
    t = torch.tensor([0.4, 0.9, 0.7, 0.5, 0.8], dtype=torch.float64)
    value, dudt = total_derivative(u, z, r, t, v)
    h = 1e-6  # d/dh u(z + h v, r, t + h) at h = 0, central difference
    estimate = (u(z + h * v, r, t + h) - u(z - h * v, r, t - h)) / (2 * h)
    torch.testing.assert_close(value, u(z, r, t))
    torch.testing.assert_close(dudt, estimate, rtol=1e-6, atol=1e-8)
    assert dudt.abs().max() > 1e-3  # a derivative worth comparing


def test_the_exact_average_velocity_of_gaussian_data_is_its_own_target():
    # Data N(0, s^2 I): z_t = (1 - t) x + t e has std sig(t) = sqrt((1 - t)^2 s^2 + t^2) and the
    # flow is the linear map z_r = sig(r) / sig(t) z_t, so u(z, r, t) = (z - z_r) / (t - r) =
    # z (1 - sig(r) / sig(t)) / (t - r), and the marginal velocity is v = sig'(t) / sig(t) z with
    # sig'(t) = (t - (1 - t) s^2) / sig(t). The MeanFlow identity says u_tgt = u.
    s = 0.5
    sig = lambda t: ((1 - t) ** 2 * s**2 + t**2).sqrt()  # noqa: E731

    def u(z, r, t):
        return z * ((1 - sig(r) / sig(t)) / (t - r))[:, None]

    torch.manual_seed(2)
    z = torch.randn(4, 2, dtype=torch.float64)
    r = torch.tensor([0.1, 0.0, 0.3, 0.6], dtype=torch.float64)
    t = torch.tensor([0.8, 1.0, 0.5, 0.7], dtype=torch.float64)
    v = z * ((t - (1 - t) * s**2) / sig(t) ** 2)[:, None]
    _, dudt = total_derivative(u, z, r, t, v)
    assert dudt.abs().max() > 1e-2  # u changes along the path: the (t - r) du/dt term matters
    torch.testing.assert_close(meanflow_target(v, dudt, r, t), u(z, r, t))


def test_at_r_equal_t_the_target_is_the_instantaneous_velocity(registries, tiny_config):
    built = build(tiny_config("meanflow", extra=SECOND), registries)
    torch.manual_seed(3)
    x, e = torch.randn(6, 2), torch.randn(6, 2)
    t = torch.rand(6)
    z, target = built.method.target(x, e, t, t)
    torch.testing.assert_close(z, (1 - t[:, None]) * x + t[:, None] * e)
    assert torch.equal(target, e - x)
    _, unequal = built.method.target(x, e, t / 2, t)  # r < t: the network's derivative enters
    assert (unequal - (e - x)).abs().max() > 1e-4


def test_interpolation_ends_at_the_data_and_the_noise():
    x, e = torch.tensor([[1.0, 2.0]]), torch.tensor([[-3.0, 5.0]])
    assert torch.equal(interpolate(x, e, torch.tensor([0.0])), x)
    assert torch.equal(interpolate(x, e, torch.tensor([1.0])), e)
    torch.testing.assert_close(interpolate(x, e, torch.tensor([0.25])), torch.tensor([[0.0, 2.75]]))


def test_time_pairs_follow_the_papers_distribution():
    generator = torch.Generator().manual_seed(0)
    n = 40_000
    r, t = draw_times(n, -0.4, 1.0, 0.25, generator)
    assert torch.all((0 < r) & (r <= t) & (t < 1))
    assert (r != t).float().mean().item() == pytest.approx(0.25, abs=0.01)
    # t is the larger of two logit-normal draws: P(t <= 0.5) = Phi((logit 0.5 + 0.4) / 1)^2
    phi = 0.5 * (1 + math.erf(0.4 / math.sqrt(2)))
    assert (t <= 0.5).float().mean().item() == pytest.approx(phi**2, abs=0.01)
    r_all, t_all = draw_times(1000, 0.0, 1.0, 0.0, generator)
    assert torch.equal(r_all, t_all)  # share 0: flow matching only


def test_adaptive_weight_hand_computed():
    squared = torch.tensor([3.0, 0.0])
    torch.testing.assert_close(adaptive_weight(squared, 1.0, 1e-3), torch.tensor([1 / 3.001, 1000.0]))
    torch.testing.assert_close(adaptive_weight(squared, 0.5, 0.01), torch.tensor([1 / math.sqrt(3.01), 10.0]))
    assert torch.equal(adaptive_weight(squared, 0.0, 1e-3), torch.ones(2))


def test_one_and_two_step_sampling_on_a_linear_network(registries, tiny_config):
    built = build(tiny_config("meanflow", extra=SECOND), registries)
    built.method.clamp = None
    a = torch.tensor([[0.5, -0.2], [0.1, 0.3]])
    b, c = torch.tensor([1.0, -2.0]), torch.tensor([0.25, 0.75])

    def linear(z, r, t, labels=None):  # u = A z + b t + c r
        return z @ a.T + t[:, None] * b + r[:, None] * c

    e = PerSampleNoise([7, 8]).randn(2)  # the sampler's unit noise: the first draw
    one = built.method.sample(linear, PerSampleNoise([7, 8]), 1)
    torch.testing.assert_close(one, e - (e @ a.T + b))  # z_0 = z_1 - u(z_1, 0, 1)
    half = e - 0.5 * (e @ a.T + b + 0.5 * c)  # u(z_1, 0.5, 1)
    two = built.method.sample(linear, PerSampleNoise([7, 8]), 2)
    torch.testing.assert_close(two, half - 0.5 * (half @ a.T + 0.5 * b))  # u(z_half, 0, 0.5)
    assert built.method.sampling_evaluations(2) == 2 and built.method.sampling_evaluations(None) == 1


def test_meanflow_trains_and_samples_finite_points(tmp_path):
    overrides = {key.replace(".", "__"): value for key, value in (item.split("=") for item in TINY)}
    overrides = {k: (int(v) if v.isdigit() else v) for k, v in overrides.items()}
    model = genkit.train("toy2d", out=tmp_path / "run", method="meanflow", steps=6, network__second_time=True, **overrides)
    for steps in (1, 2):
        samples = model.sample(50, steps=steps, seed=1)
        assert samples.shape == (50, 2) and torch.isfinite(samples).all()
    loaded = genkit.load(tmp_path / "run")
    assert torch.equal(loaded.sample(20, seed=1), model.sample(20, seed=1))
    with pytest.raises(GenkitError, match="levels apply to consistency sampling"):
        loaded.sample(4, levels=[1.0])


def test_meanflow_needs_a_network_with_a_second_time(registries, tiny_config):
    with pytest.raises(GenkitError, match=r"needs its second time input, set network.second_time = true"):
        build(tiny_config("meanflow"), registries)


@pytest.mark.parametrize(
    "assignment, message",
    [
        ("methods.meanflow.unequal_share=1.0", r"must be in \[0, 1\)"),
        ("methods.meanflow.unequal_share=-0.1", r"must be in \[0, 1\)"),
        ("methods.meanflow.p_std=0", "must be positive"),
        ("methods.meanflow.c=0", "must be positive"),
        ("methods.meanflow.p=-1", "must not be negative"),
        ("methods.meanflow.second_input=s", "second_input"),
    ],
)
def test_meanflow_options_are_range_checked(tiny_config, assignment, message):
    with pytest.raises(GenkitError, match=message):
        tiny_config("meanflow", extra=SECOND + [assignment])


def test_the_mlp_second_time_is_an_option():
    one, two = tiny_mlp(second_time=False), tiny_mlp(second_time=True)
    x, c = torch.randn(3, 2, dtype=torch.float64), torch.rand(3, dtype=torch.float64)
    with pytest.raises(ValueError, match="no second time input"):
        one(x, c, c_second=c)
    with pytest.raises(ValueError, match="takes a second time input"):
        two(x, c)
    assert not torch.allclose(two(x, c, c_second=c), two(x, c, c_second=c + 0.5))
    assert set(two.state_dict()) - set(one.state_dict()) == {key for key in two.state_dict() if key.startswith("embed_second.")}


def test_the_jvp_goes_through_a_u_net_with_a_second_time():
    from types import SimpleNamespace

    from genkit_meanflow.method import AverageVelocityModel
    from genkit_unet.song_unet import SongUNet

    torch.manual_seed(0)
    options = SongUNet.Config(channels=8, channel_multipliers=(1, 2), blocks_per_resolution=1, attention_resolutions=(8,), dropout=0.0, second_time=True)
    net = SongUNet(options, SimpleNamespace(data_shape=(3, 8, 8))).double()
    with torch.no_grad():
        for parameter in net.parameters():  # the zero-initialised layers would hide the derivative
            parameter.add_(0.05 * torch.randn_like(parameter))
    u = AverageVelocityModel(net)
    z, v = torch.randn(2, 3, 8, 8, dtype=torch.float64), torch.randn(2, 3, 8, 8, dtype=torch.float64)
    r, t = torch.tensor([0.2, 0.0], dtype=torch.float64), torch.tensor([0.7, 1.0], dtype=torch.float64)
    _, dudt = total_derivative(u, z, r, t, v)
    h = 1e-6
    estimate = (u(z + h * v, r, t + h) - u(z - h * v, r, t - h)) / (2 * h)
    torch.testing.assert_close(dudt, estimate, rtol=1e-5, atol=1e-7)
