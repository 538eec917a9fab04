"""A registry per kind of component: a name maps to a factory and the plugin that gave it."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any, Callable, Iterator

from genkit.errors import GenkitError
from genkit.kinds import CORE_KINDS, Kind
from genkit.schema import Component, build

@dataclass(frozen=True)
class Entry:
    name: str
    factory: Callable[..., Any]
    plugin: str


class Registry:
    """Named factories of one kind; duplicate names and unknown names are errors."""

    def __init__(self, kind: Kind | str):
        if isinstance(kind, str):  # a core kind by name
            kind = next(k for k in CORE_KINDS if k.name == kind)
        self.kind = kind.name
        self.singular = kind.singular
        self._entries: dict[str, Entry] = {}
        self.default: str | None = None  # the name a plugin declared the default (None: none)

    def add(self, name: str, factory: Callable[..., Any], plugin: str = "?") -> None:
        if name in self._entries:
            first = self._entries[name].plugin
            raise GenkitError(
                f"{self.singular} '{name}' is registered twice: by plugin '{first}' and by plugin '{plugin}'"
            )
        self._entries[name] = Entry(name, factory, plugin)

    def set_default(self, name: str) -> None:
        """The component used where the config names none of this kind (the first declared stays)."""
        if self.default is None:
            self.default = name

    def entry(self, name: str) -> Entry:
        if name not in self._entries:
            raise GenkitError(self.unknown_message(name))
        return self._entries[name]

    def get(self, name: str) -> Callable[..., Any]:
        return self.entry(name).factory

    def build(self, component: Any, ctx: Any = None) -> Any:
        """Build a ``Component`` (name and options, as config holds it) or a bare name with defaults."""
        if isinstance(component, str):
            component = Component(component)
        return build(self, component, ctx)

    def unknown_message(self, name: str) -> str:
        known = sorted(self._entries)
        message = f"unknown {self.singular} '{name}'"
        close = difflib.get_close_matches(name, known, n=1)
        if close:
            message += f" (did you mean '{close[0]}'?)"
        return message + f"; known: {', '.join(known) if known else 'none'}"

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: str) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[Entry]:
        return iter(self._entries.values())

    def __len__(self) -> int:
        return len(self._entries)


class Registries:
    """One registry per kind, reachable as attributes: ``registries.methods.get("ict")``; the
    core's kinds always, a plugin's own kinds once that plugin is loaded."""

    def __init__(self, kinds: tuple[Kind, ...] = CORE_KINDS):
        self.kinds: dict[str, Kind] = {}
        self.reset(kinds)

    def reset(self, kinds: tuple[Kind, ...]) -> None:
        """Empty registries of ``kinds``, in this same object: whoever holds it sees the new ones."""
        for name in self.kinds:
            delattr(self, name)
        self.kinds = {kind.name: kind for kind in kinds}
        for kind in kinds:
            setattr(self, kind.name, Registry(kind))

    def __getitem__(self, kind: str) -> Registry:
        if kind not in self.kinds:
            raise KeyError(kind)
        return getattr(self, kind)

    def __contains__(self, kind: str) -> bool:
        return kind in self.kinds
