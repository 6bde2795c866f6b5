"""Quality metrics against answers worked out by hand and against scikit-learn called directly.

Each table is chosen so that the metrics differ from one another (accuracy, precision,
recall and f1 all distinct; mse and rmse distinct), so a metric computed as another one,
a wrong averaging or a wrong positive class changes a number the test checks exactly,
to the 6 decimals the step reports.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn import metrics as sk

from tekton_mlops.ml.metrics import (
    CLASSIFICATION_METRICS,
    REGRESSION_METRICS,
    classification,
    regression,
)


def r6(value: float) -> float:
    return round(float(value), 6)


# Binary: 10 rows, TP=3 FP=1 FN=2 TN=4 for the positive class "yes".
BINARY_TRUTH = np.array(["yes", "yes", "yes", "yes", "yes", "no", "no", "no", "no", "no"])
BINARY_LABELS = np.array(["yes", "yes", "yes", "no", "no", "yes", "no", "no", "no", "no"])
BINARY_P_YES = np.array([0.9, 0.8, 0.7, 0.45, 0.2, 0.6, 0.3, 0.1, 0.35, 0.05])
BINARY_CLASSES = np.array(["no", "yes"])


def binary_proba() -> np.ndarray:
    return np.column_stack([1 - BINARY_P_YES, BINARY_P_YES])


def test_binary_metrics_are_those_of_the_positive_class_worked_by_hand() -> None:
    got = classification(BINARY_TRUTH, BINARY_LABELS, binary_proba(), BINARY_CLASSES)
    precision, recall = 3 / 4, 3 / 5
    # AUC as the share of (positive, negative) pairs ranked right: 21 of 25.
    ranked = sum(p > n for p in BINARY_P_YES[:5] for n in BINARY_P_YES[5:])
    assert ranked == 21
    assert got == {
        "accuracy": 0.7,
        "precision": 0.75,
        "recall": 0.6,
        "f1": r6(2 * precision * recall / (precision + recall)),  # 0.666667
        "roc_auc": 0.84,
    }


def test_binary_metrics_equal_scikit_learn_called_directly() -> None:
    got = classification(BINARY_TRUTH, BINARY_LABELS, binary_proba(), BINARY_CLASSES)
    assert got == {
        "accuracy": r6(sk.accuracy_score(BINARY_TRUTH, BINARY_LABELS)),
        "precision": r6(sk.precision_score(BINARY_TRUTH, BINARY_LABELS, pos_label="yes")),
        "recall": r6(sk.recall_score(BINARY_TRUTH, BINARY_LABELS, pos_label="yes")),
        "f1": r6(sk.f1_score(BINARY_TRUTH, BINARY_LABELS, pos_label="yes")),
        "roc_auc": r6(sk.roc_auc_score(BINARY_TRUTH == "yes", BINARY_P_YES)),
    }


def test_the_positive_class_is_the_second_class_whatever_its_name() -> None:
    # Integer labels 0/1: the positive class is 1, as scikit-learn's classes_[1].
    truth = (BINARY_TRUTH == "yes").astype(np.int64)
    labels = (BINARY_LABELS == "yes").astype(np.int64)
    got = classification(truth, labels, binary_proba(), np.array([0, 1]))
    assert (got["precision"], got["recall"], got["roc_auc"]) == (0.75, 0.6, 0.84)
    # Swap the names: "no" becomes the second class and so the positive one.
    swapped = classification(
        np.where(BINARY_TRUTH == "yes", "b", "a"),
        np.where(BINARY_LABELS == "yes", "b", "a"),
        binary_proba(),
        np.array(["a", "b"]),
    )
    assert swapped == classification(BINARY_TRUTH, BINARY_LABELS, binary_proba(), BINARY_CLASSES)
    flipped = classification(
        np.where(BINARY_TRUTH == "yes", "a", "b"),
        np.where(BINARY_LABELS == "yes", "a", "b"),
        binary_proba()[:, ::-1],
        np.array(["a", "b"]),
    )
    # For "no" as positive: TP=4 FP=2 FN=1.
    assert (flipped["precision"], flipped["recall"]) == (r6(4 / 6), 0.8)
    assert flipped["roc_auc"] == 0.84  # the same ranking seen from the other class


def test_no_positive_prediction_gives_zero_precision_not_a_warning() -> None:
    labels = np.array(["no"] * 10)
    got = classification(BINARY_TRUTH, labels, binary_proba(), BINARY_CLASSES)
    assert (got["precision"], got["recall"], got["f1"]) == (0.0, 0.0, 0.0)
    assert got["accuracy"] == 0.5


# Three classes, 12 rows; per class (precision, recall): a (2/3, 2/4), b (3/5, 3/4), c (3/4, 3/4).
MULTI_TRUTH = np.array([0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2])
MULTI_LABELS = np.array([0, 0, 1, 2, 1, 1, 1, 0, 2, 2, 2, 1])
MULTI_CLASSES = np.array([0, 1, 2])


def multi_proba() -> np.ndarray:
    rng = np.random.default_rng(7)
    raw = rng.random((12, 3)) + np.eye(3)[MULTI_LABELS]  # leaning towards the predicted class
    return raw / raw.sum(axis=1, keepdims=True)


def test_multiclass_metrics_are_macro_averages_worked_by_hand() -> None:
    got = classification(MULTI_TRUTH, MULTI_LABELS, multi_proba(), MULTI_CLASSES)
    per_class = [(2 / 3, 2 / 4), (3 / 5, 3 / 4), (3 / 4, 3 / 4)]
    f1 = [2 * p * r / (p + r) for p, r in per_class]
    assert got["accuracy"] == r6(8 / 12)
    assert got["precision"] == r6(sum(p for p, _ in per_class) / 3)
    assert got["recall"] == r6(sum(r for _, r in per_class) / 3)
    assert got["f1"] == r6(sum(f1) / 3)
    # One-vs-rest AUC, averaged without weights: each class's pairs ranked right.
    proba = multi_proba()
    aucs = []
    for k in range(3):
        pos, neg = proba[k == MULTI_TRUTH, k], proba[k != MULTI_TRUTH, k]
        aucs.append(sum((p > n) + 0.5 * (p == n) for p in pos for n in neg) / (len(pos) * len(neg)))
    assert got["roc_auc"] == r6(sum(aucs) / 3)


def test_multiclass_metrics_equal_scikit_learn_called_directly() -> None:
    proba = multi_proba()
    got = classification(MULTI_TRUTH, MULTI_LABELS, proba, MULTI_CLASSES)
    assert got == {
        "accuracy": r6(sk.accuracy_score(MULTI_TRUTH, MULTI_LABELS)),
        "precision": r6(sk.precision_score(MULTI_TRUTH, MULTI_LABELS, average="macro")),
        "recall": r6(sk.recall_score(MULTI_TRUTH, MULTI_LABELS, average="macro")),
        "f1": r6(sk.f1_score(MULTI_TRUTH, MULTI_LABELS, average="macro")),
        "roc_auc": r6(sk.roc_auc_score(MULTI_TRUTH, proba, multi_class="ovr", average="macro")),
    }


def test_multiclass_with_a_class_the_model_never_predicts() -> None:
    # Class 1 is never predicted: its precision counts as 0 in the macro average.
    labels = np.where(MULTI_LABELS == 1, 0, MULTI_LABELS)
    got = classification(MULTI_TRUTH, labels, multi_proba(), MULTI_CLASSES)
    assert got["precision"] == r6(
        sk.precision_score(MULTI_TRUTH, labels, average="macro", zero_division=0)
    )
    assert got["precision"] == r6((3 / 8 + 0 + 3 / 4) / 3)


def test_roc_auc_is_left_out_when_a_class_is_missing_from_the_data() -> None:
    # AUC is undefined without every class; a gate on it then fails rather than pass on 0.
    truth, labels, proba = MULTI_TRUTH[:8], MULTI_LABELS[:8], multi_proba()[:8]
    got = classification(truth, labels, proba, MULTI_CLASSES)
    assert set(got) == {"accuracy", "precision", "recall", "f1"}
    binary = classification(
        np.array(["yes"] * 4), np.array(["yes", "no", "yes", "yes"]), binary_proba()[:4],
        BINARY_CLASSES,
    )  # fmt: skip
    assert "roc_auc" not in binary
    assert binary["recall"] == 0.75


def test_classification_values_are_plain_floats_rounded_to_6_decimals() -> None:
    got = classification(MULTI_TRUTH, MULTI_LABELS, multi_proba(), MULTI_CLASSES)
    assert all(type(v) is float for v in got.values())
    assert got["accuracy"] == 0.666667  # 8/12, not 0.6666666666666666


REG_TRUTH = np.array([3.0, -0.5, 2.0, 7.0, 4.25])
REG_PRED = np.array([2.5, 0.0, 2.0, 8.0, 3.0])


def test_regression_metrics_worked_by_hand() -> None:
    errors = REG_PRED - REG_TRUTH  # -0.5, 0.5, 0, 1, -1.25
    mse = float(np.mean(errors**2))  # 0.6125
    total = float(np.sum((REG_TRUTH - REG_TRUTH.mean()) ** 2))
    got = regression(REG_TRUTH, REG_PRED)
    assert got == {
        "mse": 0.6125,
        "rmse": r6(math.sqrt(0.6125)),  # 0.782624
        "mae": 0.65,
        "r2": r6(1 - mse * len(REG_TRUTH) / total),
    }
    assert got["rmse"] != got["mse"]


def test_regression_metrics_equal_scikit_learn_called_directly() -> None:
    got = regression(REG_TRUTH, REG_PRED)
    assert got == {
        "r2": r6(sk.r2_score(REG_TRUTH, REG_PRED)),
        "mae": r6(sk.mean_absolute_error(REG_TRUTH, REG_PRED)),
        "mse": r6(sk.mean_squared_error(REG_TRUTH, REG_PRED)),
        "rmse": r6(sk.root_mean_squared_error(REG_TRUTH, REG_PRED)),
    }
    assert all(type(v) is float for v in got.values())


def test_a_perfect_regressor_and_a_worse_than_mean_one() -> None:
    assert regression(REG_TRUTH, REG_TRUTH) == {"r2": 1.0, "mae": 0.0, "mse": 0.0, "rmse": 0.0}
    constant = np.full_like(REG_TRUTH, REG_TRUTH.mean() + 1)
    assert regression(REG_TRUTH, constant)["r2"] < 0


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        (CLASSIFICATION_METRICS, ("accuracy", "precision", "recall", "f1", "roc_auc")),
        (REGRESSION_METRICS, ("r2", "mae", "mse", "rmse")),
    ],
)
def test_the_metric_names_thresholds_may_use(names: tuple[str, ...], expected: tuple) -> None:  # type: ignore[type-arg]
    assert names == expected


def test_multiclass_with_class_names() -> None:
    # Names instead of numbers (a species column): the same macro averages, and no
    # positive class is involved (scikit-learn would warn about one, and warnings fail here).
    names = np.array(["setosa", "versicolor", "virginica"])
    got = classification(names[MULTI_TRUTH], names[MULTI_LABELS], multi_proba(), names)
    assert got == classification(MULTI_TRUTH, MULTI_LABELS, multi_proba(), MULTI_CLASSES)


def test_float32_probabilities_of_many_trees_still_score() -> None:
    # onnxruntime sums a large forest's votes in float32: rows miss 1 by about 1e-5, which
    # scikit-learn's multi-class AUC refuses outright. Each class's ranking is what counts.
    proba = multi_proba()
    off = (proba * np.array([1 + 4e-5, 1 - 3e-5, 1 + 2e-5])).astype(np.float32)
    with pytest.raises(ValueError, match="should sum up to 1"):
        sk.roc_auc_score(MULTI_TRUTH, off, multi_class="ovr")
    got = classification(MULTI_TRUTH, MULTI_LABELS, off, MULTI_CLASSES)
    assert (
        got["roc_auc"] == classification(MULTI_TRUTH, MULTI_LABELS, proba, MULTI_CLASSES)["roc_auc"]
    )


def test_ties_between_rows_count_half_as_scikit_learn_counts_them() -> None:
    # Forest probabilities are multiples of 1/trees: rows tie often, and a tie is worth half.
    truth = np.array([0, 0, 1, 1, 2, 2])
    proba = np.array([[0.5, 0.25, 0.25]] * 2 + [[0.25, 0.5, 0.25]] * 2 + [[0.5, 0.25, 0.25],
                     [0.25, 0.25, 0.5]])  # fmt: skip
    labels = proba.argmax(axis=1)
    got = classification(truth, labels, proba, np.array([0, 1, 2]))
    assert got["roc_auc"] == r6(sk.roc_auc_score(truth, proba, multi_class="ovr"))
