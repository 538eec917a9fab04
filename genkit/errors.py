"""Errors caused by the user's input: the CLI prints them as one line, without a traceback."""


class GenkitError(Exception):
    """A mistake in what the user asked for (config, flag, path, plugin name)."""


class TrainingInterrupted(GenkitError):
    """Raised after a clean stop (Ctrl-C, SIGTERM): the last checkpoint holds everything."""


class TrainingDiverged(GenkitError):
    """The loss became NaN or infinite; the last good checkpoint was kept."""
