"""`benchmarks.stats`: the intervals hold what they claim, on known values and by simulation."""

from __future__ import annotations

import math
import random

import pytest

from benchmarks.reporting.stats import (
    _mann_whitney_counts,
    median_ci,
    outliers,
    paired_ratio,
    unpaired_ratio,
    verdict,
)


def test_the_median_interval_uses_the_binomial_ranks() -> None:
    # n = 10: ranks 2 and 9 (coverage 1 - 2 * 11/1024), the textbook values.
    estimate = median_ci([float(v) for v in range(1, 11)])
    assert (estimate.value, estimate.low, estimate.high) == (5.5, 2.0, 9.0)
    assert estimate.coverage == pytest.approx(1 - 2 * 11 / 1024)
    assert estimate.complete


def test_too_few_rounds_give_the_whole_range_and_say_how_sure_it_is() -> None:
    five = median_ci([3.0, 1.0, 2.0, 5.0, 4.0])
    assert (five.low, five.value, five.high) == (1.0, 3.0, 5.0)
    assert five.coverage == pytest.approx(1 - 2 / 32) and not five.complete
    six = median_ci([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    assert six.complete and (six.low, six.high) == (1.0, 6.0)


def test_mann_whitney_counts_match_the_number_of_orderings() -> None:
    for n, m in ((1, 1), (3, 4), (5, 5), (6, 6)):
        counts = _mann_whitney_counts(n, m)
        assert sum(counts) == math.comb(n + m, n)
        assert counts == counts[::-1]  # symmetric under the null hypothesis
    assert _mann_whitney_counts(5, 5)[:4] == (1, 1, 2, 3)


@pytest.mark.parametrize("rounds", [6, 10])
def test_intervals_cover_the_truth_at_least_as_often_as_they_claim(rounds: int) -> None:
    """Skewed noise (log-normal) around known medians: the 95% intervals hold them."""
    generator = random.Random(16)
    trials = 1500
    hits = {"median": 0, "paired": 0, "unpaired": 0}
    for _ in range(trials):
        drift = [generator.lognormvariate(0, 0.3) for _ in range(rounds)]
        a = [10.0 * d * generator.lognormvariate(0, 0.1) for d in drift]
        b = [8.0 * d * generator.lognormvariate(0, 0.1) for d in drift]
        hits["median"] += median_ci([10.0 * generator.lognormvariate(0, 0.5)
                                     for _ in range(rounds)]).contains(10.0)
        hits["paired"] += paired_ratio(a, b).contains(1.25)
        c = [10.0 * generator.lognormvariate(0, 0.2) for _ in range(rounds)]
        d = [8.0 * generator.lognormvariate(0, 0.2) for _ in range(rounds)]
        hits["unpaired"] += unpaired_ratio(c, d).contains(1.25)
    for name, count in hits.items():
        assert count / trials >= 0.93, (name, count / trials)  # 95% less simulation error


def test_pairing_cancels_drift_that_hits_both_alike() -> None:
    drift = [1.0, 2.0, 0.5, 1.5, 3.0, 0.7]
    fast = [110.0 * d for d in drift]
    slow = [100.0 * d for d in drift]
    assert paired_ratio(fast, slow).low == pytest.approx(1.1)
    assert verdict(paired_ratio(fast, slow)) == "faster"
    # Unpaired, the same figures say nothing: the drift swamps a 10% difference.
    assert verdict(unpaired_ratio(fast, slow)) == "no difference measured"


def test_an_interval_holding_one_is_no_difference() -> None:
    assert verdict(paired_ratio([1.0, 1.1, 0.9, 1.05, 0.95, 1.0], [1.0] * 6)) == (
        "no difference measured")
    assert verdict(paired_ratio([0.8, 0.82, 0.79, 0.81, 0.8, 0.83], [1.0] * 6)) == "slower"


def test_outliers_are_found_not_dropped() -> None:
    values = [100.0, 101.0, 99.0, 100.5, 31.0, 100.2]
    assert outliers(values) == [4]
    assert median_ci(values).count == 6
    assert outliers([100.0, 31.0, 100.5]) == []  # three rounds cannot tell
