"""``genkit new-plugin``: the package it writes is valid, and its own tests pass uninstalled."""

import importlib.util
import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from genkit import plugins
from genkit_devtools import scaffold
from genkit.cli.main import build_app

from conftest import assert_one_line_error

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

runner = CliRunner()


def new_plugin(*args):
    return runner.invoke(build_app(), ["new-plugin", *map(str, args)])


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    folder = tmp_path_factory.mktemp("plugin") / "genkit-my-loss"
    result = new_plugin("my-loss", "--out", folder)
    assert result.exit_code == 0, result.output
    return folder


def test_it_writes_the_package_its_tests_and_a_readme(generated):
    found = sorted(p.relative_to(generated).as_posix() for p in generated.rglob("*") if p.is_file())
    assert found == ["README.md", "genkit_my_loss/__init__.py", "genkit_my_loss/loss.py", "pyproject.toml", "tests/test_my_loss.py"]
    assert "methods.ict.loss=my-loss" in (generated / "README.md").read_text()


def test_the_pyproject_is_valid_toml_with_the_entry_point(generated):
    project = tomllib.loads((generated / "pyproject.toml").read_text())
    assert project["project"]["name"] == "genkit-my-loss"
    assert project["project"]["entry-points"]["genkit"] == {"my-loss": "genkit_my_loss"}
    assert project["tool"]["setuptools"]["packages"] == ["genkit_my_loss"]
    assert project["tool"]["pytest"]["ini_options"]["pythonpath"] == ["."]  # tests run uninstalled


def test_the_component_loads_through_plugins_use_and_is_gone_after(generated, monkeypatch):
    monkeypatch.syspath_prepend(str(generated))
    module = __import__("genkit_my_loss")
    try:
        with plugins.use(module) as registries:
            entry = registries.losses.entry("my-loss")
            assert entry.plugin == "genkit_my_loss"
            assert registries.losses.build("my-loss").scale == pytest.approx(0.03)
        assert "my-loss" not in plugins.registries().losses and "genkit_my_loss" not in plugins.load().info
    finally:
        for name in [n for n in sys.modules if n.startswith("genkit_my_loss")]:
            del sys.modules[name]


@pytest.mark.slow
def test_the_generated_tests_pass_without_pip_install(generated):
    assert importlib.util.find_spec("genkit_my_loss") is None  # not installed, not importable here
    # no third-party plugin of this environment may help or hinder: only the built-ins load
    env = {**os.environ, plugins.ENV_VAR: ""}
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    result = subprocess.run(command, cwd=generated, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "5 passed" in result.stdout


@pytest.mark.parametrize("name, fragment", [
    ("My_Loss", "plugin name 'My_Loss' is not valid"),
    ("my loss", "is not valid"),
    ("9lives", "is not valid"),
    ("my--loss", "is not valid"),
    ("ict", "a plugin named 'ict' is already installed"),
    ("l2", "a loss named 'l2' is already registered (by plugin 'losses')"),
])
def test_a_bad_name_is_a_one_line_error(tmp_path, name, fragment):
    result = new_plugin(name, "--out", tmp_path / "out")
    assert_one_line_error(result, fragment)
    assert result.exit_code == 1 and not (tmp_path / "out").exists()


def test_a_non_empty_folder_is_refused_and_left_alone(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    result = new_plugin("my-loss", "--out", tmp_path)
    assert_one_line_error(result, f"folder {tmp_path} is not empty")
    assert result.exit_code == 1 and [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


def test_an_empty_folder_is_used_and_the_default_folder_is_named_after_the_plugin(tmp_path, monkeypatch):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert new_plugin("my-loss", "--out", empty).exit_code == 0 and (empty / "pyproject.toml").is_file()
    monkeypatch.chdir(tmp_path)
    assert new_plugin("other_loss").exit_code == 0
    assert (tmp_path / "genkit-other-loss" / "genkit_other_loss" / "loss.py").is_file()
    assert (tmp_path / "genkit-other-loss" / "tests" / "test_other_loss.py").is_file()


def test_names_follow_from_the_plugin_name():
    names = scaffold.Names.of("my-loss")
    assert (names.package, names.distribution, names.test_module) == ("genkit_my_loss", "genkit-my-loss", "test_my_loss")
