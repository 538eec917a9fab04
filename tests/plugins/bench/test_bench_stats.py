"""The bench's aggregation over seeds and its verdict: pure functions, known values."""

import math

import pytest

from genkit_bench.stats import Comparison, format_number, format_summary, summarize, verdict_sentence, interpolate, leaders, ordering_phrase


def test_summarize_gives_mean_and_sample_standard_deviation():
    summary = summarize([1.0, 2.0, 4.0])
    assert summary.mean == pytest.approx(7 / 3)
    # sample variance: ((1-7/3)^2 + (2-7/3)^2 + (4-7/3)^2) / 2 = 7/3
    assert summary.spread == pytest.approx(math.sqrt(7 / 3))
    assert summary.values == (1.0, 2.0, 4.0)


def test_one_seed_has_no_spread_and_identical_seeds_have_zero_spread():
    assert summarize([0.25]).spread is None
    assert summarize([0.25, 0.25]).spread == 0.0
    with pytest.raises(ValueError):
        summarize([])


def test_summary_format_is_mean_to_four_digits_and_spread_to_two():
    assert format_summary(summarize([0.031, 0.035])) == "0.033 ± 0.0028"
    assert format_summary(summarize([0.12345])) == "0.1235"
    assert format_number(None) == "n/a" and format_number(2.5e-4) == "2.500e-04"


def comparison(steps, a_values, b_values):
    return Comparison(steps, "iCT", "CD", summarize(a_values), summarize(b_values))


def test_ict_wins_clearly_when_the_gap_exceeds_both_spreads():
    c = comparison(1, [0.10, 0.11, 0.12], [0.20, 0.21, 0.22])
    assert c.winner == "iCT" and c.exceeds_spread is True
    assert c.difference == pytest.approx(0.10) and c.spread == pytest.approx(0.02)
    sentence = verdict_sentence([c], "swd", 3)
    assert "at 1 step iCT beats CD (0.11 vs 0.21)" in sentence
    assert "exceeds the spread across 3 seeds" in sentence


def test_cd_wins_clearly():
    c = comparison(2, [0.30, 0.31], [0.10, 0.11])
    assert c.winner == "CD" and c.exceeds_spread is True
    assert "at 2 steps CD beats iCT (0.105 vs 0.305)" in verdict_sentence([c], "swd", 2)


def test_a_gap_within_the_spread_is_no_clear_win():
    c = comparison(1, [0.10, 0.20], [0.12, 0.22])  # means 0.15 vs 0.17, spreads 0.071 each
    assert c.winner == "iCT" and c.exceeds_spread is False
    sentence = verdict_sentence([c], "swd", 2)
    assert "iCT beats CD" in sentence and "within the spread across 2 seeds" in sentence and "neither clearly wins" in sentence


def test_one_seed_makes_no_claim_about_the_spread():
    c = comparison(1, [0.1], [0.2])
    assert c.exceeds_spread is None and c.spread is None
    assert "one seed and so no spread" in verdict_sentence([c], "swd", 1)


def test_verdict_covers_every_step_count_in_one_sentence():
    sentence = verdict_sentence([comparison(1, [0.1, 0.11], [0.3, 0.31]), comparison(2, [0.3, 0.5], [0.2, 0.4])], "swd", 2)
    assert sentence.startswith("On swd (lower is better), at 1 step iCT beats CD")
    assert "; at 2 steps CD beats iCT" in sentence and sentence.endswith(".") and ". " not in sentence


def test_tie():
    c = comparison(1, [0.2, 0.2], [0.2, 0.2])
    assert c.winner is None and "tie" in verdict_sentence([c], "swd", 2)


def test_means_that_print_the_same_are_a_tie_not_a_win():
    c = comparison(1, [190.84], [190.81])  # both print as 190.8
    assert c.winner is None and c.tie
    sentence = verdict_sentence([c], "fd_fmnist", 1)
    assert "tie (190.8 vs 190.8" in sentence and "beats" not in sentence
    assert comparison(1, [190.9], [190.8]).winner == "CD"  # a printed difference still counts


def test_higher_is_better_metrics_pick_the_larger_mean():
    c = Comparison(1, "iCT", "CD", summarize([0.63]), summarize([0.47]), higher_is_better=True)
    assert c.winner == "iCT" and c.to_dict()["higher_is_better"] is True
    sentence = verdict_sentence([c], "pr_fmnist/precision", 1)
    assert sentence.startswith("On pr_fmnist/precision (higher is better), at 1 step iCT beats CD (0.63 vs 0.47)")
    assert comparison(1, [0.63], [0.47]).winner == "CD"  # the same numbers, lower is better


# ----------------------------------------------------------------------------- over training


def test_interpolate_is_linear_between_points_and_undefined_outside():
    assert interpolate([0, 10], [1.0, 3.0], 5) == 2.0 and interpolate([0, 10], [1.0, 3.0], 10) == 3.0
    assert interpolate([0, 10], [1.0, 3.0], 11) is None and interpolate([5], [2.0], 5) == 2.0


def test_leaders_compare_at_equal_budget_even_when_the_points_differ():
    # a scored at 10, 20, 30; b at 15, 25: compared where both are defined, b interpolated at a's points
    a = ([10, 20, 30], [5.0, 3.0, 1.0])
    b = ([15, 25], [2.0, 2.5])
    assert leaders(a, b) == [(15, "b"), (20, "b"), (25, "a")]  # at 15 a is 4.0, at 25 a is 2.0 vs 2.5
    assert leaders(a, b, higher_is_better=True) == [(15, "a"), (20, "a"), (25, "b")]
    assert leaders(([1, 2], [1.0, 1.00001]), ([1, 2], [1.0, 1.0])) == [(1, None), (2, None)]  # equal when printed


def test_ordering_phrase_says_whether_the_order_holds_or_where_it_changes():
    steady = ordering_phrase([(40, "a"), (80, "a"), (120, "a")], "iCT", "CD", "step")
    assert steady == "iCT ahead of CD at all 3 points (steps 40-120)"
    flipped = ordering_phrase([(40, "b"), (80, "b"), (120, "a"), (160, "a")], "iCT", "CD", "step")
    assert flipped == "the ordering changes: CD ahead at steps 40-80, then iCT ahead at steps 120-160"
    assert ordering_phrase([(40, None)], "iCT", "CD", "step") == "iCT and CD tied at the one point (step 40)"
    assert ordering_phrase([], "iCT", "CD", "second") == "the curves share no stretch of training seconds"
