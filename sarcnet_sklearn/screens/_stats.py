"""The statistics of a comparison, vectorized: a two-stage bootstrap of the mean of unit means,
a permutation test on unit means (within strata), Holm's correction.

A *unit* is what was treated independently: a well (or, without wells, a field
of view). Each unit weighs the same in a group's mean, whatever its number of
cells, so the estimate and the test use the same number: the mean of the
group's unit means.
"""

from __future__ import annotations

from itertools import combinations
from math import comb

import numpy as np

MAX_DRAWS = 4_000_000
"""Cell draws per block of bootstrap replicates (bounds the memory of a large screen)."""


class Units:
    """The values of one group, sorted by unit: ``values[starts[u]:starts[u] + counts[u]]``.

    Examples
    --------
    >>> units = Units.from_labels([1.0, 2.0, 4.0], ["A1", "A2", "A1"])
    >>> units.means().tolist(), units.counts.tolist()
    ([2.5, 2.0], [2, 1])
    """

    def __init__(self, values: np.ndarray, starts: np.ndarray, counts: np.ndarray, names):
        self.values, self.starts, self.counts, self.names = values, starts, counts, names

    @classmethod
    def from_labels(cls, values, labels) -> Units:
        """Group finite ``values`` by ``labels`` (a unit without a finite value is left out)."""
        values = np.asarray(values, dtype=np.float64)
        labels = np.asarray(labels, dtype=object)
        keep = np.isfinite(values)
        names, codes = np.unique(labels[keep].astype(str), return_inverse=True)
        order = np.argsort(codes, kind="stable")
        counts = np.bincount(codes, minlength=len(names))
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
        return cls(values[keep][order], starts, counts, list(names))

    def __len__(self) -> int:
        return len(self.counts)

    def means(self) -> np.ndarray:
        sums = np.add.reduceat(self.values, self.starts) if len(self.values) else np.zeros(0)
        return sums / self.counts

    def bootstrap_means(self, n_boot: int, rng: np.random.Generator) -> np.ndarray:
        """``n_boot`` means of unit means, resampling units with replacement, then the cells
        of each drawn unit with replacement (a drawn unit keeps its number of cells)."""
        n_units = len(self.counts)
        out = np.empty(n_boot)
        block = max(1, MAX_DRAWS // max(1, len(self.values)))
        for low in range(0, n_boot, block):
            size = min(block, n_boot - low)
            picks = rng.integers(0, n_units, size=(size, n_units)).ravel()
            counts = self.counts[picks]
            pick_of_draw = np.repeat(np.arange(len(picks)), counts)
            offsets = (rng.random(len(pick_of_draw)) * counts[pick_of_draw]).astype(np.int64)
            draws = self.starts[picks][pick_of_draw] + offsets
            sums = np.bincount(pick_of_draw, weights=self.values[draws], minlength=len(picks))
            out[low:low + size] = (sums / counts).reshape(size, n_units).mean(axis=1)
        return out


def bootstrap_interval(
    treated: Units, control: Units, *, n_boot: int, confidence: float, rng: np.random.Generator
) -> tuple[float, float]:
    """Percentile interval of the difference of the means of unit means (treated - control),
    each group resampled on its own by :meth:`Units.bootstrap_means`.

    With few units the bootstrap distribution is as wide as a normal one with the
    estimated spread, which is too narrow for the same reason that Student's t is
    wider than the normal: its percentiles are taken at the levels where a normal
    distribution reaches Student's t quantile with ``n_treated + n_control - 2``
    degrees of freedom (for 6 wells against 6 and 95 %: the 1.3 and 98.7th
    percentiles, instead of 2.5 and 97.5).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> a = Units.from_labels(rng.normal(1, 1, 300), np.repeat(np.arange(6), 50))
    >>> b = Units.from_labels(rng.normal(0, 1, 300), np.repeat(np.arange(6), 50))
    >>> low, high = bootstrap_interval(a, b, n_boot=500, confidence=0.95, rng=rng)
    >>> bool(low < 1 < high)
    True
    """
    differences = (treated.bootstrap_means(n_boot, rng) - control.bootstrap_means(n_boot, rng))
    from scipy.special import ndtr, stdtrit

    degrees = len(treated) + len(control) - 2
    tail = float(ndtr(-stdtrit(degrees, 1 - (1 - confidence) / 2))) * 100
    low, high = np.percentile(differences, [tail, 100 - tail])
    return float(low), float(high)


def permutation_p_value(
    treated: np.ndarray,
    control: np.ndarray,
    *,
    n_perm: int,
    rng: np.random.Generator,
    treated_strata=None,
    control_strata=None,
) -> float:
    """Two-sided p-value of the difference of means of unit means, permuting the units' labels.

    Labels are permuted within strata (plates) when strata are given, so that a
    plate effect cannot make a difference. With one stratum and at most
    ``n_perm`` ways to split the units, every split is enumerated (an exact
    test); otherwise ``n_perm`` random ones and ``p = (1 + k) / (1 + n_perm)``.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> round(permutation_p_value(np.r_[5.0, 6, 7], np.r_[1.0, 2, 3], n_perm=1000, rng=rng), 3)
    0.1
    """
    treated = np.asarray(treated, dtype=np.float64)
    control = np.asarray(control, dtype=np.float64)
    pooled = np.concatenate([treated, control])
    n_treated, n_all = len(treated), len(pooled)
    observed = abs(treated.mean() - control.mean())
    tolerance = 1e-12 * max(1.0, float(np.abs(pooled).max()))
    if treated_strata is None or len(set(treated_strata) | set(control_strata)) == 1:
        if comb(n_all, n_treated) <= n_perm:
            chosen = np.zeros((comb(n_all, n_treated), n_all), dtype=bool)
            for row, members in enumerate(combinations(range(n_all), n_treated)):
                chosen[row, list(members)] = True
            statistics = _statistics(chosen, pooled, n_treated)
            return float(np.mean(statistics >= observed - tolerance))
        strata = np.zeros(n_all)
    else:
        _, strata = np.unique(np.concatenate([np.asarray(treated_strata, dtype=str),
                                              np.asarray(control_strata, dtype=str)]),
                              return_inverse=True)
    order = np.argsort(strata, kind="stable")
    pooled, labels, strata = pooled[order], (np.arange(n_all) < n_treated)[order], strata[order]
    exceed = 0
    block = max(1, MAX_DRAWS // n_all)
    for low in range(0, n_perm, block):
        size = min(block, n_perm - low)
        # Random keys in [0, 1) plus the stratum: sorting shuffles within each stratum only.
        permutation = np.argsort(rng.random((size, n_all)) + strata, axis=1)
        exceed += int(np.sum(_statistics(labels[permutation], pooled, n_treated)
                             >= observed - tolerance))
    return (1 + exceed) / (1 + n_perm)


def _statistics(chosen: np.ndarray, pooled: np.ndarray, n_treated: int) -> np.ndarray:
    """|mean of the chosen - mean of the others| for each row of the boolean ``chosen``."""
    total = pooled.sum()
    treated_sum = chosen.astype(np.float64) @ pooled
    return np.abs(treated_sum / n_treated - (total - treated_sum) / (len(pooled) - n_treated))


def cohen_d(treated: np.ndarray, control: np.ndarray) -> float:
    """Standardized difference of unit means: the difference over their pooled standard
    deviation (NaN when it is zero or a group has fewer than 2 units).

    Examples
    --------
    >>> round(cohen_d(np.r_[2.0, 3.0, 4.0], np.r_[1.0, 2.0, 3.0]), 3)
    1.0
    """
    n1, n2 = len(treated), len(control)
    if n1 < 2 or n2 < 2:
        return float("nan")
    pooled = ((n1 - 1) * np.var(treated, ddof=1) + (n2 - 1) * np.var(control, ddof=1)) / (
        n1 + n2 - 2)
    if pooled <= 0:
        return float("nan")
    return float((np.mean(treated) - np.mean(control)) / np.sqrt(pooled))


def holm(p_values) -> np.ndarray:
    """Holm's step-down adjustment of p-values (family-wise error); NaN stays NaN.

    Examples
    --------
    >>> holm([0.01, 0.04, 0.03, float("nan")]).round(3).tolist()
    [0.03, 0.06, 0.06, nan]
    """
    p_values = np.asarray(p_values, dtype=np.float64)
    adjusted = np.full_like(p_values, np.nan)
    present = np.flatnonzero(np.isfinite(p_values))
    order = present[np.argsort(p_values[present], kind="stable")]
    m = len(order)
    steps = (m - np.arange(m)) * p_values[order]
    adjusted[order] = np.minimum(1.0, np.maximum.accumulate(steps))
    return adjusted
