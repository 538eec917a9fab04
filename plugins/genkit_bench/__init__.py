"""Benchmarks: ``genkit bench run --preset NAME`` trains the runs of a bench preset under one budget
per seed (``genkit bench cd-vs-ict``: the default preset, an EDM teacher, CD from it, iCT and CT),
scores every model at 1 and 2 steps and writes a table, JSON and a report."""

from genkit.hookspecs import hookimpl


@hookimpl
def register_commands(cli):
    from genkit_bench.cli import bench_app

    cli.add_typer(bench_app, name="bench")
