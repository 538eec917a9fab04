"""Spec section 4, consistency distillation: the EDM Heun teacher, the student's initialisation,
constant N with uniform indices, the target network, and every way a teacher can be wrong."""

import math
import tomllib

import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from genkit.build import build
from genkit.trained import load_trained
from genkit.cli.main import build_app
from genkit.errors import GenkitError
from genkit.evaluation import draw_samples
from genkit.maths import euler_step, heun_step, karras_sigmas
from genkit.methods.consistency import draw_indices
from genkit.schema import Component, Parser
from genkit.training.loop import Trainer
from genkit.training.run import RunFolder
from genkit_consistency.curricula import ConstantCurriculum

from conftest import TINY, assert_same_tensors, build_for_training, straight_and_resumed, trained_tiny_run

runner = CliRunner()


def train_tiny(tiny_config, registries, out, method="edm", steps=3, extra=()):
    config = tiny_config(method, steps=steps, extra=list(extra))
    Trainer(config, RunFolder(out), registries).train()
    return out


@pytest.fixture(scope="module")
def edm_run(registries, tmp_path_factory):
    """A tiny EDM teacher (width 32, depth 1, like conftest.TINY), trained for a few steps."""
    return trained_tiny_run(registries, tmp_path_factory.mktemp("teacher") / "edm", "edm", 5)


def cd_config(tiny_config, teacher, steps=20, extra=()):
    return tiny_config("cd", steps=steps, extra=[f"methods.cd.teacher.run='{teacher}'", *extra])


# ----------------------------------------------------------------------------- the teacher


def test_edm_heun_teacher_is_registered_with_two_evaluations(registries):
    assert "edm-heun" in registries.teachers
    assert registries.teachers.get("edm-heun").evaluations_per_sample == 2


def test_teacher_target_is_one_heun_step_of_its_ema_denoiser(tiny_config, registries, edm_run):
    method = build_for_training(cd_config(tiny_config, edm_run), registries).method
    teacher = method.teacher
    ema = load_trained(edm_run, registries, torch.device("cpu")).model
    for name, value in ema.state_dict().items():
        assert torch.equal(teacher.denoiser.state_dict()[name], value), name
    x_hi, sigma_hi, sigma_lo = torch.randn(5, 2), torch.full((5,), 3.0), torch.full((5,), 2.5)
    expected = heun_step(ema, x_hi, sigma_hi, sigma_lo)
    torch.testing.assert_close(teacher.target_point(None, None, x_hi, sigma_hi, sigma_lo), expected)


def test_teacher_step_follows_the_exact_ode_of_gaussian_data(tiny_config, registries, edm_run):
    # With the ideal denoiser of N(m, s^2 I) the ODE is solved exactly by
    # x(sigma) = m + (x - m) sqrt((s^2 + sigma^2) / (s^2 + sigma_hi^2)): one Heun step per pair of
    # CD's 18 levels lands close to it, closer than an Euler step.
    m, s = torch.tensor([0.3, -0.2], dtype=torch.float64), 0.5
    teacher = build_for_training(cd_config(tiny_config, edm_run), registries).method.teacher
    teacher.denoiser = lambda x, sigma: (s**2 * x + sigma[:, None] ** 2 * m) / (s**2 + sigma[:, None] ** 2)
    sigmas = karras_sigmas(18)
    x_hi = m + torch.randn(17, 2, dtype=torch.float64) * (s**2 + sigmas[1:, None] ** 2).sqrt()
    exact = m + (x_hi - m) * ((s**2 + sigmas[:-1, None] ** 2) / (s**2 + sigmas[1:, None] ** 2)).sqrt()
    heun = teacher.target_point(None, None, x_hi, sigmas[1:], sigmas[:-1])
    euler = euler_step(teacher.denoiser, x_hi, sigmas[1:], sigmas[:-1])
    # The ODE is linear, so the relative error of a step depends on the pair of levels only.
    heun_error = ((heun - exact).norm(dim=1) / (exact - m).norm(dim=1)).max().item()
    euler_error = ((euler - exact).norm(dim=1) / (exact - m).norm(dim=1)).max().item()
    assert heun_error < 0.025 and heun_error < euler_error / 2  # 0.020 and 0.054


def test_teacher_weights_stay_out_of_the_state_dict_and_are_frozen(tiny_config, registries, edm_run):
    method = build_for_training(cd_config(tiny_config, edm_run), registries).method
    assert all(key.startswith("model.") for key in method.state_dict())
    assert not any(p.requires_grad for p in method.teacher.denoiser.parameters())
    assert {p.device for p in method.teacher.denoiser.parameters()} == {torch.device("cpu")}
    assert method.training_evaluations() == {"student": 2, "teacher": 2}


# ----------------------------------------------------------------------------- the recipe


def test_student_starts_from_the_teachers_ema_weights(tiny_config, registries, edm_run):
    method = build_for_training(cd_config(tiny_config, edm_run), registries).method
    teacher_net = load_trained(edm_run, registries, torch.device("cpu")).model.net.state_dict()
    student_net = method.model.net.state_dict()
    assert student_net.keys() == teacher_net.keys()
    for key in teacher_net:
        assert torch.equal(student_net[key], teacher_net[key]), key
    assert student_net["input.weight"].data_ptr() != teacher_net["input.weight"].data_ptr()  # a copy


def test_cd_uses_a_constant_curriculum_and_uniform_indices(tiny_config, registries, edm_run):
    method = build_for_training(cd_config(tiny_config, edm_run, extra=["methods.cd.curriculum.num_levels=40"]), registries).method
    assert [method.curriculum.num_levels(k) for k in (0, 1, 19, 20, 10**6)] == [40] * 5
    p = method.noise_schedule.index_probabilities(karras_sigmas(40))
    torch.testing.assert_close(p, torch.full((39,), 1 / 39, dtype=torch.float64))
    _, logs = method.loss(torch.randn(16, 2), step=7)
    assert logs["num_levels"] == 40


def test_cd_defaults_follow_the_paper(registries):
    # an empty methods.cd table: every part at its default, with the default's options filled in
    options = Parser(registries).options(registries.methods.get("cd"), {}, "methods.cd")
    assert options.curriculum == Component("constant", ConstantCurriculum.Config(num_levels=18))
    assert (options.loss.name, options.target_ema, options.weighting) == ("lpips", 0.0, "uniform")


def test_cd_loss_equals_hand_assembled_loss(tiny_config, registries, edm_run):
    method = build_for_training(cd_config(tiny_config, edm_run), registries).method
    x = torch.randn(32, 2)
    torch.manual_seed(5)
    loss, _ = method.loss(x, step=3)

    torch.manual_seed(5)
    sigmas = karras_sigmas(18)
    index = draw_indices(torch.full((17,), 1 / 17, dtype=torch.float64), 32)
    sigma_hi, sigma_lo = sigmas[index + 1].float(), sigmas[index].float()
    z = torch.randn_like(x)
    x_hi = x + sigma_hi[:, None] * z
    with torch.no_grad():
        prediction = method.model(x_hi, sigma_hi)
        x_hat = heun_step(method.teacher.denoiser, x_hi, sigma_hi, sigma_lo)
        target = method.model(x_hat, sigma_lo)  # mu = 0: the student itself under stop-gradient
    torch.testing.assert_close(loss.detach(), ((prediction - target) ** 2).sum(dim=1).mean())


def test_target_network_follows_the_student_at_rate_mu(tiny_config, registries, edm_run):
    assert build_for_training(cd_config(tiny_config, edm_run), registries).method.target is None  # mu = 0

    method = build_for_training(cd_config(tiny_config, edm_run, extra=["methods.cd.target_ema=0.95"]), registries).method
    before = [p.clone() for p in method.target.parameters()]
    with torch.no_grad():
        for p in method.model.parameters():
            p.add_(1.0)
    method.after_step(1)
    for old, new, online in zip(before, method.target.parameters(), method.model.parameters()):
        torch.testing.assert_close(new, 0.95 * old + 0.05 * online)


def test_a_different_dropout_rate_is_allowed(tiny_config, registries, edm_run):
    # CIFAR-10: the teacher trained with dropout 0.13, CD distils it with dropout 0: the weights
    # carry over (dropout has none) and the student keeps its own rate.
    method = build_for_training(cd_config(tiny_config, edm_run, extra=["network.dropout=0.1"]), registries).method
    teacher_net = load_trained(edm_run, registries, torch.device("cpu")).model.net.state_dict()
    assert_same_tensors(method.model.net.state_dict(), teacher_net)
    rates = {m.p for m in method.model.net.modules() if isinstance(m, torch.nn.Dropout)}
    assert rates == {0.1}


def test_resumed_cd_run_with_target_ema_equals_uninterrupted_run(tiny_config, registries, edm_run, tmp_path):
    config = cd_config(tiny_config, edm_run, steps=12, extra=["methods.cd.target_ema=0.9", "train.checkpoint_every=100"])
    straight, resumed = straight_and_resumed(config, registries, tmp_path, stop_at=7)
    a, b = straight.method.state_dict(), resumed.method.state_dict()
    assert any(key.startswith("target.") for key in a)
    assert_same_tensors(a, b)


# ----------------------------------------------------------------------------- bad input


def test_missing_teacher_is_a_clear_error(tiny_config, registries):
    with pytest.raises(GenkitError, match="needs a teacher: pass --teacher RUN"):
        build_for_training(tiny_config("cd"), registries)


def test_teacher_folder_that_does_not_exist(tiny_config, registries, tmp_path):
    with pytest.raises(GenkitError, match="teacher run folder not found: .*nowhere"):
        build_for_training(cd_config(tiny_config, tmp_path / "nowhere"), registries)


def test_teacher_that_is_not_an_edm_run(tiny_config, registries, tmp_path):
    ict_run = train_tiny(tiny_config, registries, tmp_path / "ict", method="ict")
    with pytest.raises(GenkitError, match="trained with method 'ict'; the teacher must be an 'edm' run"):
        build_for_training(cd_config(tiny_config, ict_run), registries)


def test_teacher_folder_without_a_checkpoint(tiny_config, registries, tmp_path):
    RunFolder(tmp_path / "empty").write_config(tiny_config("edm"))
    with pytest.raises(GenkitError, match="has no checkpoint yet"):
        build_for_training(cd_config(tiny_config, tmp_path / "empty"), registries)


def test_mismatched_network_size(tiny_config, registries, edm_run):
    with pytest.raises(GenkitError, match=r"does not match the teacher's \(network.width is 32 in the teacher, 16 here\).*network.width=32"):
        build_for_training(cd_config(tiny_config, edm_run, extra=["network.width=16"]), registries)


def test_mismatched_network_hyperparameter(tiny_config, registries, edm_run):
    with pytest.raises(GenkitError, match="network.noise_multiplier is 1.0 in the teacher, 2.0 here"):
        build_for_training(cd_config(tiny_config, edm_run, extra=["network.noise_multiplier=2.0"]), registries)


def test_mismatched_setting_that_lives_in_a_buffer(tiny_config, registries, edm_run):
    # the Fourier scale only shapes a random buffer: the config comparison must catch it
    with pytest.raises(GenkitError, match="network.fourier_scale is 0.02 in the teacher, 16.0 here"):
        build_for_training(cd_config(tiny_config, edm_run, extra=["network.fourier_scale=16.0"]), registries)


def test_finished_cd_run_samples_without_its_teacher_folder(tiny_config, registries, edm_run, tmp_path):
    import shutil

    teacher_copy = tmp_path / "teacher"
    shutil.copytree(edm_run, teacher_copy)
    config = cd_config(tiny_config, teacher_copy, steps=3)
    Trainer(config, RunFolder(tmp_path / "cd"), registries).train()
    shutil.rmtree(teacher_copy)
    trained = load_trained(tmp_path / "cd", registries)
    assert trained.built.method.training_evaluations() == {"student": 2, "teacher": 2}
    samples = draw_samples(trained.built.method, trained.model, 8, steps=1)
    assert samples.shape == (8, 2) and torch.isfinite(samples).all()


class OtherNet(nn.Module):
    def forward(self, x, c_noise):
        return x


def test_different_network_kind(tiny_config, registries, edm_run):
    config = cd_config(tiny_config, edm_run)
    ctx = build(config, registries).ctx
    method = registries.methods.get("cd")(config.method_options, ctx, OtherNet())
    with pytest.raises(GenkitError, match="the teacher's network is 'mlp', this run's is 'OtherNet'"):
        method.prepare_training()  # the student starts from the teacher's weights here


def test_unknown_metric_name(tiny_config, registries, edm_run):
    with pytest.raises(GenkitError, match="'no-such-metric'.*known: .*l2"):
        build(cd_config(tiny_config, edm_run, extra=["methods.cd.loss='no-such-metric'"]), registries)


def test_target_ema_out_of_range(tiny_config, registries, edm_run):
    with pytest.raises(GenkitError, match=r"methods.cd.target_ema must be in \[0, 1\), got 1.0"):
        build(cd_config(tiny_config, edm_run, extra=["methods.cd.target_ema=1.0"]), registries)


# ----------------------------------------------------------------------------- command line


def tiny_flags():
    return [part for item in TINY for part in ("--set", item)]


def test_teacher_flag_is_only_for_cd(edm_run, tmp_path):
    result = runner.invoke(build_app(), ["train", "--method", "ict", "--teacher", str(edm_run), "--out", str(tmp_path / "x")])
    assert result.exit_code == 1 and "--teacher: method 'ict' takes no teacher run" in result.output
    result = runner.invoke(build_app(), ["train", "--method", "cd", "--teacher", str(tmp_path / "nope"), "--out", str(tmp_path / "y")])
    assert result.exit_code == 1 and "teacher run folder not found" in result.output
    assert "Traceback" not in result.output


@pytest.mark.slow
def test_cd_trains_from_the_command_line_and_samples_at_one_and_two_steps(edm_run, tmp_path, monkeypatch):
    monkeypatch.chdir(edm_run.parent)  # a relative --teacher is stored as an absolute path
    out = tmp_path / "cd"
    args = ["train", "--method", "cd", "--teacher", edm_run.name, "--steps", "10", "--out", str(out), *tiny_flags()]
    result = runner.invoke(build_app(), args)
    assert result.exit_code == 0, result.output
    saved = tomllib.loads((out / "config.toml").read_text())
    assert saved["methods"]["cd"]["teacher"] == {"name": "edm-heun", "run": str(edm_run.resolve())}
    monkeypatch.chdir(tmp_path)
    for steps in ("1", "2"):
        result = runner.invoke(build_app(), ["sample", str(out), "--steps", steps])
        assert result.exit_code == 0, result.output
        assert "swd" in result.output
    assert math.isfinite(float(next(r for r in RunFolder(out).metrics() if r.get("step") == 10)["loss"]))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cd_on_cuda_loads_the_teacher_onto_the_device(tiny_config, registries, edm_run):
    method = build_for_training(cd_config(tiny_config, edm_run, extra=["train.device='cuda'"]), registries).method
    assert {p.device.type for p in method.teacher.denoiser.parameters()} == {"cuda"}
    assert {p.device.type for p in method.model.parameters()} == {"cuda"}
    loss, _ = method.loss(torch.randn(16, 2, device="cuda"), step=1)
    loss.backward()
    assert torch.isfinite(loss)
