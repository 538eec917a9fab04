"""Every part chosen by config: plugin parts used through --set alone, the option schema, runs
repeated from their config.toml, resumed runs extended, and what `genkit plugins` shows."""

import dataclasses
import importlib.metadata
import json
import sys
import types
from dataclasses import dataclass
from typing import Literal, Optional

import pytest
import torch
from typer.testing import CliRunner

from genkit import config as configuration
from genkit import hookimpl, plugins
from genkit.build import build
from genkit.trained import load_trained
from genkit.errors import GenkitError
from genkit.schema import Component, Parser, option, positive, to_plain, to_toml
from genkit.training.loop import Trainer
from genkit.training.run import RunFolder

from conftest import TINY, assert_same_tensors

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


# ----------------------------------------------------------------------------- a plugin of parts


class LinearCurriculum:
    """N(k) grows linearly from `start` to `end` levels."""

    @dataclass
    class Config:
        start: int = option(3, "levels at k = 0", positive)
        end: int = option(9, "levels at k = K", positive)

    def __init__(self, options, ctx):
        self.options, self.total = options, ctx.total_steps

    def num_levels(self, step: int) -> int:
        o = self.options
        return o.start + (o.end - o.start) * step // self.total


class ScaledL2:
    """scale * ||a - b||^2."""

    @dataclass
    class Config:
        scale: float = option(1.0, "factor on the squared distance", positive)

    def __init__(self, options, ctx):
        self.scale = options.scale

    def __call__(self, a, b):
        return self.scale * (a - b).flatten(1).pow(2).sum(dim=1)


class TinyNet(torch.nn.Module):
    """A network no preset knows: its options are not the MLP's."""

    @dataclass
    class Config:
        hidden: int = option(16, "hidden units", positive)
        activation: Literal["tanh", "relu"] = option("tanh", "nonlinearity")
        widths: Optional[tuple[int, ...]] = option(None, "extra hidden layers (None: none)")

    def __init__(self, options, ctx):
        super().__init__()
        (dim,) = ctx.data_shape
        sizes = [dim + 1, options.hidden, *(options.widths or ())]
        act = torch.nn.Tanh if options.activation == "tanh" else torch.nn.ReLU
        layers = [m for a, b in zip(sizes, sizes[1:]) for m in (torch.nn.Linear(a, b), act())]
        self.body = torch.nn.Sequential(*layers, torch.nn.Linear(sizes[-1], dim))

    def forward(self, x, c_noise):
        return self.body(torch.cat([x, c_noise[:, None]], dim=1))


def make_plugin(name: str):
    module = types.ModuleType(name)
    module.register_curricula = hookimpl(lambda register: register("linear", LinearCurriculum))
    module.register_losses = hookimpl(lambda register: register("scaled-l2", ScaledL2))
    module.register_networks = hookimpl(lambda register: register("tiny-net", TinyNet))
    return module


class FakeEntryPoint:
    def __init__(self, name, target):
        self.name, self.value, self._target = name, f"{name}_module", target
        self.dist = types.SimpleNamespace(metadata={"Name": "genkit-parts-example"}, version="0.3")

    def load(self):
        return self._target


@pytest.fixture
def with_plugin(monkeypatch):
    """The built-in plugins plus a third-party one that registers a curriculum, a loss and a network."""
    builtin = [ep for ep in importlib.metadata.entry_points(group="genkit") if plugins._is_builtin(ep)]

    def install(present: bool = True):
        extra = [FakeEntryPoint("parts", make_plugin("parts"))] if present else []
        monkeypatch.setattr(plugins, "entry_points", lambda: builtin + extra)
        plugins.reset()
        return plugins.registries()

    yield install
    plugins.reset()


def tiny(registries, method="ict", steps=20, extra=(), config_file=None):
    return configuration.load_config(
        registries, "toy2d", config_file, TINY + list(extra), flags={"method": method, "train.steps": steps}
    )


def weights(trainer):
    return {**trainer.method.state_dict(), **{f"ema.{k}": v for k, v in trainer.ema.state_dict().items()}}


# ----------------------------------------------------------------------------- parts by --set alone


def test_a_plugin_curriculum_and_loss_with_options_are_used_by_set_alone(with_plugin, tmp_path):
    registries = with_plugin()
    config = tiny(registries, "ict", steps=20, extra=[
        "methods.ict.curriculum.name=linear",  # replaces the preset's doubling table, keys and all
        "methods.ict.curriculum.end=13",
        'methods.ict.loss={name = "scaled-l2", scale = 2.5}',
    ])
    assert config.methods["ict"].curriculum == Component("linear", LinearCurriculum.Config(start=3, end=13))
    trainer = Trainer(config, RunFolder(tmp_path / "run"), registries)
    trainer.train()
    assert isinstance(trainer.method.metric, ScaledL2) and trainer.method.metric.scale == 2.5
    levels = [r["num_levels"] for r in RunFolder(tmp_path / "run").metrics()]
    assert levels == [3 + 10 * (k - 1) // 20 for k in (5, 10, 15, 20)]  # N(k) of the last step of each window


def test_set_reaches_an_option_of_a_default_part(registries):
    config = tiny(registries, "ict", extra=["methods.ict.loss.c_factor=0.001", "methods.ict.index_schedule.p_std=1.5"])
    assert config.methods["ict"].loss.name == "pseudo-huber"
    assert config.methods["ict"].loss.options.c_factor == 0.001
    assert config.methods["ict"].index_schedule.options.p_std == 1.5
    built = build(config, registries)
    built.method.prepare_training()
    assert built.method.metric.c_factor == 0.001 and built.method.noise_schedule.p_std == 1.5


def test_a_plain_string_means_that_part_with_its_defaults(registries):
    config = tiny(registries, "ict", extra=["methods.ict.curriculum=sqrt"])
    assert config.methods["ict"].curriculum.options == dataclasses.replace(config.methods["ict"].curriculum.options, s0=2, s1=150)


@pytest.mark.parametrize(
    "assignment, message",
    [
        ("methods.ict.curriculum.name=doubl", r"methods.ict.curriculum: unknown curriculum 'doubl' \(did you mean 'doubling'\?\)"),
        ("methods.ct.loss=lpipz", r"methods.ct.loss: unknown loss 'lpipz' \(did you mean 'lpips'\?\)"),
        ("train.optimizer=sgd", r"train.optimizer: unknown optimizer 'sgd'; known: adam, radam"),
        ("methods.ict.curriculum.s1=5", r"methods.ict.curriculum: s1 \(5\) must not be smaller than s0 \(10\)"),
        ("methods.ict.loss.c_factor=-1", r"methods.ict.loss.c_factor must be positive, got -1 \(--set"),
        ("methods.ict.loss.cfactor=1", r"unknown key 'methods.ict.loss.cfactor' \(--set .*\); known keys: c_factor"),
    ],
)
def test_a_misspelled_or_bad_part_is_caught_when_the_config_is_resolved(registries, assignment, message):
    with pytest.raises(GenkitError, match=message):
        tiny(registries, "ict", extra=[assignment])


def test_config_show_catches_a_misspelled_part_of_another_method():
    from genkit.cli.main import build_app

    result = CliRunner().invoke(build_app(), ["config", "show", "toy2d", "--set", "methods.cd.curriculum.name=constnt"])
    assert result.exit_code == 1
    assert "unknown curriculum 'constnt' (did you mean 'constant'?)" in result.output


def test_bench_dry_run_catches_a_misspelled_part():
    from genkit.cli.main import build_app

    result = CliRunner().invoke(build_app(), ["bench", "cd-vs-ict", "--dry-run", "--set", "overrides.methods.ict.loss=pseudo-hubr"])
    assert result.exit_code == 1
    assert "unknown loss 'pseudo-hubr'" in result.output


# ----------------------------------------------------------------------------- optimizers, schedules, evaluators


def test_optimizer_and_its_options_come_from_config(registries, tmp_path):
    config = tiny(registries, "ict", extra=['train.optimizer={name = "adam", betas = [0.5, 0.9], weight_decay = 0.01}'])
    trainer = Trainer(config, RunFolder(tmp_path / "run"), registries)
    assert type(trainer.optimizer) is torch.optim.Adam
    group = trainer.optimizer.param_groups[0]
    assert group["betas"] == (0.5, 0.9) and group["weight_decay"] == 0.01


def test_warmup_ramps_the_rate_linearly_from_zero_as_edm_does(registries, tmp_path):
    config = tiny(registries, "edm", steps=12, extra=["train.lr=0.01", 'train.lr_schedule={name = "warmup", warmup_steps = 8}'])
    trainer = Trainer(config, RunFolder(tmp_path / "run"), registries)
    seen = []
    real_step = trainer.optimizer.step
    trainer.optimizer.step = lambda *a, **k: (seen.append(trainer.optimizer.param_groups[0]["lr"]), real_step(*a, **k))[1]
    trainer.train()
    assert seen == pytest.approx([0.01 * min(k / 8, 1) for k in range(12)])


def test_evaluators_are_chosen_by_config_with_their_options(registries, tmp_path):
    from genkit.evaluation import build_evaluators, sliced_wasserstein

    config = tiny(registries, "ict", extra=['eval.metrics=[{name = "swd", projections = 8, seed = 3}]'])
    built = build(config, registries)
    evaluators = build_evaluators(built)
    assert list(evaluators) == ["swd"]
    a, b = torch.randn(300, 2), torch.randn(300, 2) + 0.1
    assert evaluators["swd"](a, b) == sliced_wasserstein(a, b, projections=8, seed=3)
    default = build_evaluators(build(tiny(registries, "ict"), registries))
    assert list(default) == ["swd", "frechet2d"]  # none chosen: the dataset's suggestions


# ----------------------------------------------------------------------------- the schema


@dataclass
class Shapes:
    attention: Optional[tuple[int, ...]] = option(None, "resolutions with attention")
    multipliers: tuple[int, ...] = option((1, 2, 2), "channel multipliers")
    pair: tuple[float, float] = option((0.9, 0.999), "two numbers")
    label_dim: Optional[int] = option(None, "classes; None: unconditional")
    kind: Literal["fir", "plain"] = option("fir", "resampling")
    levels: list[int] = option([16, 8], "a list")


@pytest.mark.parametrize("values", [{}, {"attention": [16, 8], "label_dim": 10, "multipliers": [2, 2], "pair": [0.5, 0.6], "kind": "plain"}])
def test_optional_and_tuple_options_round_trip_through_toml(values):
    parsed = Parser().dataclass(Shapes, values, "network")
    text = to_toml({"network": to_plain(parsed)})
    again = Parser().dataclass(Shapes, tomllib.loads(text)["network"], "network")
    assert again == parsed
    assert isinstance(again.multipliers, tuple) and isinstance(again.pair, tuple)
    assert ("label_dim" in text) == ("label_dim" in values)  # None is written by leaving the key out


def test_schema_errors_name_the_key():
    with pytest.raises(GenkitError, match=r"network.pair must be a list of 2 values, got \[1.0\]"):
        Parser().dataclass(Shapes, {"pair": [1.0]}, "network")
    with pytest.raises(GenkitError, match=r"network.kind must be one of 'fir', 'plain', got 'box'"):
        Parser().dataclass(Shapes, {"kind": "box"}, "network")
    with pytest.raises(GenkitError, match=r"network.attention\[1\] must be an integer, got 'x'"):
        Parser().dataclass(Shapes, {"attention": [16, "x"]}, "network")


def test_an_optional_option_must_default_to_none_to_be_written():
    @dataclass
    class Bad:
        size: Optional[int] = 3

    with pytest.raises(ValueError, match="cannot be written to TOML"):
        to_plain(Bad(size=None))


def test_a_table_naming_another_component_replaces_the_old_one():
    layers = configuration.Layers()
    layers.add({"network": {"name": "mlp", "width": 256, "fourier_scale": 0.02}}, "preset")
    layers.add({"network": {"name": "tiny-net"}}, "--set network.name=tiny-net")
    layers.add({"network": {"hidden": 8}}, "--set network.hidden=8")
    assert layers.data["network"] == {"name": "tiny-net", "hidden": 8}
    layers.add({"loss": "l2"}, "preset")
    layers.add({"loss": {"scale": 2}}, "--set loss.scale=2")  # a string-named part gets options
    assert layers.data["loss"] == {"name": "l2", "scale": 2}


def test_core_config_names_no_plugin_component(registries):
    with pytest.raises(GenkitError, match=r"data.name is not set: choose a registered dataset \(checkerboard"):
        configuration.load_config(registries, flags={"method": "ict"})
    with pytest.raises(GenkitError, match="method is not set"):
        configuration.load_config(registries, assignments=["data.name=moons", "network.name=mlp"])


def test_every_option_of_every_built_in_component_has_help(registries):
    undocumented = []
    sections = [configuration.Config, configuration.NoiseConfig, configuration.TrainConfig,
                configuration.SampleConfig, configuration.EvalConfig]
    for kind in ("networks", "losses", "noise_schedules", "curricula", "teachers", "methods",
                 "datasets", "evaluators", "optimizers", "lr_schedules"):
        for entry in registries[kind]:
            if entry.plugin in plugins.load().info and plugins.load().info[entry.plugin].builtin:
                options = getattr(entry.factory, "Config", None)
                sections += [options] if options else []
    for cls in sections:
        undocumented += [f"{cls.__qualname__}.{f.name}" for f in dataclasses.fields(cls) if not f.metadata.get("help")]
    assert undocumented == []


# ----------------------------------------------------------------------------- repeating and extending runs


def test_config_toml_repeats_a_run_with_a_plugin_network_bit_for_bit(with_plugin, tmp_path):
    registries = with_plugin()
    extra = ["network.name=tiny-net", "network.hidden=8", "network.widths=[8]", "network.activation=relu"]
    first = Trainer(tiny(registries, "ict", steps=15, extra=extra), RunFolder(tmp_path / "first"), registries)
    first.train()
    again_config = configuration.load_config(registries, "toy2d", tmp_path / "first" / "config.toml")
    assert again_config.network == Component("tiny-net", TinyNet.Config(hidden=8, activation="relu", widths=(8,)))
    again = Trainer(again_config, RunFolder(tmp_path / "again"), registries)
    again.train()
    assert_same_tensors(weights(first), weights(again))
    assert (tmp_path / "first" / "config.toml").read_text() == (tmp_path / "again" / "config.toml").read_text()


def test_a_run_trained_with_a_plugin_loss_samples_without_that_plugin(with_plugin, tmp_path):
    registries = with_plugin(present=True)
    config = tiny(registries, "ict", steps=10, extra=['methods.ict.loss={name = "scaled-l2", scale = 3.0}'])
    Trainer(config, RunFolder(tmp_path / "run"), registries).train()
    registries = with_plugin(present=False)
    trained = load_trained(tmp_path / "run", registries)
    assert trained.built.config.methods["ict"].loss == Component("scaled-l2", {"scale": 3.0})  # kept, unbuilt
    from genkit.evaluation import draw_samples

    assert draw_samples(trained.built.method, trained.model, 16, 1).shape == (16, 2)
    with pytest.raises(GenkitError, match="unknown loss 'scaled-l2'"):  # training it needs the plugin
        Trainer(trained.built.config, RunFolder(tmp_path / "run"), registries, resume=True)


def test_resume_with_more_steps_extends_a_finished_run(registries, tmp_path):
    from genkit.api import resumable_run

    config = tiny(registries, "ict", steps=12)
    Trainer(config, RunFolder(tmp_path / "run"), registries).train()
    run, extended = resumable_run(tmp_path / "run", registries, steps=20)
    trainer = Trainer(extended, run, registries, resume=True)
    assert trainer.method.curriculum.stage_length == 20 // 8  # the doubling curriculum's K' follows the new K
    trainer.train()
    assert trainer.step == 20
    assert RunFolder(tmp_path / "run").read_config(registries).train.steps == 20
    assert [r["step"] for r in RunFolder(tmp_path / "run").metrics()] == [5, 10, 12, 15, 20]
    with pytest.raises(GenkitError, match="has done 20 steps, more than train.steps = 15"):
        Trainer(resumable_run(tmp_path / "run", registries, steps=15)[1], run, registries, resume=True)


def test_teacher_flag_sets_the_option_the_method_declares(registries, tmp_path):
    from genkit.api import add_teacher

    layers = configuration.config_layers(registries, "toy2d", flags={"method": "cd"})
    add_teacher(layers, registries, tmp_path / "edm")
    assert layers.data["methods"]["cd"]["teacher"]["run"] == str(tmp_path / "edm")
    layers = configuration.config_layers(registries, "toy2d", flags={"method": "ict"})
    with pytest.raises(GenkitError, match="`teacher`: method 'ict' takes no teacher run"):
        add_teacher(layers, registries, tmp_path / "edm")


# ----------------------------------------------------------------------------- genkit plugins


def test_plugins_lists_package_version_and_commands():
    from genkit.cli.main import build_app

    result = CliRunner().invoke(build_app(), ["plugins", "--json"])
    rows = {row["name"]: row for row in json.loads(result.output)}
    assert rows["bench"]["commands"] == ["bench"] and rows["bench"]["distribution"] == "genkit"
    assert rows["optim"]["registers"] == {"optimizers": ["radam", "adam"], "lr_schedules": ["constant", "warmup"]}
    assert rows["ict"]["version"] == importlib.metadata.version("genkit")


@pytest.mark.parametrize(
    "assignment, message",
    [
        ("methods.ct.curriculum.s1=1", r"methods.ct.curriculum: s1 \(1\) must not be smaller than s0 \(2\) \(preset toy2d, --set methods.ct.curriculum.s1=1\)"),
        ("noise.sigma_max=0.001", r"noise: sigma_max \(0.001\) must be larger than sigma_min \(0.002\) \(preset toy2d, --set noise.sigma_max=0.001\)"),
        ("foo.bar=1", r"unknown key 'foo' \(--set foo.bar=1\)"),
    ],
)
def test_errors_name_the_layers_that_set_the_keys_involved(registries, assignment, message):
    with pytest.raises(GenkitError, match=message):
        tiny(registries, "ct", extra=[assignment])
