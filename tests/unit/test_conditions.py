"""Thresholds and SLOs: what each condition passes and fails, at and around its limit."""

from __future__ import annotations

import pytest

from tekton_mlops.conditions import Check, check, parse_condition


@pytest.mark.parametrize(
    ("condition", "parsed"),
    [
        (">=0.9", (">=", 0.9)),
        ("<=50", ("<=", 50.0)),
        (">0", (">", 0.0)),
        ("<0.01", ("<", 0.01)),
        ("==1", ("==", 1.0)),
        ("  >=  .5 ", (">=", 0.5)),
        ("<=1.", ("<=", 1.0)),
        ("<=-3", ("<=", -3.0)),
        (">=+2", (">=", 2.0)),
        ("<1e-3", ("<", 0.001)),
        ("<=2.5E+2", ("<=", 250.0)),
    ],
)
def test_conditions_parse(condition: str, parsed: tuple[str, float]) -> None:
    assert parse_condition(condition) == parsed


@pytest.mark.parametrize(
    "condition", ["0.9", "=>0.9", "=0.9", ">=", ">= ninety", ">=0.9x", "x>=0.9", ">=1e", "", "!=1"]
)
def test_anything_else_is_refused_with_an_example(condition: str) -> None:
    with pytest.raises(ValueError, match=r"is not a condition like '>=0\.9'") as caught:
        parse_condition(condition)
    assert repr(condition) in str(caught.value)


@pytest.mark.parametrize(
    ("condition", "below", "at", "above"),
    [
        (">=0.9", False, True, True),
        (">0.9", False, False, True),
        ("<=0.9", True, True, False),
        ("<0.9", True, False, False),
        ("==0.9", False, True, False),
    ],
)
def test_each_operator_at_and_around_its_limit(
    condition: str, below: bool, at: bool, above: bool
) -> None:
    verdicts = [
        check({"m": value}, {"m": condition})[0].passed for value in (0.899999, 0.9, 0.900001)
    ]
    assert verdicts == [below, at, above]


def test_a_metric_that_could_not_be_computed_fails() -> None:
    # roc_auc is left out when a class is missing; latencies are None when nothing succeeded.
    checks = check({"accuracy": 0.95, "latency_p99_ms": None}, {
        "roc_auc": ">=0.5", "latency_p99_ms": "<=100", "accuracy": ">=0.9",
    })  # fmt: skip
    assert checks == [
        Check("accuracy", ">=0.9", 0.95, True),
        Check("latency_p99_ms", "<=100", None, False),
        Check("roc_auc", ">=0.5", None, False),
    ]


def test_zero_is_a_value_not_a_missing_metric() -> None:
    assert check({"error_rate": 0.0}, {"error_rate": "<=0"}) == [
        Check("error_rate", "<=0", 0.0, True)
    ]


def test_checks_come_sorted_by_metric_with_the_condition_normalised() -> None:
    checks = check({"b": 2.0, "a": 1.0}, {"b": " <= 2.50 ", "a": ">=1e-3"})
    assert [(c.metric, c.condition) for c in checks] == [("a", ">=0.001"), ("b", "<=2.5")]


def test_no_thresholds_no_checks() -> None:
    assert check({"accuracy": 0.1}, {}) == []


def test_a_threshold_that_is_not_a_string_is_read_as_text() -> None:
    # YAML and JSON params may carry a number where a condition was meant; it is refused.
    with pytest.raises(ValueError, match="'0.9' is not a condition"):
        check({"accuracy": 1.0}, {"accuracy": 0.9})


def test_describe_says_value_verdict_and_condition() -> None:
    assert Check("accuracy", ">=0.9", 0.9667, True).describe() == "accuracy 0.9667 meets >=0.9"
    assert Check("latency_p99_ms", "<=50", 61.25, False).describe() == (
        "latency_p99_ms 61.25 fails <=50"
    )
    assert Check("roc_auc", ">=0.5", None, False).describe() == "roc_auc n/a fails >=0.5"
    assert Check("error_rate", "<=0", 0.0, True).describe() == "error_rate 0 meets <=0"
