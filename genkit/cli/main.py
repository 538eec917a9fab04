"""genkit's command-line app: train, sample, inspect plugins and configs."""

from __future__ import annotations

import gc
import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

import genkit
from genkit import config as configuration
from genkit import plugins
from genkit.cli.errors import console, handles_user_errors, show_plugin_warnings_as_lines

app = typer.Typer(
    name="genkit",
    help="Train, sample and benchmark consistency models (CD, CT, iCT) and their EDM teachers.",
    context_settings={"help_option_names": ["-h", "--help"]},
    rich_markup_mode="rich",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
config_app = typer.Typer(help="Inspect presets and resolved configurations.", no_args_is_help=True)
app.add_typer(config_app, name="config")


def _version(value: bool) -> None:
    if value:
        console.print(f"genkit {genkit.__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        Optional[bool], typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = None,
) -> None:
    """genkit: one-step image generators, trained and compared honestly."""


SetOption = Annotated[list[str], typer.Option("--set", help="Override a config key: --set train.lr=3e-4 (repeatable).")]
ConfigOption = Annotated[Optional[Path], typer.Option("--config", help="A TOML file layered over the preset.")]


@app.command("plugins")
@handles_user_errors
def plugins_command(as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False) -> None:
    """List installed plugins and what each registers."""
    loaded = plugins.load()
    loaded.note_commands(app)
    rows = [
        {
            "name": info.name,
            "module": info.module,
            "distribution": info.distribution,
            "version": info.version,
            "builtin": info.builtin,
            "registers": info.registered,
            "commands": info.commands,
            "error": info.error,
        }
        for info in loaded.info.values()
    ]
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    table = Table(title="genkit plugins")
    for column in ("plugin", "package", "module", "registers"):
        table.add_column(column)
    for row in rows:
        registers = [f"{kind}: {', '.join(names)}" for kind, names in row["registers"].items()]
        registers += [f"commands: {', '.join(row['commands'])}"] if row["commands"] else []
        package = f"{row['distribution']} {row['version']}".strip() + (" (built-in)" if row["builtin"] else "")
        status = f"[red]broken: {row['error']}[/]" if row["error"] else "\n".join(registers)
        table.add_row(row["name"], package, row["module"], status)
    console.print(table)


@config_app.command("show")
@handles_user_errors
def config_show(
    preset: Annotated[Optional[str], typer.Argument(help="A registered preset's name or a TOML file (default: the plugins' default preset).")] = None,
    method: Annotated[Optional[str], typer.Option(help="Training method.")] = None,
    config_file: ConfigOption = None,
    assignments: SetOption = [],
) -> None:
    """Print the fully resolved configuration of a preset as TOML."""
    registries = plugins.registries()
    preset = preset or configuration.default_preset(registries)
    layers = configuration.config_layers(registries, preset, config_file, assignments, flags={"method": method})
    resolved = configuration.resolve(layers, registries)
    notes = "".join(f"# note: {line}\n" for line in layers.hidden)
    print(notes + configuration.to_toml(resolved.to_dict()), end="")


@config_app.command("presets")
@handles_user_errors
def config_presets() -> None:
    """List the registered presets (the default one marked)."""
    registries = plugins.registries()
    for name in configuration.preset_names(registries):
        plugin = registries.presets.entry(name).plugin
        console.print(f"{name}  [dim]({plugin}{', default' if name == registries.presets.default else ''})[/]")


from genkit.cli import eval_command, run_commands  # noqa: E402  (register train, sample and eval on ``app``)

run_commands.register(app)
eval_command.register(app)

from genkit.cli import run_tools  # noqa: E402  (genkit curves, genkit export)

run_tools.register(app)



_plugin_commands_added = False


def build_app() -> typer.Typer:
    """The app with every plugin's commands added (once)."""
    global _plugin_commands_added
    if not _plugin_commands_added:
        plugins.load().add_commands(app)
        _plugin_commands_added = True
    return app


def run() -> None:
    show_plugin_warnings_as_lines()
    try:
        build_app()()
    finally:
        leave_process_group()


def leave_process_group() -> None:
    """Under torchrun, destroy the process group a command joined before the process exits
    (never importing torch for commands that did not)."""
    distributed = sys.modules.get("torch.distributed")
    if distributed is not None and distributed.is_available() and distributed.is_initialized():
        gc.collect()  # models wrapped in DistributedDataParallel go first
        distributed.destroy_process_group()


if __name__ == "__main__":  # torchrun --nproc_per_node=8 -m genkit.cli.main train ...
    run()
