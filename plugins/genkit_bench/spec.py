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
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from genkit import config as configuration
from genkit import plugins
from genkit.errors import GenkitError
from genkit.schema import Check, option, positive, to_plain

FIXED_KEYS = ("method", "seed", "train.steps", "train.batch_size")  # the budget: no override may set them
DEFAULT_LEVELS = [0.821]  # iCT's CIFAR-10 2-step level (Song & Dhariwal 2023)

descending = Check(lambda levels: all(later < earlier for earlier, later in zip(levels, levels[1:])), "must descend")
step_counts = Check(
    lambda steps: bool(steps) and all(k >= 1 for k in steps) and len(set(steps)) == len(steps),
    "must list different step counts of 1 or more",
)


def _check_levels(holder: Any) -> None:
    """levels positive, and not together with two_step_sigma (its older spelling)."""
    if holder.levels and holder.two_step_sigma:
        raise ValueError("sets both levels and two_step_sigma (the older spelling of levels = [x]); keep levels")
    if any(not tau > 0 for tau in holder.levels):
        raise ValueError(f"levels must be positive, got {holder.levels}")


def _fixed_key_in(overrides: dict) -> str | None:
    return next((dotted for dotted in FIXED_KEYS if _has_key(overrides, dotted)), None)


FIXED_TEXT = "the budget is fixed by the bench (bench.steps, bench.batch_size, seeds) for every method"


@dataclass
class PaperBudget:
    """A run's training budget in its paper: ``--dry-run --estimate`` prints the hours it would
    take on the device it timed the run on."""

    steps: int = option(0, "training iterations in the paper", positive)
    batch_size: int = option(0, "the paper's batch size", positive)
    source: str = option("", "where the figures come from: paper, table or script")

    def __post_init__(self):
        if not self.steps or not self.batch_size:
            raise ValueError("needs both steps and batch_size")


@dataclass
class RunSpec:
    """One model the bench trains per seed: a table of ``bench.runs``."""

    method: str = option("", "a registered training method")
    label: str = option("", "name in tables and plots (default: the run's key)")
    role: Literal["teacher", "contender", "reference"] = option("contender", "teacher | contender | reference")
    teacher: str = option("", "key of the run whose folder becomes the method's teacher run")
    levels: list[float] = option([], "this run's multistep levels, descending (empty: the bench's)", descending)
    two_step_sigma: float = option(0.0, "older spelling of levels = [two_step_sigma] (0: the bench's levels)", positive)
    overrides: dict[str, Any] = option(default_factory=dict, help="config keys layered over the training preset")
    paper_budget: PaperBudget | None = option(None, "the run's budget in its paper (steps, batch_size, source), for the estimate")
    name = ""  # its key in bench.runs (not an option: no annotation)

    def __post_init__(self):
        if not self.method:
            raise ValueError("method is missing")
        _check_levels(self)
        fixed = _fixed_key_in(self.overrides)
        if fixed:
            raise ValueError(f"overrides sets {fixed}; {FIXED_TEXT}")


@dataclass
class BenchSpec:
    """The ``[bench]`` table of a bench preset, validated by the option schema."""

    title: str = option("", "one line shown by `genkit bench --list`")
    training_preset: str = option("toy2d", "the genkit training preset (name or TOML file) every run starts from")
    seeds: int = option(1, "seeds 0..seeds-1 unless --seeds says otherwise", positive)
    steps: int = option(1000, "training steps K, the same for every method", positive)
    batch_size: int = option(256, "training batch size, the same for every method", positive)
    sampling_steps: list[int] = option([1, 2], "consistency models are scored at these", step_counts)
    levels: list[float] = option([], "multistep levels, descending: k steps use the first k - 1 (empty: [0.821])", descending)
    two_step_sigma: float = option(0.0, "older spelling of levels = [two_step_sigma]; after loading, always levels[0]", positive)
    eval_samples: int = option(5000, "samples per final score (and held-out data points to score against)", positive)
    curve_every: int = option(0, "training steps between scores for the metric-vs-step plot (0: none)", Check(lambda v: v >= 0, "must be 0 or positive"))
    curve_samples: int = option(1000, "samples per curve point", positive)
    metric: str = option("swd", "the evaluator the verdict is computed on")
    floor: bool = option(True, "also score held-out data against the reference: the data-vs-data floor")
    compare: list[str] = option(["ict", "cd"], "the two runs the verdict compares")
    torch_threads: int = option(0, "CPU threads for torch while the bench runs (0: torch's default)", Check(lambda v: v >= 0, "must be 0 (torch's default) or positive"))
    level_search: bool = option(False, "choose each consistency model's levels by the greedy search of Song et al. (2023) on the verdict's metric, per seed, on draws apart from the scoring one (a run's own levels are kept)")
    search_samples: int = option(2000, "samples per metric evaluation of the level search", positive)
    search_iterations: int = option(12, "ternary-search steps per level (2 x this + 1 evaluations each)", positive)
    seconds_per_step: dict[str, float] = option(default_factory=dict, help="run key -> measured training seconds per step, for the cost estimate printed before training")
    seconds_per_step_batch: int = option(0, "the batch size seconds_per_step was measured at (0: bench.batch_size)", Check(lambda v: v >= 0, "must be 0 or positive"))
    seconds_per_step_on: str = option("", "the machine seconds_per_step was measured on (shown with the estimate)")
    notes: list[str] = option([], "deviations from the papers, copied into the report")
    overrides: dict[str, Any] = option(default_factory=dict, help="config keys layered over the training preset for every run")
    runs: dict[str, RunSpec] = option(default_factory=dict, help="run key -> its table, trained in this order")
    # not keys of the table (no annotation, so no fields): filled by load_spec and from runs
    name = ""  # the preset's name
    source = ""  # the file read (absolute for built-ins)
    given = ""  # the preset as the user named it
    preset_budget = None  # a dict: steps, batch_size and seeds as the preset file sets them, before --set and --seeds
    # run_list, set by __post_init__: the runs of runs, in order (a caller may narrow it)

    def __post_init__(self):
        """The checks that span several keys; ValueErrors become one-line errors naming bench."""
        if not self.runs:
            raise ValueError("runs must be a table of runs")
        for key, run in self.runs.items():
            run.name, run.label = key, run.label or key
        self.run_list = list(self.runs.values())
        _check_levels(self)
        if not self.levels:
            self.levels = [self.two_step_sigma] if self.two_step_sigma else list(DEFAULT_LEVELS)
        self.two_step_sigma = self.levels[0]
        fixed = _fixed_key_in(self.overrides)
        if fixed:
            raise ValueError(f"overrides sets {fixed}; {FIXED_TEXT}")
        names = list(self.runs)
        unknown = sorted(set(self.seconds_per_step) - set(names))
        if unknown:
            raise ValueError(f"seconds_per_step names no run: '{unknown[0]}' (runs: {', '.join(names)})")
        if any(not value > 0 for value in self.seconds_per_step.values()):
            raise ValueError(f"seconds_per_step must be positive, got {self.seconds_per_step}")
        if len(self.compare) != 2 or any(name not in names for name in self.compare):
            raise ValueError(f"compare must name two runs of runs ({', '.join(names)}), got {self.compare}")
        for name in self.compare:
            if self.runs[name].role == "teacher":
                raise ValueError(f"compare: run '{name}' is a teacher; compare consistency models")
        for index, run in enumerate(self.run_list):
            if run.teacher:
                if run.teacher not in names:
                    raise ValueError(f"runs.{run.name}.teacher names no run: '{run.teacher}' (runs: {', '.join(names)})")
                if names.index(run.teacher) > index:
                    raise ValueError(f"runs.{run.name}: its teacher '{run.teacher}' must come before it in runs")
                if self.runs[run.teacher].role != "teacher":
                    raise ValueError(f"runs.{run.name}.teacher: run '{run.teacher}' must have role = \"teacher\"")
            if run.role != "teacher" and not self.searches_levels(run):  # the teacher samples with Heun; the search finds its own
                _check_enough_levels(self, run)

    def run(self, name: str) -> RunSpec:
        return next(r for r in self.run_list if r.name == name)

    def run_levels(self, run: RunSpec) -> list[float]:
        """The levels a run samples with: its own, else the bench's."""
        if run.levels:
            return list(run.levels)
        return [run.two_step_sigma] if run.two_step_sigma else list(self.levels)

    def searches_levels(self, run: RunSpec) -> bool:
        """Whether a run's multistep levels come from the level search (bench.level_search): a
        consistency model without levels of its own, scored at 2 steps or more."""
        own = run.levels or run.two_step_sigma
        return self.level_search and run.role != "teacher" and not own and self.max_sampling_steps >= 2

    @property
    def max_sampling_steps(self) -> int:
        return max(self.sampling_steps)

    def to_dict(self) -> dict[str, Any]:
        """The spec as results.json records it: each run as the keys its table sets."""
        values = dataclasses.asdict(self)
        values["runs"] = {run.name: _run_table(run) for run in self.run_list}
        return {**values, "name": self.name, "source": self.source, "given": self.given}


def _run_table(run: RunSpec) -> dict[str, Any]:
    """A run's keys that differ from the defaults (its label: from its key)."""
    defaults = {**to_plain(RunSpec(method="-")), "label": run.name}
    return {key: value for key, value in to_plain(run).items() if value != defaults.get(key)}  # None defaults are left out


# ----------------------------------------------------------------------------- presets
# Bench presets are found by these two functions alone (names, and a path by name).


def preset_names() -> list[str]:
    return configuration.preset_names(plugins.registries(), "bench_presets")


def preset_path(name: str) -> Path:
    """A registered bench preset by name, or a user's own TOML file by path."""
    return configuration.preset_path(name, plugins.registries(), "bench_presets")


def load_spec(preset: str, assignments: list[str] = (), seeds: int | None = None) -> BenchSpec:
    """Read and validate a bench preset; ``--set bench.KEY=VALUE`` and --seeds layer over it."""
    path = preset_path(preset)
    layers = configuration.Layers()
    layers.add(configuration.read_toml(path), f"bench preset {preset}")
    for text in assignments:
        layers.add(configuration.parse_assignment(text), f"--set {text}")
    if seeds is not None:
        layers.add({"bench": {"seeds": seeds}}, "--seeds")
    unknown = sorted(set(layers.data) - {"bench"})
    if unknown:
        raise GenkitError(f"unknown key '{unknown[0]}' ({layers.source_of(unknown[0])}); a bench preset holds one [bench] table")
    if "bench" not in layers.data:
        raise GenkitError(f"{path} has no [bench] table")
    spec = configuration.parser(layers, registries=None).dataclass(BenchSpec, layers.data["bench"], "bench")
    spec.name, spec.source, spec.given = Path(preset).stem, str(path), str(preset)
    own = configuration.read_toml(path).get("bench", {})
    defaults = {f.name: f.default for f in dataclasses.fields(BenchSpec) if f.name in ("steps", "batch_size", "seeds")}
    spec.preset_budget = {key: own.get(key, default) for key, default in defaults.items()}
    spec.training_preset = _training_preset(spec.training_preset, path)
    return spec


def display_source(spec: BenchSpec) -> str:
    """The preset as a reader should see it: 'built-in NAME' or the path the user gave, never a
    path of the machine it was installed on."""
    builtin = preset_path(spec.name) if spec.name in preset_names() else None
    if builtin is not None and Path(spec.source) == builtin:
        return f"built-in bench preset {spec.name}"
    return spec.given


def _check_enough_levels(spec: BenchSpec, run: RunSpec) -> None:
    """k-step sampling of a consistency model needs k - 1 levels."""
    needed = spec.max_sampling_steps - 1
    levels = spec.run_levels(run)
    if len(levels) < needed:
        own = run.levels or run.two_step_sigma
        where = f"bench.runs.{run.name}.{'levels' if run.levels else 'two_step_sigma'}" if own else "bench.levels"
        raise ValueError(
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
