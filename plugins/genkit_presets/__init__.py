"""The built-in training presets (toy2d, fmnist, cifar10, imagenet64): TOML files of config
layers, registered like any plugin's. ``toy2d`` is the default: it needs no download."""

from importlib import resources
from pathlib import Path

from genkit.hookspecs import hookimpl

DEFAULT = "toy2d"


@hookimpl
def register_presets(register):
    folder = Path(str(resources.files(__name__) / "presets"))
    for path in sorted(folder.glob("*.toml")):
        register(path.stem, path, default=path.stem == DEFAULT)
