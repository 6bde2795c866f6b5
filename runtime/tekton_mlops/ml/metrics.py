"""Model quality metrics and threshold checks.

Classification: accuracy, precision, recall, f1 (binary for two classes,
macro averages otherwise) and roc_auc (one-vs-rest for several classes).
Regression: r2, mae, mse, rmse. Thresholds read like ``{"accuracy": ">=0.9"}``.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

CLASSIFICATION_METRICS = ("accuracy", "precision", "recall", "f1", "roc_auc")
REGRESSION_METRICS = ("r2", "mae", "mse", "rmse")

_OPERATORS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    ">": operator.gt,
    "<": operator.lt,
    "==": operator.eq,
}
_CONDITION = re.compile(r"^\s*(>=|<=|>|<|==)\s*([-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?)\s*$")


def classification(
    truth: np.ndarray, labels: np.ndarray, proba: np.ndarray, classes: np.ndarray
) -> dict[str, float]:
    from sklearn.metrics import accuracy_score, precision_recall_fscore_support, roc_auc_score

    binary = len(classes) == 2
    precision, recall, f1, _ = precision_recall_fscore_support(
        truth,
        labels,
        average="binary" if binary else "macro",
        pos_label=classes[1] if binary else 1,
        zero_division=0,
    )
    result = {
        "accuracy": float(accuracy_score(truth, labels)),
        "precision": float(precision),
        "recall": float(recall),
        "f1": float(f1),
    }
    present = set(np.unique(truth).tolist())
    if present == set(classes.tolist()):  # AUC needs every class in the data
        if binary:
            result["roc_auc"] = float(roc_auc_score(truth == classes[1], proba[:, 1]))
        else:
            result["roc_auc"] = float(
                roc_auc_score(truth, proba, multi_class="ovr", labels=classes)
            )
    return {k: round(v, 6) for k, v in result.items()}


def regression(truth: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

    mse = float(mean_squared_error(truth, predicted))
    result = {
        "r2": float(r2_score(truth, predicted)),
        "mae": float(mean_absolute_error(truth, predicted)),
        "mse": mse,
        "rmse": math.sqrt(mse),
    }
    return {k: round(v, 6) for k, v in result.items()}


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
