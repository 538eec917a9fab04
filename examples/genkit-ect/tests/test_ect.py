"""genkit-ect: the formulas of Easy Consistency Tuning (Geng et al. 2024) pinned by hand-computed
values, the student's start from an EDM run, and a tiny training run end to end. Uses genkit's
public interfaces only, like the plugin itself, and runs installed or not (genkit.plugins.use)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

import genkit
from genkit import config as configuration
from genkit import plugins
from genkit.build import build
from genkit.trained import load_trained
from genkit.errors import GenkitError

import genkit_ect
from genkit_ect.method import EasyConsistencyTuning, ect_distance, gap_factor, mapping_factor, r_of_t, stage_at

torch.set_num_threads(1)  # a tiny MLP: threads cost more than they give

TINY = {
    "network__width": 32,
    "network__depth": 1,
    "train__batch_size": 64,
    "train__log_every": 5,
    "train__checkpoint_every": 10,
    "sample__num": 200,
}
TINY_SET = ["network.width=32", "network.depth=1", "train.batch_size=64", "train.log_every=5", "train.checkpoint_every=10"]


def sigmoid(v: float) -> float:
    return 1 / (1 + math.exp(-v))


@pytest.fixture(scope="module")
def registries():
    """genkit's registries with genkit-ect in them: its entry point when installed, else added here."""
    with plugins.use(genkit_ect) as registries:
        yield registries


@pytest.fixture(scope="module")
def edm_run(registries, tmp_path_factory):
    """A tiny EDM run (width 32, depth 1), trained for a few steps."""
    out = tmp_path_factory.mktemp("teacher") / "edm"
    genkit.train("toy2d", out=out, method="edm", steps=5, **TINY)
    return out


def ect_config(registries, teacher=None, steps=40, extra=()):
    assignments = TINY_SET + ([f"methods.ect.teacher.run='{teacher}'"] if teacher else []) + list(extra)
    return configuration.load_config(registries, "toy2d", assignments=assignments, flags={"method": "ect", "train.steps": steps})


def ect_method(registries, teacher=None, steps=40, extra=(), prepare=True) -> EasyConsistencyTuning:
    method = build(ect_config(registries, teacher, steps, extra), registries, torch.device("cpu")).method
    if prepare:
        method.prepare_training()
    return method


# ----------------------------------------------------------------------------- the plugin


def test_the_plugin_registers_ect(registries):
    assert registries.methods.get("ect") is EasyConsistencyTuning


def test_installed_it_is_a_third_party_plugin_of_its_own_distribution(registries):
    info = plugins.load().info.get("ect")  # the entry point's name; plugins.use names it genkit_ect
    if info is None or not info.distribution:
        pytest.skip("genkit-ect is not installed (pip install ./examples/genkit-ect)")
    assert not info.builtin and info.distribution == "genkit-ect" and info.module == "genkit_ect"
    assert info.registered == {"methods": ["ect"]} and not info.error


def test_teacher_flag_sets_the_edm_run_option():
    assert EasyConsistencyTuning.teacher_run_key == "teacher.run"


# ----------------------------------------------------------------------------- r(t) and the stages


def test_mapping_factor_is_one_plus_k_sigmoid_of_minus_bt():
    t = torch.tensor([0.0, 1.0, 10.0], dtype=torch.float64)
    expected = torch.tensor([1 + 8 * 0.5, 1 + 8 * sigmoid(-1.0), 1 + 8 * sigmoid(-10.0)], dtype=torch.float64)
    torch.testing.assert_close(mapping_factor(t), expected)
    torch.testing.assert_close(mapping_factor(t, k=2.0, b=0.5), 1 + 2 * torch.sigmoid(-0.5 * t))
    torch.testing.assert_close(mapping_factor(t, "const"), torch.ones_like(t))


def test_r_of_t_hand_computed():
    t = torch.tensor([1.0, 10.0], dtype=torch.float64)
    # stage 0, q = 2: r = t (1 - n(t) / 2); at t = 1, n = 3.15 > 2 so r is clipped to 0
    n10 = 1 + 8 * sigmoid(-10.0)
    torch.testing.assert_close(r_of_t(t, 0), torch.tensor([0.0, 10 * (1 - n10 / 2)], dtype=torch.float64))
    # stage 3: r = t (1 - n(t) / 16)
    n1 = 1 + 8 * sigmoid(-1.0)
    torch.testing.assert_close(r_of_t(t, 3), torch.tensor([1 - n1 / 16, 10 * (1 - n10 / 16)], dtype=torch.float64))
    # const mapping, q = 4, stage 1: r = t (1 - 1/16)
    torch.testing.assert_close(r_of_t(t, 1, q=4.0, mapping="const"), t * 15 / 16)


def test_r_is_below_t_and_the_gap_shrinks_stage_by_stage():
    t = torch.exp(torch.linspace(-6, 4, 101, dtype=torch.float64))
    gaps = [t - r_of_t(t, s) for s in range(8)]
    for gap in gaps:
        assert torch.all(gap > 0) and torch.all(gap <= t)
    for earlier, later in zip(gaps, gaps[1:]):
        assert torch.all(later <= earlier)
    # once the clip at 0 no longer bites, each stage halves the gap exactly (q = 2)
    torch.testing.assert_close(gaps[7], gaps[6] / 2)


def test_stage_schedule_doubles_q_every_d_iterations():
    assert [stage_at(k, 100) for k in (0, 99, 100, 199, 200, 799)] == [0, 0, 1, 1, 2, 7]
    assert [gap_factor(s, 2.0) for s in range(4)] == [0.5, 0.25, 0.125, 0.0625]
    assert gap_factor(7, 2.0) == 1 / 256  # the paper's last stage of 8: its 1-hour script's constant q = 256


def test_stage_length_is_train_steps_over_stages_unless_given(registries):
    assert ect_method(registries, steps=4000, prepare=False).stage_length() == 500  # 8 stages
    assert ect_method(registries, steps=1001, prepare=False).stage_length() == 126  # rounded up: 8 stages at most
    assert ect_method(registries, steps=4000, extra=["methods.ect.stages=4"], prepare=False).stage_length() == 1000
    one_stage = ect_method(registries, steps=4000, extra=["methods.ect.stages=1", "methods.ect.q=256"], prepare=False)
    assert one_stage.stage(3999) == 0  # the authors' 1-hour recipe: q = 256 from the first step to the last
    method = ect_method(registries, steps=4000, extra=["methods.ect.double_every=300"], prepare=False)
    assert method.stage_length() == 300 and method.stage(899) == 2 and method.stage(900) == 3


@pytest.mark.parametrize(
    "assignment, fragment",
    [("methods.ect.q=1.0", "methods.ect.q must be greater than 1"), ("methods.ect.p_std=0", "methods.ect.p_std must be positive"),
     ("methods.ect.c=-0.1", "methods.ect.c must not be negative"), ("methods.ect.mapping='cosine'", "methods.ect.mapping")],
)
def test_bad_options_are_one_line_errors_naming_the_key(registries, assignment, fragment):
    with pytest.raises(GenkitError, match=fragment.replace(".", r"\.")) as error:
        ect_config(registries, extra=[assignment])
    assert "\n" not in str(error.value)


# ----------------------------------------------------------------------------- the loss


def test_distance_is_pseudo_huber_over_the_whole_vector():
    a, b = torch.tensor([[3.0, 4.0], [1.0, 1.0]]), torch.tensor([[0.0, 0.0], [1.0, 1.0]])
    torch.testing.assert_close(ect_distance(a, b), torch.tensor([5.0, 0.0]), atol=1e-8, rtol=0)  # c = 0: the L2 norm
    torch.testing.assert_close(ect_distance(a, b, 0.1), torch.tensor([math.sqrt(25.01) - 0.1, 0.0]))
    a.requires_grad_(True)
    ect_distance(a, b).sum().backward()  # a = b in the second row: the gradient stays finite
    assert torch.isfinite(a.grad).all()


def test_loss_equals_hand_assembled_loss(registries):
    method = ect_method(registries, steps=800, extra=["methods.ect.init_from_teacher=false", "methods.ect.c=0.03"])
    x = torch.randn(256, 2)
    draws = method.draw(256, 250, torch.Generator().manual_seed(3), torch.device("cpu"))
    draws["t"][:3] = torch.tensor([1e-4, 100.0, 1.0])  # one below sigma_min, one above sigma_max
    loss, logs = method.loss(x, 250, None, dict(draws))
    assert logs["stage"] == 2  # 800 steps, 8 stages of 100

    t = draws["t"].clamp(0.002, 80.0)
    n = 1 + 8 * torch.sigmoid(-t)
    r = (t * (1 - n / 8)).clamp(min=0.002)  # stage 2: q^-(2+1) = 1/8; r lifted to sigma_min
    z = draws["z"]
    with torch.no_grad():
        student = method.model(x + t[:, None] * z, t)
        target = method.model(x + r[:, None] * z, r)
    distance = ((student - target).pow(2).sum(dim=1) + 0.03**2).sqrt() - 0.03
    weight = torch.where(t > r, 1 / (t - r).clamp(min=1e-12), torch.zeros_like(t))
    torch.testing.assert_close(loss, (weight * distance).mean())
    assert weight[0] == 0  # t clipped to sigma_min: r = t, both sides the identity, no loss
    torch.testing.assert_close(target[0], (x + 0.002 * z)[0])  # the boundary: f(x, sigma_min) = x
    assert logs["boundary_share"].item() == pytest.approx((r <= 0.002).float().mean().item())


def test_uniform_weighting_drops_the_inverse_gap(registries):
    extra = ["methods.ect.init_from_teacher=false"]
    method = ect_method(registries, extra=extra)
    uniform = ect_method(registries, extra=extra + ["methods.ect.weighting='uniform'"])
    uniform.model.load_state_dict(method.model.state_dict())
    x = torch.randn(64, 2)
    draws = method.draw(64, 0, torch.Generator().manual_seed(0), torch.device("cpu"))
    draws["t"] = draws["t"].clamp(0.01, 80)
    _, logs = method.loss(x, 0, None, dict(draws))
    loss, _ = uniform.loss(x, 0, None, dict(draws))
    torch.testing.assert_close(loss, logs["distance"])


def test_both_passes_share_noise_and_dropout_masks(registries):
    class Recorder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.dropout = torch.nn.Dropout(0.5)
            self.masks = []

        def forward(self, x, c_noise):
            mask = self.dropout(torch.ones_like(x))
            self.masks.append(mask)
            return x * mask

    method = ect_method(registries, extra=["methods.ect.init_from_teacher=false"])
    method.model.net = Recorder()
    method.model.train()
    loss, _ = method.loss(torch.randn(32, 2), 0)
    student_mask, target_mask = method.model.net.masks
    assert torch.equal(student_mask, target_mask)
    assert (student_mask == 0).any() and (student_mask != 0).any()  # dropout really was active
    assert torch.isfinite(loss)


# ----------------------------------------------------------------------------- the EDM start


def test_student_starts_from_the_edm_runs_weights(registries, edm_run):
    method = ect_method(registries, teacher=edm_run)
    edm = load_trained(edm_run, registries, torch.device("cpu")).model  # EMA weights
    for name, value in edm.net.state_dict().items():
        assert torch.equal(method.model.net.state_dict()[name], value), name
    assert method.teacher is None  # weights copied; no teacher network is kept or called
    assert method.training_evaluations() == {"student": 2, "teacher": 0}


def test_without_teacher_run_the_error_names_ect_and_the_flag(registries):
    with pytest.raises(GenkitError, match=r"ECT starts from a pretrained EDM model: pass --teacher RUN"):
        ect_method(registries)
    ect_method(registries, extra=["methods.ect.init_from_teacher=false"])  # from scratch: no run needed


def test_a_teacher_with_another_network_is_refused(registries, edm_run):
    with pytest.raises(GenkitError, match=r"network.width is 32 in the teacher, 16 here"):
        ect_method(registries, teacher=edm_run, extra=["network.width=16"])


# ----------------------------------------------------------------------------- end to end


def test_tiny_training_run_from_an_edm_run_samples_in_one_step(registries, edm_run, tmp_path):
    model = genkit.train("toy2d", out=tmp_path / "ect", teacher=edm_run, method="ect", steps=12, **TINY)
    samples = model.sample(64, steps=1, seed=0)
    assert samples.shape == (64, 2) and torch.isfinite(samples).all()
    assert model.sample(64, steps=2, seed=0).shape == (64, 2)  # multistep: iCT's sampler at 0.821
    saved = (tmp_path / "ect" / "config.toml").read_text()
    assert 'method = "ect"' in saved and str(edm_run) in saved


def test_a_resumed_run_ends_where_a_straight_one_does(registries, edm_run, tmp_path):
    options = dict(TINY, teacher=edm_run, method="ect", methods__ect__double_every=3)  # stages independent of K
    straight = genkit.train("toy2d", out=tmp_path / "straight", steps=12, **options)
    genkit.train("toy2d", out=tmp_path / "resumed", steps=6, **options)
    resumed = genkit.train(out=tmp_path / "resumed", resume=True, steps=12)
    for name, value in straight.trained.model.state_dict().items():
        assert torch.equal(resumed.trained.model.state_dict()[name], value), name


# ----------------------------------------------------------------------------- its bench preset

BENCH_PRESET = Path(__file__).resolve().parent.parent / "bench-ict-vs-ect.toml"


def test_its_bench_preset_benches_ict_against_ect_from_the_benchs_edm_run(registries, tmp_path):
    from typer.testing import CliRunner

    from genkit.cli.main import build_app

    tiny = ["steps=6", "batch_size=32", "eval_samples=200", "curve_every=0", "overrides.network.width=16", "overrides.network.depth=1"]
    args = ["bench", "run", "--preset", str(BENCH_PRESET), "--out", str(tmp_path / "bench")]
    for assignment in tiny:
        args += ["--set", assignment]
    result = CliRunner().invoke(build_app(), args, env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    results = json.loads((tmp_path / "bench" / "results.json").read_text())
    assert [r["name"] for r in results["runs"]] == ["edm", "ict", "ect"]
    ect = results["runs"][2]
    assert ect["step"] == 6 and ect["nfe_teacher_training"] > 0 and ect["config"]["methods"]["ect"]["q"] == 256
    assert "ECT" in results["verdict"]["sentence"] and "iCT" in results["verdict"]["sentence"]
