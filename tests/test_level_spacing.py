"""The greedy level search keeps each level meaningfully below the one before (a step between
two almost equal levels does nothing), and says when fewer steps suffice."""

import math

import pytest

from genkit.errors import GenkitError
from genkit.evaluation.levels import DEFAULT_RATIO, LevelSearch, greedy_levels, search_levels

SIGMA_MIN, SIGMA_MAX = 0.002, 80.0


def flat_below(best: float):
    """A metric whose first level is best at ``best`` and that later levels cannot improve unless
    they sit right under the one before: what made the search choose 0.0572 then 0.0564."""
    def objective(levels):
        first = (math.log(levels[0]) - math.log(best)) ** 2
        later = sum(-0.001 * t / previous for previous, t in zip(levels, levels[1:]))  # best just below the last
        return first + later
    return objective


def test_each_level_is_at_most_the_ratio_times_the_one_before():
    levels, _ = greedy_levels(flat_below(0.0572), 3, SIGMA_MIN, SIGMA_MAX, iterations=20, ratio=1.0)
    assert levels[1] / levels[0] > 0.98  # without a gap: two almost equal levels
    levels, _ = greedy_levels(flat_below(0.0572), 4, SIGMA_MIN, SIGMA_MAX, iterations=20)
    assert DEFAULT_RATIO == 0.9
    assert levels[0] == pytest.approx(0.0572, rel=1e-2)
    assert all(b <= DEFAULT_RATIO * a for a, b in zip(levels, levels[1:]))
    assert levels[1] == pytest.approx(DEFAULT_RATIO * levels[0], rel=1e-3)  # as close as allowed


def test_no_room_for_another_level_is_an_error_saying_fewer_steps_suffice():
    with pytest.raises(ValueError, match="no level for 3-step sampling fits .* 2 steps are as many"):
        greedy_levels(lambda levels: 0.0, 3, SIGMA_MIN, SIGMA_MAX, iterations=2, fixed=[0.0021])
    with pytest.raises(ValueError, match=r"ratio between levels must be in \(0, 1\]"):
        greedy_levels(lambda levels: 0.0, 3, SIGMA_MIN, SIGMA_MAX, ratio=1.5)


def test_a_search_reports_the_step_counts_that_gain_nothing():
    search = LevelSearch(levels=[1.3, 0.4, 0.1], values=[0.05, 0.06, 0.04], one_step=0.08, metric="swd")
    assert search.no_gain() == [3]
    assert LevelSearch([1.3], [0.09], 0.08, "swd").no_gain() == [2]
    assert LevelSearch([1.3], [None], 0.08, "swd").no_gain() == []  # non-finite: nothing to compare


def test_the_ratio_is_part_of_the_cached_search_and_checked(tmp_path_factory):
    from test_levels import train_tiny
    from genkit import api

    class Factory:
        def __init__(self):
            self.calls = []

        def __call__(self, model, evaluator, num):
            return lambda levels: self.calls.append(list(levels)) or sum(levels)

    run = train_tiny(tmp_path_factory, "ict", 3)
    model = api.load(run, device="cpu")
    counted = Factory()
    first = search_levels(model, 3, num=20, iterations=2, objective_factory=counted)
    assert first.settings["ratio"] == DEFAULT_RATIO and first.levels[1] <= DEFAULT_RATIO * first.levels[0]
    counted.calls.clear()
    other = search_levels(model, 3, num=20, iterations=2, objective_factory=counted, ratio=0.5)
    assert counted.calls and other.levels[1] <= 0.5 * other.levels[0]  # another ratio: searched anew
    with pytest.raises(GenkitError, match="search_ratio"):
        search_levels(model, 3, num=20, iterations=2, objective_factory=counted, ratio=0)
