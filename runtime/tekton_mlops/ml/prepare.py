"""The prepare-data transformation: a validated spec applied to a table, in a fixed order.

select, drop, rename, cast, filter, drop-missing, drop-duplicates, split, impute. The
order is fixed so a spec reads the same whatever order its keys are written in. Imputation
comes last and learns its statistics from the training part only, then fills every part
with them: a test set whose gaps were filled with its own mean would leak into the score.
Every column a spec names is looked up where it is used; one that does not exist fails
with the spec field that names it and the columns there are.
"""

from __future__ import annotations

import operator
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tekton_mlops.errors import DataError
from tekton_mlops.ml.frame import Cell, Frame, cast_cell, shown
from tekton_mlops.ml.prepare_spec import Condition, Imputation, Scalar, Spec
from tekton_mlops.ml.split import split_rows


@dataclass(frozen=True)
class Prepared:
    """The parts to write (``{"data": …}``, or ``{"train": …, "test": …}``) and what was done."""

    parts: dict[str, Frame]
    input_rows: int
    filled: dict[str, Cell] = field(default_factory=dict)  # column -> the value imputed


def prepare(frame: Frame, spec: Spec) -> Prepared:
    input_rows = len(frame.rows)
    frame = _select(frame, spec)
    frame = _rename(frame, spec.rename)
    for column, kind in spec.cast.items():
        _cast(frame, column, kind)
    if spec.conditions:
        frame = _filter(frame, spec.match, spec.conditions)
    if spec.drop_missing:
        frame = _drop_missing(frame, spec.drop_missing)
    if spec.drop_duplicates:
        frame = _drop_duplicates(frame)
    if not frame.rows:
        raise DataError(f"{frame.source}: no rows are left after the filters of the spec")
    parts = {"data": frame}
    if spec.split is not None:
        train, test = split_rows(frame, spec.split)
        parts = {"train": frame.take(train), "test": frame.take(test)}
    fitted = parts.get("train", frame)
    filled = {i.column: _statistic(fitted, i) for i in spec.impute}
    for part in parts.values():
        for column, value in filled.items():
            position = part.index(column, f"spec.impute.{column}")
            for row in part.rows:
                if row[position] is None:
                    row[position] = value
    return Prepared(parts, input_rows, filled)


def _select(frame: Frame, spec: Spec) -> Frame:
    keep = list(range(len(frame.columns)))
    if spec.select is not None:
        keep = [frame.index(name, f"spec.select[{i}]") for i, name in enumerate(spec.select)]
    dropped = {frame.index(name, f"spec.drop[{i}]") for i, name in enumerate(spec.drop)}
    keep = [position for position in keep if position not in dropped]
    if not keep:
        raise DataError("spec: select and drop leave no column")
    if keep == list(range(len(frame.columns))):
        return frame
    columns = [frame.columns[p] for p in keep]
    return Frame(
        columns,
        [[row[p] for p in keep] for row in frame.rows],
        frame.numbers,
        {c: frame.types[c] for c in columns},
        frame.source,
    )


def _rename(frame: Frame, rename: Mapping[str, str]) -> Frame:
    columns = list(frame.columns)
    for old, new in rename.items():
        columns[frame.index(old, f"spec.rename.{old}")] = new
    if len(set(columns)) != len(columns):
        twice = sorted({c for c in columns if columns.count(c) > 1})
        raise DataError(f"spec.rename: column name(s) {', '.join(twice)} would appear twice")
    types = {new: frame.types[old] for old, new in zip(frame.columns, columns, strict=True)}
    return Frame(columns, frame.rows, frame.numbers, types, frame.source)


def _cast(frame: Frame, column: str, kind: str) -> None:
    position = frame.index(column, f"spec.cast.{column}")
    for row, number in zip(frame.rows, frame.numbers, strict=True):
        try:
            row[position] = cast_cell(row[position], kind)
        except ValueError as exc:
            raise DataError(
                f"{frame.source}: column {column!r} row {number}: {shown(row[position])} {exc}"
            ) from None
    frame.types[column] = kind


# --- filter ------------------------------------------------------------------------------


def _filter(frame: Frame, match: str, conditions: tuple[Condition, ...]) -> Frame:
    tests = [_Test(frame, c) for c in conditions]
    combine = all if match == "all" else any
    kept = [i for i, row in enumerate(frame.rows) if combine(test(row, i) for test in tests)]
    return frame.take(kept)


_ORDERED: dict[str, Callable[[Any, Any], Any]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


class _Test:
    """One condition, bound to its column and to its value in the column's type."""

    def __init__(self, frame: Frame, condition: Condition) -> None:
        self.frame, self.condition = frame, condition
        self.position = frame.index(condition.column, f"{condition.where}.column")
        self.kind = frame.types[condition.column]
        value = condition.value
        # An ordered comparison of text with a number compares numbers; with text, text
        # (ISO 8601 dates sort as text). Everything else compares in the column's type.
        self.numeric = (
            condition.op in ("<", "<=", ">", ">=")
            and self.kind == "string"
            and isinstance(value, int | float)
            and not isinstance(value, bool)
        )
        target = "float" if self.numeric else self.kind
        self.values: frozenset[Cell] = frozenset()
        self.value: Cell = None
        if isinstance(value, tuple):
            self.values = frozenset(self._convert(v, target) for v in value)
        elif value is not None:
            self.value = self._convert(value, target)

    def _convert(self, value: Scalar, kind: str) -> Cell:
        if kind == "string" and isinstance(value, bool):
            return "true" if value else "false"
        try:
            return cast_cell(value, kind)
        except ValueError as exc:
            raise DataError(
                f"{self.condition.where}.value: {shown(value)} {exc}, the type of column "
                f"{self.condition.column!r}"
            ) from None

    def __call__(self, row: list[Cell], index: int) -> bool:
        op, cell = self.condition.op, row[self.position]
        if op == "is-missing":
            return cell is None
        if cell is None:
            return False  # a missing value meets no comparison, as NULL in SQL
        if op == "not-missing":
            return True
        if op in ("in", "not-in"):
            return (cell in self.values) == (op == "in")
        if self.numeric:
            cell = self._as_number(cell, index)
        value = self.value
        if op == "==":
            return cell == value
        if op == "!=":
            return cell != value
        return bool(_ORDERED[op](cell, value))

    def _as_number(self, cell: Cell, index: int) -> Cell:
        try:
            return cast_cell(cell, "float")
        except ValueError:
            raise DataError(
                f"{self.condition.where}: column {self.condition.column!r} row "
                f"{self.frame.numbers[index]}: {shown(cell)} is not a number to compare with "
                f"{self.condition.value!r} (cast the column, or compare with text)"
            ) from None


# --- missing values and duplicates -------------------------------------------------------


def _drop_missing(frame: Frame, columns: bool | tuple[str, ...]) -> Frame:
    if columns is True:
        positions = list(range(len(frame.columns)))
    else:
        assert isinstance(columns, tuple)
        positions = [frame.index(c, f"spec.drop-missing[{i}]") for i, c in enumerate(columns)]
    kept = [i for i, row in enumerate(frame.rows) if all(row[p] is not None for p in positions)]
    return frame.take(kept)


def _drop_duplicates(frame: Frame) -> Frame:
    seen: set[tuple[Cell, ...]] = set()
    kept = []
    for i, row in enumerate(frame.rows):
        key = tuple(row)
        if key not in seen:
            seen.add(key)
            kept.append(i)
    return frame.take(kept)


def _statistic(frame: Frame, imputation: Imputation) -> Cell:
    """The value that fills ``imputation.column``, learnt from ``frame`` (the training part)."""
    import numpy as np

    where = f"spec.impute.{imputation.column}"
    position = frame.index(imputation.column, where)
    kind = frame.types[imputation.column]
    if imputation.strategy == "constant":
        assert imputation.value is not None
        try:
            return cast_cell(imputation.value, kind)
        except ValueError as exc:
            raise DataError(
                f"{where}.value: {shown(imputation.value)} {exc}, the type of column "
                f"{imputation.column!r}"
            ) from None
    present = [(row[position], n) for row, n in zip(frame.rows, frame.numbers, strict=True)]
    present = [(cell, n) for cell, n in present if cell is not None]
    if not present:
        raise DataError(f"{where}: column {imputation.column!r} has no value to learn from")
    if imputation.strategy == "most-frequent":
        counts = Counter(cell for cell, _ in present)
        top = max(counts.values())
        # Ties go to the smallest value, as scikit-learn's SimpleImputer decides them.
        return min(cell for cell, count in counts.items() if count == top)  # type: ignore[type-var]
    numbers = []
    for cell, number in present:
        try:
            numbers.append(float(cast_cell(cell, "float")))  # type: ignore[arg-type]
        except ValueError:
            raise DataError(
                f"{where}: {imputation.strategy} needs numbers; column {imputation.column!r} "
                f"row {number} holds {shown(cell)} (cast it, or use most-frequent or constant)"
            ) from None
    values = np.asarray(numbers, dtype=np.float64)
    statistic = float(np.mean(values) if imputation.strategy == "mean" else np.median(values))
    # The statistic joins the column in the column's own spelling: text stays text.
    return statistic if kind != "string" else repr(statistic)
