"""A registry per kind of component: a name maps to a factory and the plugin that gave it."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any, Callable, Iterator

from genkit.errors import GenkitError

# kind -> what one component of it is called in messages
SINGULAR = {
    "networks": "network",
    "losses": "loss",
    "noise_schedules": "noise schedule",
    "curricula": "curriculum",
    "teachers": "teacher",
    "methods": "method",
    "datasets": "dataset",
    "evaluators": "evaluator",
    "optimizers": "optimizer",
    "lr_schedules": "learning-rate schedule",
    "edit_tasks": "editing task",
    "loggers": "logger",
}
KINDS = tuple(SINGULAR)


@dataclass(frozen=True)
class Entry:
    name: str
    factory: Callable[..., Any]
    plugin: str


class Registry:
    """Named factories of one kind; duplicate names and unknown names are errors."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, Entry] = {}

    def add(self, name: str, factory: Callable[..., Any], plugin: str = "?") -> None:
        if name in self._entries:
            first = self._entries[name].plugin
            raise GenkitError(
                f"{SINGULAR[self.kind]} '{name}' is registered twice: by plugin '{first}' and by plugin '{plugin}'"
            )
        self._entries[name] = Entry(name, factory, plugin)

    def entry(self, name: str) -> Entry:
        if name not in self._entries:
            raise GenkitError(self._unknown_message(name))
        return self._entries[name]

    def get(self, name: str) -> Callable[..., Any]:
        return self.entry(name).factory

    def build(self, component: Any, ctx: Any = None) -> Any:
        """Build a ``Component`` (name and options, as config holds it) or a bare name with defaults."""
        from genkit.schema import Component, build

        if isinstance(component, str):
            component = Component(component)
        return build(self, component, ctx)

    def _unknown_message(self, name: str) -> str:
        known = sorted(self._entries)
        message = f"unknown {SINGULAR[self.kind]} '{name}'"
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
    """One registry per kind, reachable as attributes: ``registries.methods.get("ict")``."""

    def __init__(self):
        for kind in KINDS:
            setattr(self, kind, Registry(kind))

    def __getitem__(self, kind: str) -> Registry:
        if kind not in KINDS:
            raise KeyError(kind)
        return getattr(self, kind)
