"""The statistics of the benchmark reports: medians with confidence intervals, ratios, outliers.

Every figure of a case is the **median of its rounds** with a **distribution-free
confidence interval** (the order-statistic interval of the median: the k-th
smallest and k-th largest round, with k chosen from the binomial distribution so
that the interval holds the true median with at least the asked probability). It
assumes nothing about the shape of the noise, which on a shared machine is
skewed and heavy-tailed.

Ratios come in two kinds:

- **paired** (`paired_ratio`): two targets measured in the same rounds, one
  after the other (the report's speed-ups, ``benchmarks.compare``). Each round
  gives one ratio, so drift that hits both alike cancels; the estimate is the
  median of the per-round ratios with the same order-statistic interval.
- **unpaired** (`unpaired_ratio`): two separate runs (``--compare OLD.json``).
  The estimate is the Hodges-Lehmann estimator of the ratio (the median of all
  new/old ratios) with the exact Mann-Whitney confidence interval.

With few rounds an interval cannot reach 95% (the median's needs six rounds,
a paired ratio's too, an unpaired ratio's five against five): then the interval
is the whole range and `Estimate.coverage` says how sure it is, so a report
can say so rather than pretend. Outlier rounds (`outliers`) are those further
than 3.5 scaled median absolute deviations from the median (four rounds at
least): shown, never dropped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache
from typing import List, Optional, Sequence, Tuple

CONFIDENCE = 0.95
OUTLIER_MADS = 3.5
MAD_SCALE = 1.4826  # a normal distribution's standard deviation is 1.4826 MADs


@dataclass(frozen=True)
class Estimate:
    """A median (or a ratio) with its confidence interval ``[low, high]``.

    ``coverage`` is the interval's real confidence level: at least the level asked for
    when there were enough rounds, less (and stated) when there were not.
    """

    value: float
    low: float
    high: float
    coverage: float
    count: int

    @property
    def complete(self) -> bool:
        """True when the interval reaches the confidence level asked for (95%)."""
        return self.coverage >= CONFIDENCE - 1e-9

    def contains(self, value: float) -> bool:
        return self.low <= value <= self.high


def _binomial_cdf(k: int, n: int) -> float:
    """P(X <= k) for X ~ Binomial(n, 1/2)."""
    return float(sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n)


def median_ci(values: Sequence[float], confidence: float = CONFIDENCE) -> Estimate:
    """The median of ``values`` with its order-statistic confidence interval.

    The interval is ``[x(j), x(n+1-j)]`` of the sorted values, with the largest
    ``j`` whose coverage ``1 - 2 P(B <= j-1)``, B ~ Binomial(n, 1/2), is still at
    least ``confidence``. Too few values for that give the whole range.
    """
    data = sorted(float(v) for v in values if not math.isnan(float(v)))
    n = len(data)
    if n == 0:
        return Estimate(math.nan, math.nan, math.nan, 0.0, 0)
    alpha = 1.0 - confidence
    j = 0
    while j + 1 <= n // 2 and _binomial_cdf(j, n) <= alpha / 2:
        j += 1
    index = max(j, 1)  # 1-based rank of the lower bound; 1 is the whole range
    coverage = 1.0 - 2 * _binomial_cdf(index - 1, n) if n > 1 else 0.0
    middle = n // 2
    median = data[middle] if n % 2 else (data[middle - 1] + data[middle]) / 2
    return Estimate(median, data[index - 1], data[n - index], coverage, n)


def paired_ratio(numerators: Sequence[float], denominators: Sequence[float],
                 confidence: float = CONFIDENCE) -> Estimate:
    """The median of the per-round ratios ``numerators[i] / denominators[i]`` with its interval.

    The two sequences are the same rounds of two targets, in round order.
    """
    if len(numerators) != len(denominators):
        raise ValueError(f"paired rounds differ in number: {len(numerators)} and "
                         f"{len(denominators)}")
    ratios = [a / b for a, b in zip(numerators, denominators) if a > 0 and b > 0]
    return median_ci(ratios, confidence)


@cache
def _mann_whitney_counts(n: int, m: int) -> Tuple[int, ...]:
    """How many of the C(n+m, n) orderings give each value 0..n*m of the Mann-Whitney U."""
    if n == 0 or m == 0:
        return (1,)
    # The largest of all n+m values is either one of the n (adding m to U) or one of the m.
    with_n = _mann_whitney_counts(n - 1, m)
    with_m = _mann_whitney_counts(n, m - 1)
    counts = [0] * (n * m + 1)
    for u, count in enumerate(with_n):
        counts[u + m] += count
    for u, count in enumerate(with_m):
        counts[u] += count
    return tuple(counts)


def unpaired_ratio(new: Sequence[float], old: Sequence[float],
                   confidence: float = CONFIDENCE) -> Estimate:
    """The ratio new/old of two independent samples: Hodges-Lehmann with its exact interval.

    On logarithms, the estimate is the median of all n*m differences and the
    interval ``[D(k), D(nm+1-k)]`` of the sorted differences, with ``k`` from the
    exact null distribution of the Mann-Whitney U (coverage ``1 - 2 P(U <= k-1)``).
    """
    logs_new = [math.log(v) for v in new if v > 0]
    logs_old = [math.log(v) for v in old if v > 0]
    n, m = len(logs_new), len(logs_old)
    if n == 0 or m == 0:
        return Estimate(math.nan, math.nan, math.nan, 0.0, 0)
    if n > 60 or m > 60:
        raise ValueError("unpaired_ratio is exact, for up to 60 rounds a side")
    differences = sorted(a - b for a in logs_new for b in logs_old)
    counts = _mann_whitney_counts(n, m)
    total = math.comb(n + m, n)
    alpha = 1.0 - confidence
    k, cumulative = 0, 0  # cumulative = number of orderings with U <= k - 1
    while k < len(differences) // 2 and (cumulative + counts[k]) / total <= alpha / 2:
        cumulative += counts[k]
        k += 1
    index = max(k, 1)
    coverage = 1.0 - 2 * (sum(counts[:index]) / total) if n * m > 1 else 0.0
    size = len(differences)
    middle = size // 2
    centre = (differences[middle] if size % 2
              else (differences[middle - 1] + differences[middle]) / 2)
    return Estimate(math.exp(centre), math.exp(differences[index - 1]),
                    math.exp(differences[size - index]), coverage, min(n, m))


def outliers(values: Sequence[float]) -> List[int]:
    """Indices of the values further than `OUTLIER_MADS` scaled MADs from the median."""
    data = [float(v) for v in values]
    if len(data) < 4:  # with three, the odd one out is whichever two happen to be close
        return []
    middle = median_ci(data).value
    mad = median_ci([abs(v - middle) for v in data]).value * MAD_SCALE
    if mad <= 0:
        return []
    return [i for i, v in enumerate(data) if abs(v - middle) > OUTLIER_MADS * mad]


def verdict(ratio: Estimate, higher: str = "faster", lower: str = "slower") -> str:
    """How to read a speed-up: "no difference measured" when its interval holds 1.0."""
    if ratio.count == 0 or math.isnan(ratio.value):
        return "not measured"
    if ratio.contains(1.0):
        return "no difference measured"
    return higher if ratio.low > 1.0 else lower


def interval_text(estimate: Estimate, digits: Optional[int] = None, suffix: str = "") -> str:
    """``1.04x (1.01-1.07)``-style text, with the coverage when it is below 95%."""
    def number(value: float) -> str:
        if math.isnan(value):
            return "-"
        if digits is not None:
            return f"{value:,.{digits}f}"
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        return f"{value:,.{2 if abs(value) < 10 else 1}f}"

    if estimate.count == 0:
        return "-"
    text = f"{number(estimate.value)}{suffix} ({number(estimate.low)}-{number(estimate.high)})"
    if not estimate.complete:
        text += f" [{estimate.coverage:.0%} interval]"
    return text
