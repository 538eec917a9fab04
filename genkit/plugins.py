"""Plugin discovery: entry points of group ``genkit`` fill one registry per kind.

``GENKIT_PLUGINS`` narrows third-party loading: unset loads every plugin, an empty value loads
only the built-in ones, ``a,b`` loads the built-ins plus the third-party entry points ``a`` and
``b``. It is also the escape hatch when a broken plugin gets in the way. A name there that no
installed plugin has is a warning, not silence.

``use(plugin)`` adds a plugin object for a ``with`` block, as if installed: how a plugin's own
tests load it without ``pip install``.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import pluggy

from genkit.errors import GenkitError, GenkitWarning
from genkit.hookspecs import CoreHooks, specs_of
from genkit.kinds import CORE_KINDS, Kind
from genkit.registry import Registries

GROUP = "genkit"
ENV_VAR = "GENKIT_PLUGINS"
BUILTIN_DISTRIBUTION = "genkit"


class PluginWarning(GenkitWarning):
    """A third-party plugin could not be loaded; the others still are."""


@dataclass
class PluginInfo:
    name: str
    module: str
    builtin: bool
    version: str
    distribution: str = ""  # the installed package that provides it ('' for one added in code)
    registered: dict[str, list[str]] = field(default_factory=dict)
    commands: list[str] = field(default_factory=list)  # CLI commands it adds
    error: str = ""  # why it was skipped ('' when it works)


def _is_builtin(entry_point: importlib.metadata.EntryPoint) -> bool:
    dist = getattr(entry_point, "dist", None)
    return dist is not None and dist.metadata["Name"] == BUILTIN_DISTRIBUTION


def _package(entry_point) -> tuple[str, str]:
    """(version, distribution name) of the package that installed an entry point."""
    dist = getattr(entry_point, "dist", None)
    return (dist.version, dist.metadata["Name"]) if dist is not None else ("", "")


def _allowed_third_party() -> set[str] | None:
    value = os.environ.get(ENV_VAR)
    if value is None:
        return None
    return {name.strip() for name in value.split(",") if name.strip()}


def entry_points() -> list[importlib.metadata.EntryPoint]:
    return list(importlib.metadata.entry_points(group=GROUP))


def _warn_missing(allowed: set[str] | None, found: list[importlib.metadata.EntryPoint]) -> None:
    """A name in GENKIT_PLUGINS that no installed plugin has is most likely a typo or a plugin
    installed in another environment: say so instead of silently loading less."""
    names = {entry_point.name for entry_point in found}
    installed = sorted(ep.name for ep in found if not _is_builtin(ep))
    for name in sorted((allowed or set()) - names):
        message = f"{ENV_VAR} names plugin '{name}', which is not installed"
        message += f" (installed third-party plugins: {', '.join(installed)})" if installed else " (no third-party plugin is installed)"
        warnings.warn(message, PluginWarning, stacklevel=3)


class PluginSet:
    """A pluggy manager, the plugins it loaded, and the registries they filled."""

    def __init__(self):
        self.manager = pluggy.PluginManager("genkit")
        self.manager.add_hookspecs(CoreHooks)
        self.kinds: dict[str, Kind] = {kind.name: kind for kind in CORE_KINDS}
        self.info: dict[str, PluginInfo] = {}
        self.registries = Registries()

    def declare_kinds(self, plugin: Any) -> None:
        """The kinds a plugin declares (``genkit_kinds``) get their hooks before any plugin is
        checked against them, so the plugins that extend a kind may load before its owner."""
        for kind in getattr(plugin, "genkit_kinds", ()):
            if kind.name not in self.kinds:
                self.kinds[kind.name] = kind
                self.manager.add_hookspecs(specs_of([kind]))

    def add(self, plugin: Any, name: str, *, builtin: bool = False, version: str = "", distribution: str = "") -> bool:
        """Register one plugin object; a misspelled hook unregisters it with a warning."""
        module = getattr(plugin, "__name__", type(plugin).__name__)
        self.info[name] = PluginInfo(name, module, builtin, version, distribution)
        if self.manager.is_registered(plugin):  # two entry points aimed at one module
            first = self.manager.get_name(plugin)
            self.info[name].error = f"skipped: its module {module} is already loaded as plugin '{first}'"
            warnings.warn(f"plugin '{name}' {self.info[name].error}", PluginWarning, stacklevel=2)
            return False
        self.declare_kinds(plugin)
        self.manager.register(plugin, name=name)
        try:
            self.manager.check_pending()
        except pluggy.PluginValidationError as error:
            self.manager.unregister(name=name)
            self.info[name].error = f"skipped: {error}"
            warnings.warn(f"plugin '{name}' skipped: {error}", PluginWarning, stacklevel=2)
            return False
        return True

    def load_entry_points(self) -> None:
        allowed = _allowed_third_party()
        found = entry_points()
        _warn_missing(allowed, found)
        imported = []
        taken = set()
        for entry_point in sorted(found, key=lambda ep: not _is_builtin(ep)):  # built-ins keep their names
            builtin = _is_builtin(entry_point)
            if not builtin and allowed is not None and entry_point.name not in allowed:
                continue
            if self.manager.has_plugin(entry_point.name) or entry_point.name in taken:
                if not builtin:
                    warnings.warn(
                        f"plugin '{entry_point.name}' ({entry_point.value}, {_package(entry_point)[1] or 'unknown package'}) skipped: "
                        f"the name is taken by another plugin", PluginWarning, stacklevel=2,
                    )
                continue
            taken.add(entry_point.name)
            try:
                plugin = entry_point.load()
            except (Exception, SystemExit) as error:  # a broken third-party plugin must not stop the others
                message = f"failed to import ({entry_point.value}): {type(error).__name__}: {error}"
                self.info[entry_point.name] = PluginInfo(entry_point.name, entry_point.value, builtin, *_package(entry_point), error=message)
                warnings.warn(f"plugin '{entry_point.name}' {message}", PluginWarning, stacklevel=2)
                continue
            self.declare_kinds(plugin)
            imported.append((entry_point, plugin, builtin))
        for entry_point, plugin, builtin in imported:
            version, distribution = _package(entry_point)
            self.add(plugin, entry_point.name, builtin=builtin, version=version, distribution=distribution)

    def collect(self) -> Registries:
        """Call every plugin's ``register_*`` hooks, remembering which plugin registered which
        name. A plugin whose hook raises, or that registers a name already taken, is skipped
        whole with a warning; built-in plugins go first, so they keep their names."""
        self.registries.reset(tuple(self.kinds.values()))  # the same object: references to it stay current
        for info in self.info.values():
            info.registered = {}
        names = [n for n in self.info if not self.info[n].error] + [
            n for n, _ in self.manager.list_name_plugin() if n not in self.info
        ]
        for plugin_name in sorted(names, key=lambda n: not (n in self.info and self.info[n].builtin)):
            try:
                entries = self._entries_of(plugin_name)
            except Exception as error:
                self._skip(plugin_name, f"its hook failed: {type(error).__name__}: {error}")
                continue
            taken = next(((k, n) for k, n, _, _ in entries if n in self.registries[k]), None)
            if taken:
                kind, name = taken
                first = self.registries[kind].entry(name).plugin
                self._skip(plugin_name, f"it registers {self.kinds[kind].singular} '{name}', which plugin '{first}' already registers")
                continue
            for kind, name, factory, default in entries:
                self.registries[kind].add(name, factory, plugin=plugin_name)
                if default:
                    self.registries[kind].set_default(name)
                if plugin_name in self.info:
                    self.info[plugin_name].registered.setdefault(kind, []).append(name)
        return self.registries

    def _entries_of(self, plugin_name: str) -> list[tuple[str, str, Callable, bool]]:
        """What one plugin's hooks register, as (kind, name, factory, default); a name twice is an error."""
        entries: list[tuple[str, str, Callable, bool]] = []
        for kind in self.kinds.values():
            for impl in getattr(self.manager.hook, kind.hook).get_hookimpls():
                if impl.plugin_name == plugin_name:
                    impl.function(lambda name, factory, default=False, kind=kind.name: entries.append((kind, name, factory, default)))
        seen = [(kind, name) for kind, name, _, _ in entries]
        repeated = next((pair for pair in seen if seen.count(pair) > 1), None)
        if repeated:
            raise GenkitError(f"{self.kinds[repeated[0]].singular} '{repeated[1]}' is registered twice")
        return entries

    def _skip(self, plugin_name: str, reason: str) -> None:
        if plugin_name in self.info:
            self.info[plugin_name].error = f"skipped: {reason}"
        warnings.warn(f"plugin '{plugin_name}' skipped: {reason}", PluginWarning, stacklevel=3)

    def add_commands(self, cli) -> None:
        """Every working plugin's commands; one whose hook raises is skipped with a warning."""
        for impl in self.manager.hook.register_commands.get_hookimpls():
            if impl.plugin_name in self.info and self.info[impl.plugin_name].error:
                continue
            try:
                impl.function(cli=cli)
            except Exception as error:
                self._skip(impl.plugin_name, f"its register_commands hook failed: {type(error).__name__}: {error}")

    def note_commands(self, cli) -> None:
        """Fill each plugin's ``commands`` with the commands of ``cli`` its module defines."""
        for info in self.info.values():
            info.commands = [name for name, module in _commands(cli) if _within(module, info.module)]

def _commands(cli) -> list[tuple[str, str]]:
    """(name, module of its code) for each command and command group of a Typer app."""
    found = [(c.name or c.callback.__name__.replace("_", "-"), c.callback.__module__) for c in cli.registered_commands]
    for group in cli.registered_groups:
        inner = group.typer_instance.registered_commands
        callback = group.typer_instance.registered_callback
        function = callback.callback if callback else (inner[0].callback if inner else None)
        found.append((group.name or group.typer_instance.info.name, getattr(function, "__module__", "")))
    return found


def _within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


_current: PluginSet | None = None


def load() -> PluginSet:
    """The process-wide plugin set, loaded on first use."""
    global _current
    if _current is None:
        plugins = PluginSet()
        plugins.load_entry_points()
        plugins.collect()
        _current = plugins
    return _current


def registries() -> Registries:
    return load().registries


def reset() -> None:
    """Forget the loaded plugins (tests use this after faking entry points)."""
    global _current
    _current = None


@contextlib.contextmanager
def use(plugin: Any, name: str | None = None) -> Iterator[Registries]:
    """Add a plugin object (a module, or any object with hook implementations) to the process-wide
    plugins for the duration of a ``with`` block, as if it were installed: ``genkit.train``,
    config resolution and ``registries()`` see its components. Yields the registries.

    A plugin's own tests use it, so they run from a checkout without ``pip install``; a plugin
    already loaded (installed and found through its entry point) is used as it is. A plugin that
    cannot be added (a misspelled hook, a name already taken) is a GenkitError.
    """
    loaded = load()
    if loaded.manager.is_registered(plugin):
        registered = loaded.manager.get_name(plugin)
        info = loaded.info.get(registered)
        if info is not None and info.error:  # installed but skipped: its components are not there to test
            raise GenkitError(f"plugin '{registered}' {info.error}")
        yield loaded.registries
        return
    name = name or getattr(plugin, "__name__", type(plugin).__name__)
    if loaded.manager.has_plugin(name) or name in loaded.info:
        raise GenkitError(f"a plugin named '{name}' is already loaded; pass another name")
    try:
        loaded.add(plugin, name)
        loaded.collect()
        if loaded.info[name].error:
            raise GenkitError(f"plugin '{name}' {loaded.info[name].error}")
        yield loaded.registries
    finally:
        _remove(loaded, name)


def _remove(loaded: PluginSet, name: str) -> None:
    """Undo ``use``: the registries are rebuilt without the plugin and the kinds it declared."""
    plugin = loaded.manager.get_plugin(name)
    if plugin is not None:
        loaded.manager.unregister(name=name)
    loaded.info.pop(name, None)
    still_declared = {k.name for _, other in loaded.manager.list_name_plugin() for k in getattr(other, "genkit_kinds", ())}
    for kind in getattr(plugin, "genkit_kinds", ()):
        if kind.name not in still_declared and kind.name not in {k.name for k in CORE_KINDS}:
            loaded.kinds.pop(kind.name, None)  # its hook spec stays in pluggy, unused
    loaded.collect()
