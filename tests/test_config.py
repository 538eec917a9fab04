"""Config layers, validation errors and the TOML round trip."""

import pytest

from genkit import config as configuration
from genkit.errors import GenkitError
from genkit.schema import to_plain


def test_precedence_preset_file_set_flag(registries, tmp_path):
    file = tmp_path / "mine.toml"
    file.write_text("[train]\nsteps = 111\nlr = 0.5\nbatch_size = 7\n")
    config = configuration.load_config(
        registries,
        preset="toy2d",
        config_file=file,
        assignments=["train.lr=0.25", "train.batch_size=9"],
        flags={"train.batch_size": 13},
    )
    assert config.train.steps == 111  # file over preset
    assert config.train.lr == 0.25  # --set over file
    assert config.train.batch_size == 13  # flag over --set
    assert config.train.ema_rate == 0.999  # from the preset
    assert config.train.grad_clip == 0.0  # built-in default


def test_unknown_key_names_key_and_file(registries, tmp_path):
    file = tmp_path / "typo.toml"
    file.write_text("[train]\nstepz = 3\n")
    with pytest.raises(GenkitError, match=r"unknown key 'train.stepz' \(.*typo.toml\)"):
        configuration.load_config(registries, "toy2d", config_file=file)


def test_unknown_component_option_is_rejected(registries):
    with pytest.raises(GenkitError, match=r"unknown key 'network.widht' \(--set network.widht=3\)"):
        configuration.load_config(registries, "toy2d", assignments=["network.widht=3"])


def test_wrong_type_names_key_and_source(registries):
    with pytest.raises(GenkitError, match=r"train.batch_size must be an integer, got 'x' \(--set"):
        configuration.load_config(registries, "toy2d", assignments=["train.batch_size=x"])
    with pytest.raises(GenkitError, match="must be a number"):
        configuration.load_config(registries, "toy2d", assignments=["train.lr=true"])


def test_choices_are_checked(registries):
    with pytest.raises(GenkitError, match="methods.ict.weighting must be one of"):
        configuration.load_config(registries, "toy2d", assignments=["methods.ict.weighting='square'"])


def test_integers_widen_to_floats_and_lists_are_typed(registries):
    config = configuration.load_config(registries, "toy2d", assignments=["train.lr=1", "sample.multistep_sigmas=[2, 0.5]"])
    assert config.train.lr == 1.0 and isinstance(config.train.lr, float)
    assert config.sample.multistep_sigmas == [2.0, 0.5]


def test_unknown_preset_and_missing_file(registries):
    with pytest.raises(GenkitError, match="unknown preset 'toy3d'.*toy2d"):
        configuration.load_config(registries, "toy3d")
    with pytest.raises(GenkitError, match="config file not found"):
        configuration.load_config(registries, "toy2d", config_file="/nonexistent.toml")


def test_invalid_toml_is_one_clear_error(registries, tmp_path):
    file = tmp_path / "bad.toml"
    file.write_text("[train\n")
    with pytest.raises(GenkitError, match="invalid TOML"):
        configuration.load_config(registries, "toy2d", config_file=file)


def test_ranges_are_checked(registries):
    with pytest.raises(GenkitError, match="train.steps must be positive"):
        configuration.load_config(registries, "toy2d", flags={"train.steps": 0})
    with pytest.raises(GenkitError, match="ema_rate"):
        configuration.load_config(registries, "toy2d", assignments=["train.ema_rate=1.0"])


def test_resolved_config_round_trips_through_toml(registries, tmp_path):
    config = configuration.load_config(registries, "toy2d", assignments=["methods.ict.curriculum.s0=4", "data.name='moons'"])
    path = tmp_path / "config.toml"
    path.write_text(configuration.to_toml(to_plain(config)))
    again = configuration.load_config(registries, preset=None, config_file=path)
    assert again == config
    assert again.methods["ict"].curriculum.options.s0 == 4 and again.data.name == "moons"


@pytest.mark.parametrize(
    "text, expected",
    [
        ("a.b=3", {"a": {"b": 3}}),
        ("a=hello", {"a": "hello"}),
        ("a='x y'", {"a": "x y"}),
        ("a=[1, 2]", {"a": [1, 2]}),
        ("a.b.c=1e-4", {"a": {"b": {"c": 1e-4}}}),
    ],
)
def test_parse_assignment(text, expected):
    assert configuration.parse_assignment(text) == expected


def test_parse_assignment_needs_an_equals_sign():
    with pytest.raises(GenkitError, match="key=value"):
        configuration.parse_assignment("train.steps")


@pytest.mark.parametrize(
    "assignment, message",
    [
        ("train.device='gpu0'", r"train.device must be auto, cpu, mps, cuda or cuda:N, got 'gpu0' \(--set train.device='gpu0'\)"),
        ("train.optimizer.betas=[0.9]", r"train.optimizer.betas must be a list of 2 values, got \[0.9\]"),
        ("train.optimizer.betas=[0.9, 1.5]", r"train.optimizer.betas must be two numbers in \[0, 1\)"),
        ("sample.multistep_sigmas=[0.001]", "must lie between noise.sigma_min and noise.sigma_max"),
        ("sample.multistep_sigmas=[0.5, 2.0]", "must descend"),
        ("sample.heun_levels=1", "heun_levels must be at least 2"),
        ("train.grad_clip=-1", "grad_clip must not be negative"),
    ],
)
def test_settings_that_would_fail_later_are_refused_up_front(registries, assignment, message):
    with pytest.raises(GenkitError, match=message):
        configuration.load_config(registries, "toy2d", assignments=[assignment])


def test_an_error_in_a_list_item_names_the_layer_that_set_the_list(registries):
    with pytest.raises(GenkitError, match=r"eval.metrics\[1\]: unknown evaluator 'nope'.*\(--set eval.metrics="):
        configuration.load_config(registries, "toy2d", assignments=["eval.metrics=['swd', 'nope']"])


def test_what_is_read_is_bounded_in_size_and_depth(registries, tmp_path):
    deep = tmp_path / "deep.toml"
    deep.write_text("x = " + "{a = " * 3000 + "1" + "}" * 3000 + "\n")
    with pytest.raises(GenkitError, match="deep.toml: nested deeper than 16 levels"):
        configuration.load_config(registries, "toy2d", config_file=deep)
    with pytest.raises(GenkitError, match=r"--set a=...: nested deeper than 16 levels"):
        configuration.load_config(registries, "toy2d", assignments=["a=" + "[" * 3000 + "]" * 3000])
    with pytest.raises(GenkitError, match="/dev/zero is not a regular file"):
        configuration.load_config(registries, "toy2d", config_file="/dev/zero")
    big = tmp_path / "big.toml"
    big.write_text("# padding\n" * 200_000)
    with pytest.raises(GenkitError, match="big.toml is larger than 1 MiB"):
        configuration.load_config(registries, "toy2d", config_file=big)
