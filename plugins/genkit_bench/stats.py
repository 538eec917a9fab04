"""Aggregation over seeds and the verdict: pure functions of numbers, no I/O.

The spread is the sample standard deviation over seeds (ddof = 1); one seed has no spread. Two
methods' difference "exceeds the spread" when |mean_a - mean_b| > spread_a + spread_b, that is
when their mean ± spread intervals do not overlap. Two means that print the same
(``format_number``) are a tie: a reader cannot see a difference, so the verdict claims none.
Each metric has a direction (lower is better unless its evaluator declares otherwise).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence


@dataclass(frozen=True)
class Summary:
    """Mean and spread of one number over seeds."""

    mean: float
    spread: float | None  # sample standard deviation; None with a single seed
    values: tuple[float, ...]  # one value per seed, in seed order

    def to_dict(self) -> dict:
        return {"mean": self.mean, "spread": self.spread, "values": list(self.values)}


def summarize(values: Sequence[float]) -> Summary:
    """Mean ± sample standard deviation of ``values`` (no spread for a single value)."""
    values = tuple(float(v) for v in values)
    if not values:
        raise ValueError("summarize needs at least one value")
    mean = math.fsum(values) / len(values)
    if len(values) < 2:
        return Summary(mean, None, values)
    variance = math.fsum((v - mean) ** 2 for v in values) / (len(values) - 1)
    return Summary(mean, math.sqrt(variance), values)


def format_number(value: float | None) -> str:
    """The one way every figure is written, in the terminal table, report.md and the tests."""
    if value is None:
        return "n/a"
    if value != 0 and (abs(value) >= 1e5 or abs(value) < 1e-3):
        return f"{value:.3e}"
    return f"{value:.4g}"


def format_spread(value: float) -> str:
    """A spread needs two significant digits, no more."""
    return f"{value:.2g}"


def format_summary(summary: Summary) -> str:
    """``mean ± spread`` (mean to 4 significant digits, spread to 2), or the mean alone."""
    if summary.spread is None:
        return format_number(summary.mean)
    return f"{format_number(summary.mean)} ± {format_spread(summary.spread)}"


def format_count(value: float) -> str:
    """Network evaluations: 1.23e+09 style for big counts, plain below a million."""
    return f"{value:.3g}" if value >= 1e6 else f"{value:.0f}"


def direction_words(higher_is_better: bool) -> str:
    return "higher is better" if higher_is_better else "lower is better"


def same_when_printed(x: float, y: float) -> bool:
    """Whether two figures print the same: a difference no reader of the table can see."""
    return format_number(x) == format_number(y)


@dataclass(frozen=True)
class Comparison:
    """Method a against method b on one metric at one number of steps (lower is better unless
    ``higher_is_better``)."""

    steps: int
    a: str
    b: str
    a_score: Summary
    b_score: Summary
    higher_is_better: bool = False

    @property
    def tie(self) -> bool:
        return same_when_printed(self.a_score.mean, self.b_score.mean)

    @property
    def winner(self) -> str | None:
        if self.tie:
            return None
        a_better = self.a_score.mean > self.b_score.mean if self.higher_is_better else self.a_score.mean < self.b_score.mean
        return self.a if a_better else self.b

    @property
    def difference(self) -> float:
        return abs(self.a_score.mean - self.b_score.mean)

    @property
    def spread(self) -> float | None:
        if self.a_score.spread is None or self.b_score.spread is None:
            return None
        return self.a_score.spread + self.b_score.spread

    @property
    def exceeds_spread(self) -> bool | None:
        """True or False with two or more seeds; None when there is no spread to judge by."""
        return None if self.spread is None else self.difference > self.spread

    def to_dict(self) -> dict:
        return {
            "steps": self.steps,
            "a": self.a,
            "b": self.b,
            "a_mean": self.a_score.mean,
            "b_mean": self.b_score.mean,
            "winner": self.winner,
            "higher_is_better": self.higher_is_better,
            "difference": self.difference,
            "spread": self.spread,
            "exceeds_spread": self.exceeds_spread,
        }


def _steps_phrase(steps: int) -> str:
    return f"{steps} step" if steps == 1 else f"{steps} steps"


def _clause(comparison: Comparison, num_seeds: int) -> str:
    a, b = comparison.a, comparison.b
    at = f"at {_steps_phrase(comparison.steps)}"
    if comparison.winner is None:
        return f"{at} {a} and {b} tie ({format_number(comparison.a_score.mean)} vs {format_number(comparison.b_score.mean)}: the same at the printed precision)"
    winner = comparison.winner
    loser, scores = (b, (comparison.a_score, comparison.b_score)) if winner == a else (a, (comparison.b_score, comparison.a_score))
    clause = f"{at} {winner} beats {loser} ({format_number(scores[0].mean)} vs {format_number(scores[1].mean)})"
    if comparison.exceeds_spread is None:
        return clause + ", with one seed and so no spread to judge the difference by"
    if comparison.exceeds_spread:
        return clause + f", a difference of {format_number(comparison.difference)} that exceeds the spread across {num_seeds} seeds ({format_spread(comparison.spread)})"
    return clause + f", but the difference of {format_number(comparison.difference)} is within the spread across {num_seeds} seeds ({format_spread(comparison.spread)}), so neither clearly wins"


def verdict_sentence(comparisons: Sequence[Comparison], metric: str, num_seeds: int) -> str:
    """One sentence, computed from the numbers: who wins at each step count, and how clearly."""
    if not comparisons:
        raise ValueError("a verdict needs at least one comparison")
    clauses = [_clause(c, num_seeds) for c in comparisons]
    sentence = "; ".join(clauses)
    return f"On {metric} ({direction_words(comparisons[0].higher_is_better)}), {sentence}."


# ----------------------------------------------------------------------------- over training


def interpolate(xs: Sequence[float], ys: Sequence[float], x: float) -> float | None:
    """y at x on the polyline (xs ascending); None outside [xs[0], xs[-1]]."""
    for (x0, y0), (x1, y1) in zip(zip(xs, ys), zip(xs[1:], ys[1:])):
        if x0 <= x <= x1:
            return y0 if x1 == x0 else y0 + (y1 - y0) * (x - x0) / (x1 - x0)
    return ys[0] if len(xs) == 1 and x == xs[0] else None


def leaders(a: tuple[Sequence[float], Sequence[float]], b: tuple[Sequence[float], Sequence[float]], higher_is_better: bool = False):
    """(x, 'a' | 'b' | None for a tie) at every x of either curve where both are defined (linear
    between their points): who is ahead at equal budget, when the curves' points differ (seconds)."""
    xs = sorted(set(a[0]) | set(b[0]))
    found = []
    for x in xs:
        ya, yb = interpolate(*a, x), interpolate(*b, x)
        if ya is None or yb is None:
            continue
        if same_when_printed(ya, yb):
            found.append((x, None))
        else:
            found.append((x, "a" if (ya > yb) == higher_is_better else "b"))
    return found


def _span(xs: list[float], unit: str) -> str:
    shown = [format_number(x) for x in (xs[0], xs[-1])]
    return f"{unit} {shown[0]}" if len(xs) == 1 else f"{unit}s {shown[0]}-{shown[1]}"


def ordering_phrase(points: list[tuple[float, str | None]], a: str, b: str, unit: str) -> str:
    """'iCT ahead of CD at all 4 points (steps 40-160)' or, when it changes, each stretch in turn:
    'CD ahead at steps 40-80, then iCT at steps 120-160'."""
    if not points:
        return f"the curves share no stretch of training {unit}s"
    names = {"a": a, "b": b, None: "a tie"}
    stretches: list[tuple[str | None, list[float]]] = []
    for x, who in points:
        if stretches and stretches[-1][0] == who:
            stretches[-1][1].append(x)
        else:
            stretches.append((who, [x]))
    if len(stretches) == 1:
        who, xs = stretches[0]
        lead = f"{names[who]} ahead of {b if who == 'a' else a}" if who else f"{a} and {b} tied"
        count = f"all {len(xs)} points" if len(xs) > 1 else "the one point"
        return f"{lead} at {count} ({_span(xs, unit)})"
    parts = [f"{names[who]}{' ahead' if who else ''} at {_span(xs, unit)}" for who, xs in stretches]
    return "the ordering changes: " + ", then ".join(parts)
