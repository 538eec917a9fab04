"""``genkit new-plugin NAME``: a plugin package that installs, registers a loss and tests itself.

The package is written from the templates below. It registers one real component, a log-cosh
distance (quadratic for small differences, linear for large ones, like pseudo-Huber), so the
new author starts from something that trains, and its tests load it with
``genkit.plugins.use`` so they pass before the package is installed.
"""

from __future__ import annotations

import importlib.util
import re
from dataclasses import dataclass
from pathlib import Path
from string import Template

from genkit import plugins
from genkit.errors import GenkitError

# lower-case words of letters and digits joined by single hyphens or underscores: a valid
# entry-point name and, with '-' -> '_', a valid Python identifier
NAME_PATTERN = re.compile(r"[a-z][a-z0-9]*(?:[-_][a-z0-9]+)*")


@dataclass(frozen=True)
class Names:
    """Every name the package uses, derived from the one the user gives."""

    plugin: str  # entry-point name, GENKIT_PLUGINS item, and the registered loss's name
    package: str  # importable package: genkit_<plugin with '-' as '_'>
    distribution: str  # pip name: genkit-<plugin with '_' as '-'>
    test_module: str  # tests/test_<identifier>.py

    @classmethod
    def of(cls, name: str) -> "Names":
        identifier = name.replace("-", "_")
        return cls(name, f"genkit_{identifier}", f"genkit-{name.replace('_', '-')}", f"test_{identifier}")


def check_name(name: str) -> Names:
    """The names for NAME, or a one-line GenkitError saying why NAME cannot be used."""
    if not NAME_PATTERN.fullmatch(name):
        raise GenkitError(
            f"plugin name '{name}' is not valid: use lower-case letters, digits and single '-' or '_' "
            f"between them, starting with a letter (e.g. my-loss)"
        )
    names = Names.of(name)
    if name in {entry_point.name for entry_point in plugins.entry_points()}:  # two entry points of one name: only the first would ever load
        raise GenkitError(f"a plugin named '{name}' is already installed; choose another name")
    if importlib.util.find_spec(names.package) is not None:
        raise GenkitError(f"a Python package '{names.package}' already exists; choose another name")
    _check_loss_name(name)
    return names


def _check_loss_name(name: str) -> None:
    """The package registers a loss called NAME; a taken name would get the plugin skipped."""
    losses = plugins.registries().losses
    if name in losses:
        owner = losses.entry(name).plugin
        raise GenkitError(f"a loss named '{name}' is already registered (by plugin '{owner}'); choose another name")


def check_folder(folder: Path) -> None:
    """A new plugin goes into a new or empty folder, never over someone's files."""
    if folder.exists() and not folder.is_dir():
        raise GenkitError(f"{folder} is a file; give a folder for the new plugin")
    if folder.is_dir() and any(folder.iterdir()):
        raise GenkitError(f"folder {folder} is not empty; give a new or empty folder with --out")


def files(names: Names) -> dict[str, str]:
    """Relative path -> text of every file of the package."""
    values = {
        "name": names.plugin,
        "package": names.package,
        "distribution": names.distribution,
        "test_module": names.test_module,
    }
    return {Template(path).substitute(values): Template(text).substitute(values) for path, text in TEMPLATES.items()}


def write(names: Names, folder: Path) -> list[Path]:
    """Write the package into ``folder`` (checked first); returns the files written."""
    check_folder(folder)
    written = []
    for relative, text in files(names).items():
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


# ----------------------------------------------------------------------------- templates
# string.Template: $name, $package, $distribution, $test_module; $$ is a literal dollar sign.

PYPROJECT = '''\
[build-system]
requires = ["setuptools>=64"]
build-backend = "setuptools.build_meta"

[project]
name = "$distribution"
version = "0.1.0"
description = "A genkit plugin: the '$name' loss (a log-cosh distance)."
readme = "README.md"
requires-python = ">=3.10"
dependencies = ["genkit", "torch"]

[project.optional-dependencies]
test = ["pytest>=7"]

# genkit finds the plugin through this entry point; its name is what GENKIT_PLUGINS lists
[project.entry-points.genkit]
$name = "$package"

[tool.setuptools]
packages = ["$package"]

[tool.pytest.ini_options]
# the tests import the package from this folder, so they pass before (or without) pip install
pythonpath = ["."]
testpaths = ["tests"]
'''

INIT = '''\
"""The genkit plugin '$name': registers the loss '$name', a log-cosh distance.

Choose it from config: ``genkit train --method ict --set methods.ict.loss=$name``.
"""

from genkit import hookimpl

from $package.loss import LogCosh

__all__ = ["LogCosh"]


@hookimpl
def register_losses(register):
    register("$name", LogCosh)
'''

LOSS = '''\
"""A per-sample distance for the consistency loss: d(a, b) -> one value per sample."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from genkit.schema import option, positive


class LogCosh:
    """Log-cosh distance: scale^2 * mean(log cosh((a - b) / scale)), quadratic for differences
    well below ``scale`` and linear above it, like pseudo-Huber."""

    @dataclass
    class Config:  # its options: `--set 'methods.ict.loss={name = "$name", scale = 0.1}'`
        scale: float = option(0.03, "difference at which the distance turns from quadratic to linear", positive)

    def __init__(self, options: "LogCosh.Config | None", ctx=None):
        self.scale = (options or self.Config()).scale

    def __call__(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        x = ((a - b) / self.scale).flatten(1).abs()
        # log cosh x = |x| + log(1 + exp(-2|x|)) - log 2, without overflow for large |x|
        log_cosh = x + torch.nn.functional.softplus(-2 * x) - math.log(2)
        return self.scale**2 * log_cosh.mean(dim=1)
'''

TEST = '''\
"""Tests of the plugin '$name'. They need no ``pip install``: pytest puts this folder on the
path (pyproject's ``pythonpath``) and ``genkit.plugins.use`` loads the plugin as if installed."""

import pytest
import torch
from genkit import config, plugins
from genkit.errors import GenkitError

import $package
from $package import LogCosh

SET_LOSS = 'methods.ict.loss={name = "$name", scale = 0.1}'


def test_the_distance_is_zero_for_equal_inputs_and_grows_with_the_difference():
    loss = LogCosh(LogCosh.Config())
    a = torch.randn(4, 3, 8, 8)
    assert loss(a, a).shape == (4,) and loss(a, a).abs().max() < 1e-7
    small, large = loss(a, a + 0.1), loss(a, a + 1.0)
    assert (0 < small).all() and (small < large).all()


def test_it_is_quadratic_for_small_and_linear_for_large_differences():
    loss = LogCosh(LogCosh.Config(scale=1.0))
    a = torch.zeros(1, 2)
    assert loss(a, a + 0.1).item() == pytest.approx(0.1**2 / 2, rel=1e-2)  # x^2 / 2
    assert loss(a, a + 100.0).item() == pytest.approx(100 - torch.log(torch.tensor(2.0)).item(), rel=1e-6)  # |x| - ln 2


def test_config_chooses_it_by_name_with_its_options():
    with plugins.use($package) as registries:
        resolved = config.load_config(registries, "toy2d", assignments=[SET_LOSS])
        part = resolved.methods["ict"].loss
        assert part.name == "$name" and part.options.scale == 0.1
        assert registries.losses.build(part).scale == 0.1


def test_a_bad_option_is_a_one_line_error():
    with plugins.use($package) as registries:
        with pytest.raises(GenkitError, match="scale must be positive"):
            config.load_config(registries, "toy2d", assignments=['methods.ict.loss={name = "$name", scale = -1}'])


def test_a_few_training_steps_run_with_it(tmp_path):
    import genkit

    with plugins.use($package):
        model = genkit.train("toy2d", tmp_path / "run", method="ict", steps=3, train__batch_size=32,
                             train__log_every=3, methods__ict__loss="$name")
    assert model.step == 3 and (tmp_path / "run" / "checkpoint.pt").is_file()
'''

README = '''\
# $distribution

A genkit plugin. It registers one loss, `$name`, a log-cosh distance
(quadratic for differences well below `scale`, linear above it), through the hook
`register_losses` in `$package/__init__.py`.

## Test it without installing

```bash
pytest
```

`pyproject.toml` puts this folder on pytest's path, and the tests load the plugin with
`genkit.plugins.use($package)`, so they pass before `pip install`.

## Install and use

```bash
pip install -e .
genkit plugins                                   # lists '$name' with what it registers
genkit train --method ict --set methods.ict.loss=$name
genkit train --method ict --set 'methods.ict.loss={name = "$name", scale = 0.1}'
```

The entry point `$name` in `pyproject.toml` (group `genkit`) is how genkit finds the plugin;
`GENKIT_PLUGINS=$name` loads it and no other third-party plugin.

## Make it yours

Replace `LogCosh` in `$package/loss.py` with your component, or add hooks for other kinds
(networks, curricula, teachers, methods, datasets, evaluators, commands, ...): see genkit's
plugin guide, `docs/plugins.md`, and its hook reference, `docs/reference/hooks.md`.
'''

TEMPLATES = {
    "pyproject.toml": PYPROJECT,
    "README.md": README,
    "$package/__init__.py": INIT,
    "$package/loss.py": LOSS,
    "tests/$test_module.py": TEST,
}
