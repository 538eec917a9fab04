"""Errors caused by the user's input: the CLI prints them as one line, without a traceback."""


class GenkitError(Exception):
    """A mistake in what the user asked for (config, flag, path, plugin name)."""


class TrainingInterrupted(GenkitError):
    """Raised after a clean stop (Ctrl-C, SIGTERM): the last checkpoint holds everything.
    ``run_path``: the run folder that resumes from it (None: the caller says how to continue)."""

    def __init__(self, message: str, run_path=None):
        super().__init__(message)
        self.run_path = run_path


class TrainingDiverged(GenkitError):
    """The loss became NaN or infinite; the last good checkpoint was kept."""
