"""Conditions like ``">=0.9"`` or ``"<=50"`` on named numbers, and their verdicts.

evaluate-model compares quality metrics with thresholds and check-slo compares
latencies and error rates with SLOs the same way; this module needs nothing but
the standard library, so check-slo does not pay for numpy.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

_OPERATORS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    ">": operator.gt,
    "<": operator.lt,
    "==": operator.eq,
}
_CONDITION = re.compile(r"^\s*(>=|<=|>|<|==)\s*([-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?)\s*$")


@dataclass(frozen=True)
class Check:
    metric: str
    condition: str
    value: float | None
    passed: bool

    def describe(self) -> str:
        shown = "n/a" if self.value is None else f"{self.value:g}"
        return f"{self.metric} {shown} {'meets' if self.passed else 'fails'} {self.condition}"


def parse_condition(condition: str) -> tuple[str, float]:
    match = _CONDITION.match(condition)
    if not match:
        raise ValueError(f"{condition!r} is not a condition like '>=0.9'")
    return match.group(1), float(match.group(2))


def check(metrics: Mapping[str, float | None], thresholds: Mapping[str, Any]) -> list[Check]:
    """Compare metrics with thresholds; a metric that could not be computed fails."""
    checks = []
    for metric, condition in sorted(thresholds.items()):
        op, limit = parse_condition(str(condition))
        value = metrics.get(metric)
        passed = value is not None and _OPERATORS[op](value, limit)
        checks.append(Check(metric, f"{op}{limit:g}", value, passed))
    return checks
