"""Data drift of a current table against a reference table, column by column.

Every column gets one test that decides whether it drifted, chosen by its kind:
Kolmogorov-Smirnov, the normed Wasserstein distance, Jensen-Shannon or the population
stability index for numbers; chi-square, a two-proportion Z-test, Jensen-Shannon or the
population stability index for categories. ``auto`` chooses as Evidently's data-drift
preset does (0.7): up to 1000 reference values, KS (chi-square or Z on five values or
fewer) and chi-square (Z on two categories); above, the normed Wasserstein distance (Jensen-
Shannon on five values or fewer) and Jensen-Shannon. The table drifted when the share of
drifted columns reaches ``drift_share`` (Evidently's rule, 0.5 by default).

A p-value test drifts when its p-value is at most the threshold (KS) or below it
(chi-square, Z), a distance when it is at least the threshold: Evidently's directions, so
that the two agree column by column. The population stability index of every column is
reported whatever test decides, on ten quantile bins of the reference.

Everything is vectorised: numbers are sorted once per column and every statistic is read
off the sorted arrays (the KS and Wasserstein CDFs by a merge, histograms by
``searchsorted`` of their edges); categories are counted once. Columns run in parallel
threads (numpy sorts without the GIL).

Example::

    drift = compare({"age": ref_ages, "city": ref_cities}, {"age": ages, "city": cities},
                    {"age": NUMERIC, "city": CATEGORICAL}, Options())
    drift.drifted, drift.drifted_share, [c.column for c in drift.columns if c.drifted]
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tekton_mlops.errors import DataError
from tekton_mlops.ml.columns import CATEGORICAL, MISSING_CATEGORY, NUMERIC

AUTO = "auto"
NUMERIC_TESTS = (AUTO, "ks", "wasserstein", "jensenshannon", "psi")
CATEGORICAL_TESTS = (AUTO, "chisquare", "z", "jensenshannon", "psi")
#: Tests whose score is a p-value (drift when small); the others are distances (drift when large).
P_VALUE_TESTS = frozenset({"ks", "chisquare", "z"})
#: Above this many reference values, ``auto`` takes distances: every p-value test flags a
#: negligible shift on a large sample. Evidently's boundary.
LARGE_REFERENCE = 1000
#: scipy's ks_2samp computes an exact p-value up to this sample size; beyond, Smirnov's limit.
KS_EXACT_MAX = 10000
#: What an empty bin counts as in the population stability index (a log of 0 is infinite).
PSI_EPSILON = 1e-4
#: Evidently's floor under the reference's standard deviation that norms Wasserstein.
WASSERSTEIN_MIN_STD = 0.001


@dataclass(frozen=True)
class Thresholds:
    """Per test: a p-value at or below which (KS) or below which a column drifted, or a
    distance at or above which it drifted. The defaults are Evidently's."""

    ks: float = 0.05
    chisquare: float = 0.05
    z: float = 0.05
    wasserstein: float = 0.1
    jensenshannon: float = 0.1
    psi: float = 0.1

    def of(self, test: str) -> float:
        return float(getattr(self, test))


@dataclass(frozen=True)
class Options:
    numeric_test: str = AUTO
    categorical_test: str = AUTO
    thresholds: Thresholds = field(default_factory=Thresholds)
    psi_bins: int = 10
    drift_share: float = 0.5


@dataclass(frozen=True)
class Numbers:
    """A numeric column's present values, each side sorted."""

    reference: np.ndarray
    current: np.ndarray


@dataclass(frozen=True)
class Counts:
    """A column's values counted: the sorted union of values and each side's count of each."""

    keys: np.ndarray
    reference: np.ndarray
    current: np.ndarray


@dataclass(frozen=True)
class ColumnDrift:
    """The verdict on one column and what it rests on."""

    column: str
    kind: str
    test: str  # the deciding test, or "none" when the current data has no value to test
    statistic: float | None  # KS D, chi-square, z, or the distance; None when infinite
    p_value: float | None  # for p-value tests
    score: float | None  # what the threshold is compared with: the p-value or the distance
    threshold: float | None
    drifted: bool
    psi: float | None
    reference_count: int  # values present (missing ones are left out of every test)
    current_count: int
    reference_missing: int
    current_missing: int
    unique: int  # distinct values in both sides together
    note: str = ""


@dataclass(frozen=True)
class Drift:
    columns: list[ColumnDrift]
    drift_share: float  # the threshold on the share
    samples: dict[str, Numbers | Counts]  # per column, for the report's histograms

    @property
    def drifted_count(self) -> int:
        return sum(c.drifted for c in self.columns)

    @property
    def drifted_share(self) -> float:
        return self.drifted_count / len(self.columns) if self.columns else 0.0

    @property
    def drifted(self) -> bool:
        return bool(self.columns) and self.drifted_share >= self.drift_share


# --- preparing a column ---------------------------------------------------------------


def numbers(reference: np.ndarray, current: np.ndarray) -> tuple[Numbers, int, int]:
    """Sorted finite values of each side, and how many each side misses (NaN, infinite)."""
    ref = np.asarray(reference, dtype=np.float64)
    cur = np.asarray(current, dtype=np.float64)
    ref_present, cur_present = ref[np.isfinite(ref)], cur[np.isfinite(cur)]
    return (
        Numbers(np.sort(ref_present), np.sort(cur_present)),
        len(ref) - len(ref_present),
        len(cur) - len(cur_present),
    )


def categories(reference: np.ndarray, current: np.ndarray) -> tuple[Counts, int, int]:
    """Each side's count of every category, and how many each side misses ("")."""
    sides = []
    missing = []
    for values in (reference, current):
        # Fixed-width unicode sorts and counts several times faster than Python strings.
        text = np.asarray(values, dtype=str)
        present = text[text != MISSING_CATEGORY]
        sides.append(np.unique(present, return_counts=True))
        missing.append(len(text) - len(present))
    keys = np.union1d(sides[0][0], sides[1][0])
    counts = []
    for found, count in sides:
        aligned = np.zeros(len(keys), dtype=np.int64)
        aligned[np.searchsorted(keys, found)] = count
        counts.append(aligned)
    return Counts(keys, counts[0], counts[1]), missing[0], missing[1]


def value_counts(sample: Numbers) -> Counts:
    """A numeric column counted by distinct value, as the count-based tests take it."""
    keys = np.unique(np.concatenate([sample.reference, sample.current]))
    return Counts(keys, _count_equal(sample.reference, keys), _count_equal(sample.current, keys))


def _count_equal(sorted_values: np.ndarray, keys: np.ndarray) -> np.ndarray:
    right = np.searchsorted(sorted_values, keys, side="right")
    left = np.searchsorted(sorted_values, keys, side="left")
    return (right - left).astype(np.int64)


def _distinct(sorted_values: np.ndarray) -> int:
    if len(sorted_values) == 0:
        return 0
    return 1 + int(np.count_nonzero(sorted_values[1:] != sorted_values[:-1]))


# --- the statistics -------------------------------------------------------------------


@dataclass(frozen=True)
class _Merged:
    """Both samples' values in one sorted array, and each side's empirical CDF there.

    Within a run of equal values the CDFs are only partly counted; at the last value of
    each run (``ends``) they are exact, and the gaps after the others are zero.
    """

    values: np.ndarray
    reference_cdf: np.ndarray
    current_cdf: np.ndarray

    def ends(self) -> np.ndarray:
        last = np.ones(len(self.values), dtype=bool)
        last[:-1] = self.values[1:] != self.values[:-1]
        return last


def _merge(sample: Numbers) -> _Merged:
    n = len(sample.reference)
    both = np.concatenate([sample.reference, sample.current])
    # Two sorted runs: the stable sort merges them in linear time, and the positions it
    # returns say which side each value came from, so the CDFs are running counts (four
    # times quicker than a binary search of every value in each side).
    order = np.argsort(both, kind="stable")
    from_reference = np.cumsum(order < n)
    from_current = np.arange(1, len(both) + 1) - from_reference
    return _Merged(both[order], from_reference / n, from_current / (len(both) - n))


def ks(sample: Numbers, merged: _Merged | None = None) -> tuple[float, float]:
    """Two-sided two-sample Kolmogorov-Smirnov: (D, p-value), as scipy's ``ks_2samp``.

    Up to KS_EXACT_MAX values a side, scipy itself computes it (the exact distribution);
    above, D comes from the merged CDFs and the p-value from Smirnov's limit distribution
    with scipy's effective size, round(n*m/(n+m)).
    """
    from scipy import stats

    n, m = len(sample.reference), len(sample.current)
    if max(n, m) <= KS_EXACT_MAX:
        with warnings.catch_warnings():
            # scipy falls back to the limit distribution with a warning when the exact
            # computation does not converge; the p-value it returns is still the right one.
            warnings.simplefilter("ignore", RuntimeWarning)
            found = stats.ks_2samp(sample.reference, sample.current)
        return float(found.statistic), float(found.pvalue)
    merged = merged or _merge(sample)
    ends = merged.ends()
    d = float(np.max(np.abs(merged.reference_cdf[ends] - merged.current_cdf[ends])))
    effective = round(n * m / (n + m))
    return d, float(np.clip(stats.kstwo.sf(d, effective), 0.0, 1.0))


def wasserstein_normed(sample: Numbers, merged: _Merged | None = None) -> float:
    """The first Wasserstein distance over the reference's (population) standard deviation,
    floored at 0.001: Evidently's ``wasserstein``. The distance is scipy's: the area
    between the two CDFs."""
    merged = merged or _merge(sample)
    gaps = np.diff(merged.values)
    distance = float(np.dot(np.abs(merged.reference_cdf[:-1] - merged.current_cdf[:-1]), gaps))
    return distance / max(float(np.std(sample.reference)), WASSERSTEIN_MIN_STD)


def chisquare(counts: Counts) -> tuple[float, float]:
    """Pearson's chi-square of the current counts against the reference's proportions
    scaled to the current size: (statistic, p-value), as Evidently calls scipy's
    ``chisquare``. A category the reference never had makes it infinite (p-value 0)."""
    from scipy import stats

    if len(counts.keys) < 2:
        return 0.0, 1.0  # one category on both sides: nothing can differ
    expected = counts.reference * (counts.current.sum() / counts.reference.sum())
    observed = counts.current.astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(
            expected > 0, (observed - expected) ** 2 / np.where(expected > 0, expected, 1), np.inf
        )
    statistic = float(np.sum(terms))
    return statistic, float(stats.chi2.sf(statistic, len(counts.keys) - 1))


def z_test(counts: Counts) -> tuple[float, float]:
    """Two-proportion Z-test of the first value's share (two-sided): (z, p-value).

    For two values (or one); Evidently's ``z``, with its p-value written as the normal
    survival function (the same number, without losing digits near 0)."""
    from scipy import stats

    if len(counts.keys) < 2:
        return 0.0, 1.0
    n1, n2 = float(counts.reference.sum()), float(counts.current.sum())
    # Evidently counts the values that are not the smallest key; the test is symmetric.
    p1 = float(counts.reference[1:].sum()) / n1
    p2 = float(counts.current[1:].sum()) / n2
    pooled = (p1 * n1 + p2 * n2) / (n1 + n2)
    spread = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    z = (p1 - p2) / spread
    return z, float(2 * stats.norm.sf(abs(z)))


def sturges_counts(sample: Numbers) -> tuple[np.ndarray, np.ndarray]:
    """Both sides counted on numpy's Sturges bins over both together, as Evidently bins a
    numeric column for Jensen-Shannon: equal widths from the smallest value to the largest,
    each bin closed on the left, the last one on both sides."""
    low = min(sample.reference[0], sample.current[0])
    high = max(sample.reference[-1], sample.current[-1])
    size = len(sample.reference) + len(sample.current)
    edges = np.histogram_bin_edges(np.array([low, high]), bins=_sturges_bins(low, high, size))
    return histogram(sample.reference, edges), histogram(sample.current, edges)


def _sturges_bins(low: float, high: float, size: int) -> int:
    """numpy's bin count for ``bins="sturges"`` on ``size`` values from low to high."""
    width = (high - low) / (math.log2(size) + 1.0)
    return int(math.ceil((high - low) / width)) if width else 1


def histogram(sorted_values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """``np.histogram``'s counts, read off a sorted array by the positions of its edges."""
    positions = np.searchsorted(sorted_values, edges, side="left")
    positions[-1] = np.searchsorted(sorted_values, edges[-1], side="right")
    return np.diff(positions).astype(np.int64)


def jensenshannon(reference: np.ndarray, current: np.ndarray) -> float:
    """The Jensen-Shannon distance (natural logarithm) of two count vectors, as scipy's
    ``distance.jensenshannon`` on them: 0 for the same proportions, at most sqrt(ln 2)."""
    p = reference / reference.sum()
    q = current / current.sum()
    middle = (p + q) / 2
    divergence = (_relative_entropy(p, middle) + _relative_entropy(q, middle)) / 2
    return math.sqrt(max(divergence, 0.0))


def _relative_entropy(p: np.ndarray, q: np.ndarray) -> float:
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * np.log(np.where(p > 0, p, 1) / np.where(q > 0, q, 1)), 0.0)
    return float(np.sum(terms))


def psi(reference: np.ndarray, current: np.ndarray) -> float:
    """The population stability index of two count vectors: the sum over bins of
    (current share - reference share) x ln(current share / reference share), an empty
    bin counting as PSI_EPSILON."""
    p = np.maximum(reference / reference.sum(), PSI_EPSILON)
    q = np.maximum(current / current.sum(), PSI_EPSILON)
    return float(np.sum((q - p) * np.log(q / p)))


def quantile_counts(sample: Numbers, bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Both sides counted on ``bins`` bins cut at the reference's quantiles (each bin holds
    about as many reference values as the next), open at both ends so that no current
    value falls outside. Ties in the reference merge bins; a column with no more distinct
    reference values than bins is counted by value instead."""
    if _distinct(sample.reference) <= bins:
        counted = value_counts(sample)
        return counted.reference, counted.current
    inner = np.unique(np.quantile(sample.reference, np.arange(1, bins) / bins))
    edges = np.concatenate([[-np.inf], inner, [np.inf]])
    # Bins (e[i-1], e[i]]: "right" places a value equal to an edge in the lower bin.
    ref = np.diff(np.searchsorted(sample.reference, edges, side="right"))
    cur = np.diff(np.searchsorted(sample.current, edges, side="right"))
    return ref.astype(np.int64), cur.astype(np.int64)


# --- choosing and running a test -------------------------------------------------------


def choose(kind: str, requested: str, reference_count: int, unique: int) -> str:
    """The test a column gets: the one requested, or Evidently's default for ``auto``."""
    if requested != AUTO:
        return requested
    if reference_count <= LARGE_REFERENCE:
        if kind == NUMERIC and unique > 5:
            return "ks"
        if kind == NUMERIC and unique <= 2 or kind == CATEGORICAL and unique <= 2:
            return "z"
        return "chisquare"
    if kind == NUMERIC and unique > 5:
        return "wasserstein"
    return "jensenshannon"


def _outcome(
    test: str, sample: Numbers | Counts, merged: _Merged | None
) -> tuple[float, float | None]:
    """(statistic, p-value or None) of ``test`` on the column."""
    if isinstance(sample, Numbers):
        if test == "ks":
            return ks(sample, merged)
        if test == "wasserstein":
            return wasserstein_normed(sample, merged), None
        if test == "jensenshannon" and _distinct(sample.reference) > 20:
            # Evidently bins by value up to 20 distinct reference values, by Sturges beyond.
            return jensenshannon(*sturges_counts(sample)), None
        sample = value_counts(sample)
    if test == "chisquare":
        return chisquare(sample)
    if test == "z":
        return z_test(sample)
    if test == "jensenshannon":
        return jensenshannon(sample.reference, sample.current), None
    raise ValueError(f"test {test!r} is not for counted values")  # psi is handled by the caller


def _psi_of(sample: Numbers | Counts, bins: int) -> float:
    if isinstance(sample, Numbers):
        return psi(*quantile_counts(sample, bins))
    return psi(sample.reference, sample.current)


def _drifted(test: str, score: float, threshold: float) -> bool:
    if test == "ks":
        return score <= threshold
    if test in P_VALUE_TESTS:
        return score < threshold
    return score >= threshold


def column_drift(
    column: str, kind: str, reference: np.ndarray, current: np.ndarray, options: Options
) -> tuple[ColumnDrift, Numbers | Counts]:
    """Test one column; also return its prepared values (for histograms)."""
    prepared: Numbers | Counts
    if kind == NUMERIC:
        prepared, ref_missing, cur_missing = numbers(reference, current)
        ref_count, cur_count = len(prepared.reference), len(prepared.current)
    else:
        prepared, ref_missing, cur_missing = categories(reference, current)
        ref_count, cur_count = int(prepared.reference.sum()), int(prepared.current.sum())
    if ref_count == 0:
        raise DataError(f"column {column!r} has no values in the reference data")
    requested = options.numeric_test if kind == NUMERIC else options.categorical_test
    common: dict[str, Any] = {
        "column": column,
        "kind": kind,
        "reference_count": ref_count,
        "current_count": cur_count,
        "reference_missing": ref_missing,
        "current_missing": cur_missing,
    }
    if cur_count == 0:
        # Every value missing where the reference had them: the column changed, though no
        # test can say how.
        verdict = ColumnDrift(
            **common,
            test="none",
            statistic=None,
            p_value=None,
            score=None,
            threshold=None,
            drifted=True,
            psi=None,
            unique=len(prepared.keys)
            if isinstance(prepared, Counts)
            else _distinct(prepared.reference),
            note="no values in the current data",
        )
        return verdict, prepared
    merged = None
    if isinstance(prepared, Numbers):
        merged = _merge(prepared)
        unique = _distinct(merged.values)
    else:
        unique = len(prepared.keys)
    test = choose(kind, requested, ref_count, unique)
    psi_value = _psi_of(prepared, options.psi_bins)
    if test == "psi":
        statistic, p_value = psi_value, None
    else:
        statistic, p_value = _outcome(test, prepared, merged)
    score = p_value if test in P_VALUE_TESTS else statistic
    assert score is not None
    threshold = options.thresholds.of(test)
    note = ""
    if not math.isfinite(statistic):
        note = "a category the reference never had"
    verdict = ColumnDrift(
        **common,
        test=test,
        statistic=statistic if math.isfinite(statistic) else None,
        p_value=p_value,
        score=score,
        threshold=threshold,
        drifted=_drifted(test, score, threshold),
        psi=psi_value,
        unique=unique,
        note=note,
    )
    return verdict, prepared


def compare(
    reference: Mapping[str, np.ndarray],
    current: Mapping[str, np.ndarray],
    kinds: Mapping[str, str],
    options: Options,
    workers: int | None = None,
) -> Drift:
    """Test every column of ``kinds`` (in its order); each column's values come from
    ``reference`` and ``current`` (numbers as float64 with NaN where missing, categories as
    text with "" where missing)."""
    names = list(kinds)
    threads = max(1, min(len(names), workers or os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=threads) as pool:
        done = list(
            pool.map(
                lambda name: column_drift(
                    name, kinds[name], reference[name], current[name], options
                ),
                names,
            )
        )
    return Drift(
        [verdict for verdict, _ in done],
        options.drift_share,
        {name: sample for name, (_, sample) in zip(names, done, strict=True)},
    )
