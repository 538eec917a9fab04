"""The ``genkit`` command's entry point. Importing the command line pulls in torch, which takes
seconds: a Ctrl-C in that time ends the command quietly (exit 130) instead of with a traceback."""

import signal
import sys


def _interrupted_while_starting(signum, frame):
    sys.stderr.write("interrupted\n")
    raise SystemExit(130)


_default = signal.signal(signal.SIGINT, _interrupted_while_starting)
from genkit.cli.main import run as _run_command_line  # noqa: E402  (after the handler, on purpose)

signal.signal(signal.SIGINT, _default)


def run() -> None:
    _run_command_line()
