"""Registries and plugin discovery through (faked) entry points."""

import importlib.metadata
import sys
import types
import warnings

import pytest

from genkit import hookimpl, plugins
from genkit.errors import GenkitError
from genkit.registry import Registry


def test_duplicate_name_names_both_plugins():
    registry = Registry("methods")
    registry.add("ict", object, plugin="first")
    with pytest.raises(GenkitError, match="'ict' is registered twice: by plugin 'first' and by plugin 'second'"):
        registry.add("ict", object, plugin="second")


def test_unknown_name_lists_known_and_suggests_closest():
    registry = Registry("methods")
    for name in ("ict", "cd", "edm"):
        registry.add(name, object)
    with pytest.raises(GenkitError, match=r"unknown method 'ictt' \(did you mean 'ict'\?\); known: cd, edm, ict"):
        registry.get("ictt")


class FakeEntryPoint:
    def __init__(self, name, target, dist_name="third-party"):
        self.name, self.value, self._target = name, f"{name}_module", target
        self.dist = types.SimpleNamespace(metadata={"Name": dist_name}, version="9.9")

    def load(self):
        if isinstance(self._target, BaseException):
            raise self._target
        return self._target


def make_plugin(name, **hooks):
    module = types.ModuleType(name)
    for hook_name, function in hooks.items():
        setattr(module, hook_name, hookimpl(function))
    return module


@pytest.fixture
def fake_entry_points(monkeypatch):
    """Replace discovery with the built-in entry points plus the given fake ones."""
    real = [ep for ep in importlib.metadata.entry_points(group="genkit") if plugins._is_builtin(ep)]

    def install(*extra):
        monkeypatch.setattr(plugins, "entry_points", lambda: real + list(extra))
        plugins.reset()

    yield install
    plugins.reset()


def fresh():
    plugin_set = plugins.PluginSet()
    plugin_set.load_entry_points()
    plugin_set.collect()
    return plugin_set


def register_method(register):
    register("my-method", object)


def test_third_party_plugin_is_discovered_like_a_builtin(fake_entry_points):
    fake_entry_points(FakeEntryPoint("mine", make_plugin("mine", register_methods=register_method)))
    loaded = fresh()
    assert "my-method" in loaded.registries.methods
    assert loaded.registries.methods.entry("my-method").plugin == "mine"
    assert loaded.info["mine"].registered == {"methods": ["my-method"]}
    assert not loaded.info["mine"].builtin and loaded.info["ict"].builtin
    assert "ict" in loaded.registries.methods  # built-ins still there


def test_broken_plugin_warns_and_the_rest_load(fake_entry_points):
    fake_entry_points(
        FakeEntryPoint("broken", ImportError("no module named torch_extra")),
        FakeEntryPoint("mine", make_plugin("mine", register_methods=register_method)),
    )
    with pytest.warns(plugins.PluginWarning, match="plugin 'broken'.*failed to import.*torch_extra"):
        loaded = fresh()
    assert "my-method" in loaded.registries.methods
    assert "failed to import" in loaded.info["broken"].error and not loaded.info["mine"].error


def test_misspelled_hook_is_caught(fake_entry_points):
    fake_entry_points(FakeEntryPoint("typo", make_plugin("typo", register_method=register_method)))
    with pytest.warns(plugins.PluginWarning, match="plugin 'typo' skipped.*register_method"):
        loaded = fresh()
    assert "register_method" in loaded.info["typo"].error and "my-method" not in loaded.registries.methods


def test_a_plugin_taking_a_built_in_name_is_skipped_and_the_built_in_kept(fake_entry_points):
    def register_ict(register):
        register("my-method", object)  # registered by nothing else: dropped with the whole plugin
        register("ict", object)

    fake_entry_points(FakeEntryPoint("clash", make_plugin("clash", register_methods=register_ict)))
    with pytest.warns(plugins.PluginWarning, match="plugin 'clash' skipped: it registers method 'ict', which plugin 'ict' already registers"):
        loaded = fresh()
    assert loaded.registries.methods.entry("ict").plugin == "ict"
    assert "my-method" not in loaded.registries.methods and loaded.info["clash"].error


def test_a_plugin_whose_hook_raises_or_repeats_a_name_is_skipped(fake_entry_points):
    def raising(register):
        raise RuntimeError("cannot find CUDA extension")

    def twice(register):
        register("dup", object)
        register("dup", object)

    fake_entry_points(
        FakeEntryPoint("raises", make_plugin("raises", register_losses=raising)),
        FakeEntryPoint("twice", make_plugin("twice", register_losses=twice)),
        FakeEntryPoint("mine", make_plugin("mine", register_methods=register_method)),
    )
    with pytest.warns(plugins.PluginWarning) as caught:
        loaded = fresh()
    messages = [str(w.message) for w in caught]
    assert any("plugin 'raises' skipped: its hook failed: RuntimeError: cannot find CUDA extension" in m for m in messages)
    assert any("plugin 'twice' skipped: its hook failed: GenkitError: loss 'dup' is registered twice" in m for m in messages)
    assert "dup" not in loaded.registries.losses and "my-method" in loaded.registries.methods


def test_version_and_plugins_work_beside_a_broken_plugin(fake_entry_points):
    from typer.testing import CliRunner

    from genkit.cli.main import app

    def raising(register):
        raise RuntimeError("boom")

    fake_entry_points(FakeEntryPoint("raises", make_plugin("raises", register_losses=raising)))
    runner = CliRunner()
    assert runner.invoke(app, ["--version"]).exit_code == 0
    result = runner.invoke(app, ["plugins", "--json"])
    assert result.exit_code == 0
    rows = {row["name"]: row for row in __import__("json").loads(result.stdout)}
    assert rows["raises"]["error"].startswith("skipped: its hook failed: RuntimeError: boom")


def test_environment_variable_narrows_third_party_plugins(fake_entry_points, monkeypatch):
    fake_entry_points(
        FakeEntryPoint("mine", make_plugin("mine", register_methods=register_method)),
        FakeEntryPoint("other", make_plugin("other")),
    )
    monkeypatch.setenv(plugins.ENV_VAR, "other")
    loaded = fresh()
    assert "mine" not in loaded.info and "other" in loaded.info
    monkeypatch.setenv(plugins.ENV_VAR, "")
    loaded = fresh()
    assert "other" not in loaded.info and "mine" not in loaded.info
    assert "ict" in loaded.registries.methods  # built-ins always load


def test_temporary_plugin_object_is_unregistered_after_use():
    plugin_set = fresh()

    class Temporary:
        @hookimpl
        def register_losses(self, register):
            register("temporary-loss", object)

    plugin_set.add(Temporary(), "temporary")
    try:
        assert "temporary-loss" in plugin_set.collect().losses
    finally:
        plugin_set.manager.unregister(name="temporary")
    assert "temporary-loss" not in plugin_set.collect().losses


def test_builtin_plugins_come_through_entry_points():
    names = {ep.name for ep in importlib.metadata.entry_points(group="genkit")}
    assert {"toy", "losses", "consistency", "ict"} <= names
    assert "genkit_ict" not in sys.modules or hasattr(sys.modules["genkit_ict"], "register_methods")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert "ict" in fresh().registries.methods


@pytest.mark.parametrize("kind, word", [("losses", "loss"), ("curricula", "curriculum"), ("noise_schedules", "noise schedule")])
def test_messages_name_one_component_of_the_kind(kind, word):
    registry = Registry(kind)
    with pytest.raises(GenkitError, match=f"unknown {word} 'x'"):
        registry.get("x")


def test_plugins_table_shows_a_plugin_that_fails_to_import_with_its_error(fake_entry_points):
    from typer.testing import CliRunner

    from genkit.cli.main import app

    fake_entry_points(FakeEntryPoint("broken", ImportError("no module named torch_extra")))
    with pytest.warns(plugins.PluginWarning, match="plugin 'broken'"):
        result = CliRunner().invoke(app, ["plugins"], env={"COLUMNS": "400"})  # one table row per line
    assert result.exit_code == 0, result.output
    row = next(line for line in result.output.splitlines() if " broken " in line)
    assert "broken: failed to import (broken_module): ImportError: no module named torch_extra" in row
    assert "third-party 9.9" in row


def test_genkit_plugins_naming_a_plugin_that_is_not_installed_warns(fake_entry_points, monkeypatch):
    fake_entry_points(FakeEntryPoint("mine", make_plugin("mine", register_methods=register_method)))
    monkeypatch.setenv(plugins.ENV_VAR, "mine,mnie")
    with pytest.warns(plugins.PluginWarning, match=r"GENKIT_PLUGINS names plugin 'mnie', which is not installed \(installed third-party plugins: mine\)"):
        loaded = fresh()
    assert "mine" in loaded.info and "my-method" in loaded.registries.methods


def test_genkit_plugins_naming_only_installed_plugins_is_silent(fake_entry_points, monkeypatch):
    fake_entry_points(FakeEntryPoint("mine", make_plugin("mine", register_methods=register_method)))
    monkeypatch.setenv(plugins.ENV_VAR, "mine,ict")  # a built-in name is harmless: built-ins always load
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert "my-method" in fresh().registries.methods


def test_use_adds_a_plugin_object_for_a_with_block(fake_entry_points):
    fake_entry_points()
    module = make_plugin("uninstalled", register_methods=register_method)
    with plugins.use(module) as registries:
        assert registries.methods.entry("my-method").plugin == "uninstalled"
        assert plugins.registries() is registries and plugins.load().info["uninstalled"].registered == {"methods": ["my-method"]}
    assert "my-method" not in plugins.registries().methods and "uninstalled" not in plugins.load().info


def test_use_of_an_installed_plugin_changes_nothing(fake_entry_points):
    module = make_plugin("mine", register_methods=register_method)
    fake_entry_points(FakeEntryPoint("mine", module))
    with plugins.use(module) as registries:
        assert registries.methods.entry("my-method").plugin == "mine"
    assert "my-method" in plugins.registries().methods  # still installed


def test_use_of_a_broken_plugin_is_an_error_and_leaves_nothing_behind(fake_entry_points):
    fake_entry_points()
    typo = make_plugin("typo", register_method=register_method)
    with pytest.warns(plugins.PluginWarning), pytest.raises(GenkitError, match="plugin 'typo' skipped.*register_method"):
        with plugins.use(typo):
            pass
    assert "typo" not in plugins.load().info and not plugins.load().manager.has_plugin("typo")


# ----------------------------------------------------------------------------- loading faults are one warning each


def test_two_entry_points_of_one_module_load_it_once(fake_entry_points):
    module = make_plugin("mine", register_methods=register_method)
    fake_entry_points(FakeEntryPoint("mine", module), FakeEntryPoint("again", module))
    with pytest.warns(plugins.PluginWarning, match="plugin 'again' skipped: its module mine is already loaded as plugin 'mine'"):
        loaded = fresh()
    assert loaded.registries.methods.entry("my-method").plugin == "mine"


def test_an_entry_point_aimed_at_a_built_in_module_is_skipped(fake_entry_points):
    import genkit_toy

    fake_entry_points(FakeEntryPoint("toy-again", genkit_toy))
    with pytest.warns(plugins.PluginWarning, match="plugin 'toy-again' skipped: its module genkit_toy is already loaded as plugin 'toy'"):
        loaded = fresh()
    assert loaded.registries.networks.entry("mlp").plugin == "toy"


def test_a_third_party_entry_point_named_like_a_built_in_does_not_displace_it(fake_entry_points, monkeypatch):
    impostor = FakeEntryPoint("toy", make_plugin("impostor", register_methods=register_method))
    real = [ep for ep in importlib.metadata.entry_points(group="genkit") if plugins._is_builtin(ep)]
    monkeypatch.setattr(plugins, "entry_points", lambda: [impostor, *real])  # found first
    plugins.reset()
    with pytest.warns(plugins.PluginWarning, match="plugin 'toy' .*third-party.* skipped: the name is taken"):
        loaded = fresh()
    assert loaded.registries.networks.entry("mlp").plugin == "toy" and "my-method" not in loaded.registries.methods


def test_a_plugin_that_exits_at_import_is_skipped(fake_entry_points):
    fake_entry_points(FakeEntryPoint("quitter", SystemExit(3)), FakeEntryPoint("mine", make_plugin("mine", register_methods=register_method)))
    with pytest.warns(plugins.PluginWarning, match="plugin 'quitter' failed to import .*SystemExit"):
        loaded = fresh()
    assert "my-method" in loaded.registries.methods


def test_a_component_whose_config_is_not_a_dataclass_is_named_in_one_line(registries):
    from genkit.schema import Parser

    class Odd:
        class Config:  # not a dataclass
            width = 3

    with pytest.raises(GenkitError, match=r"Odd.Config is not a dataclass: a fault of the plugin that registers it"):
        Parser(registries).options(Odd, {"width": 4}, "network")
