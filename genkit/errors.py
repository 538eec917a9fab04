"""Errors caused by the user's input: the CLI prints them as one line, without a traceback."""


class GenkitError(Exception):
    """A mistake in what the user asked for (config, flag, path, plugin name)."""


class TrainingInterrupted(GenkitError):
    """Raised after a clean stop (Ctrl-C, SIGTERM): the last checkpoint holds everything.
    ``run_path``: the run folder that resumes from it (None: the caller says how to continue)."""

    def __init__(self, message: str, run_path=None):
        super().__init__(message)
        self.run_path = run_path


class GenkitWarning(UserWarning):
    """Something went wrong that genkit worked around (a plugin skipped, a logger disabled): the
    CLI prints it as one line."""


class LoggerWarning(GenkitWarning):
    """A training logger failed and was disabled; metrics.jsonl still has every record."""


class TrainingDiverged(GenkitError):
    """The loss became NaN or infinite; the last good checkpoint was kept."""
