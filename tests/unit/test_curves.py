"""The report's curves and confusion matrix, computed with numpy, equal scikit-learn's."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import auc, confusion_matrix, precision_recall_curve, roc_curve

from tekton_mlops.ml.plots import _confusion, _curves


@pytest.mark.parametrize("seed", range(40))
def test_roc_and_precision_recall_equal_scikit_learn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    rows = int(rng.integers(5, 400))
    positive = rng.random(rows) < rng.uniform(0.05, 0.95)
    positive[:2] = [True, False]  # both classes present
    # Rounded scores: ties, the case where curves are easy to get wrong.
    score = np.round(rng.random(rows), int(rng.integers(1, 4)))
    fpr, tpr, precision, recall = _curves(positive, score)
    expected_fpr, expected_tpr, _ = roc_curve(positive, score, drop_intermediate=False)
    np.testing.assert_allclose(fpr, expected_fpr)
    np.testing.assert_allclose(tpr, expected_tpr)
    assert np.trapezoid(tpr, fpr) == pytest.approx(auc(expected_fpr, expected_tpr), abs=1e-12)
    expected_precision, expected_recall, _ = precision_recall_curve(positive, score)
    np.testing.assert_allclose(precision, expected_precision)
    np.testing.assert_allclose(recall, expected_recall)


def test_confusion_equals_scikit_learn_in_the_classes_order() -> None:
    rng = np.random.default_rng(3)
    classes = np.asarray(["setosa", "versicolor", "virginica"])
    truth = classes[rng.integers(0, 3, 500)]
    labels = classes[rng.integers(0, 3, 500)]
    order = classes[::-1]  # the model's class order, not sorted
    np.testing.assert_array_equal(
        _confusion(truth, labels, order), confusion_matrix(truth, labels, labels=order)
    )
