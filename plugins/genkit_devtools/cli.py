"""``genkit new-plugin NAME [--out DIR]``: start a plugin package from a working example."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from genkit.cli.errors import console, handles_user_errors

from genkit_devtools import scaffold


@handles_user_errors
def new_plugin_command(
    name: Annotated[str, typer.Argument(help="Plugin name, e.g. my-loss: the entry point, the package genkit_my_loss and the loss it registers.")],
    out: Annotated[Optional[Path], typer.Option(help="Folder to write the package into, new or empty (default: ./genkit-NAME).")] = None,
) -> None:
    """Write a plugin package that registers a loss, with its tests and README.

    Its tests pass before it is installed (pytest in the folder); pip install -e makes it found."""
    names = scaffold.check_name(name)
    folder = out if out is not None else Path(names.distribution)
    written = scaffold.write(names, folder)
    console.print(f"wrote plugin '{name}' ({len(written)} files) to [cyan]{folder}[/]", highlight=False)
    console.print(f"next: cd {folder} && pytest, then pip install -e . and genkit plugins", highlight=False)

