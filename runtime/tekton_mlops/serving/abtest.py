"""A/B/n: which version is best by a metric, and whether the data say so at a confidence.

The rule is Iter8's hybrid one with a significance test added. Versions that fail an SLO
cannot win; among the others the best-looking by the metric is compared with each
other one, and it wins only when every comparison is significant, in its favour, at
``1 - confidence``. Otherwise there is no winner and the reason says which comparison
fell short.

The tests, on what the load measured:

- latency and throughput: Mann-Whitney U, two-sided, on the latencies of the successful
  requests (scipy.stats.mannwhitneyu); the direction is the one with the lower median.
  At a fixed concurrency throughput is concurrency over mean latency, so the latencies
  decide it too.
- error rate: the two-proportion z-test (pooled), or Fisher's exact test when a cell of
  the 2x2 table expects fewer than 5 requests, where the normal approximation is poor.

With n versions there are n - 1 comparisons, and the best-looking version was picked by
the same data. Holm's step-down correction over the n - 1 makes a win need, among
others, a smallest p-value at most alpha/(n-1): with no difference at all, one version
gets that in its favour against a given other with a chance of at most alpha/(2(n-1)),
so a false winner among the n has a chance of at most n/(2(n-1)) times alpha, never
above alpha. Holm rather than Bonferroni: it is never less powerful, and like Bonferroni
it needs no independence between the comparisons, which share the best version's sample.

The p-values take the requests as independent draws; requests under load queue behind
each other, so they are somewhat optimistic, and with many requests a difference too
small to matter can be significant: the report shows the figures beside the p-values.

Example::

    versions = [Version("v1", m1.summary(), True, m1.latencies_ms, m1.requests, m1.errors),
                Version("v2", m2.summary(), True, m2.latencies_ms, m2.requests, m2.errors)]
    decision = decide(versions, "latency_p99_ms", 0.95, serving_test("latency_p99_ms"))
    decision.winner, decision.reason
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from tekton_mlops.serving import load

#: Metrics where a higher value is better (the load's and the models'); lower for the rest.
HIGHER_IS_BETTER = frozenset(load.HIGHER_IS_BETTER | {"accuracy", "f1"})
CORRECTION = "Holm"
MANN_WHITNEY = "Mann-Whitney U"
Z_TEST = "two-proportion z-test"
FISHER = "Fisher's exact test"


@dataclass(frozen=True)
class Version:
    """What one version (an endpoint) gave under the load."""

    name: str
    figures: Mapping[str, float | None]  # metric -> value, e.g. Measured.summary()
    meets_slos: bool
    latencies_ms: Sequence[float] = ()  # of the successful requests
    requests: int = 0
    errors: int = 0


@dataclass(frozen=True)
class Comparison:
    """One comparison of the best-looking version with another one."""

    best: str
    other: str
    test: str
    statistic: float | None
    p_value: float
    favours: str  # the version the data lean to; "" when they lean to neither
    adjusted_p: float = math.nan  # after the correction for the number of comparisons
    detail: str = ""  # what the test saw, for the report: medians, counts

    def as_dict(self) -> dict[str, Any]:
        return {
            "versions": [self.best, self.other],
            "test": self.test,
            "statistic": _rounded(self.statistic),
            "p_value": _rounded(self.p_value),
            "adjusted_p": _rounded(self.adjusted_p),
            "favours": self.favours,
            "detail": self.detail,
        }


@dataclass(frozen=True)
class Decision:
    metric: str
    confidence: float
    winner: str  # "" when no version won
    reason: str  # one line
    tests: tuple[Comparison, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "confidence": self.confidence,
            "correction": CORRECTION,
            "winner": self.winner,
            "reason": self.reason,
            "tests": [t.as_dict() for t in self.tests],
        }


Comparer = Callable[[Version, Version], Comparison]


def _rounded(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) else float(f"{value:.6g}")


def _median(values: Sequence[float]) -> float:
    import numpy as np

    return float(np.median(np.asarray(values, dtype=float)))


def mann_whitney(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
    """U of ``a`` (pairs where a's value is the larger, ties half) and the two-sided p."""
    from scipy.stats import mannwhitneyu

    result = mannwhitneyu(a, b, alternative="two-sided")
    return float(result.statistic), float(result.pvalue)


def two_proportions(
    errors_a: int, n_a: int, errors_b: int, n_b: int
) -> tuple[str, float | None, float]:
    """Test that two error rates differ: (test name, z or None, two-sided p)."""
    table = [[errors_a, n_a - errors_a], [errors_b, n_b - errors_b]]
    pooled = (errors_a + errors_b) / (n_a + n_b)
    expected = [n * p for n in (n_a, n_b) for p in (pooled, 1 - pooled)]
    from scipy import stats

    if min(expected) < 5:
        # Rare errors (the usual case of a healthy service): the z-test's normal
        # approximation would overstate significance, the exact test does not.
        return FISHER, None, float(stats.fisher_exact(table).pvalue)
    z = (errors_a / n_a - errors_b / n_b) / math.sqrt(pooled * (1 - pooled) * (1 / n_a + 1 / n_b))
    return Z_TEST, z, float(2 * stats.norm.sf(abs(z)))


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-adjusted p-values, in the order given (compare each with alpha)."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    adjusted = [0.0] * len(p_values)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(p_values) - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def _latency_test(best: Version, other: Version) -> Comparison:
    if not best.latencies_ms or not other.latencies_ms:
        # A side with no successful request has no latency at all: the other is better.
        answered = best.name if best.latencies_ms else other.name if other.latencies_ms else ""
        return Comparison(best.name, other.name, "none: a side answered no request", None,
                    0.0 if answered else 1.0, answered)  # fmt: skip
    u, p = mann_whitney(best.latencies_ms, other.latencies_ms)
    mine, theirs = _median(best.latencies_ms), _median(other.latencies_ms)
    if mine != theirs:
        favours = best.name if mine < theirs else other.name
    else:  # equal medians: the rank sums say which tends lower
        half = len(best.latencies_ms) * len(other.latencies_ms) / 2
        favours = best.name if u < half else other.name if u > half else ""
    detail = f"median {mine:.4g} ms against {theirs:.4g} ms"
    return Comparison(best.name, other.name, MANN_WHITNEY, u, p, favours, detail=detail)


def _error_rate_test(best: Version, other: Version) -> Comparison:
    if not best.requests or not other.requests:
        return Comparison(best.name, other.name, "none: a side sent no request", None, 1.0, "")
    name, z, p = two_proportions(best.errors, best.requests, other.errors, other.requests)
    mine, theirs = best.errors / best.requests, other.errors / other.requests
    favours = "" if mine == theirs else best.name if mine < theirs else other.name
    detail = f"{best.errors} of {best.requests} against {other.errors} of {other.requests} failed"
    return Comparison(best.name, other.name, name, z, p, favours, detail=detail)


def serving_test(metric: str) -> Comparer:
    """The test for a metric the load measures (an SLO metric)."""
    return _error_rate_test if metric == "error_rate" else _latency_test


def _rank_key(metric: str) -> Callable[[Version], tuple[int, float]]:
    sign = -1.0 if metric in HIGHER_IS_BETTER else 1.0

    def key(version: Version) -> tuple[int, float]:
        value = version.figures.get(metric)
        return (1, 0.0) if value is None else (0, sign * value)  # a missing value ranks last

    return key


def decide(
    versions: Sequence[Version],
    metric: str,
    confidence: float,
    compare: Comparer,
    min_effect: float = 0.0,
) -> Decision:
    """The winner by ``metric`` among the versions that meet their SLOs, or why there is none.

    With ``min_effect`` a significant difference must also be at least that large, relative
    to the other version's figure: many requests make a difference too small to matter
    significant, and queued requests are not quite independent draws.
    """
    alpha = round(1 - confidence, 12)
    eligible = [v for v in versions if v.meets_slos]
    if not eligible:
        return Decision(metric, confidence, "", "no version meets the SLOs")
    if len(eligible) == 1:
        return Decision(
            metric, confidence, eligible[0].name, f"only {eligible[0].name} meets the SLOs"
        )
    # sorted() is stable: of versions that look equally good, the first named stays first.
    best, *others = sorted(eligible, key=_rank_key(metric))
    if best.figures.get(metric) is None:
        return Decision(metric, confidence, "", f"no version has a value of {metric}")
    tests = [compare(best, other) for other in others]
    adjusted = holm([t.p_value for t in tests])
    tests = [replace(t, adjusted_p=p) for t, p in zip(tests, adjusted, strict=True)]
    failing = [t for t in tests if t.adjusted_p > alpha or t.favours != best.name]
    if failing:
        worst = max(failing, key=lambda t: (t.favours != best.name, t.adjusted_p))
        if worst.favours != best.name and worst.adjusted_p <= alpha:
            reason = (
                f"{best.name} is best by {metric}, but the {worst.test} does not favour it "
                f"over {worst.other} (p={worst.adjusted_p:.3g})"
            )
        else:
            reason = (
                f"not significant: p={worst.adjusted_p:.3g} > {alpha:g} between {best.name} "
                f"and {worst.other} ({worst.test}"
                + (f", {CORRECTION}-adjusted)" if len(tests) > 1 else ")")
            )
        return Decision(metric, confidence, "", reason, tuple(tests))
    small = _smallest_effect(best, others, metric)
    if small is not None and small[1] < min_effect:
        reason = (
            f"{best.name} is best by {metric}, significantly, but only by {small[1]:.1%} over "
            f"{small[0]}, below min-effect {min_effect:.1%}"
        )
        return Decision(metric, confidence, "", reason, tuple(tests))
    if len(tests) == 1:
        reason = (
            f"{best.name} is better by {metric} than {tests[0].other}: "
            f"{tests[0].test} p={tests[0].adjusted_p:.3g} <= {alpha:g}"
        )
    else:
        largest = max(t.adjusted_p for t in tests)
        reason = (
            f"{best.name} is best by {metric}, significantly better than each of the "
            f"{len(tests)} others ({CORRECTION}-adjusted p <= {largest:.3g} <= {alpha:g})"
        )
    return Decision(metric, confidence, best.name, reason, tuple(tests))


def _smallest_effect(
    best: Version, others: Sequence[Version], metric: str
) -> tuple[str, float] | None:
    """The other version closest to the best by ``metric``, and how far, relative to it."""
    mine = best.figures.get(metric)
    if mine is None:
        return None
    gaps = []
    for other in others:
        theirs = other.figures.get(metric)
        if theirs is None:
            continue
        scale = abs(theirs) or abs(mine)
        gaps.append((other.name, abs(mine - theirs) / scale if scale else 0.0))
    return min(gaps, key=lambda gap: gap[1]) if gaps else None
