"""The estimators train-model offers, by catalog name.

Hyper-parameters are validated by the train-model schema (one sub-schema per
estimator) before this module is reached; here they only map onto
scikit-learn's constructors, with the seed as ``random_state``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class EstimatorSpec:
    name: str
    task: str  # "classification" or "regression"
    factory: Callable[..., Any]
    seeded: bool = True


def _logistic(**kw: Any) -> Any:
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(**kw)


def _linear(**kw: Any) -> Any:
    from sklearn.linear_model import LinearRegression

    return LinearRegression(**kw)


def _forest_classifier(**kw: Any) -> Any:
    from sklearn.ensemble import RandomForestClassifier

    return RandomForestClassifier(**kw)


def _forest_regressor(**kw: Any) -> Any:
    from sklearn.ensemble import RandomForestRegressor

    return RandomForestRegressor(**kw)


def _boosting_classifier(**kw: Any) -> Any:
    from sklearn.ensemble import GradientBoostingClassifier

    return GradientBoostingClassifier(**kw)


def _boosting_regressor(**kw: Any) -> Any:
    from sklearn.ensemble import GradientBoostingRegressor

    return GradientBoostingRegressor(**kw)


ESTIMATORS: dict[str, EstimatorSpec] = {
    spec.name: spec
    for spec in (
        EstimatorSpec("logistic-regression", "classification", _logistic),
        EstimatorSpec("random-forest-classifier", "classification", _forest_classifier),
        EstimatorSpec("gradient-boosting-classifier", "classification", _boosting_classifier),
        EstimatorSpec("linear-regression", "regression", _linear, seeded=False),
        EstimatorSpec("random-forest-regressor", "regression", _forest_regressor),
        EstimatorSpec("gradient-boosting-regressor", "regression", _boosting_regressor),
    )
}


def build(name: str, hyperparameters: Mapping[str, Any], seed: int) -> Any:
    """An unfitted scikit-learn estimator."""
    spec = ESTIMATORS[name]
    arguments = dict(hyperparameters)
    if spec.seeded:
        arguments["random_state"] = seed
    return spec.factory(**arguments)
