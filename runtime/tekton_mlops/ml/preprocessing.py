"""The model's preprocessing, fitted with the estimator and exported inside the ONNX graph.

The served model takes raw rows, as the training CSV holds them: imputation,
encoding and scaling run in the graph, so serving cannot drift from training.

Two input layouts (recorded in metadata.json, see :mod:`tekton_mlops.ml.inputs`):

- ``matrix``: one FP32 input ``X`` of shape [rows, features], when every feature
  is numeric. A table with no missing value gets exactly the model it always
  got (:func:`estimators.build`, the same bytes); with missing values a
  SimpleImputer comes first, and NaN in ``X`` marks a missing value.
- ``columns``: one input per feature column, shape [rows, 1], float for a
  numeric column and string for a categorical one, named after the column
  (skl2onnx turns a name into an identifier: ``"body mass"`` becomes
  ``body_mass``, hence the mapping in metadata.json).

Why one input per column for mixed tables: an ONNX tensor has one element type,
so numbers and categories cannot share one; one tensor per column is how the
Open Inference Protocol carries a table (MLServer's pandas codec sends each
column as its own tensor, strings as BYTES), every input then names what it
holds, and a missing value is written in its own column's type (NaN or null for
a number, "" for a category). Two inputs (all numbers, all strings) would
save a few tensors per request at the price of a positional contract between
column order and tensor slots that a client has to get right by hand.
skl2onnx maps a ColumnTransformer's integer column positions onto the inputs
in order, so scikit-learn fits on a plain object array (no pandas needed).

In the ``columns`` layout a ColumnTransformer sends numeric columns through a
SimpleImputer (mean, median or the constant 0), then the StandardScaler where
the estimator is scaled (see :mod:`estimators`), and categorical columns
through a SimpleImputer for "" (most frequent, or the constant category
``missing``) and a OneHotEncoder (unknown categories ignored: all zeros) or an
OrdinalEncoder (unknown categories become -1). Imputers are always present in
this layout, so a served model takes missing values even where training saw
none.

Example::

    plan = plan_for(frame, encoding="one-hot")
    model = build(plan, "random-forest-classifier", {"n_estimators": 50}, seed=42)
    model.fit(frame.matrix(), frame.target)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from tekton_mlops.ml import estimators
from tekton_mlops.ml.columns import CATEGORICAL, MISSING_CATEGORY, NUMERIC, Frame

MATRIX = "matrix"
COLUMNS = "columns"
ENCODINGS = ("one-hot", "ordinal")
NUMERIC_IMPUTATION = ("mean", "median", "constant")
CATEGORICAL_IMPUTATION = ("most-frequent", "constant")
#: What a constant imputation fills in.
NUMERIC_FILL = 0.0
CATEGORY_FILL = "missing"
#: OrdinalEncoder's code for a category training never saw.
UNKNOWN_CODE = -1


@dataclass(frozen=True)
class Plan:
    """How a table's features reach the estimator."""

    layout: str  # MATRIX or COLUMNS
    numeric: tuple[int, ...]  # positions of the numeric features
    categorical: tuple[int, ...]  # positions of the categorical features
    impute: bool  # MATRIX only: a SimpleImputer first (COLUMNS always imputes)
    encoding: str = "one-hot"
    numeric_imputation: str = "mean"
    categorical_imputation: str = "most-frequent"


def plan_for(
    frame: Frame,
    encoding: str = "one-hot",
    numeric_imputation: str = "mean",
    categorical_imputation: str = "most-frequent",
) -> Plan:
    """The layout a table needs: columns when it has a category, else a matrix."""
    kinds = [frame.kinds[n] for n in frame.feature_names]
    numeric = tuple(i for i, k in enumerate(kinds) if k == NUMERIC)
    categorical = tuple(i for i, k in enumerate(kinds) if k == CATEGORICAL)
    layout = COLUMNS if categorical else MATRIX
    return Plan(
        layout,
        numeric,
        categorical,
        impute=layout == COLUMNS or frame.missing() > 0,
        encoding=encoding,
        numeric_imputation=numeric_imputation,
        categorical_imputation=categorical_imputation,
    )


def build(plan: Plan, estimator: str, hyperparameters: Mapping[str, Any], seed: int) -> Any:
    """The unfitted pipeline: preprocessing, then the estimator as its FINAL_STEP."""
    if plan.layout == MATRIX and not plan.impute:
        return estimators.build(estimator, hyperparameters, seed)
    from sklearn.pipeline import Pipeline

    final = (estimators.FINAL_STEP, estimators.make(estimator, hyperparameters, seed))
    if plan.layout == MATRIX:
        return Pipeline([("impute", _numeric_imputer(plan)), *_scaling(estimator), final])
    from sklearn.compose import ColumnTransformer

    branches = []
    if plan.numeric:
        steps = [("impute", _numeric_imputer(plan)), *_scaling(estimator)]
        branches.append((NUMERIC, Pipeline(steps), list(plan.numeric)))
    if plan.categorical:
        steps = [("impute", _category_imputer(plan)), ("encode", _encoder(plan))]
        branches.append((CATEGORICAL, Pipeline(steps), list(plan.categorical)))
    # sparse_threshold=0: a dense matrix, which every estimator and converter takes alike.
    return Pipeline([("preprocess", ColumnTransformer(branches, sparse_threshold=0)), final])


def describe(plan: Plan, estimator: str) -> list[str]:
    """The preprocessing in the model, in order, for metadata.json."""
    if plan.layout == MATRIX and not plan.impute:
        return estimators.preprocessing(estimator)
    steps = [f"impute-numeric:{plan.numeric_imputation}"] if plan.numeric else []
    steps += estimators.preprocessing(estimator) if plan.numeric else []
    if plan.categorical:
        steps += [f"impute-categorical:{plan.categorical_imputation}", f"{plan.encoding}-encoder"]
    return steps


def _scaling(estimator: str) -> list[tuple[str, Any]]:
    if not estimators.ESTIMATORS[estimator].scaled:
        return []
    from sklearn.preprocessing import StandardScaler

    return [("scale", StandardScaler())]


def _numeric_imputer(plan: Plan) -> Any:
    from sklearn.impute import SimpleImputer

    if plan.numeric_imputation == "constant":
        return SimpleImputer(strategy="constant", fill_value=NUMERIC_FILL)
    return SimpleImputer(strategy=plan.numeric_imputation)


def _category_imputer(plan: Plan) -> Any:
    from sklearn.impute import SimpleImputer

    if plan.categorical_imputation == "constant":
        return SimpleImputer(
            missing_values=MISSING_CATEGORY, strategy="constant", fill_value=CATEGORY_FILL
        )
    return SimpleImputer(missing_values=MISSING_CATEGORY, strategy="most_frequent")


def _encoder(plan: Plan) -> Any:
    from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder

    if plan.encoding == "ordinal":
        return OrdinalEncoder(
            handle_unknown="use_encoded_value", unknown_value=UNKNOWN_CODE, dtype=np.float64
        )
    return OneHotEncoder(handle_unknown="ignore", sparse_output=False)
