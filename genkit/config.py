"""Configuration: TOML layers merged in order, then validated into typed objects.

Precedence, lowest first: built-in defaults < preset < ``--config FILE`` < ``--set a.b=value``
< explicit flags. Every leaf remembers which layer set it, so an error can name its source.
"""

from __future__ import annotations

import copy
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from genkit.errors import GenkitError
from genkit.kinds import CORE_KINDS, training_only
from genkit.maths.levels import Levels
from genkit.schema import (
    Check,
    Component,
    Parser,
    at_least,
    non_negative,
    option,
    part,
    parts,
    positive,
    to_plain,
    to_toml,
    unit_interval,
    between,
)

__all__ = ["Component", "Config", "Layers", "load_config", "resolve", "to_toml"]


device_name = Check(lambda v: re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", v) is not None, "must be auto, cpu, mps, cuda or cuda:N")


SEED_LIMIT = 2**32  # per-sample seeds are seed * 2**32 + k, which must fit in 64 bits
seed_range = Check(lambda v: 0 <= v < SEED_LIMIT, "must be in [0, 2**32)")


@dataclass
class NoiseConfig:
    sigma_min: float = option(0.002, "smallest noise level; f(x, sigma_min) = x", positive)
    sigma_max: float = option(80.0, "largest noise level; one-step sampling starts here", positive)
    rho: float = option(7.0, "curvature of the Karras discretization (EDM: 7; sigma_max^(1/rho) must stay finite)", between(0.1, 1000))
    sigma_data: float = option(0.5, "standard deviation of the data the preconditioning assumes", positive)

    def __post_init__(self):
        if self.sigma_max <= self.sigma_min:
            raise ValueError(f"sigma_max ({self.sigma_max}) must be larger than sigma_min ({self.sigma_min})")


@dataclass
class TrainConfig:
    steps: int = option(5000, "optimizer steps; also K, the curriculum's horizon", positive)
    batch_size: int = option(512, "global batch size (split across processes under torchrun)", between(1, 2**24))
    lr: float = option(1e-4, "peak learning rate; lr_schedule scales it per step", positive)
    optimizer: Component = part("optimizers", None, "optimizer and its options (betas, eps, weight_decay); unset: the one a plugin declares the default")
    lr_schedule: Component = part("lr_schedules", None, "learning-rate factor per step (e.g. constant, warmup); unset: the one a plugin declares the default")
    grad_clip: float = option(0.0, "max gradient norm; 0 disables clipping", non_negative)
    ema_rate: float = option(0.999, "EMA of the weights used for evaluation and sampling (with ema_rates set: its first)", unit_interval)
    ema_rates: list[float] = option([], "several evaluation EMAs, each kept in the checkpoint (sample, eval, export --ema RATE); the first is the default and becomes ema_rate; empty: ema_rate alone")
    log_every: int = option(100, "steps between lines of metrics.jsonl", positive)
    loggers: list[Component] = parts("loggers", help="loggers that also get every record of metrics.jsonl (e.g. tensorboard); metrics.jsonl is always written")
    checkpoint_every: int = option(1000, "steps between checkpoints (one is also written at the end)", positive)
    keep_snapshots: int = option(0, "earlier checkpoints kept in RUN/snapshots besides the latest (hard links, step-NNNNNNN.pt); 0: no snapshots", non_negative)
    eval_every: int = option(0, "steps between sample-quality evaluations; 0 disables", non_negative)
    eval_samples: int = option(2000, "samples per evaluation during training", positive)
    grid_every: int = option(0, "steps between pictures of fixed-seed samples in RUN/grids; 0 disables", non_negative)
    device: str = option("auto", "auto | cpu | mps | cuda | cuda:N", device_name)
    microbatch: int = option(0, "samples per forward-backward pass; a process's batch is split into such chunks and their gradients accumulated (0: the whole batch at once)", non_negative)
    precision: Literal["fp32", "bf16", "fp16"] = option("fp32", "arithmetic of the training passes: fp32, or autocast to bf16 or fp16 (fp16 with a gradient scaler); weights and optimizer stay fp32")
    compile: bool = option(False, "compile the network's training pass with torch.compile (slow to start: for long runs)")
    compile_scope: Literal["model", "blocks"] = option("model", "with train.compile: the whole network at once, or each block of its repeated blocks on its own (regional compilation: blocks of one shape compile once, a shorter warm-up)")
    compile_mode: Literal["default", "reduce-overhead", "max-autotune-no-cudagraphs"] = option("default", "torch.compile's mode with train.compile (reduce-overhead: CUDA graphs, for small networks whose steps the host limits)")
    tf32: bool = option(True, "let fp32 matrix products and convolutions use TF32 on GPUs that have it (Ampere and later): faster, about 3 significant digits fewer in each product; no effect on CPUs")
    channels_last: bool = option(False, "store image batches and convolution weights channels-last (faster convolutions on recent GPUs)")
    threads: int = option(0, "CPU threads torch uses (0: torch's default); one or two suit a tiny network", between(0, 4096))

    def __post_init__(self):
        rates = self.ema_rates
        if any(isinstance(r, bool) or not isinstance(r, (int, float)) or not 0 <= r < 1 for r in rates):
            raise ValueError(f"ema_rates must be numbers in [0, 1), got {rates}")
        if len(set(rates)) != len(rates):
            raise ValueError(f"ema_rates names a rate twice: {rates}")
        self.ema_rates = [float(r) for r in rates]
        if rates:
            self.ema_rate = self.ema_rates[0]  # the default EMA, saved where a single one always was

    @property
    def evaluation_ema_rates(self) -> list[float]:
        """The rates of the evaluation EMAs: ema_rates, or ema_rate alone; the first is the default."""
        return list(self.ema_rates) or [self.ema_rate]


@dataclass
class SampleConfig:
    num: int = option(2000, "samples drawn by `genkit sample` unless --num says otherwise", positive)
    multistep_sigmas: list[float] = option([0.821], "multistep consistency sampling: the levels after sigma_max, descending")
    heun_levels: int = option(18, "Karras levels of the EDM Heun sampler (2N - 1 evaluations)", at_least(2))
    batch_size: int = option(256, "samples per network call when sampling (lower it if a U-Net runs out of memory)", positive)
    grid_size: int = option(64, "samples in a picture: a square grid of images (8 x 8 for 64), or points", positive)


@dataclass
class EvalConfig:
    metrics: list[Component] = parts("evaluators", help="evaluators with their options; empty: the ones the dataset suggests")


@dataclass
class Config:
    method: str = option("", "training method: a registered method's name")
    seed: int = option(0, "random seed of the weights, batches and noise, in [0, 2**32)", seed_range)
    data: Component = part("datasets", None, "the training data: a registered dataset and its options")
    network: Component = part("networks", None, "the raw network F: a registered network and its options")
    noise: NoiseConfig = option(default_factory=NoiseConfig, help="noise levels and preconditioning")
    train: TrainConfig = option(default_factory=TrainConfig, help="the training loop")
    sample: SampleConfig = option(default_factory=SampleConfig, help="sampling")
    eval: EvalConfig = option(default_factory=EvalConfig, help="sample-quality evaluation")
    methods: dict[str, Any] = option(default_factory=dict, help="method name -> its options")

    @property
    def method_options(self) -> Any:
        return self.methods[self.method]

    def to_dict(self) -> dict[str, Any]:
        return to_plain(self)


# ----------------------------------------------------------------------------- layers


class Layers:
    """Nested dicts merged layer by layer; ``origin`` maps each dotted key to its source."""

    def __init__(self):
        self.data: dict[str, Any] = {}
        self.origin: dict[str, str] = {}
        self.hidden: list[str] = []  # values from --config or --set that later layers replaced
        self._order: dict[str, int] = {}  # dotted key -> when it was last set
        self._sets = 0

    def add(self, values: dict[str, Any], source: str) -> None:
        self._merge(self.data, values, source, prefix="")

    def _merge(self, into: dict, values: dict, source: str, prefix: str) -> None:
        for key, value in values.items():
            dotted = f"{prefix}{key}"
            current = into.get(key)
            if isinstance(value, dict) and isinstance(current, str):
                current = into[key] = {"name": current}  # a component named by a plain string
            if isinstance(value, dict) and isinstance(current, dict) and not _names_other_component(current, value):
                self._merge(current, value, source, dotted + ".")
            elif isinstance(current, dict) and not isinstance(value, (dict, str)):
                # a string may name another component; anything else would silently drop a table
                raise GenkitError(f"{dotted} is a table ({self.source_of(dotted)}); {source} sets it to {value!r}: set its keys instead ({dotted}.KEY = ...)")
            else:  # a value, or a table naming another component: replaces what was there
                self._note_hidden(dotted, into.get(key), source)
                into[key] = value
                self._forget(dotted)
                self.origin[dotted] = source
                self._sets += 1
                self._order[dotted] = self._sets

    def _note_hidden(self, dotted: str, old: Any, source: str) -> None:
        """A value a user gave (--config, --set) that a later layer replaces: worth a mention."""
        previous = self.origin.get(dotted)
        if old is not None and previous and previous != source and not previous.startswith("preset "):
            self.hidden.append(f"{dotted} = {old!r} from {previous} is replaced by {source}")

    def _forget(self, dotted: str) -> None:
        for key in [k for k in self.origin if k.startswith(dotted + ".")]:
            del self.origin[key], self._order[key]

    def source_of(self, dotted: str) -> str:
        """The layer that set ``dotted``; for a table, the latest layer that set a key in it (the
        one that made it what it is); for a key no layer set, the layer of the table around it.
        An item of a list (``train.loggers[0]``) comes from the layer that set the list."""
        dotted = re.sub(r"\[\d+\]", "", dotted)
        candidates = [key for key in self.origin if key == dotted or key.startswith(dotted + ".")]
        if candidates:
            return self.origin[max(candidates, key=self._order.__getitem__)]
        while dotted and dotted not in self.origin:
            dotted = dotted.rpartition(".")[0]
        return self.origin.get(dotted, "defaults")


def _names_other_component(current: dict, new: dict) -> bool:
    """A table that names another component replaces the old one, so no foreign keys are merged."""
    return "name" in new and "name" in current and new["name"] != current["name"]


# A config is a few kilobytes and a few tables deep: far more is a mistake (or /dev/zero).
MAX_TOML_BYTES = 1 << 20
MAX_TOML_DEPTH = 16


def read_toml(path: Path | str) -> dict[str, Any]:
    path = Path(path)
    try:
        if path.exists() and not path.is_file():
            raise GenkitError(f"{path} is not a regular file; a config is a TOML file")
        with path.open("rb") as handle:
            data = handle.read(MAX_TOML_BYTES + 1)
        if len(data) > MAX_TOML_BYTES:
            raise GenkitError(f"{path} is larger than {MAX_TOML_BYTES >> 20} MiB; a config is a small TOML file")
        return checked_depth(tomllib.loads(data.decode("utf-8")), str(path))
    except FileNotFoundError:
        raise GenkitError(f"config file not found: {path}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise GenkitError(f"{path}: invalid TOML: {error}") from None
    except RecursionError:
        raise GenkitError(f"{path}: nested deeper than {MAX_TOML_DEPTH} levels") from None
    except OSError as error:
        raise GenkitError(f"cannot read config file {path}: {error.strerror}") from None


def checked_depth(values: Any, source: str, depth: int = 0) -> Any:
    """``values`` unchanged when no table or list in it is nested deeper than MAX_TOML_DEPTH."""
    if depth > MAX_TOML_DEPTH:
        raise GenkitError(f"{source}: nested deeper than {MAX_TOML_DEPTH} levels")
    children = values.values() if isinstance(values, dict) else values if isinstance(values, list) else ()
    for child in children:
        checked_depth(child, source, depth + 1)
    return values


def parse_assignment(text: str) -> dict[str, Any]:
    """``a.b=value`` -> {"a": {"b": value}}; the value is read as TOML, else as a plain string."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise GenkitError(f"--set expects key=value, got '{text}'")
    if len(text) > MAX_TOML_BYTES:
        raise GenkitError(f"--set {key}=...: the value is larger than {MAX_TOML_BYTES >> 20} MiB")
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    except RecursionError:
        raise GenkitError(f"--set {key}=...: nested deeper than {MAX_TOML_DEPTH} levels") from None
    return checked_depth(nest(key, value), f"--set {key}=...")


# ----------------------------------------------------------------------------- presets


def preset_names(registries, kind: str = "presets") -> list[str]:
    """The presets plugins registered (``register_presets``, or another kind of preset)."""
    return registries[kind].names()


def preset_path(name: str, registries, kind: str = "presets") -> Path:
    """A registered preset by name, or a user's own TOML file by path."""
    singular = registries[kind].singular
    candidate = Path(name)
    if candidate.suffix == ".toml":
        if not candidate.is_file():
            raise GenkitError(f"{singular} file not found: {candidate}")
        return candidate
    if name not in registries[kind]:
        known = ", ".join(preset_names(registries, kind)) or "none"
        raise GenkitError(f"unknown {singular} '{name}'; registered: {known} (or pass a .toml file)")
    return Path(registries[kind].get(name))


def default_preset(registries) -> str:
    """The preset a plugin declared the default, for commands given none."""
    if not registries.presets.default:
        raise GenkitError("no preset given and no plugin declares a default one: pass a preset name or a .toml file")
    return registries.presets.default


# ----------------------------------------------------------------------------- validation

# Kinds a finished run can be rebuilt without, to sample it: only training builds them.
TRAINING_ONLY = training_only(CORE_KINDS)


def parser(layers: Layers, registries, lenient: frozenset[str] = frozenset()) -> Parser:
    return Parser(registries, layers.source_of, lenient)


def parse_sections(layers: Layers, registries, lenient: frozenset[str] = frozenset()) -> Config:
    """A Config with every section but the method tables validated (``methods`` left empty)."""
    raw = dict(layers.data)
    raw.pop("methods", None)
    config = parser(layers, registries, lenient).dataclass(Config, raw, "")
    if not config.method:
        known = ", ".join(registries.methods.names())
        raise GenkitError(f"method is not set: set `method` ({known})")
    Levels.check(config.sample.multistep_sigmas, config.noise.sigma_min, config.noise.sigma_max, "sample.multistep_sigmas")
    return config


def parse_method_options(layers: Layers, registries, name: str, lenient: frozenset[str] = frozenset()) -> Any:
    table = layers.data.get("methods", {}).get(name, {})
    if not isinstance(table, dict):
        raise GenkitError(f"methods.{name} must be a table{' (' + layers.source_of('methods.' + name) + ')'}")
    return parser(layers, registries, lenient).options(registries.methods.get(name), table, f"methods.{name}")


def resolve(layers: Layers, registries, lenient: frozenset[str] = frozenset()) -> Config:
    """Validate merged layers into a Config, filling every component's defaults.

    Components of the kinds in ``lenient`` (TRAINING_ONLY when a run is rebuilt to sample it)
    may name a plugin that is not installed: they are kept as raw tables.
    """
    config = parse_sections(layers, registries, lenient)
    registries.methods.get(config.method)  # an unknown method fails here, with suggestions
    methods = layers.data.get("methods", {})
    if not isinstance(methods, dict):
        raise GenkitError(f"methods must be a table ({layers.source_of('methods')})")
    _check_method_tables(layers, registries, methods)
    config.methods = {
        name: parse_method_options(layers, registries, name, lenient)
        for name in [config.method, *sorted(set(methods) - {config.method})]
        if name in registries.methods  # presets may carry options for methods not installed
    }
    return config


def _check_method_tables(layers: Layers, registries, methods: dict) -> None:
    """A table for a method no plugin registers is a typo unless a preset brought it (presets may
    carry options for methods whose plugins are not installed)."""
    for name in sorted(set(methods) - set(registries.methods.names())):
        source = layers.source_of(f"methods.{name}")
        if not source.startswith("preset "):
            raise GenkitError(f"methods.{name}: {registries.methods.unknown_message(name)} ({source})")


# ----------------------------------------------------------------------------- what a trained function depends on

# Keys that change how a run is watched, stored, extended or computed, not the function it
# trains (the data's location aside from the data itself): a resumed run may differ in them.
RESUMABLE_CHANGES = (
    "train.steps", "train.log_every", "train.checkpoint_every", "train.keep_snapshots", "train.eval_every",
    "train.eval_samples", "train.grid_every", "train.device", "train.threads", "train.loggers", "sample", "eval",
    "train.compile", "train.compile_scope", "train.compile_mode", "train.tf32", "train.channels_last", "train.microbatch",
    "data.root", "data.path",
)
# What a sampled model is: the sampler's method, its network, the noise levels and the data's shape.
SAMPLED_FUNCTION = ("method", "network", "noise", "data.name")


def differences(saved: dict[str, Any], current: dict[str, Any], prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two plain configs (``Config.to_dict()``). A key
    on one side only is an option added (or dropped) since the run was saved, at its default:
    not a difference."""
    found = []
    for key in sorted(set(saved) & set(current), key=str):
        dotted = f"{prefix}{key}"
        a, b = saved[key], current[key]
        if isinstance(a, dict) and isinstance(b, dict):
            found += differences(a, b, dotted + ".")
        elif a != b:
            found.append(dotted)
    return found


# Keys added since runs first saved their config, with the value that means what such a run did.
ADDED_KEYS = {"train.ema_rates": []}


def upgraded(saved: dict[str, Any]) -> dict[str, Any]:
    """A config saved in an older checkpoint, with the keys added since at their old meaning, so
    they do not count as changed."""
    upgraded = copy.deepcopy(saved)
    for dotted, value in ADDED_KEYS.items():
        *tables, key = dotted.split(".")
        table = upgraded
        for name in tables:
            table = table.get(name) if isinstance(table, dict) else None
        if isinstance(table, dict) and key not in table:
            table[key] = copy.deepcopy(value)
    return upgraded


def _under(dotted: str, keys: tuple[str, ...]) -> bool:
    return any(dotted == key or dotted.startswith(key + ".") for key in keys)


def check_same_function(saved: dict[str, Any] | None, current: Config, what: str, resuming: bool) -> None:
    """Refuse a checkpoint whose saved config trained another function than ``current`` describes
    (another method's checkpoint copied in, an edited config.toml), naming the differing keys.
    ``resuming``: everything but RESUMABLE_CHANGES must agree; else only SAMPLED_FUNCTION."""
    if not isinstance(saved, dict):  # checkpoints written before configs were saved in them
        return
    found = differences(upgraded(saved), current.to_dict())
    if resuming:
        found = [key for key in found if _changes_trained_function(key, current.method)]
    else:
        found = [key for key in found if _under(key, SAMPLED_FUNCTION)]
    if found:
        shown = ", ".join(found[:6]) + (f" and {len(found) - 6} more" if len(found) > 6 else "")
        raise GenkitError(f"{what} was trained with another config: {shown} differ{'s' if len(found) == 1 else ''}")


def changed_for_resume(saved: Config, changes: list[tuple[dict[str, Any], str]], registries, folder: str | Path = "RUN") -> Config:
    """``saved`` (a run's config) with ``changes`` (values, the source to name: "--set KEY=V")
    layered over it, for a resumed run. Only keys in RESUMABLE_CHANGES (and options of methods
    the run does not train) may change; any other is one GenkitError naming the key: the
    checkpoint's weights, optimizer state and curriculum position belong to the old function."""
    layers = Layers()
    layers.add(saved.to_dict(), f"{folder}/config.toml")
    for values, source in changes:
        layers.add(values, source)
    changed = resolve(layers, registries)
    for key in differences(saved.to_dict(), changed.to_dict()):
        if _changes_trained_function(key, saved.method):
            raise GenkitError(
                f"{layers.source_of(key)}: {key} changes the function the run trains, so a resumed run keeps it (a resumed run "
                f"may change only {', '.join(RESUMABLE_CHANGES)}); start a new run with --config {folder}/config.toml to change it"
            )
    return changed


def _changes_trained_function(dotted: str, method: str) -> bool:
    """What a resumed run may not change: a key outside RESUMABLE_CHANGES, unless it is an option
    of a method the run does not train (a preset may carry them)."""
    other_method = dotted.startswith("methods.") and not _under(dotted, (f"methods.{method}",))
    return not _under(dotted, RESUMABLE_CHANGES) and not other_method


def config_layers(
    registries,
    preset: str | None = None,
    config_file: str | Path | None = None,
    assignments: list[str] = (),
    flags: dict[str, Any] | None = None,
) -> Layers:
    """The layers in precedence order: preset < --config < --set < flags (None flags are skipped)."""
    layers = Layers()
    if preset is not None:
        layers.add(read_toml(preset_path(preset, registries)), f"preset {preset}")
    if config_file is not None:
        layers.add(read_toml(config_file), str(config_file))
    for text in assignments:
        layers.add(parse_assignment(text), f"--set {text}")
    for dotted, value in (flags or {}).items():
        if value is not None:
            layers.add(nest(dotted, value), f"flag for {dotted}")
    return layers


def load_config(
    registries,
    preset: str | None = None,
    config_file: str | Path | None = None,
    assignments: list[str] = (),
    flags: dict[str, Any] | None = None,
) -> Config:
    """Merge the layers in precedence order and validate them."""
    return resolve(config_layers(registries, preset, config_file, assignments, flags), registries)


def nest(dotted: str, value: Any) -> dict[str, Any]:
    """("a.b", 1) -> {"a": {"b": 1}}."""
    nested: Any = value
    for key in reversed(dotted.split(".")):
        nested = {key: nested}
    return nested
