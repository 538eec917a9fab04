"""Bench presets: TOML files with a ``[bench]`` table, validated into a BenchSpec, and the
training configs they imply (one per run and seed), layered like every genkit config:

    training preset < bench.overrides < bench.runs.NAME.overrides < the bench's fixed keys

The fixed keys (method, seed, train.steps, train.batch_size, evaluation cadence, the multistep
levels, a student's teacher folder) come last, so no override can make the budget unfair.

Consistency models are scored at each k of ``bench.sampling_steps``; k-step sampling uses the first
k - 1 of ``bench.levels`` (descending), or of the run's own ``levels``. ``two_step_sigma`` (bench
or run) is the older spelling of a single level, ``levels = [x]``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from genkit import config as configuration
from genkit import plugins
from genkit.errors import GenkitError
from genkit.schema import to_plain

ROLES = ("teacher", "contender", "reference")
FIXED_KEYS = ("method", "seed", "train.steps", "train.batch_size")  # the budget: no override may set them


@dataclass
class RunSpec:
    """One model the bench trains per seed."""

    method: str = ""  # a registered training method
    label: str = ""  # name in tables and plots (default: the run's key)
    role: str = "contender"  # teacher | contender | reference
    teacher: str = ""  # key of the run whose folder becomes methods.METHOD.teacher
    levels: list[float] = field(default_factory=list)  # this run's multistep levels, descending (empty: the bench's)
    two_step_sigma: float = 0.0  # older spelling of levels = [two_step_sigma] (0: the bench's levels)
    overrides: Any = field(default_factory=dict)  # config keys layered over the training preset
    name: str = ""  # filled from the table key


@dataclass
class BenchSpec:
    """The validated ``[bench]`` table of a bench preset."""

    title: str = ""  # one line shown by `genkit bench --list`
    training_preset: str = "toy2d"  # the genkit training preset (name or TOML file) every run starts from
    seeds: int = 1  # seeds 0..seeds-1 unless --seeds says otherwise
    steps: int = 1000  # training steps K, the same for every method
    batch_size: int = 256  # training batch size, the same for every method
    sampling_steps: list[int] = field(default_factory=lambda: [1, 2])  # consistency models are scored at these
    levels: list[float] = field(default_factory=list)  # multistep levels, descending: k steps use the first k - 1 (empty: [0.821])
    two_step_sigma: float = 0.0  # older spelling of levels = [two_step_sigma]; after loading, always levels[0]
    eval_samples: int = 5000  # samples per final score (and held-out data points to score against)
    curve_every: int = 0  # training steps between scores for the metric-vs-step plot (0: none)
    curve_samples: int = 1000  # samples per curve point
    metric: str = "swd"  # the evaluator the verdict is computed on
    floor: bool = True  # also score held-out data against the reference: the data-vs-data floor
    compare: list[str] = field(default_factory=lambda: ["ict", "cd"])  # the two runs the verdict compares
    torch_threads: int = 0  # CPU threads for torch while the bench runs (0: torch's default)
    notes: list[str] = field(default_factory=list)  # deviations from the papers, copied into the report
    overrides: Any = field(default_factory=dict)  # config keys layered over the training preset for every run
    runs: Any = field(default_factory=dict)  # run key -> RunSpec table, trained in this order
    # filled by load_spec:
    name: str = ""
    source: str = ""  # the file read (absolute for built-ins)
    given: str = ""  # the preset as the user named it
    run_list: list[RunSpec] = field(default_factory=list)

    def run(self, name: str) -> RunSpec:
        return next(r for r in self.run_list if r.name == name)

    def run_levels(self, run: RunSpec) -> list[float]:
        """The levels a run samples with: its own, else the bench's."""
        if run.levels:
            return list(run.levels)
        return [run.two_step_sigma] if run.two_step_sigma else list(self.levels)

    @property
    def max_sampling_steps(self) -> int:
        return max(self.sampling_steps)

    def to_dict(self) -> dict[str, Any]:
        values = dataclasses.asdict(self)
        values.pop("run_list")
        return values


# ----------------------------------------------------------------------------- presets


def preset_names() -> list[str]:
    return configuration.preset_names(plugins.registries(), "bench_presets")


def preset_path(name: str) -> Path:
    """A registered bench preset by name, or a user's own TOML file by path."""
    return configuration.preset_path(name, plugins.registries(), "bench_presets")


def load_spec(preset: str, assignments: list[str] = (), seeds: int | None = None) -> BenchSpec:
    """Read and validate a bench preset; ``--set bench.KEY=VALUE`` and --seeds layer over it."""
    path = preset_path(preset)
    source = f"bench preset {preset}"
    layers = configuration.Layers()
    raw = configuration.read_toml(path)
    layers.add(raw, source)
    for text in assignments:
        layers.add(configuration.parse_assignment(text), f"--set {text}")
    if seeds is not None:
        layers.add({"bench": {"seeds": seeds}}, "--seeds")
    unknown = sorted(set(layers.data) - {"bench"})
    if unknown:
        raise GenkitError(f"unknown key '{unknown[0]}' ({layers.source_of(unknown[0])}); a bench preset holds one [bench] table")
    if "bench" not in layers.data:
        raise GenkitError(f"{path} has no [bench] table")
    parser = configuration.parser(layers, registries=None)
    spec = parser.dataclass(BenchSpec, layers.data["bench"], "bench")
    spec.name, spec.source, spec.given = Path(preset).stem, str(path), str(preset)
    spec.run_list = _parse_runs(spec, layers, parser)
    _resolve_levels(spec, layers)
    _check(spec, layers)
    spec.training_preset = _training_preset(spec.training_preset, path)
    return spec


def display_source(spec: BenchSpec) -> str:
    """The preset as a reader should see it: 'built-in NAME' or the path the user gave, never a
    path of the machine it was installed on."""
    builtin = preset_path(spec.name) if spec.name in preset_names() else None
    if builtin is not None and Path(spec.source) == builtin:
        return f"built-in bench preset {spec.name}"
    return spec.given


def _parse_runs(spec: BenchSpec, layers: configuration.Layers, parser) -> list[RunSpec]:
    if not isinstance(spec.runs, dict) or not spec.runs:
        raise GenkitError(f"bench.runs must be a table of runs ({layers.source_of('bench.runs')})")
    runs = []
    for name, table in spec.runs.items():
        prefix = f"bench.runs.{name}"
        if not isinstance(table, dict) or "name" in table:
            raise GenkitError(f"{prefix} must be a table with method = ... ({layers.source_of(prefix)})")
        run = parser.dataclass(RunSpec, table, prefix)
        run.name, run.label = name, run.label or name
        if not run.method:
            raise GenkitError(f"{prefix}.method is missing ({layers.source_of(prefix)})")
        if run.role not in ROLES:
            raise GenkitError(f"{prefix}.role must be one of {', '.join(ROLES)}, got '{run.role}' ({layers.source_of(prefix + '.role')})")
        if not isinstance(run.overrides, dict):
            raise GenkitError(f"{prefix}.overrides must be a table ({layers.source_of(prefix + '.overrides')})")
        runs.append(run)
    return runs


def _check(spec: BenchSpec, layers: configuration.Layers) -> None:
    def positive(key: str, value) -> None:
        if value <= 0:
            raise GenkitError(f"bench.{key} must be positive, got {value} ({layers.source_of('bench.' + key)})")

    for key in ("seeds", "steps", "batch_size", "eval_samples", "curve_samples"):
        positive(key, getattr(spec, key))
    if spec.torch_threads < 0:
        raise GenkitError(f"bench.torch_threads must be 0 (torch's default) or positive, got {spec.torch_threads}")
    if spec.curve_every < 0:
        raise GenkitError(f"bench.curve_every must be 0 or positive, got {spec.curve_every}")
    steps = spec.sampling_steps
    if not steps or any(isinstance(k, bool) or not isinstance(k, int) or k < 1 for k in steps) or len(set(steps)) < len(steps):
        raise GenkitError(
            f"bench.sampling_steps must list different step counts of 1 or more, got {steps} ({layers.source_of('bench.sampling_steps')})"
        )
    if not isinstance(spec.overrides, dict):
        raise GenkitError(f"bench.overrides must be a table ({layers.source_of('bench.overrides')})")
    names = [r.name for r in spec.run_list]
    if len(spec.compare) != 2 or any(name not in names for name in spec.compare):
        raise GenkitError(f"bench.compare must name two runs of bench.runs ({', '.join(names)}), got {spec.compare}")
    for name in spec.compare:
        if spec.run(name).role == "teacher":
            raise GenkitError(f"bench.compare: run '{name}' is a teacher; compare consistency models")
    seen: set[str] = set()
    for run in spec.run_list:
        if run.teacher:
            if run.teacher not in names:
                raise GenkitError(f"bench.runs.{run.name}.teacher names no run: '{run.teacher}' (runs: {', '.join(names)})")
            if run.teacher not in seen:
                raise GenkitError(f"bench.runs.{run.name}: its teacher '{run.teacher}' must come before it in bench.runs")
            if spec.run(run.teacher).role != "teacher":
                raise GenkitError(f"bench.runs.{run.name}.teacher: run '{run.teacher}' must have role = \"teacher\"")
        if run.role != "teacher":  # the teacher samples with Heun
            _check_enough_levels(spec, run, layers)
        for scope, overrides in (("bench.overrides", spec.overrides), (f"bench.runs.{run.name}.overrides", run.overrides)):
            for dotted in FIXED_KEYS:
                if _has_key(overrides, dotted):
                    raise GenkitError(
                        f"{scope} sets {dotted}; the budget is fixed by the bench (bench.steps, bench.batch_size, seeds) for every method"
                    )
        seen.add(run.name)


DEFAULT_LEVELS = [0.821]  # iCT's CIFAR-10 2-step level (Song & Dhariwal 2023)


def _resolve_levels(spec: BenchSpec, layers: configuration.Layers) -> None:
    """bench.levels from itself or the older two_step_sigma (one level); checked descending and
    positive, for the bench and every run. Fills spec.two_step_sigma with the first level."""
    scopes = [("bench", spec)] + [(f"bench.runs.{run.name}", run) for run in spec.run_list]
    for scope, holder in scopes:
        where = layers.source_of(scope + ".levels") if holder.levels else layers.source_of(scope + ".two_step_sigma")
        if holder.levels and holder.two_step_sigma:
            raise GenkitError(f"{scope} sets both levels and two_step_sigma (the older spelling of levels = [x]); keep levels ({where})")
        if holder.two_step_sigma < 0 or (holder.two_step_sigma == 0 and _given(layers, scope + ".two_step_sigma")):
            raise GenkitError(f"{scope}.two_step_sigma must be positive, got {holder.two_step_sigma} ({where})")
        levels = list(holder.levels)
        if any(not tau > 0 for tau in levels):
            raise GenkitError(f"{scope}.levels must be positive, got {levels} ({where})")
        if any(later >= earlier for earlier, later in zip(levels, levels[1:])):
            raise GenkitError(f"{scope}.levels must descend, got {levels} ({where})")
    if not spec.levels:
        spec.levels = [spec.two_step_sigma] if spec.two_step_sigma else list(DEFAULT_LEVELS)
    spec.two_step_sigma = spec.levels[0]


def _given(layers: configuration.Layers, dotted: str) -> bool:
    return _has_key(layers.data, dotted)


def _check_enough_levels(spec: BenchSpec, run: RunSpec, layers: configuration.Layers) -> None:
    """k-step sampling of a consistency model needs k - 1 levels."""
    needed = spec.max_sampling_steps - 1
    levels = spec.run_levels(run)
    if len(levels) < needed:
        own = run.levels or run.two_step_sigma
        where = f"bench.runs.{run.name}.{'levels' if run.levels else 'two_step_sigma'}" if own else "bench.levels"
        raise GenkitError(
            f"bench.sampling_steps asks {spec.max_sampling_steps} steps, which take {needed} levels; {where} gives "
            f"{len(levels)} ({', '.join(f'{t:g}' for t in levels)}) for run '{run.name}': give {where.rsplit('.', 1)[0]}.levels = [...]"
        )


def sampling_levels(spec: BenchSpec, run: RunSpec) -> list[float]:
    """The levels a run's config gets (sample.multistep_sigmas): the ones its sampling steps use,
    at least one (so a bench at 1 and 2 steps writes the same config as before levels existed)."""
    return spec.run_levels(run)[: max(spec.max_sampling_steps - 1, 1)]


def _has_key(values: dict, dotted: str) -> bool:
    head, _, rest = dotted.partition(".")
    if head not in values:
        return False
    return not rest or (isinstance(values[head], dict) and _has_key(values[head], rest))


def _training_preset(name: str, bench_file: Path) -> str:
    """A relative .toml path is looked up beside the bench preset first, then from the CWD."""
    candidate = Path(name)
    if candidate.suffix == ".toml" and not candidate.is_absolute() and (bench_file.parent / candidate).is_file():
        return str(bench_file.parent / candidate)
    return name


# ----------------------------------------------------------------------------- training configs


def run_layers(
    spec: BenchSpec, run: RunSpec, seed: int, teacher_folder: Path | None, teacher_key: str | None = None
) -> configuration.Layers:
    """The config layers of one run at one seed, lowest precedence first; ``teacher_key`` is the
    option (below methods.METHOD) the method reads its teacher run from."""
    layers = configuration.Layers()
    layers.add(configuration.read_toml(configuration.preset_path(spec.training_preset, plugins.registries())), f"preset {spec.training_preset}")
    layers.add(spec.overrides, f"{display_source(spec)}: bench.overrides")
    layers.add(run.overrides, f"{display_source(spec)}: bench.runs.{run.name}.overrides")
    fixed: dict[str, Any] = {
        "method": run.method,
        "seed": seed,
        "train": {
            "steps": spec.steps,
            "batch_size": spec.batch_size,
            "eval_every": spec.curve_every,
            "eval_samples": spec.curve_samples,
        },
        "sample": {"multistep_sigmas": sampling_levels(spec, run)},
    }
    if run.teacher and teacher_key:
        fixed["methods"] = {run.method: configuration.nest(teacher_key, str(teacher_folder))}
    layers.add(fixed, f"the bench ({spec.name}: fixed budget)")
    return layers


@dataclass
class Missing:
    """A component the preset names that no installed plugin registers."""

    kind: str  # method | network | dataset | evaluator
    name: str
    needed_by: str

    def __str__(self) -> str:
        return f"{self.kind} '{self.name}'"


def missing_components(layers: configuration.Layers, registries, run: RunSpec) -> list[Missing]:
    data = layers.data
    found = []
    if run.method not in registries.methods:
        found.append(Missing("method", run.method, run.name))
    for key, kind, registry in (("network", "network", registries.networks), ("data", "dataset", registries.datasets)):
        value = data.get(key, {})
        name = value if isinstance(value, str) else value.get("name") if isinstance(value, dict) else None
        if isinstance(name, str) and name not in registry:
            found.append(Missing(kind, name, run.name))
    return found


def validate_partially(layers: configuration.Layers, registries) -> dict[str, Any]:
    """Validate every section that can be without the missing components; return the plan's view.

    Sections whose component is registered are checked exactly as ``genkit train`` would (every
    part a method names included); a missing dataset, network or method is shown unvalidated.
    """
    config = configuration.parse_sections(layers, registries, lenient=frozenset({"datasets", "networks"}))
    view = config.to_dict()
    for key, registry in (("data", registries.datasets), ("network", registries.networks)):
        if getattr(config, key).name not in registry:
            view[key]["unvalidated"] = True
    methods = {}
    for name, options in dict(layers.data.get("methods", {})).items():
        if name in registries.methods:
            methods[name] = _as_dict(configuration.parse_method_options(layers, registries, name))
        elif name == config.method:
            methods[name] = {**options, "unvalidated": True}
    view["methods"] = methods
    return view


def _as_dict(options: Any) -> dict[str, Any]:
    return to_plain(options) if options is not None else {}
