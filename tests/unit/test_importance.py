"""Permutation importance: what it measures, and the bound on what it sends to the model."""

from __future__ import annotations

import numpy as np
import pytest

from tekton_mlops.ml import importance


def _reads_only(column: int, calls: list[int]) -> importance.Predict:
    """A classifier that looks at one feature: its label is that feature's sign."""

    def predict(rows: np.ndarray) -> dict[str, np.ndarray]:
        calls.append(len(rows))
        return {"label": (rows[:, column] > 0).astype(np.int64)}

    return predict


@pytest.mark.parametrize("column", [0, 17, 59])
def test_only_the_feature_the_model_reads_matters_wherever_its_batch_falls(column: int) -> None:
    rng = np.random.default_rng(1)
    features = rng.normal(size=(3000, 60))  # 60 features: several batches of shuffles
    truth = (features[:, column] > 0).astype(np.int64)
    calls: list[int] = []
    found = importance.permutation(
        _reads_only(column, calls), features, truth, "classification", seed=7
    )
    assert found.baseline == 1.0
    assert found.mean[column] > 0.3  # shuffled, the sign is right about half the time
    assert np.all(np.delete(found.mean, column) == 0)
    assert np.all(np.delete(found.std, column) == 0)
    # The baseline, then batches of whole features' shuffles, none over the budget.
    block = found.rows * found.repeats
    assert calls[0] == found.rows
    assert all(n % block == 0 and n <= max(importance.BUDGET, block) for n in calls[1:])
    assert sum(calls[1:]) == 60 * block
    # As few calls as the budget allows: each hands the step's interpreter lock back and
    # forth with the thread importing scikit-learn meanwhile.
    assert len(calls) - 1 == -(-60 * block // importance.BUDGET) > 1


def test_the_same_seed_gives_the_same_importance() -> None:
    rng = np.random.default_rng(2)
    features = rng.normal(size=(500, 5))
    truth = features @ np.arange(5.0)

    def predict(rows: np.ndarray) -> dict[str, np.ndarray]:
        return {"variable": (rows @ np.arange(5.0)).reshape(-1, 1)}

    first = importance.permutation(predict, features, truth, "regression", seed=3)
    second = importance.permutation(predict, features, truth, "regression", seed=3)
    assert first.score == "r2"
    assert first.baseline == 1.0
    assert np.array_equal(first.mean, second.mean)
    assert np.array_equal(first.std, second.std)
    assert list(np.argsort(first.mean)) == [0, 1, 2, 3, 4]  # weight 0 matters least
    assert first.mean[0] == 0
