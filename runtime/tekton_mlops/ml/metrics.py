"""Model quality metrics.

Classification: accuracy, precision, recall, f1 (binary for two classes,
macro averages otherwise) and roc_auc (one-vs-rest for several classes).
Regression: r2, mae, mse, rmse. Thresholds on them are checked by
:mod:`tekton_mlops.conditions`.
"""

from __future__ import annotations

import math

import numpy as np

CLASSIFICATION_METRICS = ("accuracy", "precision", "recall", "f1", "roc_auc")
REGRESSION_METRICS = ("r2", "mae", "mse", "rmse")


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
            # One-vs-rest, unweighted mean: scikit-learn's multi_class="ovr" (macro), taken
            # class by class because scikit-learn first insists that rows sum to 1 within
            # 1e-8, which onnxruntime's float32 sum of a large forest's votes misses (~1e-5).
            # Dividing by the sums instead would break ties between rows and move the AUC.
            result["roc_auc"] = float(
                np.mean([roc_auc_score(truth == c, proba[:, i]) for i, c in enumerate(classes)])
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
