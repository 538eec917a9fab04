"""Hook specifications: one ``register_<kind>`` hook per kind of component, derived from the
kinds' declarations (:mod:`genkit.kinds`), plus ``register_commands``.

A plugin implements any of these with ``@genkit.hookimpl`` and calls ``register(name, factory)``
for every component it provides (``register(name, factory, default=True)`` also makes it the
kind's default where the config names none). Built-in plugins use exactly the same hooks.
"""

from __future__ import annotations

from typing import Iterable

import pluggy

from genkit.kinds import CORE_KINDS, Kind

hookspec = pluggy.HookspecMarker("genkit")
hookimpl = pluggy.HookimplMarker("genkit")


def register_hook(kind: Kind):
    """The hook specification ``register_<kind>(register)`` of one kind."""

    def hook(register):
        pass

    hook.__name__ = hook.__qualname__ = kind.hook
    hook.__doc__ = kind.doc
    return hookspec(hook)


def specs_of(kinds: Iterable[Kind]) -> type:
    """A namespace of hook specifications for pluggy's ``add_hookspecs``."""
    return type("KindHooks", (), {kind.hook: staticmethod(register_hook(kind)) for kind in kinds})


@hookspec
def register_commands(cli):
    """Add Typer commands to the ``genkit`` command-line app ``cli``."""


class CoreHooks(specs_of(CORE_KINDS)):
    register_commands = staticmethod(register_commands)
