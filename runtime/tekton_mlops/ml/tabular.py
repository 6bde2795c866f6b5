"""Tabular CSV data for training and evaluation.

``--data`` is a CSV file or a directory that fetch-data produced. When the
directory carries a manifest, the CSV is verified against it before it is read
(digests cross every step boundary), and an expected root digest can be pinned.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
    path = Path(data)
    if not path.exists():
        raise DataError(f"{data}: no such file or directory")
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


def _number(text: str, column: str, row: int) -> float:
    try:
        return float(text)
    except ValueError:
        if text.strip() == "":
            raise DataError(f"missing value in column {column!r} at row {row}") from None
        raise DataError(
            f"column {column!r} row {row}: {text!r} is not a number "
            "(features must be numeric; encode categories before training)"
        ) from None


def read_table(
    csv_path: Path, target: str, features: Sequence[str] | None = None, numeric_target: bool = False
) -> Table:
    """Read a CSV with a header row; every column but the target is a feature.

    ``features`` selects and orders the feature columns (a trained model's own
    order), so evaluation feeds the model what it was trained on.
    """
    with csv_path.open(newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if not header:
            raise DataError(f"{csv_path}: empty file, a header row is expected")
        header = [h.strip() for h in header]
        if target not in header:
            raise DataError(f"{csv_path}: no column {target!r}; columns are {', '.join(header)}")
        names = list(features) if features is not None else [h for h in header if h != target]
        missing = [n for n in names if n not in header]
        if missing:
            raise DataError(f"{csv_path}: missing feature column(s) {', '.join(missing)}")
        if not names:
            raise DataError(f"{csv_path}: no feature columns besides {target!r}")
        indices = [header.index(n) for n in names]
        target_index = header.index(target)
        rows: list[list[float]] = []
        labels: list[str] = []
        for number, row in enumerate(reader, start=2):
            if not row:
                continue
            if len(row) != len(header):
                raise DataError(
                    f"{csv_path}: row {number} has {len(row)} fields, the header has {len(header)}"
                )
            rows.append([_number(row[i], header[i], number) for i in indices])
            labels.append(row[target_index].strip())
    if not rows:
        raise DataError(f"{csv_path}: no data rows")
    return Table(
        features=np.asarray(rows, dtype=np.float64),
        target=_target_array(labels, target, numeric_target),
        feature_names=tuple(names),
        target_name=target,
    )


def _target_array(labels: list[str], target: str, numeric: bool) -> np.ndarray[Any, Any]:
    if any(label == "" for label in labels):
        raise DataError(f"missing value in target column {target!r}")
    if numeric:
        try:
            return np.asarray([float(v) for v in labels], dtype=np.float64)
        except ValueError:
            raise DataError(f"target column {target!r} must be numeric for a regressor") from None
    try:
        as_int = [int(v) for v in labels]
    except ValueError:
        return np.asarray(labels, dtype=object)
    return np.asarray(as_int, dtype=np.int64)
