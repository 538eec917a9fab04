"""Benchmarks: ``genkit bench cd-vs-ict`` trains an EDM teacher, CD from it, iCT and CT under one
budget per seed, scores every model at 1 and 2 steps and writes a table, JSON and a report."""

from genkit.hookspecs import hookimpl


@hookimpl
def register_commands(cli):
    from genkit_bench.cli import bench_app

    cli.add_typer(bench_app, name="bench")
