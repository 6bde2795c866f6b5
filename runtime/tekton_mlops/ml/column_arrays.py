"""Chosen columns of a CSV file as numpy arrays, read in chunks: for whole-column statistics.

Training reads a table cell by cell into Python values (:mod:`tabular`, :mod:`columns`);
drift detection reads tables of millions of rows, where that would take gigabytes. Here
the file, header and row checks are still :mod:`tabular`'s (UTF-8 text, no NUL, a header
of distinct names, every row as wide as the header), with the same messages, but the
cells of each chunk of rows go into numpy at once: numbers as float64 (NaN where a cell
is empty or says NaN), categories as fixed-width text (``""`` where empty). Only the
columns asked for are kept; the target and any other column may be there or not.

Example::

    table = read_columns(Path("current.csv"), {"age": NUMERIC, "city": CATEGORICAL})
    table.values["age"]     # float64
    table.rows              # data rows read
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from operator import itemgetter
from pathlib import Path
from typing import Any

import numpy as np

from tekton_mlops.errors import DataError
from tekton_mlops.ml.columns import NUMERIC
from tekton_mlops.ml.tabular import checked_header, data_rows, read_csv

#: Rows converted together: large enough that numpy's per-call cost vanishes, small enough
#: that the rows as Python strings stay a few tens of megabytes.
CHUNK_ROWS = 65536


@dataclass(frozen=True)
class ColumnArrays:
    """The columns asked for, each one array of ``rows`` values, in file order."""

    values: dict[str, np.ndarray]
    rows: int


def read_columns(csv_path: Path, kinds: Mapping[str, str]) -> ColumnArrays:
    """Read the columns of ``kinds`` (name -> numeric or categorical) from a CSV file.

    Raises:
        DataError: naming the file (and the column and row) when a column is missing, a
            numeric cell is not a number, or a number is infinite.
    """
    return read_csv(csv_path, lambda reader: _parse(reader, csv_path, kinds))


def _parse(reader: Any, csv_path: Path, kinds: Mapping[str, str]) -> ColumnArrays:
    header = checked_header(reader, csv_path)
    missing = [name for name in kinds if name not in header]
    if missing:
        more = f" and {len(missing) - 10} more" if len(missing) > 10 else ""
        shown = ", ".join(header[:20]) + (" ..." if len(header) > 20 else "")
        raise DataError(
            f"{csv_path}: no column(s) {', '.join(map(repr, missing[:10]))}{more}; "
            f"the columns are {shown}"
        )
    positions = {name: header.index(name) for name in kinds}
    parts: dict[str, list[np.ndarray]] = {name: [] for name in kinds}
    rows = 0
    for numbers, chunk in _chunks(data_rows(reader, header, csv_path)):
        for name, kind in kinds.items():
            # The column's cells, picked in C: no other column is copied.
            cells = list(map(itemgetter(positions[name]), chunk))
            if kind == NUMERIC:
                parts[name].append(_numbers(cells, name, numbers, csv_path))
            else:
                parts[name].append(np.strings.strip(np.array(cells, dtype=str)))
        rows += len(chunk)
    if rows == 0:
        raise DataError(f"{csv_path}: no data rows")
    return ColumnArrays({name: _joined(chunks) for name, chunks in parts.items()}, rows)


def _chunks(
    rows: Iterator[tuple[int, list[str]]],
) -> Iterator[tuple[list[int], list[list[str]]]]:
    while batch := list(itertools.islice(rows, CHUNK_ROWS)):
        yield [number for number, _ in batch], [row for _, row in batch]


def _joined(chunks: Sequence[np.ndarray]) -> np.ndarray:
    # Text chunks of different widths concatenate to the widest: every value stays whole.
    return chunks[0] if len(chunks) == 1 else np.concatenate(chunks)


def _numbers(cells: Sequence[str], column: str, numbers: list[int], where: Path) -> np.ndarray:
    """Cells as float64: empty is missing (NaN), as is NaN spelled out; infinity is an error.

    Python's float reads a column of text quicker than numpy's own conversion, and is the
    parser training uses; an empty cell stops the quick pass, and the cell-by-cell pass
    then tells missing values from text that is not a number.
    """
    try:
        values = np.fromiter(map(float, cells), np.float64, len(cells))
    except ValueError:
        values = np.empty(len(cells), dtype=np.float64)
        for index, text in enumerate(cells):
            text = text.strip()
            try:
                values[index] = float(text) if text else math.nan
            except ValueError:
                shown = repr(text if len(text) <= 40 else text[:37] + "...")
                raise DataError(
                    f"{where}: column {column!r} row {numbers[index]}: {shown} is not a number "
                    "(the model takes this column as a number)"
                ) from None
    infinite = np.isinf(values)
    if infinite.any():
        index = int(np.argmax(infinite))
        raise DataError(
            f"{where}: column {column!r} row {numbers[index]}: {cells[index].strip()!r} is not "
            "a finite number"
        )
    return values
