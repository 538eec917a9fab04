"""Typed options: dataclass fields with help and range checks, read from TOML and written back.

Every configurable thing (a component's options, a config section) is a dataclass. Its fields
may be bool, int, float, str, Path, ``Literal[...]``, ``Optional[T]``, ``list[T]``,
``tuple[T, ...]``, ``tuple[T1, T2]``, ``dict[str, T]``, a nested options dataclass, or a
``Component``: a registered part (loss, curriculum, network...) chosen by name with its own
options. Declare fields with :func:`option`, :func:`part` and :func:`parts`, so each carries
its help text and range check where it is defined.

In TOML a component is a table ``{name = "pseudo-huber", c_factor = 0.00054}``, or a plain
string naming it with its default options. ``None`` is written by leaving the key out, so an
``Optional`` field must default to None.
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from dataclasses import MISSING, dataclass
from pathlib import Path
from typing import Any, Callable

from genkit.errors import GenkitError

# ----------------------------------------------------------------------------- declaring fields


@dataclass(frozen=True)
class Check:
    """A range check on one value: ``test(value)`` must hold, else '<key> <text>, got <value>'."""

    test: Callable[[Any], bool]
    text: str


positive = Check(lambda v: v > 0, "must be positive")
non_negative = Check(lambda v: v >= 0, "must not be negative")
unit_interval = Check(lambda v: 0 <= v < 1, "must be in [0, 1)")


def at_least(minimum: float) -> Check:
    return Check(lambda v: v >= minimum, f"must be at least {minimum}")


def between(minimum: float, maximum: float) -> Check:
    """minimum <= value <= maximum: the range an option really works in, stated where it is declared."""
    return Check(lambda v: minimum <= v <= maximum, f"must be in [{minimum:g}, {maximum:g}]")


even_positive = Check(lambda v: v > 0 and v % 2 == 0, "must be a positive even number")


def each(check: Check) -> Check:
    """The check applied to every item of a list or tuple."""
    return Check(lambda values: all(check.test(v) for v in values), f"items {check.text.removeprefix('must ')}")


def option(default: Any = MISSING, help: str = "", check: Check | None = None, default_factory: Any = MISSING):
    """A documented field; lists and tuples as ``default`` are copied per instance."""
    metadata = {"help": help, "check": check}
    if isinstance(default, list):
        value = list(default)
        return dataclasses.field(default_factory=lambda: list(value), metadata=metadata)
    return dataclasses.field(default=default, default_factory=default_factory, metadata=metadata)


@dataclass
class Component:
    """A registered component chosen by name, with its options: an instance of the factory's
    ``Config`` (None when it has none), or a raw table when its plugin is not installed."""

    name: str
    options: Any = None


def part(kind: str, name: str | None, help: str = ""):
    """A field holding one component of ``kind`` (a registry: "losses", "curricula"...); ``name``
    is the default (None: the config must choose one)."""
    return dataclasses.field(
        default_factory=lambda: Component(name) if name else None, metadata={"help": help, "kind": kind}
    )


def parts(kind: str, names: tuple[str, ...] = (), help: str = ""):
    """A field holding a list of components of ``kind``."""
    return dataclasses.field(
        default_factory=lambda: [Component(n) for n in names], metadata={"help": help, "kind": kind}
    )


def options_class(factory: Any) -> type | None:
    """The options dataclass of a factory (its nested ``Config``), or None when it takes none; a
    ``Config`` that is not a dataclass is the fault of the plugin that registered the factory."""
    cls = getattr(factory, "Config", None)
    if cls is not None and not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
        name = f"{getattr(factory, '__module__', '?')}.{getattr(factory, '__qualname__', factory)}"
        raise GenkitError(f"{name}.Config is not a dataclass: a fault of the plugin that registers it (its options cannot be read)")
    return cls


# ----------------------------------------------------------------------------- reading


_TYPE_NAMES = {int: "an integer", float: "a number", str: "a string", bool: "true or false", Path: "a path (string)"}


class Parser:
    """Validates plain values (from TOML, ``--set``, Python) into option dataclasses.

    ``source(dotted)`` names where a key came from, for error messages. A component of a kind
    in ``lenient`` whose plugin is not installed is kept as a raw table instead of failing (it
    fails when built), so a run can be sampled without the plugins only its training needed.
    """

    def __init__(self, registries=None, source: Callable[[str], str] = lambda key: "", lenient: frozenset[str] = frozenset()):
        self.registries = registries
        self.source = source
        self.lenient = lenient

    def where(self, dotted: str) -> str:
        source = self.source(dotted)
        return f" ({source})" if source else ""

    def error(self, dotted: str, text: str) -> GenkitError:
        return GenkitError(f"{dotted} {text}{self.where(dotted)}")

    # -- dataclasses

    def dataclass(self, cls: type, values: Any, prefix: str) -> Any:
        if not isinstance(values, dict):
            raise GenkitError(f"{prefix} must be a table{self.where(prefix)}")
        fields = {f.name: f for f in dataclasses.fields(cls)}
        for key in values:
            if key not in fields:
                dotted = _join(prefix, key)
                known = ", ".join(fields) or "none"
                raise GenkitError(f"unknown key '{dotted}'{self.where(dotted)}; known keys: {known}")
        hints = typing.get_type_hints(cls)
        kwargs = {}
        for name, spec in fields.items():
            dotted = _join(prefix, name)
            if name in values:
                kwargs[name] = self.value(_named(values[name], spec), hints[name], dotted, spec.metadata)
            elif "kind" in spec.metadata:  # a component left at its default still gets its options
                kwargs[name] = self.value(_default(spec), hints[name], dotted, spec.metadata)
            elif dataclasses.is_dataclass(hints[name]):  # a section left out: its parts get defaults too
                kwargs[name] = self.value({}, hints[name], dotted, spec.metadata)
        try:
            return cls(**kwargs)
        except (TypeError, ValueError) as error:
            raise GenkitError(f"{prefix or 'config'}: {error}{self._sources_of_fields(prefix, fields, str(error))}") from None

    def _sources_of_fields(self, prefix: str, fields: dict, message: str) -> str:
        """Where the fields a cross-field error names came from: ' (preset x, --set y)'."""
        named = [name for name in fields if re.search(rf"\b{re.escape(name)}\b", message)] or [""]
        sources = dict.fromkeys(s for s in (self.source(_join(prefix, n) if n else prefix) for n in named) if s)
        return f" ({', '.join(sources)})" if sources else ""

    def value(self, value: Any, hint: Any, dotted: str, metadata: Any = None) -> Any:
        metadata = metadata or {}
        result = self._coerce(value, hint, dotted, metadata)
        check = metadata.get("check")
        if check is not None and result is not None and not check.test(result):
            raise self.error(dotted, f"{check.text}, got {value!r}")
        return result

    def _coerce(self, value: Any, hint: Any, dotted: str, metadata: Any) -> Any:
        origin, args = typing.get_origin(hint), typing.get_args(hint)
        if hint is Component or (origin in (list, tuple) and args and args[0] is Component):
            return self._components(value, hint, dotted, metadata)
        if origin in (typing.Union, types.UnionType):
            if value is None and type(None) in args:
                return None
            (inner,) = [a for a in args if a is not type(None)]
            return self._coerce(value, inner, dotted, metadata)
        if origin is typing.Literal:
            if value not in args:
                raise self.error(dotted, f"must be one of {', '.join(map(repr, args))}, got {value!r}")
            return value
        if origin is list:
            return [self._coerce(v, args[0], f"{dotted}[{i}]", {}) for i, v in enumerate(self._sequence(value, dotted))]
        if origin is tuple:
            return self._tuple(value, args, dotted)
        if origin is dict:
            if not isinstance(value, dict):
                raise self.error(dotted, f"must be a table, got {value!r}")
            return {k: self._coerce(v, args[1], _join(dotted, k), {}) for k, v in value.items()}
        if dataclasses.is_dataclass(hint):
            return self.dataclass(hint, value, dotted)
        return self._scalar(value, hint, dotted)

    def _sequence(self, value: Any, dotted: str) -> list:
        if not isinstance(value, (list, tuple)):
            raise self.error(dotted, f"must be a list, got {value!r}")
        return list(value)

    def _tuple(self, value: Any, args: tuple, dotted: str) -> tuple:
        items = self._sequence(value, dotted)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(self._coerce(v, args[0], f"{dotted}[{i}]", {}) for i, v in enumerate(items))
        if len(items) != len(args):
            raise self.error(dotted, f"must be a list of {len(args)} values, got {value!r}")
        return tuple(self._coerce(v, t, f"{dotted}[{i}]", {}) for i, (v, t) in enumerate(zip(items, args)))

    def _scalar(self, value: Any, hint: Any, dotted: str) -> Any:
        if hint is Any:
            return value
        if hint is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(value):
                raise self.error(dotted, f"must be a finite number, got {value!r}")
            return float(value)
        if hint in (int, str, bool) and type(value) is hint:
            return value
        if hint is Path and isinstance(value, (str, Path)):
            return Path(value).expanduser().resolve()  # written absolute: the config works from any folder
        raise self.error(dotted, f"must be {_TYPE_NAMES.get(hint, str(hint))}, got {value!r}")

    # -- components

    def _components(self, value: Any, hint: Any, dotted: str, metadata: Any) -> Any:
        kind = metadata["kind"]
        if hint is Component:
            return self.component(kind, value, dotted)
        items = self._sequence(value, dotted)
        return [self.component(kind, v, f"{dotted}[{i}]") for i, v in enumerate(items)]

    def component(self, kind: str, value: Any, dotted: str) -> Component:
        """``"name"``, ``{name = ..., option = ...}`` or a Component -> a Component with validated options."""
        if isinstance(value, Component):
            value = {"name": value.name, **(to_plain(value.options) or {})}
        if isinstance(value, str):
            value = {"name": value}
        default = self.registries[kind].default if self.registries else None
        if value is None and default:  # the config names none: the one a plugin declared the default
            value = {"name": default}
        if isinstance(value, dict) and "name" not in value and default:
            value = {"name": default, **value}
        if value is None or (isinstance(value, dict) and "name" not in value):
            known = ", ".join(self.registries[kind].names()) if self.registries else ""
            raise self.error(f"{dotted}.name", f"is not set: choose a registered {self._singular(kind)}" + (f" ({known})" if known else ""))
        if not isinstance(value, dict) or not isinstance(value["name"], str):
            raise self.error(dotted, f"must name a registered {self._singular(kind)}, got {value!r}")
        options = dict(value)
        name = options.pop("name")
        registry = self.registries[kind]
        if name not in registry and kind in self.lenient:
            return Component(name, options)
        try:
            factory = registry.get(name)
        except GenkitError as error:
            raise GenkitError(f"{dotted}: {error}{self.where(dotted)}") from None
        return Component(name, self.options(factory, options, dotted))

    def _singular(self, kind: str) -> str:
        return self.registries[kind].singular if self.registries and kind in self.registries else kind

    def options(self, factory: Any, values: dict[str, Any], prefix: str) -> Any:
        """A factory's options from a table: its ``Config`` dataclass, or None when it takes none."""
        cls = options_class(factory)
        if cls is None:
            if values:
                dotted = _join(prefix, next(iter(values)))
                raise GenkitError(f"unknown key '{dotted}'{self.where(dotted)}; it takes no options")
            return None
        return self.dataclass(cls, values, prefix)


def _named(value: Any, spec: dataclasses.Field) -> Any:
    """A component table without a name (``--set methods.ict.loss.c_factor=...``) keeps the default's."""
    default = _default(spec) if "kind" in spec.metadata else None
    if isinstance(value, dict) and "name" not in value and isinstance(default, Component):
        return {"name": default.name, **value}
    return value


def _default(spec: dataclasses.Field) -> Any:
    if spec.default_factory is not MISSING:
        return spec.default_factory()
    return None if spec.default is MISSING else spec.default


def _join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key




def build(registry, component: Component, ctx: Any = None, prefix: str | None = None) -> Any:
    """Call a component's factory with its options (validated here if they are still a raw table)."""
    factory = registry.get(component.name)
    options = component.options
    if options is None or isinstance(options, dict):
        options = Parser().options(factory, dict(options or {}), prefix or component.name)
    return factory(options, ctx)


# ----------------------------------------------------------------------------- writing


def to_plain(options: Any) -> Any:
    """Options as plain TOML-ready values: components as tables, tuples as lists, paths as strings,
    None left out (the field's default, None, comes back when the key is missing)."""
    if isinstance(options, Component):
        return {"name": options.name, **(to_plain(options.options) or {})}
    if dataclasses.is_dataclass(options) and not isinstance(options, type):
        values = {}
        for spec in dataclasses.fields(options):
            value = getattr(options, spec.name)
            if value is None:
                if _default(spec) is not None:
                    raise ValueError(f"option '{spec.name}' is None but defaults to {_default(spec)!r}: it cannot be written to TOML")
                continue
            values[spec.name] = to_plain(value)
        return values
    if isinstance(options, dict):
        return {k: to_plain(v) for k, v in options.items() if v is not None}
    if isinstance(options, (list, tuple)):
        return [to_plain(v) for v in options]
    if isinstance(options, Path):
        return str(options)
    return options


def to_toml(values: dict[str, Any]) -> str:
    """A small TOML writer: scalars, lists (of scalars or tables) and nested tables."""
    lines: list[str] = []
    _write_table(values, [], lines)
    return "\n".join(lines).strip() + "\n"


def _write_table(values: dict[str, Any], path: list[str], lines: list[str]) -> None:
    inline = [k for k, v in values.items() if path and _is_flat_component(v)]  # curriculum = {name = ...}
    scalars = {k: v for k, v in values.items() if not isinstance(v, dict) or k in inline}
    tables = {k: v for k, v in values.items() if isinstance(v, dict) and k not in inline}
    if path and (scalars or not tables):
        lines.append(f"\n[{'.'.join(_key(p) for p in path)}]")
    for key, value in scalars.items():
        lines.append(f"{_key(key)} = {_toml_value(value)}")
    for key, value in tables.items():
        _write_table(value, path + [key], lines)


def _is_flat_component(value: Any) -> bool:
    return isinstance(value, dict) and "name" in value and not any(isinstance(v, dict) for v in value.values())


def _key(key: str) -> str:
    bare = key.replace("-", "").replace("_", "")
    return key if bare.isascii() and bare.isalnum() else _toml_value(key)  # bare keys are ASCII only


# TOML basic strings: these escapes, every other control character as \uXXXX (toml.io, v1.0.0)
_ESCAPES = {"\\": "\\\\", '"': '\\"', "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}


def _toml_string(text: str) -> str:
    return '"' + "".join(_ESCAPES.get(c) or (f"\\u{ord(c):04x}" if c < " " or c == "\x7f" else c) for c in text) + '"'


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value != value:
        return "nan"
    if isinstance(value, float) and value in (float("inf"), float("-inf")):
        return "inf" if value > 0 else "-inf"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return _toml_string(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_key(k)} = {_toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")
