"""Train/test splits of a table: by ratio, stratified by a column, or by time.

Each part keeps the input's row order. For a fixed seed the split is the same on every
run (numpy's PCG64 generator). Sizes follow scikit-learn's ``train_test_split``: the test
part takes ``ceil(test-size x rows)`` rows; a stratified split takes
``round(test-size x class rows)`` of each class, at least one on each side.
"""

from __future__ import annotations

import math

from tekton_mlops.errors import DataError
from tekton_mlops.ml.frame import Frame, render
from tekton_mlops.ml.prepare_spec import Split


def split_rows(frame: Frame, split: Split) -> tuple[list[int], list[int]]:
    """Row positions of the training and the test part, each in input order."""
    rows = len(frame.rows)
    if split.method == "ratio":
        test = _ratio(rows, split)
    elif split.method == "stratified":
        test = _stratified(frame, split)
    else:
        test = _by_time(frame, split)
    chosen = set(test)
    train = [i for i in range(rows) if i not in chosen]
    if not train or not test:
        raise DataError(
            f"spec.split: {rows} row(s) cannot give both a training and a test part "
            f"with test-size {split.test_size}"
        )
    return train, sorted(test)


def _ratio(rows: int, split: Split) -> list[int]:
    import numpy as np

    generator = np.random.default_rng(split.seed)
    size = math.ceil(split.test_size * rows)
    return [int(i) for i in generator.permutation(rows)[:size]]


def _column(frame: Frame, split: Split) -> int:
    position = frame.index(split.column, "spec.split.column")
    for row, number in zip(frame.rows, frame.numbers, strict=True):
        if row[position] is None:
            raise DataError(
                f"spec.split.column: column {split.column!r} row {number} has no value to "
                "split by (drop-missing or impute it first)"
            )
    return position


def _stratified(frame: Frame, split: Split) -> list[int]:
    import numpy as np

    position = _column(frame, split)
    classes: dict[str, list[int]] = {}
    for i, row in enumerate(frame.rows):
        classes.setdefault(render(row[position]), []).append(i)
    generator = np.random.default_rng(split.seed)
    test: list[int] = []
    for label in sorted(classes):  # one order on every run, whatever the input order
        members = classes[label]
        if len(members) < 2:
            raise DataError(
                f"spec.split: class {label!r} of column {split.column!r} has 1 row; "
                "a stratified split needs at least 2 of each class"
            )
        size = min(max(math.floor(split.test_size * len(members) + 0.5), 1), len(members) - 1)
        test += [members[int(i)] for i in generator.permutation(len(members))[:size]]
    return test


def _by_time(frame: Frame, split: Split) -> list[int]:
    """The latest rows by the column; rows tied with the earliest test time join the test
    part too, so every training row is strictly older than every test row."""
    position = _column(frame, split)
    kind = frame.types[split.column]
    if kind == "bool":
        raise DataError(f"spec.split.column: column {split.column!r} is a bool, not a time")
    times = [row[position] for row in frame.rows]
    order = sorted(range(len(times)), key=lambda i: times[i])  # type: ignore[arg-type,return-value]
    size = math.ceil(split.test_size * len(times))
    cutoff = times[order[len(times) - size]]
    return [i for i, moment in enumerate(times) if moment >= cutoff]  # type: ignore[operator]
