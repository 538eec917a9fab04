"""User errors become one red line on stderr and a non-zero exit code, never a traceback."""

from __future__ import annotations

import functools
import re
import shlex
import warnings

import typer
from rich.console import Console

from genkit.errors import GenkitError, GenkitWarning, TrainingInterrupted

console = Console()
error_console = Console(stderr=True)

INTERRUPTED_EXIT_CODE = 130

# Library errors name options as the Python API spells them, in backticks (`search_samples`);
# on the command line they are flags.
FLAGS = {
    "levels": "--levels", "metric": "--metric", "steps": "--steps", "search_samples": "--search-samples",
    "search_iterations": "--search-iterations", "out": "--out", "teacher": "--teacher", "method": "--method",
    "png_dir": "--png-dir", "resume": "--resume", "num": "--num", "seed": "--seed", "label": "--label", "batch_size": "--batch-size",
}


def as_flags(message: str) -> str:
    """A library error's option names replaced by the flags that set them."""
    return re.sub(r"`(\w+)`", lambda m: FLAGS.get(m.group(1), m.group(0)), message)


def resume_command(path) -> str:
    return f"genkit train --resume --out {shlex.quote(str(path))}"


def user_message(error: GenkitError) -> str:
    """What the command line says of a library error."""
    message = as_flags(str(error))
    if isinstance(error, TrainingInterrupted) and error.run_path is not None:
        message += f"; continue with: {resume_command(error.run_path)}"
    return message


def handles_user_errors(command):
    """Decorate a Typer command (built-in or a plugin's) so GenkitErrors exit cleanly."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except GenkitError as error:
            error_console.print(f"[bold red]error:[/] {user_message(error)}", highlight=False, soft_wrap=True)
            code = INTERRUPTED_EXIT_CODE if isinstance(error, TrainingInterrupted) else 1
            raise typer.Exit(code) from None
        except OSError as error:  # a path the user gave: missing, not writable, a file for a folder
            where = f": {error.filename}" if error.filename else ""
            error_console.print(f"[bold red]error:[/] {error.strerror or error}{where}", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            error_console.print("[bold red]interrupted[/]", highlight=False)
            raise typer.Exit(INTERRUPTED_EXIT_CODE) from None

    return wrapper


def show_plugin_warnings_as_lines() -> None:
    """A broken plugin is reported in one yellow line instead of Python's two-line warning."""
    original = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, GenkitWarning):
            error_console.print(f"[yellow]warning:[/] {message}", highlight=False, soft_wrap=True)
        else:
            original(message, category, filename, lineno, file, line)

    warnings.showwarning = show
