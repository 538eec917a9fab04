"""Benchmarks: ``genkit bench run --preset NAME`` trains the runs of a bench preset under one budget
per seed (``genkit bench cd-vs-ict``: the default preset, an EDM teacher, CD from it, iCT and CT),
scores every model at 1 and 2 steps and writes a table, JSON and a report."""

from importlib import resources
from pathlib import Path

from genkit.hookspecs import hookimpl
from genkit.kinds import Kind

# The kind this plugin owns: any plugin can add a bench preset (``register_bench_presets``).
genkit_kinds = (
    Kind(
        "bench_presets", "bench preset",
        "Bench presets: ``register(name, path)`` with the path of a TOML file holding one [bench] table "
        "(`genkit bench run --preset NAME`).",
    ),
)


@hookimpl
def register_bench_presets(register):
    folder = Path(str(resources.files(__name__) / "presets"))
    for path in sorted(folder.glob("*.toml")):
        register(path.stem, path, default=path.stem == "toy2d")


@hookimpl
def register_commands(cli):
    from genkit_bench.cli import bench_app

    cli.add_typer(bench_app, name="bench")
