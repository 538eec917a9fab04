"""Spec section 5, original consistency training: the square-root curriculum, the adaptive target
EMA mu(k), the data point as the target's source, and nonsense curricula rejected at build time."""

import math
from types import SimpleNamespace

import pytest
import torch
from typer.testing import CliRunner

from genkit.build import build
from genkit.cli.main import build_app
from genkit.errors import GenkitError
from genkit.maths import karras_sigmas
from genkit.methods.consistency import draw_indices
from genkit.schema import Component, Parser
from genkit.training.run import RunFolder
from genkit_consistency.curricula import SquareRootCurriculum
from genkit_ct.method import ct_target_rate

from conftest import TINY, assert_same_tensors, build_for_training, straight_and_resumed

runner = CliRunner()
CIFAR10 = ["methods.ct.curriculum.s0=2", "methods.ct.curriculum.s1=150"]  # the paper's curriculum (toy2d sets s1 = 40)


def sqrt_curriculum(s0, s1, total):
    return SquareRootCurriculum(SquareRootCurriculum.Config(s0, s1), SimpleNamespace(total_steps=total))


# ----------------------------------------------------------------------------- N(k) and mu(k)


@pytest.mark.parametrize(
    "step, expected",
    [
        (0, 2),  # ceil(sqrt(s0^2) - 1) + 1 = s0: the curriculum starts at s0 levels, not s0 + 1
        (1, 3),  # sqrt(22797 / 800k + 4) = 2.0071: the ceiling lifts N to 3 at once
        (200_000, 76),  # sqrt(22797 / 4 + 4) = 75.52 -> ceil(74.52) + 1
        (400_000, 107),  # sqrt(22797 / 2 + 4) = 106.78 -> ceil(105.78) + 1
        (799_999, 151),
        (800_000, 151),  # k = K: sqrt((s1 + 1)^2) - 1 = s1, so N(K) = s1 + 1
    ],
)
def test_sqrt_curriculum_on_cifar10_settings(step, expected):
    # s0 = 2, s1 = 150, K = 800k: (s1 + 1)^2 - s0^2 = 22801 - 4 = 22797.
    assert sqrt_curriculum(2, 150, 800_000).num_levels(step) == expected


def test_sqrt_curriculum_never_decreases():
    curriculum = sqrt_curriculum(2, 150, 1000)
    levels = [curriculum.num_levels(k) for k in range(1001)]
    assert levels == sorted(levels) and levels[0] == 2 and levels[-1] == 151


@pytest.mark.parametrize(
    "num_levels, expected",
    [(2, 0.9), (3, 0.9321697517861577), (18, 0.9883615331157483), (151, 0.9986054697436056)],
)
def test_target_rate_mu_of_k(num_levels, expected):
    # exp(s0 ln(mu0) / N) = mu0^(s0 / N): 0.9^(2/2) = 0.9, 0.9^(2/151) = 0.998605...
    assert ct_target_rate(num_levels, s0=2, mu0=0.9) == pytest.approx(expected, rel=1e-12)


def test_target_rate_of_mu0_zero_is_zero():
    assert ct_target_rate(5, s0=2, mu0=0.0) == 0.0


# ----------------------------------------------------------------------------- the method


def test_ct_defaults_follow_the_paper(registries):
    # an empty methods.ct table: every part at its default, with the default's options filled in
    options = Parser(registries).options(registries.methods.get("ct"), {}, "methods.ct")
    assert options.curriculum == Component("sqrt", SquareRootCurriculum.Config(s0=2, s1=150))
    assert (options.mu0, options.loss.name, options.weighting) == (0.9, "lpips", "uniform")


def test_ct_parts(tiny_config, registries):
    method = build_for_training(tiny_config("ct", steps=800, extra=CIFAR10), registries).method
    assert method.teacher.evaluations_per_sample == 0  # the data teacher
    assert [method.curriculum.num_levels(k) for k in (0, 400, 800)] == [2, 107, 151]
    p = method.noise_schedule.index_probabilities(karras_sigmas(107))
    torch.testing.assert_close(p, torch.full((106,), 1 / 106, dtype=torch.float64))
    assert method.target_rate(0) == pytest.approx(0.9)
    assert method.target_rate(800) == pytest.approx(0.9 ** (2 / 151))
    assert method.training_evaluations() == {"student": 2, "teacher": 0}


def test_ct_loss_equals_hand_assembled_loss(tiny_config, registries):
    method = build_for_training(tiny_config("ct", steps=800, extra=CIFAR10), registries).method
    with torch.no_grad():  # make the target differ from the student
        for p in method.target.parameters():
            p.mul_(0.5)
    x = torch.randn(32, 2)
    torch.manual_seed(9)
    loss, logs = method.loss(x, step=400)
    assert logs["num_levels"] == 107

    torch.manual_seed(9)
    sigmas = karras_sigmas(107)
    index = draw_indices(torch.full((106,), 1 / 106, dtype=torch.float64), 32)
    sigma_hi, sigma_lo = sigmas[index + 1].float(), sigmas[index].float()
    z = torch.randn_like(x)
    with torch.no_grad():
        prediction = method.model(x + sigma_hi[:, None] * z, sigma_hi)
        target = method.target(x + sigma_lo[:, None] * z, sigma_lo)  # the same z, the EMA target
    torch.testing.assert_close(loss.detach(), ((prediction - target) ** 2).sum(dim=1).mean())


def test_after_step_moves_the_target_at_rate_mu_of_k(tiny_config, registries):
    method = build_for_training(tiny_config("ct", steps=800, extra=CIFAR10), registries).method
    before = [p.clone() for p in method.target.parameters()]
    with torch.no_grad():
        for p in method.model.parameters():
            p.add_(1.0)
    method.after_step(400)  # N = 107
    mu = 0.9 ** (2 / 107)
    for old, new, online in zip(before, method.target.parameters(), method.model.parameters()):
        torch.testing.assert_close(new, mu * old + (1 - mu) * online)


def test_resumed_ct_run_equals_uninterrupted_run(tiny_config, registries, tmp_path):
    config = tiny_config("ct", steps=16, extra=["network.dropout=0.2", "train.checkpoint_every=100"])
    straight, resumed = straight_and_resumed(config, registries, tmp_path, stop_at=9)
    a, b = straight.method.state_dict(), resumed.method.state_dict()
    assert any(key.startswith("target.") for key in a)
    assert_same_tensors(a, b)


# ----------------------------------------------------------------------------- bad input


def test_nonsense_curricula_are_clear_errors(tiny_config):
    with pytest.raises(ValueError, match=r"s1 \(1\) must not be smaller than s0 \(2\)"):
        sqrt_curriculum(2, 1, 100)
    with pytest.raises(GenkitError, match="K = total training steps >= 1, got 0"):
        sqrt_curriculum(2, 150, 0)
    # per-option range checks run when the options are read from config
    with pytest.raises(GenkitError, match=r"methods.ct.curriculum.s0 must be in \[1, 1.67772e\+07\], got 0"):
        tiny_config("ct", extra=["methods.ct.curriculum.s0=0"])


def test_nonsense_curriculum_fails_at_build_time(tiny_config, registries):
    with pytest.raises(GenkitError, match=r"methods.ct.curriculum: s1 \(1\) must not be smaller than s0 \(2\)"):
        build_for_training(tiny_config("ct", extra=["methods.ct.curriculum.s1=1"]), registries)


def test_mu0_out_of_range(tiny_config, registries):
    with pytest.raises(GenkitError, match=r"methods.ct.mu0 must be in \[0, 1\), got 1.5"):
        build(tiny_config("ct", extra=["methods.ct.mu0=1.5"]), registries)


def test_mu0_zero_means_no_target_copy(tiny_config, registries):
    assert build(tiny_config("ct", extra=["methods.ct.mu0=0.0"]), registries).method.target is None


@pytest.mark.parametrize(
    "args, message",
    [
        (["--set", "methods.ct.curriculum.s1=1"], "methods.ct.curriculum: s1 (1) must not be smaller than s0 (2)"),
        (["--steps", "0"], "train.steps must be positive"),
        (["--set", "methods.ct.loss=no-such-metric"], "'no-such-metric'"),
    ],
)
def test_bad_ct_settings_fail_before_training_with_one_line(tmp_path, args, message):
    out = tmp_path / "run"
    result = runner.invoke(build_app(), ["train", "--method", "ct", "--out", str(out), *args])
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], result.output
    assert not (out / "checkpoint.pt").exists()


# ----------------------------------------------------------------------------- end to end


@pytest.mark.slow
def test_ct_trains_and_samples_at_one_and_two_steps_from_the_command_line(tmp_path):
    out = tmp_path / "ct"
    sets = [part for item in TINY for part in ("--set", item)]
    args = ["train", "--method", "ct", "--steps", "12", "--out", str(out), *sets, "--set", "methods.ct.curriculum.s1=150"]
    result = runner.invoke(build_app(), args)
    assert result.exit_code == 0, result.output
    logged = [r["num_levels"] for r in RunFolder(out).metrics() if "num_levels" in r]
    # iterations run k = 0..K-1 (Algorithm 3), so the last one uses N(11) of K = 12:
    # ceil(sqrt(11/12 (151^2 - 2^2) + 2^2) - 1) + 1 = ceil(143.57) + 1 = 145
    assert logged == sorted(logged) and logged[-1] == 145
    for steps in ("1", "2"):
        result = runner.invoke(build_app(), ["sample", str(out), "--steps", steps])
        assert result.exit_code == 0, result.output
        assert "swd" in result.output
    assert math.isfinite(next(RunFolder(out).metrics())["loss"])
