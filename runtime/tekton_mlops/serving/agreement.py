"""Do predictions agree with expected outputs, and two model versions with each other?

A label (a class: integer, string or boolean) agrees only when it is the same
class; a number (a regressor's value, a score) agrees within a tolerance, as
:func:`math.isclose` has it: the difference is at most the absolute tolerance or
the relative one times the larger magnitude, whichever is larger. Expected
outputs are text as a CSV holds them, so ``"1"`` and ``"1.0"`` are both class 1.

Example::

    tolerance = Tolerance(absolute=1e-6, relative=1e-5)
    expected_agrees("setosa", "setosa", tolerance)           # True
    expected_agrees("151.0", 151.00001, tolerance)           # True
    versions_agree(Prediction(1, (0.1, 0.9)), Prediction(0, (0.6, 0.4)), tolerance)  # False
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from tekton_mlops.serving.rows import Cell, Prediction, Value

_TRUE = {"true", "1", "yes", "t", "y", "1.0"}
_FALSE = {"false", "0", "no", "f", "n", "0.0"}


@dataclass(frozen=True)
class Tolerance:
    """How far numeric outputs may be apart and still agree."""

    absolute: float = 1e-6
    relative: float = 1e-5

    def close(self, a: float, b: float) -> bool:
        return math.isclose(a, b, rel_tol=self.relative, abs_tol=self.absolute)


def _number(value: Cell) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def expected_agrees(expected: Cell, got: Value, tolerance: Tolerance) -> bool:
    """Whether the model's ``got`` is the ``expected`` output (a CSV cell)."""
    if got is None or expected is None:
        return False
    if isinstance(got, bool):
        text = str(expected).strip().lower()
        return text in (_TRUE if got else _FALSE)
    if isinstance(got, int):
        number = _number(expected)
        return number is not None and number == got
    if isinstance(got, float):
        number = _number(expected)
        return number is not None and math.isfinite(got) and tolerance.close(got, number)
    return str(expected).strip() == got


def versions_agree(candidate: Prediction, baseline: Prediction, tolerance: Tolerance) -> bool:
    """Whether two versions predicted the same for a row: the same label (class), or
    values within the tolerance. Scores are compared by :func:`max_score_difference`."""
    mine, theirs = candidate.label, baseline.label
    if mine is None or theirs is None:
        return False
    if (isinstance(mine, float) or isinstance(theirs, float)) and _numeric(mine, theirs):
        return tolerance.close(float(mine), float(theirs))
    return type(mine) is type(theirs) and mine == theirs


def _numeric(*values: Value) -> bool:
    return all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)


def max_score_difference(
    candidates: Sequence[Prediction], baselines: Sequence[Prediction]
) -> float | None:
    """The largest difference of one class's score between two versions over all rows;
    None when either gives no scores or they score a different number of classes."""
    largest = 0.0
    for mine, theirs in zip(candidates, baselines, strict=True):
        if mine.scores is None or theirs.scores is None or len(mine.scores) != len(theirs.scores):
            return None
        for a, b in zip(mine.scores, theirs.scores, strict=True):
            if a is None or b is None:
                return None
            largest = max(largest, abs(a - b))
    return largest if candidates else None


def share(agreeing: int, rows: int) -> float:
    """``agreeing / rows`` rounded to 6 places, as results and reports show it."""
    return round(agreeing / rows, 6) if rows else 0.0
