"""The ``genkit`` command line."""

from genkit.cli.errors import console, handles_user_errors

__all__ = ["console", "handles_user_errors"]
