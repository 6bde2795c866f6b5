"""Permutation feature importance of a model, through the function that scores it.

    >>> from tekton_mlops.ml import importance
    >>> result = importance.permutation(predict, features, truth, "classification", seed=42)
    >>> result.mean  # one decrease of accuracy per feature

The model is called through ``predict`` (rows -> outputs by name), the same
function the evaluation scores with, so the importance is that of the ONNX
artifact that will be served, not of a scikit-learn object it came from. The
cost is bounded: about ``budget`` rows go through the model in all (``repeats``
shuffles of each feature, as many features per batch as ``budget`` rows hold), on a
seeded sample of the rows, so the report of a large forest does not cost more than
its evaluation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

#: Shuffles per feature, and the rows sent through the model in all: what bounds the
#: cost (a 100-tree forest scores about 40 000 rows a second here, a linear model
#: millions), so the report of a large forest stays a fraction of its evaluation.
REPEATS = 3
BUDGET = 12_000
#: However many features, each shuffle scores at least this many rows (fewer make the
#: score too coarse to rank features) and at most this many.
MIN_ROWS, MAX_ROWS = 200, 2000

Predict = Callable[[np.ndarray], dict[str, np.ndarray]]


@dataclass(frozen=True)
class Importance:
    """Mean and standard deviation of the score's decrease per feature, in column order."""

    score: str  # what decreases: "accuracy" or "r2"
    baseline: float  # the score on the unshuffled rows
    mean: np.ndarray
    std: np.ndarray
    rows: int
    repeats: int


def _score(task: str, truth: np.ndarray, outputs: dict[str, np.ndarray]) -> float:
    if task == "classification":
        return float(np.mean(outputs["label"] == truth))
    predicted = outputs["variable"].reshape(-1)
    spread = float(np.sum((truth - np.mean(truth)) ** 2))
    residual = float(np.sum((truth - predicted) ** 2))
    # r2 of a constant truth is undefined; scikit-learn calls a perfect fit 1, else 0.
    return 1.0 - residual / spread if spread > 0 else float(residual == 0)


def permutation(
    predict: Predict,
    features: np.ndarray,
    truth: np.ndarray,
    task: str,
    seed: int,
    repeats: int = REPEATS,
    budget: int = BUDGET,
) -> Importance:
    """Shuffle each feature column ``repeats`` times and measure how much the score drops.

    The score is accuracy for a classifier and r2 for a regressor: both are
    defined on any sample and computed here without scikit-learn's checks, which
    would dominate the cost on small batches.
    """
    rng = np.random.default_rng(seed)
    rows = len(truth)
    width = features.shape[1]
    sample = min(MAX_ROWS, max(MIN_ROWS, budget // (width * repeats)))
    if rows > sample:
        chosen = np.sort(rng.choice(rows, size=sample, replace=False))
        features, truth = features[chosen], truth[chosen]
        rows = sample
    baseline = _score(task, truth, predict(features))
    mean, std = np.zeros(width), np.zeros(width)
    # Several columns' shuffles go through the model in one call, up to ``budget`` rows: a
    # call per column would hand the interpreter lock back and forth with the step's own
    # thread (which imports scikit-learn meanwhile) dozens of times. A batch holds at most
    # max(budget, rows * repeats) rows of every feature: memory stays that of a small table.
    block = rows * repeats
    per_call = max(1, budget // block)
    for first in range(0, width, per_call):
        columns = range(first, min(width, first + per_call))
        stacked = np.tile(features, (repeats * len(columns), 1))
        for k, column in enumerate(columns):
            for r in range(repeats):
                start = (k * repeats + r) * rows
                stacked[start : start + rows, column] = features[rng.permutation(rows), column]
        outputs = predict(stacked)
        for k, column in enumerate(columns):
            scores = [
                _score(
                    task,
                    truth,
                    {name: value[start : start + rows] for name, value in outputs.items()},
                )
                for start in ((k * repeats + r) * rows for r in range(repeats))
            ]
            drops = baseline - np.asarray(scores)
            mean[column], std[column] = float(np.mean(drops)), float(np.std(drops))
    return Importance(
        "accuracy" if task == "classification" else "r2", baseline, mean, std, rows, repeats
    )
