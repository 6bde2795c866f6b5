"""check-slo's labelled rows: read, bound to every version's model, then predicted and scored.

All checks come before the load, so a dataset that cannot be used costs no request but
the models' metadata: the dataset against its manifest, the target column and its
values, every cell against each model's inputs (:mod:`serving.rows`), and whether the
model metric fits what the models answer (classes for accuracy and f1, values for rmse).
A problem is a parameter error naming dataset, target-column or model-metric (exit 2).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tekton_mlops.errors import ParameterError, SourceError, Violation

if TYPE_CHECKING:
    from tekton_mlops.ml.frame import Frame
    from tekton_mlops.ml.tabular import DataSource
    from tekton_mlops.serving.paired import RowScores
    from tekton_mlops.serving.rows import Batch, Signature

STEP = "check-slo"
#: Rows per inference request.
BATCH_ROWS = 64
_VALUES = {"FP16", "FP32", "FP64"}  # a label output of these is a regressor's value


@dataclass(frozen=True)
class Prepared:
    """One version's side: its model's signature and every request for the rows."""

    name: str
    url: str
    signature: Signature
    batches: list[Batch]


@dataclass(frozen=True)
class Labelled:
    metric: str
    truth: list[Any]  # the target's cells (classes), or floats for rmse
    numbers: list[int]  # each row's record number in the file
    versions: list[Prepared]
    uri: str
    digest: str

    @property
    def row_count(self) -> int:
        return len(self.truth)


def _problem(param: str, value: str, rule: str) -> ParameterError:
    return ParameterError(STEP, [Violation(param, value, rule)])


def _rows(dataset: str, target: str) -> tuple[Frame, list[Any], DataSource]:
    """The table, its target's cells and the source, checked."""
    from tekton_mlops.ml import frame, tabular

    source = tabular.locate(dataset)
    table = frame.read_csv(source.csv, missing={""})
    if target not in table.columns:
        shown = ", ".join(table.columns[:20]) + (" ..." if len(table.columns) > 20 else "")
        rule = f"the dataset {source.csv} has no such column; its columns are {shown}"
        raise _problem("target-column", target, rule)
    if not table.rows:
        raise _problem("dataset", dataset, f"{source.csv} has no data rows")
    at = table.columns.index(target)
    truth = [row[at] for row in table.rows]
    if blank := [n for n, t in zip(table.numbers, truth, strict=True) if t is None]:
        rows = ", ".join(map(str, blank[:10])) + (" ..." if len(blank) > 10 else "")
        rule = f"no value in column {target!r} at row(s) {rows}"
        raise _problem("dataset", dataset, rule)
    return table, truth, source


def _values(dataset: str, target: str, numbers: list[int], cells: list[Any]) -> list[float]:
    """The target's cells as numbers, for rmse."""
    values = []
    for number, cell in zip(numbers, cells, strict=True):
        try:
            value = float(cell)
        except (TypeError, ValueError):
            value = math.nan
        if not math.isfinite(value):
            rule = (
                f"column {target!r} row {number}: {str(cell)[:40]!r} is not "
                "a finite number, which rmse needs"
            )
            raise _problem("dataset", dataset, rule)
        values.append(value)
    return values


def _kind(signature: Signature) -> str:
    return "regressor" if signature.label_output.datatype in _VALUES else "classifier"


def _metric(asked: str, kinds: dict[str, str]) -> str:
    if len(set(kinds.values())) > 1:
        shown = ", ".join(f"{name} a {kind}" for name, kind in kinds.items())
        rule = f"the versions are not the same kind of model ({shown})"
        raise _problem("model-metric", asked, rule)
    kind = next(iter(kinds.values()))
    metric = asked or ("accuracy" if kind == "classifier" else "rmse")
    fits = ("accuracy", "f1") if kind == "classifier" else ("rmse",)
    if metric not in fits:
        rule = f"does not fit a {kind}: the models answer " + (
            "classes; use accuracy or f1" if kind == "classifier" else "values; use rmse"
        )
        raise _problem("model-metric", metric, rule)
    return metric


def prepare(
    dataset: str, target: str, metric: str, model: str, versions: list[tuple[str, str]]
) -> Labelled:
    """Read ``dataset`` and build every version's requests; nothing but metadata is sent.

    ``metric`` is the model-metric param ("" for the default of the models' kind); the
    versions are (name, base URL) pairs serving ``model``.
    """
    from tekton_mlops.serving import rows

    table, truth, source = _rows(dataset, target)
    signatures = {name: rows.fetch_signature(url, model) for name, url in versions}
    metric = _metric(metric, {name: _kind(s) for name, s in signatures.items()})
    if metric == "rmse":
        truth = _values(dataset, target, table.numbers, truth)
    prepared = []
    for name, url in versions:
        where = f"the model {model!r} at {url}"
        try:
            binding = rows.bind(signatures[name], table.columns, exclude={target})
            batches = rows.encode_batches(binding, table.rows, BATCH_ROWS, table.numbers)
        except rows.ColumnMismatch as exc:
            rule = f"its columns do not match the inputs of {where}: {exc}"
            raise _problem("dataset", dataset, rule) from None
        except rows.CellError as exc:
            rule = f"{source.csv}: {exc}, which {where} cannot take"
            raise _problem("dataset", dataset, rule) from None
        prepared.append(Prepared(name, url, signatures[name], batches))
    return Labelled(metric, truth, table.numbers, prepared, source.uri, source.digest)


def score(labelled: Labelled) -> RowScores:
    """Send the rows to every version (batches in order, one connection each) and score."""
    from tekton_mlops.serving import paired, rows

    answers = {}
    for version in labelled.versions:
        predictions = rows.predict(version.url, version.signature, version.batches)
        answers[version.name] = [p.label for p in predictions]
    if labelled.metric != "rmse":
        return paired.classification(labelled.metric, labelled.truth, answers)
    values: dict[str, list[float]] = {}
    for name, labels in answers.items():
        values[name] = []
        for number, label in zip(labelled.numbers, labels, strict=True):
            if isinstance(label, bool) or not isinstance(label, int | float):
                label = math.nan
            if not math.isfinite(label):
                raise SourceError(
                    f"{name} answered no value for row {number} of the dataset; "
                    "rmse needs one for every row"
                )
            values[name].append(float(label))
    return paired.regression(labelled.truth, values)
