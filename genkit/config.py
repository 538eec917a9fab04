"""Configuration: TOML layers merged in order, then validated into typed objects.

Precedence, lowest first: built-in defaults < preset < ``--config FILE`` < ``--set a.b=value``
< explicit flags. Every leaf remembers which layer set it, so an error can name its source.
"""

from __future__ import annotations

import dataclasses
import re
import sys
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from genkit.errors import GenkitError


@dataclass
class NoiseConfig:
    sigma_min: float = 0.002  # smallest noise level; f(x, sigma_min) = x
    sigma_max: float = 80.0  # largest noise level; one-step sampling starts here
    rho: float = 7.0  # Karras schedule curvature
    sigma_data: float = 0.5  # standard deviation of the data the preconditioning assumes


@dataclass
class TrainConfig:
    steps: int = 5000  # optimizer steps; also K, the curriculum's horizon
    batch_size: int = 512
    lr: float = 1e-4
    optimizer: str = "radam"  # radam | adam
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    grad_clip: float = 0.0  # max gradient norm; 0 disables clipping
    ema_rate: float = 0.999  # EMA of the weights used for evaluation and sampling
    log_every: int = 100  # steps between lines of metrics.jsonl
    checkpoint_every: int = 1000  # steps between checkpoints (one is also written at the end)
    eval_every: int = 0  # steps between sample-quality evaluations; 0 disables
    eval_samples: int = 2000  # samples per evaluation
    device: str = "auto"  # auto | cpu | cuda | cuda:N


@dataclass
class SampleConfig:
    num: int = 2000  # samples drawn by `genkit sample` unless --num says otherwise
    multistep_sigmas: list[float] = field(default_factory=lambda: [0.821])  # taus after sigma_max
    heun_levels: int = 18  # Karras levels of the EDM Heun sampler (2N - 1 evaluations)


@dataclass
class Component:
    """A registered component chosen by name, with its own validated options."""

    name: str
    options: Any = None


@dataclass
class Config:
    seed: int = 0
    method: str = "ict"
    noise: NoiseConfig = field(default_factory=NoiseConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    sample: SampleConfig = field(default_factory=SampleConfig)
    data: Component = field(default_factory=lambda: Component("checkerboard"))
    network: Component = field(default_factory=lambda: Component("mlp"))
    methods: dict[str, Any] = field(default_factory=dict)  # method name -> its options

    @property
    def method_options(self) -> Any:
        return self.methods[self.method]

    def to_dict(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "method": self.method,
            "noise": dataclasses.asdict(self.noise),
            "train": dataclasses.asdict(self.train),
            "sample": dataclasses.asdict(self.sample),
            "data": _component_dict(self.data),
            "network": _component_dict(self.network),
            "methods": {name: _options_dict(opts) for name, opts in self.methods.items()},
        }


def _options_dict(options: Any) -> dict[str, Any]:
    return dataclasses.asdict(options) if dataclasses.is_dataclass(options) else dict(options or {})


def _component_dict(component: Component) -> dict[str, Any]:
    return {"name": component.name, **_options_dict(component.options)}


# ----------------------------------------------------------------------------- layers


class Layers:
    """Nested dicts merged layer by layer; ``origin`` maps each dotted key to its source."""

    def __init__(self):
        self.data: dict[str, Any] = {}
        self.origin: dict[str, str] = {}

    def add(self, values: dict[str, Any], source: str) -> None:
        self._merge(self.data, values, source, prefix="")

    def _merge(self, into: dict, values: dict, source: str, prefix: str) -> None:
        for key, value in values.items():
            dotted = f"{prefix}{key}"
            if isinstance(value, dict) and isinstance(into.get(key, {}), dict):
                self._merge(into.setdefault(key, {}), value, source, dotted + ".")
            else:
                into[key] = value
                self.origin[dotted] = source

    def source_of(self, dotted: str) -> str:
        while dotted and dotted not in self.origin:
            dotted = dotted.rpartition(".")[0]
        return self.origin.get(dotted, "defaults")


def read_toml(path: Path | str) -> dict[str, Any]:
    path = Path(path)
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise GenkitError(f"config file not found: {path}") from None
    except tomllib.TOMLDecodeError as error:
        raise GenkitError(f"{path}: invalid TOML: {error}") from None


def parse_assignment(text: str) -> dict[str, Any]:
    """``a.b=value`` -> {"a": {"b": value}}; the value is read as TOML, else as a plain string."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise GenkitError(f"--set expects key=value, got '{text}'")
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    return nest(key, value)


# ----------------------------------------------------------------------------- presets


def preset_names(package: str = "genkit") -> list[str]:
    """The TOML presets shipped in ``package``'s ``presets`` folder."""
    folder = resources.files(package) / "presets"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".toml"))


def preset_path(name: str, package: str = "genkit", what: str = "preset") -> Path:
    """A preset shipped in ``package`` by name, or a user's own TOML file by path."""
    candidate = Path(name)
    if candidate.suffix == ".toml":
        if not candidate.is_file():
            raise GenkitError(f"{what} file not found: {candidate}")
        return candidate
    path = Path(str(resources.files(package) / "presets" / f"{name}.toml"))
    if not path.is_file():
        raise GenkitError(f"unknown {what} '{name}'; built-in: {', '.join(preset_names(package))} (or pass a .toml file)")
    return path


# ----------------------------------------------------------------------------- validation


def parse_dataclass(cls: type, values: dict[str, Any], layers: Layers, prefix: str) -> Any:
    """Build dataclass ``cls`` from ``values``; unknown keys and wrong types are GenkitErrors."""
    if not isinstance(values, dict):
        raise GenkitError(f"{prefix}: expected a table ({layers.source_of(prefix)})")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    for key in values:
        if key not in fields:
            dotted = f"{prefix}.{key}" if prefix else key
            known = ", ".join(fields) or "none"
            raise GenkitError(f"unknown key '{dotted}' ({layers.source_of(dotted)}); known keys: {known}")
    kwargs = {}
    for key, value in values.items():
        dotted = f"{prefix}.{key}" if prefix else key
        kwargs[key] = _coerce(value, hints[key], dotted, layers)
    return cls(**kwargs)


_TYPE_NAMES = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}


def _coerce(value: Any, expected: Any, dotted: str, layers: Layers) -> Any:
    origin = typing.get_origin(expected)
    if origin is list:
        (item_type,) = typing.get_args(expected)
        if not isinstance(value, list):
            raise _type_error(dotted, "a list", value, layers)
        return [_coerce(v, item_type, f"{dotted}[{i}]", layers) for i, v in enumerate(value)]
    if origin is typing.Literal:
        choices = typing.get_args(expected)
        if value not in choices:
            raise GenkitError(
                f"{dotted} must be one of {', '.join(map(repr, choices))}, got {value!r} ({layers.source_of(dotted)})"
            )
        return value
    if expected is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if expected in (int, str, bool) and type(value) is expected:
        return value
    if expected is Any:
        return value
    raise _type_error(dotted, _TYPE_NAMES.get(expected, str(expected)), value, layers)


def _type_error(dotted: str, wanted: str, value: Any, layers: Layers) -> GenkitError:
    return GenkitError(f"{dotted} must be {wanted}, got {value!r} ({layers.source_of(dotted)})")


def parse_component(kind_registry, values: Any, layers: Layers, prefix: str) -> Component:
    """A ``{name = ..., options...}`` table checked against the named factory's ``Config``."""
    if isinstance(values, str):
        values = {"name": values}
    if not isinstance(values, dict) or not isinstance(values.get("name"), str):
        raise GenkitError(f"{prefix}.name must name a registered component ({layers.source_of(prefix)})")
    options = dict(values)
    name = options.pop("name")
    factory = kind_registry.get(name)
    return Component(name, parse_options(factory, options, layers, prefix))


def parse_options(factory: Any, options: dict[str, Any], layers: Layers, prefix: str) -> Any:
    options_cls = getattr(factory, "Config", None)
    if options_cls is None:
        if options:
            key = next(iter(options))
            raise GenkitError(f"unknown key '{prefix}.{key}' ({layers.source_of(prefix + '.' + key)}); it takes no options")
        return None
    return parse_dataclass(options_cls, options, layers, prefix)


def parse_plain_sections(layers: Layers) -> Config:
    """A Config with the top level and the sections that need no registry (noise, train, sample)
    validated; the components (data, network, methods) still at their defaults."""
    raw = layers.data
    config_fields = {f.name for f in dataclasses.fields(Config)}
    for key in raw:
        if key not in config_fields:
            raise GenkitError(
                f"unknown key '{key}' ({layers.source_of(key)}); known keys: {', '.join(sorted(config_fields))}"
            )
    config = parse_dataclass(Config, {k: raw[k] for k in ("seed", "method") if k in raw}, layers, "")
    config.noise = parse_dataclass(NoiseConfig, raw.get("noise", {}), layers, "noise")
    config.train = parse_dataclass(TrainConfig, raw.get("train", {}), layers, "train")
    config.sample = parse_dataclass(SampleConfig, raw.get("sample", {}), layers, "sample")
    return config


def resolve(layers: Layers, registries) -> Config:
    """Validate merged layers into a Config, filling every component's defaults."""
    raw = layers.data
    config = parse_plain_sections(layers)
    config.data = parse_component(registries.datasets, raw.get("data", "checkerboard"), layers, "data")
    config.network = parse_component(registries.networks, raw.get("network", "mlp"), layers, "network")
    registries.methods.get(config.method)  # an unknown method fails here, with suggestions
    method_tables = dict(raw.get("methods", {}))
    method_tables.setdefault(config.method, {})
    config.methods = {
        name: parse_options(registries.methods.get(name), options, layers, f"methods.{name}")
        for name, options in method_tables.items()
        if name in registries.methods  # presets may carry options for methods not installed
    }
    _check_ranges(config)
    return config


def _check_ranges(config: Config) -> None:
    positive = {
        "train.steps": config.train.steps,
        "train.batch_size": config.train.batch_size,
        "train.lr": config.train.lr,
        "train.log_every": config.train.log_every,
        "train.checkpoint_every": config.train.checkpoint_every,
        "noise.sigma_min": config.noise.sigma_min,
        "noise.sigma_data": config.noise.sigma_data,
    }
    for key, value in positive.items():
        if value <= 0:
            raise GenkitError(f"{key} must be positive, got {value}")
    if config.noise.sigma_max <= config.noise.sigma_min:
        raise GenkitError("noise.sigma_max must be larger than noise.sigma_min")
    if not 0 <= config.train.ema_rate < 1:
        raise GenkitError(f"train.ema_rate must be in [0, 1), got {config.train.ema_rate}")
    if config.train.optimizer not in ("radam", "adam"):
        raise GenkitError(f"train.optimizer must be 'radam' or 'adam', got '{config.train.optimizer}'")
    if len(config.train.betas) != 2 or not all(0 <= b < 1 for b in config.train.betas):
        raise GenkitError(f"train.betas must be two numbers in [0, 1), got {config.train.betas}")
    if not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", config.train.device):
        raise GenkitError(f"train.device must be auto, cpu, mps, cuda or cuda:N, got '{config.train.device}'")
    for key, value in {"train.grad_clip": config.train.grad_clip, "train.eval_every": config.train.eval_every}.items():
        if value < 0:
            raise GenkitError(f"{key} must not be negative, got {value}")
    if config.train.eval_samples < 1 or config.sample.num < 1:
        raise GenkitError("train.eval_samples and sample.num must be at least 1")
    if config.sample.heun_levels < 2:
        raise GenkitError(f"sample.heun_levels must be at least 2, got {config.sample.heun_levels}")
    _check_multistep_sigmas(config.sample.multistep_sigmas, config.noise)


def _check_multistep_sigmas(taus: list[float], noise: NoiseConfig) -> None:
    """Multistep sampling renoises to each tau with sqrt(tau^2 - sigma_min^2): taus must lie in
    (sigma_min, sigma_max) and descend."""
    for tau in taus:
        if not noise.sigma_min < tau < noise.sigma_max:
            raise GenkitError(
                f"sample.multistep_sigmas must lie between noise.sigma_min and noise.sigma_max "
                f"({noise.sigma_min}, {noise.sigma_max}), got {tau}"
            )
    if any(later >= earlier for earlier, later in zip(taus, taus[1:])):
        raise GenkitError(f"sample.multistep_sigmas must descend, got {taus}")


def load_config(
    registries,
    preset: str | None = None,
    config_file: str | Path | None = None,
    assignments: list[str] = (),
    flags: dict[str, Any] | None = None,
) -> Config:
    """Merge the layers in precedence order and validate them."""
    layers = Layers()
    if preset is not None:
        layers.add(read_toml(preset_path(preset)), f"preset {preset}")
    if config_file is not None:
        layers.add(read_toml(config_file), str(config_file))
    for text in assignments:
        layers.add(parse_assignment(text), f"--set {text}")
    for dotted, value in (flags or {}).items():
        if value is not None:
            layers.add(nest(dotted, value), f"flag for {dotted}")
    return resolve(layers, registries)


def nest(dotted: str, value: Any) -> dict[str, Any]:
    """("a.b", 1) -> {"a": {"b": 1}}."""
    nested: Any = value
    for part in reversed(dotted.split(".")):
        nested = {part: nested}
    return nested


# ----------------------------------------------------------------------------- writing


def to_toml(values: dict[str, Any]) -> str:
    """A small TOML writer for the resolved config (scalars, lists and nested tables)."""
    lines: list[str] = []
    _write_table(values, [], lines)
    return "\n".join(lines).strip() + "\n"


def _write_table(values: dict[str, Any], path: list[str], lines: list[str]) -> None:
    scalars = {k: v for k, v in values.items() if not isinstance(v, dict)}
    tables = {k: v for k, v in values.items() if isinstance(v, dict)}
    if path and scalars:
        lines.append(f"\n[{'.'.join(path)}]")
    for key, value in scalars.items():
        lines.append(f"{key} = {_toml_value(value)}")
    for key, value in tables.items():
        _write_table(value, path + [key], lines)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")
