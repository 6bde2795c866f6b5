"""A/B/n statistics on constructed samples: the tests against scipy, the winner rule, Holm.

Samples are drawn from fixed seeds, so "clearly different" and "alike" are facts of the
data here, not chances: each assertion holds for these draws and would fail if the test
or the rule were wrong.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from tekton_mlops.serving.abtest import (
    FISHER,
    MANN_WHITNEY,
    Z_TEST,
    Comparison,
    Version,
    decide,
    holm,
    mann_whitney,
    serving_test,
    two_proportions,
)


def latencies(seed: int, median_ms: float, count: int = 200) -> list[float]:
    """Log-normal latencies (a long right tail, as served requests have) around a median."""
    generator = np.random.default_rng(seed)
    return list(median_ms * np.exp(generator.normal(0.0, 0.3, count)))


def version(
    name: str, samples: list[float], errors: int = 0, meets_slos: bool = True, **figures: float
) -> Version:
    measured = {
        "latency_p50_ms": float(np.median(samples)) if samples else None,
        "latency_p99_ms": float(np.percentile(samples, 99)) if samples else None,
        "error_rate": errors / (len(samples) + errors),
        "throughput_rps": 1000 / float(np.mean(samples)) if samples else 0.0,
    } | figures
    return Version(name, measured, meets_slos, samples, len(samples) + errors, errors)


# The tests themselves ----------------------------------------------------------------------


def test_mann_whitney_is_scipys_two_sided_test() -> None:
    a, b = latencies(1, 10.0), latencies(2, 12.0)
    u, p = mann_whitney(a, b)
    expected = stats.mannwhitneyu(a, b, alternative="two-sided")
    assert (u, p) == (float(expected.statistic), float(expected.pvalue))
    # U counts the pairs where a's value is the larger: a is faster, so U is under half.
    assert u < len(a) * len(b) / 2


def test_clearly_different_latencies_are_significant_alike_ones_are_not() -> None:
    assert mann_whitney(latencies(1, 10.0), latencies(2, 13.0))[1] < 1e-6
    # Two draws from one distribution.
    assert mann_whitney(latencies(3, 10.0), latencies(4, 10.0))[1] > 0.2


def test_two_proportions_z_test_is_the_chi_square_test_without_correction() -> None:
    # 50 of 400 against 80 of 400 failed: every cell expects far more than 5.
    name, z, p = two_proportions(50, 400, 80, 400)
    assert name == Z_TEST
    assert z is not None
    assert z < 0  # the first rate is the lower
    chi2, chi2_p, _, _ = stats.chi2_contingency([[50, 350], [80, 320]], correction=False)
    assert z * z == pytest.approx(chi2)
    assert p == pytest.approx(chi2_p)
    # By hand: pooled 130/800, se = sqrt(p (1 - p) (1/400 + 1/400)), z = -0.075 / se.
    pooled = 130 / 800
    assert z == pytest.approx(-0.075 / math.sqrt(pooled * (1 - pooled) / 200))
    assert p < 0.01


def test_rare_errors_use_fishers_exact_test() -> None:
    # 0 of 200 against 3 of 200: the 2x2 table expects 1.5 errors a side, too few for z.
    name, z, p = two_proportions(0, 200, 3, 200)
    assert (name, z) == (FISHER, None)
    assert p == pytest.approx(stats.fisher_exact([[0, 200], [3, 197]]).pvalue)
    assert p > 0.2  # where the z-test would say 0.08
    assert two_proportions(0, 200, 0, 200) == (FISHER, None, 1.0)


def test_holm_adjusts_step_down() -> None:
    # Sorted 0.01, 0.03, 0.04 times 3, 2, 1: 0.03, 0.06, 0.04 -> kept monotone: 0.06.
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5, 0.9]) == [1.0, 1.0]  # capped at 1
    assert holm([0.02]) == [0.02]  # one comparison: nothing to correct
    assert holm([]) == []


# The winner rule -------------------------------------------------------------------------


def test_the_clearly_fastest_of_three_wins() -> None:
    versions = [version("v1", latencies(1, 12.0)), version("v2", latencies(2, 9.0)),
                version("v3", latencies(3, 15.0))]  # fmt: skip
    decision = decide(versions, "latency_p50_ms", 0.95, serving_test("latency_p50_ms"))
    assert decision.winner == "v2"
    assert [(t.best, t.other, t.test, t.favours) for t in decision.tests] == [
        ("v2", "v1", MANN_WHITNEY, "v2"),
        ("v2", "v3", MANN_WHITNEY, "v2"),
    ]
    for t in decision.tests:
        assert t.adjusted_p >= t.p_value  # Holm never lowers a p-value
        assert t.adjusted_p <= 0.05
    assert decision.reason.startswith(
        "v2 is best by latency_p50_ms, significantly better than each of the 2 others "
        "(Holm-adjusted p <= "
    )


def test_alike_versions_have_no_winner_and_the_reason_says_which_pair() -> None:
    versions = [version("v1", latencies(3, 10.0)), version("v2", latencies(4, 10.0))]
    decision = decide(versions, "latency_p99_ms", 0.95, serving_test("latency_p99_ms"))
    assert decision.winner == ""
    (test,) = decision.tests
    best, other = test.best, test.other
    assert decision.reason == (
        f"not significant: p={test.adjusted_p:.3g} > 0.05 between {best} and {other} "
        "(Mann-Whitney U)"
    )


def test_versions_failing_slos_cannot_win() -> None:
    fastest = version("v1", latencies(1, 5.0), meets_slos=False)
    versions = [fastest, version("v2", latencies(2, 10.0)), version("v3", latencies(3, 14.0))]
    decision = decide(versions, "latency_p50_ms", 0.95, serving_test("latency_p50_ms"))
    # v1 is excluded: v2 wins against v3 only, and nothing is tested against v1.
    assert decision.winner == "v2"
    assert [(t.best, t.other) for t in decision.tests] == [("v2", "v3")]
    assert decision.reason.startswith("v2 is better by latency_p50_ms than v3: Mann-Whitney U p=")


def test_only_one_version_meeting_the_slos_wins_and_none_meeting_them_none_wins() -> None:
    b = version("b", latencies(2, 50.0))
    a = version("a", latencies(1, 5.0), meets_slos=False)  # the faster, but out of its SLOs
    only_b = decide([a, b], "latency_p50_ms", 0.95, serving_test("latency_p50_ms"))
    assert (only_b.winner, only_b.reason, only_b.tests) == ("b", "only b meets the SLOs", ())
    none = decide(
        [version("a", latencies(1, 5.0), meets_slos=False), version("b", [], 3, meets_slos=False)],
        "latency_p50_ms", 0.95, serving_test("latency_p50_ms"),
    )  # fmt: skip
    assert (none.winner, none.reason) == ("", "no version meets the SLOs")


def fixed(p_values: dict[str, float]) -> object:
    """A comparer that reports given p-values (in the best's favour), to test the rule alone."""

    def compare(best: Version, other: Version) -> Comparison:
        return Comparison(best.name, other.name, "given", None, p_values[other.name], best.name)

    return compare


def test_the_correction_can_take_a_win_away() -> None:
    versions = [version("a", [1.0], latency_p50_ms=1.0), version("b", [2.0], latency_p50_ms=2.0),
                version("c", [3.0], latency_p50_ms=3.0)]  # fmt: skip
    # Each p alone is under 0.05; Holm doubles the smaller one: 0.06 > 0.05.
    decision = decide(versions, "latency_p50_ms", 0.95, fixed({"b": 0.03, "c": 0.04}))  # type: ignore[arg-type]
    assert decision.winner == ""
    assert (
        decision.reason == "not significant: p=0.06 > 0.05 between a and b (given, Holm-adjusted)"
    )
    # At a lower confidence the same data make a winner.
    assert decide(versions, "latency_p50_ms", 0.9, fixed({"b": 0.03, "c": 0.04})).winner == "a"  # type: ignore[arg-type]
    # With one other version there is nothing to correct.
    assert decide(versions[:2], "latency_p50_ms", 0.95, fixed({"b": 0.03})).winner == "a"  # type: ignore[arg-type]


def test_higher_is_better_for_throughput() -> None:
    slow, fast = latencies(1, 20.0), latencies(2, 10.0)
    versions = [version("slow", slow), version("fast", fast)]
    decision = decide(versions, "throughput_rps", 0.95, serving_test("throughput_rps"))
    assert decision.winner == "fast"


def test_a_tail_that_disagrees_with_the_medians_makes_no_winner() -> None:
    # v1 has the lower median but a long tail: best by p99 is v2, the medians favour v1.
    body = latencies(1, 10.0, 190)
    v1 = version("v1", body + [200.0] * 10)
    v2 = version("v2", latencies(2, 14.0))
    decision = decide([v1, v2], "latency_p99_ms", 0.95, serving_test("latency_p99_ms"))
    (test,) = decision.tests
    assert (test.best, test.favours) == ("v2", "v1")
    assert decision.winner == ""
    assert decision.reason == (
        f"v2 is best by latency_p99_ms, but the Mann-Whitney U does not favour it over v1 "
        f"(p={test.adjusted_p:.3g})"
    )


def test_error_rates_decide_by_the_proportion_test() -> None:
    clean = version("clean", latencies(1, 10.0, 400), errors=2)
    flaky = version("flaky", latencies(2, 10.0, 360), errors=40)
    decision = decide([flaky, clean], "error_rate", 0.95, serving_test("error_rate"))
    (test,) = decision.tests
    assert (decision.winner, test.test, test.favours) == ("clean", Z_TEST, "clean")
    assert test.detail == "2 of 402 against 40 of 400 failed"


def test_equal_figures_keep_the_first_named_as_best_and_make_no_winner() -> None:
    a, b = version("a", latencies(1, 10.0), errors=0), version("b", latencies(2, 10.0))
    decision = decide([a, b], "error_rate", 0.95, serving_test("error_rate"))
    assert decision.winner == ""
    assert decision.reason == ("not significant: p=1 > 0.05 between a and b (Fisher's exact test)")


def test_a_version_that_answered_nothing_loses_on_latency() -> None:
    answered, silent = version("ok", latencies(1, 10.0)), version("down", [], errors=50)
    decision = decide([silent, answered], "latency_p50_ms", 0.95, serving_test("latency_p50_ms"))
    assert decision.winner == "ok"
    assert decision.tests[0].test == "none: a side answered no request"
    both_silent = decide([silent, version("off", [], errors=5)], "latency_p50_ms", 0.95,
                         serving_test("latency_p50_ms"))  # fmt: skip
    assert (both_silent.winner, both_silent.reason) == (
        "",
        "no version has a value of latency_p50_ms",
    )


def test_the_decision_as_json() -> None:
    versions = [version("v1", latencies(1, 10.0)), version("v2", latencies(2, 13.0))]
    decision = decide(versions, "latency_p50_ms", 0.99, serving_test("latency_p50_ms"))
    shown = decision.as_dict()
    assert shown["winner"] == "v1"
    assert (shown["metric"], shown["confidence"], shown["correction"]) == (
        "latency_p50_ms", 0.99, "Holm",
    )  # fmt: skip
    (test,) = shown["tests"]
    assert test["versions"] == ["v1", "v2"]
    assert test["test"] == "Mann-Whitney U"
    assert test["favours"] == "v1"
    assert test["p_value"] == test["adjusted_p"] < 0.01
    assert test["detail"].startswith("median 10")


def test_a_significant_but_small_difference_needs_min_effect_to_win() -> None:
    # 3% apart on 5000 requests each: Mann-Whitney calls it significant beyond doubt.
    fast, slow = latencies(11, 10.0, 5000), latencies(12, 10.3, 5000)
    versions = [version("fast", fast), version("slow", slow)]
    plain = decide(versions, "latency_p50_ms", 0.99, serving_test("latency_p50_ms"))
    assert plain.winner == "fast"
    assert plain.tests[0].adjusted_p < 0.01
    gap = abs(np.median(fast) - np.median(slow)) / np.median(slow)
    assert 0.01 < gap < 0.05
    held = decide(versions, "latency_p50_ms", 0.99, serving_test("latency_p50_ms"), 0.05)
    assert held.winner == ""
    assert held.reason == (
        f"fast is best by latency_p50_ms, significantly, but only by {gap:.1%} over slow, "
        "below min-effect 5.0%"
    )
    # A difference beyond min-effect still wins.
    far = [version("fast", fast), version("slower", latencies(13, 12.0, 5000))]
    assert (
        decide(far, "latency_p50_ms", 0.99, serving_test("latency_p50_ms"), 0.05).winner == "fast"
    )
