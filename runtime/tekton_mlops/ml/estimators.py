"""The estimators train-model offers, by catalog name.

Hyper-parameters are validated by the train-model schema (one sub-schema per
estimator) before this module is reached; here they only map onto
scikit-learn's constructors, with the seed as ``random_state``.

Logistic regression is fitted on standardized features: on raw columns of
very different scales (the breast-cancer table spans 1e-3 to 4e3) lbfgs needs
thousands of iterations and stops at its limit with a ConvergenceWarning, and
the penalty C then weighs each coefficient by its column's unit. The scaler is
part of the pipeline, so it is exported into the ONNX graph (a ``Scaler`` node)
and a served model takes raw features like the scikit-learn one.
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
    scaled: bool = False  # standardize the features inside the model (see the module doc)


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
        EstimatorSpec("logistic-regression", "classification", _logistic, scaled=True),
        EstimatorSpec("random-forest-classifier", "classification", _forest_classifier),
        EstimatorSpec("gradient-boosting-classifier", "classification", _boosting_classifier),
        EstimatorSpec("linear-regression", "regression", _linear, seeded=False),
        EstimatorSpec("random-forest-regressor", "regression", _forest_regressor),
        EstimatorSpec("gradient-boosting-regressor", "regression", _boosting_regressor),
    )
}


#: Name of the estimator's step in a pipeline built by :func:`build`.
FINAL_STEP = "estimator"


def make(name: str, hyperparameters: Mapping[str, Any], seed: int) -> Any:
    """The unfitted scikit-learn estimator alone, without the scaler :func:`build` adds."""
    spec = ESTIMATORS[name]
    arguments = dict(hyperparameters)
    if spec.seeded:
        arguments["random_state"] = seed
    return spec.factory(**arguments)


def build(name: str, hyperparameters: Mapping[str, Any], seed: int) -> Any:
    """An unfitted scikit-learn estimator, or a pipeline that scales its input first."""
    estimator = make(name, hyperparameters, seed)
    if not ESTIMATORS[name].scaled:
        return estimator
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    return Pipeline([("scale", StandardScaler()), (FINAL_STEP, estimator)])


def final_estimator(model: Any) -> Any:
    """The estimator at the end of a pipeline :func:`build` made (or the model itself)."""
    steps = getattr(model, "named_steps", None)
    return model if steps is None else steps[FINAL_STEP]


def preprocessing(name: str) -> list[str]:
    """What the model does to its input before the estimator, for the model's metadata."""
    return ["standard-scaler"] if ESTIMATORS[name].scaled else []
