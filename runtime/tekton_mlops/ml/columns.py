"""Tables with categories and missing values: what each feature column holds.

A feature column is numeric when every value present parses as a number, and
categorical otherwise; ``categorical`` and ``numeric`` force a kind (zip codes
are numbers that name places; a column forced numeric makes a stray word an
error instead of a category). An empty cell is a missing value in either kind,
and so is a number spelled NaN, as pandas reads it.

Numeric columns come back as float64 with NaN where a value is missing;
categorical ones as the cells' text, trimmed, with ``""`` where missing: an
ONNX string tensor has no NaN, so the empty string is the marker the imputer
in the model's graph looks for, in training, evaluation and serving alike.

Example::

    frame = read_frame(Path("penguins.csv"), "species", categorical=["island"])
    frame.kinds["island"]                 # "categorical"
    frame.values["bill_length_mm"]        # float64, NaN where the cell was empty
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tekton_mlops.errors import DataError
from tekton_mlops.ml.tabular import FLOAT32_MAX, read_cells

NUMERIC = "numeric"
CATEGORICAL = "categorical"
#: A missing category, in the data and in the model's string inputs.
MISSING_CATEGORY = ""


@dataclass(frozen=True)
class Frame:
    """Feature columns by name, each numeric or categorical, and the target."""

    feature_names: tuple[str, ...]
    kinds: dict[str, str]  # column -> NUMERIC or CATEGORICAL
    values: dict[str, np.ndarray]  # float64 (NaN: missing) or object of str ("": missing)
    rows: list[int]  # each row's number in the file, for messages
    target: np.ndarray
    target_name: str

    def names_of(self, kind: str) -> list[str]:
        return [n for n in self.feature_names if self.kinds[n] == kind]

    def missing(self) -> int:
        """How many feature cells are missing."""
        return sum(
            int(np.isnan(v).sum())
            if self.kinds[n] == NUMERIC
            else int((v == MISSING_CATEGORY).sum())
            for n, v in self.values.items()
        )

    def take(self, indices: np.ndarray) -> Frame:
        """The rows at ``indices`` (a holdout split), in that order."""
        return Frame(
            self.feature_names,
            self.kinds,
            {n: v[indices] for n, v in self.values.items()},
            [self.rows[i] for i in indices],
            self.target[indices],
            self.target_name,
        )

    @property
    def features(self) -> np.ndarray:
        """The feature matrix, as :class:`tabular.Table` has it (object when mixed)."""
        return self.matrix()

    def matrix(self, float32: bool = False) -> np.ndarray:
        """The features as scikit-learn takes them, columns in feature order.

        float64 when every column is numeric; otherwise an object array of Python
        floats and strings, which a ColumnTransformer slices by position.
        ``float32`` rounds numbers as the model's FP32 inputs receive them.
        """
        columns = [self.values[n] for n in self.feature_names]
        numbers = [
            c.astype(np.float32).astype(np.float64) if float32 and c.dtype.kind == "f" else c
            for c in columns
        ]
        if all(c.dtype.kind == "f" for c in numbers):
            return np.column_stack(numbers) if numbers else np.empty((len(self.rows), 0))
        table = np.empty((len(self.rows), len(numbers)), dtype=object)
        for position, column in enumerate(numbers):
            table[:, position] = column
        return table


def read_frame(
    csv_path: Path,
    target: str,
    features: Sequence[str] | None = None,
    numeric_target: bool = False,
    *,
    categorical: Collection[str] = (),
    numeric: Collection[str] = (),
    kinds: Mapping[str, str] | None = None,
) -> Frame:
    """Read a CSV whose features may be categories and may be missing.

    ``kinds`` (a trained model's, from its metadata) fixes every column's kind;
    otherwise they are inferred, with ``categorical`` and ``numeric`` forcing
    some. The file checks are :func:`tabular.read_table`'s; a value that is not
    a number in a numeric column, an infinity or a number beyond float32 is an
    error naming column and row.
    """
    raw = read_cells(csv_path, target, features, numeric_target)
    names = raw.feature_names
    for listed, label in ((categorical, "categorical-columns"), (numeric, "numeric-columns")):
        if target in listed:
            raise DataError(f"{label} names the target column {target!r}; it is not a feature")
        if unknown := sorted(set(listed) - set(names)):
            raise DataError(f"{csv_path}: {label} names column(s) not in the table: {unknown}")
    columns = list(zip(*raw.cells, strict=True))
    if kinds is None:
        decided = {
            name: _kind(cells, name in categorical, name in numeric)
            for name, cells in zip(names, columns, strict=True)
        }
        why = "the column is listed in numeric-columns"
    else:
        decided = {name: kinds[name] for name in names}
        why = "the model takes this column as a number"
    values: dict[str, np.ndarray] = {}
    for name, cells in zip(names, columns, strict=True):
        if decided[name] == NUMERIC:
            values[name] = _numbers(cells, name, raw.rows, csv_path, why)
        else:
            values[name] = np.asarray(cells, dtype=object)
        if kinds is None and _all_missing(values[name]):
            # Nothing to learn from, and scikit-learn's imputer would drop the column,
            # so the model would take one input fewer than the table has features.
            raise DataError(f"{csv_path}: column {name!r} has no values (every cell is empty)")
    return Frame(names, decided, values, raw.rows, raw.target, raw.target_name)


def _kind(cells: Sequence[str], categorical: bool, numeric: bool) -> str:
    if categorical:
        return CATEGORICAL
    if numeric or all(_number_or_missing(c) for c in cells):
        return NUMERIC
    return CATEGORICAL


def _number_or_missing(text: str) -> bool:
    if text == "":
        return True
    try:
        float(text)
    except ValueError:
        return False
    return True


def _numbers(cells: Sequence[str], column: str, rows: list[int], where: Path, why: str) -> Any:
    values = np.empty(len(cells), dtype=np.float64)
    for index, text in enumerate(cells):
        if text == "":
            values[index] = math.nan
            continue
        try:
            value = float(text)
        except ValueError:
            shown = repr(text if len(text) <= 40 else text[:37] + "...")
            raise DataError(
                f"{where}: column {column!r} row {rows[index]}: {shown} is not a number ({why})"
            ) from None
        if math.isinf(value):
            raise DataError(
                f"{where}: column {column!r} row {rows[index]}: {text!r} is not a finite number"
            )
        if abs(value) > FLOAT32_MAX:
            raise DataError(
                f"{where}: column {column!r} row {rows[index]}: {value!r} is beyond the float32 "
                "range of the model's input (it would reach the model as infinity)"
            )
        values[index] = value  # NaN spelled out stays NaN: a missing value
    return values


def _all_missing(values: np.ndarray) -> bool:
    if values.dtype.kind == "f":
        return bool(np.isnan(values).all())
    return bool((values == MISSING_CATEGORY).all())
