"""genkit: consistency models (CD, CT, iCT) and their EDM teachers, as plugins."""

__version__ = "0.1.0"

from genkit.hookspecs import hookimpl  # noqa: E402  (plugins write @genkit.hookimpl)

__all__ = ["__version__", "hookimpl", "load", "train", "Model"]


def __getattr__(name: str):
    """``genkit.load``, ``genkit.train`` and ``genkit.Model`` come from genkit.api, imported on
    first use so that a plugin's ``from genkit import hookimpl`` stays light."""
    if name in ("load", "train", "Model"):
        from genkit import api

        return getattr(api, name)
    raise AttributeError(f"module 'genkit' has no attribute '{name}'")
