"""Tabular CSV data for training and evaluation.

``--data`` is a CSV file or a directory that fetch-data produced. When the
directory carries a manifest, the CSV is verified against it before it is read
(digests cross every step boundary), and an expected root digest can be pinned.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from tekton_mlops.digests import (
    artifact_files,
    parse_digest,
    read_manifest,
    sha256_file,
    verify_files,
)
from tekton_mlops.errors import DataError, IntegrityError


@dataclass(frozen=True)
class DataSource:
    """The CSV a step reads, and the digest that identifies the dataset."""

    csv: Path
    digest: str  # hex: the dataset's root digest, or the file's sha256 without a manifest
    uri: str


@dataclass(frozen=True)
class Table:
    features: np.ndarray  # float64, rows x columns
    target: np.ndarray
    feature_names: tuple[str, ...]
    target_name: str


def locate(data: str, pinned_digest: str = "") -> DataSource:
    """Find the CSV in ``data`` and verify it against the dataset's manifest."""
    try:
        return _locate(Path(data), data, pinned_digest)
    except OSError as exc:  # unreadable (permissions, a vanished mount): the user's to fix
        where = exc.filename or data
        raise DataError(f"{where}: cannot read ({exc.strerror or exc})") from None


def _locate(path: Path, data: str, pinned_digest: str) -> DataSource:
    if not path.exists():
        raise DataError(f"{data}: no such file or directory")
    if not path.is_file() and not path.is_dir():
        raise DataError(f"{data}: not a regular file or a directory")
    if path.is_file():
        digest = sha256_file(path)
        _check_pin(pinned_digest, digest, data)
        return DataSource(path, digest, path.resolve().as_uri())
    manifest = read_manifest(path)
    csvs = [p for p in artifact_files(path) if p.suffix.lower() == ".csv"]
    if not csvs:
        raise DataError(f"{data}: no .csv file in this directory")
    if len(csvs) > 1:
        names = ", ".join(p.relative_to(path).as_posix() for p in csvs[:5])
        raise DataError(f"{data}: several CSV files ({names}); name one file as the data")
    chosen = csvs[0]
    if manifest is None:
        if pinned_digest:
            raise IntegrityError(f"{data}: a digest is pinned but the directory has no manifest")
        return DataSource(chosen, sha256_file(chosen), chosen.resolve().as_uri())
    verify_files(path, manifest, [chosen.relative_to(path).as_posix()])
    _check_pin(pinned_digest, manifest.root_hex, data)
    return DataSource(chosen, manifest.root_hex, manifest.source or path.resolve().as_uri())


def _check_pin(pinned: str, actual: str, data: str) -> None:
    if pinned and parse_digest(pinned) != actual:
        raise IntegrityError(
            f"{data}: dataset digest sha256:{actual} does not match the pinned {pinned}"
        )


#: Features reach the model as float32 (ONNX input "X"); larger magnitudes become infinite there.
FLOAT32_MAX = float(np.finfo(np.float32).max)


def _unparsable(text: str, column: str, row: int, where: Path) -> DataError:
    """Why a feature cell is not a number, naming the cell."""
    if text.strip() == "":
        return DataError(f"{where}: missing value in column {column!r} at row {row}")
    return DataError(
        f"{where}: column {column!r} row {row}: {_shown(text)} is not a number "
        "(features must be numeric; encode categories before training)"
    )


def _check_finite(
    features: np.ndarray[Any, Any], rows: list[int], names: Sequence[str], where: Path
) -> None:
    """Every feature finite and within float32, checked at once; the first bad cell is named.

    float() reads "nan", "inf" and "1e39" without complaint, and the model takes float32,
    where 1e39 is infinite: none of them can be trained on or scored honestly.
    """
    bad = ~(np.abs(features) <= FLOAT32_MAX)  # NaN compares false, so it is caught too
    if not bad.any():
        return
    index, position = (int(i) for i in np.argwhere(bad)[0])
    value, column, row = float(features[index, position]), names[position], rows[index]
    if math.isnan(value):
        # A missing value spelled out, as pandas writes it.
        raise DataError(f"{where}: missing value in column {column!r} at row {row} (NaN)")
    if math.isinf(value):
        raise DataError(f"{where}: column {column!r} row {row}: {value!r} is not a finite number")
    raise DataError(
        f"{where}: column {column!r} row {row}: {value!r} is beyond the float32 range of the "
        "model's input (it would reach the model as infinity)"
    )


def _parses(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _shown(text: str) -> str:
    """A value from the file, quoted and cut short: data goes into a one-line message."""
    text = text.strip()
    return repr(text if len(text) <= 40 else text[:37] + "...")


def read_table(
    csv_path: Path, target: str, features: Sequence[str] | None = None, numeric_target: bool = False
) -> Table:
    """Read a CSV with a header row; every column but the target is a feature.

    ``features`` selects and orders the feature columns (a trained model's own
    order), so evaluation feeds the model what it was trained on. Training and
    evaluation share every check: UTF-8 text, a header of distinct names, no
    missing or non-finite value, and numbers float32 can hold. Rows are
    numbered as a spreadsheet shows them, the header being row 1.
    """
    return read_csv(
        csv_path, lambda reader: _parse(reader, csv_path, target, features, numeric_target)
    )


_Parsed = TypeVar("_Parsed")


def read_csv(csv_path: Path, parse: Callable[[Any], _Parsed]) -> _Parsed:
    """Run ``parse`` on a csv reader of the file; file and CSV errors become DataErrors."""
    reader: Any = None
    try:
        # utf-8-sig: a byte-order mark (spreadsheets write one) must not become part of
        # the first column's name. Explicit, because a pod's locale may be plain ASCII.
        with csv_path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(_text_lines(handle, csv_path))
            return parse(reader)
    except UnicodeDecodeError:
        raise DataError(
            f"{csv_path}: not UTF-8 text ({_undecodable(csv_path)}); a CSV file is expected"
        ) from None
    except csv.Error as exc:
        line = reader.line_num if reader is not None else 1
        raise DataError(f"{csv_path}: not a readable CSV file at line {line} ({exc})") from None
    except IsADirectoryError:
        raise DataError(f"{csv_path}: is a directory, a CSV file is expected") from None
    except OSError as exc:
        raise DataError(f"{csv_path}: cannot read ({exc.strerror or exc})") from None


def _undecodable(csv_path: Path) -> str:
    """Where the first byte that is not UTF-8 sits: text decodes in chunks, so the error
    itself does not say which line; the failure path reads the file again, line by line."""
    with csv_path.open("rb") as handle:
        for number, line in enumerate(handle, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as exc:
                return f"byte 0x{line[exc.start]:02x} in line {number}"
    return "an incomplete character at the end"


def _text_lines(handle: Any, csv_path: Path) -> Iterator[str]:
    """The file's lines, refusing NUL: the csv module reads it since 3.11, as part of a value."""
    for number, line in enumerate(handle, start=1):
        if "\x00" in line:
            raise DataError(
                f"{csv_path}: line {number} holds a NUL byte; a CSV text file is expected"
            )
        yield line


def _parse(
    reader: Any,
    csv_path: Path,
    target: str,
    features: Sequence[str] | None,
    numeric_target: bool,
) -> Table:
    header, names, indices, target_index = _header(reader, csv_path, target, features)
    rows: list[list[float]] = []
    numbers: list[int] = []  # each row's number in the file, for messages
    labels: list[str] = []
    for number, row in data_rows(reader, header, csv_path):
        try:
            rows.append([float(row[i]) for i in indices])
        except ValueError:
            bad = next(i for i in indices if not _parses(row[i]))
            raise _unparsable(row[bad], header[bad], number, csv_path) from None
        numbers.append(number)
        labels.append(_label(row[target_index], target, number, csv_path, numeric_target))
    if not rows:
        raise DataError(f"{csv_path}: no data rows")
    features_array = np.asarray(rows, dtype=np.float64)
    _check_finite(features_array, numbers, names, csv_path)
    return Table(
        features=features_array,
        target=_target_array(labels, numeric_target),
        feature_names=tuple(names),
        target_name=target,
    )


def checked_header(reader: Any, csv_path: Path) -> list[str]:
    """The header row: present, every column named, no name twice (names trimmed)."""
    header = next(reader, None)
    if not header:
        raise DataError(f"{csv_path}: empty file, a header row is expected")
    header = [h.strip() for h in header]
    for position, name in enumerate(header, start=1):
        if not name:
            raise DataError(f"{csv_path}: header column {position} has no name")
        if header.index(name) != position - 1:
            raise DataError(f"{csv_path}: column {name!r} appears twice in the header")
    return header


def _header(
    reader: Any, csv_path: Path, target: str, features: Sequence[str] | None
) -> tuple[list[str], list[str], list[int], int]:
    """The header, the feature names, their positions and the target's position, checked."""
    header = checked_header(reader, csv_path)
    if target not in header:
        shown = ", ".join(header[:20]) + (
            f" and {len(header) - 20} more" if len(header) > 20 else ""
        )
        raise DataError(f"{csv_path}: no column {target!r}; columns are {shown}")
    names = list(features) if features is not None else [h for h in header if h != target]
    missing = [n for n in names if n not in header]
    if missing:
        more = f" and {len(missing) - 10} more" if len(missing) > 10 else ""
        raise DataError(f"{csv_path}: missing feature column(s) {', '.join(missing[:10])}{more}")
    if not names:
        raise DataError(f"{csv_path}: no feature columns besides {target!r}")
    return header, names, [header.index(n) for n in names], header.index(target)


def data_rows(reader: Any, header: list[str], csv_path: Path) -> Iterator[tuple[int, list[str]]]:
    """Each data row with its number in the file; blank lines skipped, field counts checked."""
    for number, row in enumerate(reader, start=2):
        if not row:
            continue
        if len(row) != len(header):
            raise DataError(
                f"{csv_path}: row {number} has {len(row)} fields, the header has {len(header)}"
            )
        yield number, row


@dataclass(frozen=True)
class RawTable:
    """Feature cells as text (trimmed; "" where missing) and a checked target column."""

    cells: list[list[str]]  # rows x features, in feature_names order
    rows: list[int]  # each row's number in the file (the header is row 1), for messages
    target: np.ndarray
    feature_names: tuple[str, ...]
    target_name: str


def read_cells(
    csv_path: Path, target: str, features: Sequence[str] | None = None, numeric_target: bool = False
) -> RawTable:
    """Read a CSV as :func:`read_table` does, but leave the feature cells as text.

    For tables with categories and missing values (:mod:`tekton_mlops.ml.columns`
    decides what each column holds). The file, header, row and target checks
    are :func:`read_table`'s, with the same messages.
    """
    return read_csv(
        csv_path, lambda reader: _parse_cells(reader, csv_path, target, features, numeric_target)
    )


def _parse_cells(
    reader: Any,
    csv_path: Path,
    target: str,
    features: Sequence[str] | None,
    numeric_target: bool,
) -> RawTable:
    header, names, indices, target_index = _header(reader, csv_path, target, features)
    cells: list[list[str]] = []
    numbers: list[int] = []
    labels: list[str] = []
    for number, row in data_rows(reader, header, csv_path):
        cells.append([row[i].strip() for i in indices])
        numbers.append(number)
        labels.append(_label(row[target_index], target, number, csv_path, numeric_target))
    if not cells:
        raise DataError(f"{csv_path}: no data rows")
    return RawTable(cells, numbers, _target_array(labels, numeric_target), tuple(names), target)


def _label(text: str, target: str, row: int, where: Path, numeric: bool) -> str:
    """A target value: present, not a NaN or an infinity spelled out, a number for a regressor."""
    label = text.strip()
    if label == "":
        raise DataError(f"{where}: missing value in target column {target!r} at row {row}")
    try:
        value = float(label)
    except ValueError:
        if numeric:
            raise DataError(
                f"{where}: target column {target!r} row {row}: {_shown(label)} is not a "
                "number (a regressor needs a numeric target)"
            ) from None
        return label  # a class name
    if math.isnan(value):
        raise DataError(
            f"{where}: missing value in target column {target!r} at row {row} ({_shown(label)})"
        )
    if math.isinf(value):
        raise DataError(
            f"{where}: target column {target!r} row {row}: {_shown(label)} is not a finite number"
        )
    return label


def _target_array(labels: list[str], numeric: bool) -> np.ndarray[Any, Any]:
    """Labels as numbers for a regressor, integers or strings for a classifier."""
    if numeric:
        return np.asarray([float(v) for v in labels], dtype=np.float64)
    try:
        as_int = [int(v) for v in labels]
    except ValueError:
        return np.asarray(labels, dtype=object)
    return np.asarray(as_int, dtype=np.int64)
