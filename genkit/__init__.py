"""genkit: consistency models (CD, CT, iCT) and their EDM teachers, as plugins."""

__version__ = "0.1.0"

from genkit.hookspecs import hookimpl  # noqa: E402  (plugins write @genkit.hookimpl)

__all__ = ["__version__", "hookimpl"]
