"""The intermediate noise levels of multistep consistency sampling (Song et al. 2023, Algorithm 1):
tau_1 > tau_2 > ... , each inside (sigma_min, sigma_max), since the sampler renoises to tau with
sqrt(tau^2 - sigma_min^2) z. One value type, checked once wherever levels come from."""

from __future__ import annotations

import math
from typing import Iterator, Sequence

from genkit.errors import GenkitError


class Levels(Sequence[float]):
    """Descending levels strictly between ``low`` and ``high``; built only through :meth:`check`."""

    def __init__(self, values: tuple[float, ...]):
        self.values = values

    @classmethod
    def check(
        cls, values: Sequence[float], low: float, high: float, what: str = "levels",
        steps: int | None = None, bounds: str = "noise.sigma_min and noise.sigma_max",
    ) -> "Levels":
        """The levels as floats, or one GenkitError naming ``what`` (where they came from) and
        ``bounds`` (what low and high are). ``steps``: exactly steps - 1 levels."""
        values = tuple(float(v) for v in values)
        for tau in values:
            if not (low < tau < high and math.isfinite(tau)):
                raise GenkitError(f"{what} must lie between {bounds} ({low}, {high}), got {tau:g}")
        if any(later >= earlier for earlier, later in zip(values, values[1:])):
            raise GenkitError(f"{what} must descend, got {', '.join(f'{t:g}' for t in values)}")
        if steps is not None and steps - 1 != len(values):
            raise GenkitError(
                f"{steps}-step sampling takes {steps - 1} intermediate level(s), got {len(values)}: {', '.join(f'{t:g}' for t in values)}"
            )
        return cls(values)

    def __getitem__(self, index):
        return self.values[index]

    def __len__(self) -> int:
        return len(self.values)

    def __iter__(self) -> Iterator[float]:
        return iter(self.values)

    def __eq__(self, other) -> bool:
        return list(self) == list(other) if isinstance(other, Sequence) else NotImplemented

    def __repr__(self) -> str:
        return f"Levels({list(self.values)})"
