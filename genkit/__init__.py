"""genkit: consistency models (CD, CT, iCT) and their EDM teachers, as plugins."""

__version__ = "0.1.0"
