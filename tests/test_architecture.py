"""The core's layering: it knows no plugin, each layer imports only those below it, and no
function-level import hides a cycle. Also the kinds table and what plugins declare through it."""

from __future__ import annotations

import ast
import dataclasses
import types
from pathlib import Path

import pytest

from genkit import config as configuration
from genkit import hookimpl, plugins
from genkit.errors import GenkitError
from genkit.kinds import CORE_KINDS, Kind

CORE = Path(__file__).resolve().parent.parent / "genkit"

# Lowest first: a module may import its own layer and those before it. The package root
# (``genkit/__init__.py``: the version and ``hookimpl``) sits below them all.
LAYERS = [
    "errors", "files", "kinds", "schema", "maths", "hookspecs", "registry", "plugins", "config", "nn", "components",
    "build", "methods", "evaluation", "pictures", "training", "trained", "export", "api", "cli",
]

# Strings of the core that equal a built-in component's name without naming it: the weighting
# option's value "uniform" (iCT/CT), and the checkpoint key "data" (the batch stream's state).
NOT_COMPONENT_NAMES = {"uniform", "data"}


def core_modules() -> list[tuple[str, ast.Module]]:
    return [(".".join(p.relative_to(CORE.parent).with_suffix("").parts), ast.parse(p.read_text())) for p in sorted(CORE.rglob("*.py"))]


def imported(tree: ast.AST) -> list[tuple[ast.AST, str]]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            found += [(node, node.module)] + [(node, f"{node.module}.{a.name}") for a in node.names]
        elif isinstance(node, ast.Import):
            found += [(node, a.name) for a in node.names]
    return found


def layer_of(module: str) -> int | None:
    parts = module.split(".")
    if parts[0] != "genkit" or len(parts) == 1 or parts[1] == "__init__":
        return None
    return LAYERS.index(parts[1]) if parts[1] in LAYERS else None


def test_every_core_module_belongs_to_a_layer():
    assert [m for m, _ in core_modules() if m != "genkit.__init__" and layer_of(m) is None] == []


def test_the_core_imports_no_plugin_package():
    found = [(m, name) for m, tree in core_modules() for _, name in imported(tree) if name.split(".")[0].startswith("genkit_")]
    assert found == []


def test_each_layer_imports_only_layers_below_it():
    upward = []
    for module, tree in core_modules():
        own = layer_of(module)
        for _, name in imported(tree):
            target = layer_of(name)
            if own is not None and target is not None and target > own:
                upward.append(f"{module} imports {name}")
    assert upward == []


def test_no_function_level_import_of_the_core():
    """Imports inside functions are only for heavy optional libraries (matplotlib, safetensors),
    never for genkit's own modules, where one would hide an import cycle. The package root's
    ``genkit.load``/``genkit.train`` (PEP 562) is the one exception: it keeps ``import genkit``
    light for plugins."""
    hidden = []
    for module, tree in core_modules():
        for function in ast.walk(tree):
            if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)) or module == "genkit.__init__":
                continue
            hidden += [f"{module}.{function.name} imports {name}" for node, name in imported(function)
                       if name.split(".")[0] == "genkit" and node is not function]
    assert hidden == []


def test_no_core_module_names_a_built_in_component(registries):
    loaded = plugins.load()
    names = {entry.name for kind in registries.kinds for entry in registries[kind] if loaded.info[entry.plugin].builtin}
    named = [
        f"{module}:{node.lineno} '{node.value}'"
        for module, tree in core_modules() for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in names - NOT_COMPONENT_NAMES
    ]
    assert named == []


def test_core_config_defaults_name_no_component():
    sections = [configuration.Config, configuration.NoiseConfig, configuration.TrainConfig,
                configuration.SampleConfig, configuration.EvalConfig]
    defaults = {
        f"{cls.__name__}.{f.name}": f.default_factory()
        for cls in sections for f in dataclasses.fields(cls)
        if "kind" in f.metadata and f.default_factory is not dataclasses.MISSING
    }
    assert set(defaults) >= {"TrainConfig.optimizer", "TrainConfig.lr_schedule", "Config.data", "Config.network"}
    assert {key: value for key, value in defaults.items() if value} == {}


# ----------------------------------------------------------------------------- the kinds table

BARE = ["data.name=moons", "network.name=mlp"]  # a config that names no optimizer or schedule


def test_hooks_registries_and_messages_derive_from_the_kinds(registries):
    loaded = plugins.load()
    for kind in CORE_KINDS:
        assert hasattr(loaded.manager.hook, kind.hook)
        assert registries[kind.name].singular == kind.singular
    assert configuration.TRAINING_ONLY == {k.name for k in CORE_KINDS if k.training_only}
    assert "edit_tasks" not in {k.name for k in CORE_KINDS}  # the edit plugin declares it
    assert registries.edit_tasks.names() and registries.edit_tasks.entry("inpaint").plugin == "edit"


def test_defaults_are_declared_by_plugins(registries):
    assert (registries.optimizers.default, registries.lr_schedules.default, registries.presets.default) == ("radam", "constant", "toy2d")
    config = configuration.load_config(registries, assignments=BARE, flags={"method": "ict"})  # no preset
    assert (config.train.optimizer.name, config.train.lr_schedule.name) == ("radam", "constant")
    tuned = configuration.load_config(registries, assignments=[*BARE, "train.optimizer.eps=1e-6"], flags={"method": "ict"})
    assert tuned.train.optimizer.name == "radam" and tuned.train.optimizer.options.eps == 1e-6


def test_without_a_declared_default_the_config_must_choose(registries):
    registries.optimizers.default = None
    try:
        with pytest.raises(GenkitError, match=r"train.optimizer.name is not set: choose a registered optimizer \(adam, radam\)"):
            configuration.load_config(registries, assignments=BARE, flags={"method": "ict"})
    finally:
        registries.optimizers.default = "radam"


def test_a_plugin_declares_a_kind_that_another_plugin_extends(tmp_path):
    owner = types.ModuleType("owner")
    owner.genkit_kinds = (Kind("widgets", "widget", "Widgets of the owner plugin."),)
    extender = types.SimpleNamespace(register_widgets=hookimpl(lambda register: register("cog", dict, default=True)))
    preset = tmp_path / "tiny.toml"
    preset.write_text('method = "ict"\ndata = "moons"\nnetwork = "mlp"\n')
    presets = types.SimpleNamespace(register_presets=hookimpl(lambda register: register("tiny", preset)))
    with plugins.use(owner), plugins.use(extender, "extender"), plugins.use(presets, "tiny-presets") as registries:
        assert registries.widgets.names() == ["cog"] and registries.widgets.default == "cog"
        assert registries.widgets.entry("cog").plugin == "extender"
        assert configuration.preset_path("tiny", registries) == preset
        assert configuration.load_config(registries, "tiny").method == "ict"
    with pytest.raises(GenkitError, match="unknown preset 'tiny'"):
        configuration.preset_path("tiny", plugins.registries())
    assert "widgets" not in plugins.registries().kinds  # gone with the plugin that declared it
