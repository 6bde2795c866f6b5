"""A small in-memory table for prepare-data: CSV in, typed cells, CSV out.

Plain lists and the csv module keep the runtime image free of pandas. Cells are text
as read (``str``), typed values after a cast (``int``, ``float``, ``bool``), or
``None`` for a missing value. Every row remembers its record number in the input file
(the header being row 1, as a spreadsheet shows it), so a message can name the row a
user finds in the file.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tekton_mlops.errors import DataError
from tekton_mlops.ml import tabular

Cell = str | int | float | bool | None

_TRUE = {"true", "yes", "1", "t", "y"}
_FALSE = {"false", "no", "0", "f", "n"}


@dataclass
class Frame:
    columns: list[str]
    rows: list[list[Cell]]
    numbers: list[int]  # each row's record number in the input file
    types: dict[str, str]  # column -> string | int | float | bool
    source: Path  # the input file, for messages

    def index(self, name: str, where: str) -> int:
        """The position of column ``name``; a missing one names every column there is."""
        if name in self.columns:
            return self.columns.index(name)
        shown = ", ".join(self.columns[:30]) + (
            f" and {len(self.columns) - 30} more" if len(self.columns) > 30 else ""
        )
        raise DataError(f"{where}: no column {name!r}; the columns are {shown}")

    def take(self, positions: Sequence[int]) -> Frame:
        """The rows at ``positions``, in that order: shared, not copied (a third of the run
        time on large tables), so a frame is left behind once it has been taken from."""
        return Frame(
            list(self.columns),
            [self.rows[i] for i in positions],
            [self.numbers[i] for i in positions],
            dict(self.types),
            self.source,
        )


def shown(value: object) -> str:
    """A value quoted and cut short: data goes into a one-line message."""
    text = str(value)
    return repr(text if len(text) <= 40 else text[:37] + "...")


def read_csv(path: Path, missing: Collection[str]) -> Frame:
    """Read a UTF-8 CSV with a header of distinct names; ``missing`` texts become None.

    The file, header and row checks are training's (:mod:`tekton_mlops.ml.tabular`), with
    the same messages."""
    return tabular.read_csv(path, lambda reader: _parse(reader, path, missing))


def _parse(reader: Any, path: Path, missing: Collection[str]) -> Frame:
    header = tabular.checked_header(reader, path)
    rows: list[list[Cell]] = []
    numbers: list[int] = []
    for number, row in tabular.data_rows(reader, header, path):
        rows.append([None if cell.strip() in missing else cell for cell in row])
        numbers.append(number)
    return Frame(header, rows, numbers, dict.fromkeys(header, "string"), path)


def cast_cell(value: Cell, kind: str) -> Cell:
    """``value`` as ``kind``; raise ValueError with the reason when it does not cast."""
    if value is None:
        return None
    if kind == "string":
        return value if isinstance(value, str) else render(value)
    if isinstance(value, bool):
        value = int(value)
    if kind == "bool":
        text = str(value).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise ValueError("is not a bool (true/false, yes/no, 1/0)")
    number = value if isinstance(value, int | float) else _number(value)
    if not math.isfinite(number):
        raise ValueError(f"is not a finite {kind}")
    if kind == "float":
        return float(number)
    if isinstance(number, int):
        return number
    if not number.is_integer():
        raise ValueError("is not a whole number (int)")
    return int(number)


def _number(text: str) -> int | float:
    text = text.strip()
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        raise ValueError("is not a number") from None


def render(value: Cell) -> str:
    """A cell as CSV text: missing is empty, bool is 1 or 0 (a number for a model)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        return repr(value)  # the shortest text that reads back as the same float
    return str(value)


def write_csv(path: Path, frame: Frame) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(frame.columns)
        writer.writerows([render(cell) for cell in row] for row in frame.rows)
