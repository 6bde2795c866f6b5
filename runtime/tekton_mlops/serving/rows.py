"""Table rows as Open Inference Protocol (KServe V2) requests, and predictions back.

A served model says what it takes in its metadata (``GET /v2/models/NAME``): input
names, datatypes and shapes, nothing about table columns. Two layouts come out of
train-model (:mod:`tekton_mlops.ml.inputs`) and both are bound here from the
metadata alone:

- one 2-D input (``X``, shape ``[-1, k]``): the table's columns, bar the excluded
  ones, fill it in file order; the metadata has no column names, so only the count
  can be checked;
- one input per column (shape ``[-1, 1]``, FP32 or BYTES): each input takes the
  column of its name. skl2onnx names an input after its column with every character
  that is not a word character replaced by ``_`` (``sepal length`` ->
  ``sepal_length``), so a column also binds under that spelling.

Cells are text as :func:`tekton_mlops.ml.frame.read_csv` reads them (``None`` where
missing). A missing number goes as ``null`` (the server's NaN, which the model's
imputer fills in), a missing category as ``""``; a cell the input's datatype cannot
hold is a :class:`CellError` naming column and row, raised while the batches are
built, before anything is sent.

A reply becomes one :class:`Prediction` per row: the label output (``label``, else
the first integer, string or boolean output, else the first output: a regressor's
value) and, when the model has them, the per-class scores (``probabilities``, else
another floating-point output of width > 1), positional as the model orders its
classes.

Example::

    source = tabular.locate("/workspace/golden")               # verified by its manifest
    table = frame.read_csv(source.csv, missing={""})
    signature = fetch_signature("http://iris.models", "iris")
    binding = bind(signature, table.columns, exclude={"species"})   # ColumnMismatch
    batches = encode_batches(binding, table.rows, 64, table.numbers)  # CellError
    predictions = predict("http://iris.models", signature, batches)
    predictions[0].label, predictions[0].scores                # 0, (0.97, 0.03, 0.0)
"""

from __future__ import annotations

import http.client
import json
import math
import re
import urllib.parse
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from tekton_mlops.errors import DataError, SourceError
from tekton_mlops.serving.load import split_endpoint

__all__ = [
    "Batch",
    "Binding",
    "CellError",
    "ColumnMismatch",
    "Feed",
    "Prediction",
    "Signature",
    "TensorMeta",
    "bind",
    "decode",
    "encode",
    "encode_batches",
    "fetch_signature",
    "predict",
]

#: A prediction's label: a class (int, str, bool) or a regressor's value (float);
#: None where the server wrote null (NaN).
Value = str | int | float | bool | None
#: A table cell as ml/frame.py reads it: text, or None where missing.
Cell = str | int | float | bool | None

_FLOATS = {"FP16", "FP32", "FP64"}
_INTEGERS = {"INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64"}
_LABEL_TYPES = _INTEGERS | {"BYTES", "BOOL"}
_TRUE = {"true", "1", "yes", "t", "y"}
_FALSE = {"false", "0", "no", "f", "n"}
_NOT_WORD = re.compile(r"[^\w+]")  # the characters skl2onnx replaces in an input's name


@dataclass(frozen=True)
class TensorMeta:
    """One input or output as the model's metadata lists it; -1 where a size is free."""

    name: str
    datatype: str
    shape: tuple[int, ...]


@dataclass(frozen=True)
class Signature:
    """What a served model takes and gives, from ``GET /v2/models/NAME``."""

    model: str
    inputs: tuple[TensorMeta, ...]
    outputs: tuple[TensorMeta, ...]

    @classmethod
    def parse(cls, document: Any, model: str, where: str) -> Signature:
        """Read ``model``'s metadata; a SourceError naming ``where`` when it is not V2
        model metadata."""

        def tensors(key: str) -> tuple[TensorMeta, ...]:
            found = document.get(key) if isinstance(document, dict) else None
            if not isinstance(found, list) or not found:
                raise SourceError(f"{where}: the model metadata has no {key} (not a V2 endpoint?)")
            metas = []
            for item in found:
                shape = item.get("shape") if isinstance(item, dict) else None
                if (
                    not isinstance(item, dict)
                    or not isinstance(item.get("name"), str)
                    or not isinstance(item.get("datatype"), str)
                    or not isinstance(shape, list)
                    or not all(isinstance(d, int) for d in shape)
                ):
                    raise SourceError(f"{where}: malformed tensor metadata in {key}: {item!r:.200}")
                metas.append(TensorMeta(item["name"], item["datatype"], tuple(shape)))
            return tuple(metas)

        inputs, outputs = tensors("inputs"), tensors("outputs")
        return cls(model, inputs, outputs)

    @property
    def label_output(self) -> TensorMeta:
        """The output that holds each row's prediction."""
        by_name = {o.name: o for o in self.outputs}
        if "label" in by_name:
            return by_name["label"]
        return next((o for o in self.outputs if o.datatype in _LABEL_TYPES), self.outputs[0])

    @property
    def score_output(self) -> TensorMeta | None:
        """The per-class scores, when the model gives them."""
        label = self.label_output
        candidates = [
            o
            for o in self.outputs
            if o is not label and o.datatype in _FLOATS and len(o.shape) == 2 and o.shape[1] != 1
        ]
        named = [o for o in candidates if o.name in ("probabilities", "scores")]
        found = named or candidates
        return found[0] if found else None


@dataclass(frozen=True)
class Feed:
    """One model input and the table columns (positions in the header) that fill it."""

    input: TensorMeta
    columns: tuple[int, ...]


@dataclass(frozen=True)
class Binding:
    """How the columns of one table header feed one model."""

    signature: Signature
    header: tuple[str, ...]
    feeds: tuple[Feed, ...]

    @property
    def used_columns(self) -> tuple[str, ...]:
        """The header's columns the model reads, in the order they are sent."""
        return tuple(self.header[i] for feed in self.feeds for i in feed.columns)


class ColumnMismatch(DataError):
    """The table's columns cannot feed the model's inputs; ``missing`` names the columns
    the model needs and the table lacks (empty for a 2-D input of the wrong width)."""

    def __init__(self, message: str, missing: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.missing = tuple(missing)


class CellError(DataError):
    """A cell the model's input cannot take; ``column`` and ``row`` (the record number in
    the file, the header being row 1) say which."""

    def __init__(self, column: str, row: int, problem: str) -> None:
        super().__init__(f"column {column!r} row {row}: {problem}")
        self.column = column
        self.row = row


def _skl2onnx_name(column: str) -> str:
    name = _NOT_WORD.sub("_", column)
    return "_" + name if name[:1].isdigit() else name


def bind(signature: Signature, header: Sequence[str], exclude: Collection[str] = ()) -> Binding:
    """Match a table header to the model's inputs; raise :class:`ColumnMismatch`.

    ``exclude`` (the expected outputs, an id column) never feeds the model. With one
    input whose name is no column, the layout is the 2-D one; otherwise every input
    takes the column of its name (exactly, else by skl2onnx's spelling of it).
    """
    header = tuple(header)
    usable = [i for i, name in enumerate(header) if name not in exclude]
    inputs = signature.inputs
    exact = {header[i]: i for i in usable}
    spelled: dict[str, list[int]] = {}
    for i in usable:
        spelled.setdefault(_skl2onnx_name(header[i]), []).append(i)

    def column_of(name: str) -> int | None:
        if name in exact:
            return exact[name]
        found = spelled.get(name, [])
        return found[0] if len(found) == 1 else None

    if len(inputs) == 1 and column_of(inputs[0].name) is None:
        return Binding(signature, header, (_matrix_feed(inputs[0], header, usable),))
    feeds = []
    missing = []
    for spec in inputs:
        position = column_of(spec.name)
        if position is None:
            missing.append(spec.name)
            continue
        if len(spec.shape) != 2 or spec.shape[1] not in (-1, 1):
            raise ColumnMismatch(
                f"the model's input {spec.name!r} has shape {list(spec.shape)}; "
                "one column feeds an input of shape [-1, 1]"
            )
        feeds.append(Feed(spec, (position,)))
    if missing:
        raise ColumnMismatch(
            f"the model takes column(s) the table does not have: {', '.join(missing)}", missing
        )
    return Binding(signature, header, tuple(feeds))


def _matrix_feed(spec: TensorMeta, header: tuple[str, ...], usable: list[int]) -> Feed:
    if len(spec.shape) != 2:
        raise ColumnMismatch(
            f"the model's input {spec.name!r} has shape {list(spec.shape)}; rows feed a "
            "2-D input [rows, columns] or one input per column"
        )
    width = spec.shape[1]
    if width >= 0 and width != len(usable):
        shown = ", ".join(header[i] for i in usable[:20]) + (" ..." if len(usable) > 20 else "")
        raise ColumnMismatch(
            f"the model's input {spec.name!r} takes {width} column(s) and the table has "
            f"{len(usable)} to give ({shown or 'none'})"
        )
    return Feed(spec, tuple(usable))


def _convert(value: Cell, datatype: str) -> tuple[Any, str]:
    """A cell as JSON for ``datatype``; the problem ("" when none) instead when it cannot."""
    text = value.strip() if isinstance(value, str) else value
    if datatype == "BYTES":
        if text is None:
            return "", ""  # the missing-category marker the model's imputer looks for
        return (text if isinstance(text, str) else json.dumps(text)), ""
    if text is None or text == "":
        if datatype in _FLOATS:
            return None, ""  # null: NaN at the server, filled in by the model's imputer
        return None, f"missing value (the model's {datatype} input has no missing marker)"
    if datatype == "BOOL":
        lowered = str(text).lower()
        if lowered in _TRUE:
            return True, ""
        if lowered in _FALSE:
            return False, ""
        return None, f"{text!r:.40} is not a bool (true/false, 1/0)"
    try:
        number = float(text)
    except (TypeError, ValueError):
        return None, f"{text!r:.40} is not a number (the model's input is {datatype})"
    if math.isnan(number):
        if datatype in _FLOATS:
            return None, ""
        return None, f"missing value (the model's {datatype} input has no missing marker)"
    if math.isinf(number):
        return None, f"{text!r:.40} is not a finite number"
    if datatype in _INTEGERS:
        if not number.is_integer():
            return None, f"{text!r:.40} is not a whole number (the model's input is {datatype})"
        return int(number), ""
    if datatype in _FLOATS:
        return number, ""
    return None, f"the model's input datatype {datatype} is not supported"


def encode(
    binding: Binding,
    rows: Sequence[Sequence[Cell]],
    numbers: Sequence[int] | None = None,
    request_id: str | None = None,
) -> dict[str, Any]:
    """One V2 inference request for ``rows`` (cells in header order).

    ``numbers`` are the rows' record numbers in the file, for a :class:`CellError`;
    without them rows count from 2 (after the header).
    """
    inputs = []
    for feed in binding.feeds:
        spec = feed.input
        data = []
        for index, row in enumerate(rows):
            for position in feed.columns:
                value, problem = _convert(row[position], spec.datatype)
                if problem:
                    number = numbers[index] if numbers is not None else index + 2
                    raise CellError(binding.header[position], number, problem)
                data.append(value)
        inputs.append(
            {
                "name": spec.name,
                "datatype": spec.datatype,
                "shape": [len(rows), len(feed.columns)],
                "data": data,
            }
        )
    request: dict[str, Any] = {"inputs": inputs}
    if request_id is not None:
        request["id"] = request_id
    return request


@dataclass(frozen=True)
class Batch:
    """Rows ``start`` to ``start + count`` of a table as one request body (JSON bytes)."""

    start: int
    count: int
    body: bytes


def encode_batches(
    binding: Binding,
    rows: Sequence[Sequence[Cell]],
    batch_size: int,
    numbers: Sequence[int] | None = None,
) -> list[Batch]:
    """Every request for ``rows``, ``batch_size`` rows each; every cell is checked before
    the first request exists, so a bad cell sends nothing."""
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    batches = []
    for start in range(0, len(rows), batch_size):
        chunk = rows[start : start + batch_size]
        where = numbers[start : start + batch_size] if numbers is not None else None
        if where is None:
            where = range(start + 2, start + 2 + len(chunk))
        request = encode(binding, chunk, where, request_id=f"rows-{start}")
        body = json.dumps(request, separators=(",", ":"), allow_nan=False).encode()
        batches.append(Batch(start, len(chunk), body))
    return batches


@dataclass(frozen=True)
class Prediction:
    """What the model answered for one row."""

    label: Value
    scores: tuple[float | None, ...] | None = None


def _flat(data: Any) -> Iterator[Any]:
    """V2 data flat (row-major) or nested as the shape."""
    for item in data:
        if isinstance(item, list):
            yield from _flat(item)
        else:
            yield item


def decode(signature: Signature, response: Any, count: int) -> list[Prediction]:
    """The ``count`` rows' predictions in a V2 inference response; a SourceError when the
    response does not hold them."""
    outputs = response.get("outputs") if isinstance(response, dict) else None
    if not isinstance(outputs, list):
        raise SourceError("the inference response has no outputs list")
    by_name = {o.get("name"): o for o in outputs if isinstance(o, dict)}
    label_meta = signature.label_output
    label = by_name.get(label_meta.name)
    if label is None or not isinstance(label.get("data"), list):
        raise SourceError(f"the inference response has no output {label_meta.name!r}")
    labels = list(_flat(label["data"]))
    if len(labels) != count:
        raise SourceError(
            f"output {label_meta.name!r} holds {len(labels)} value(s) for {count} row(s)"
        )
    scores_meta = signature.score_output
    scores = by_name.get(scores_meta.name) if scores_meta is not None else None
    if not count or scores is None or not isinstance(scores.get("data"), list):
        return [Prediction(value) for value in labels]
    values = list(_flat(scores["data"]))
    if len(values) % count:
        raise SourceError(
            f"output {scores.get('name')!r} holds {len(values)} value(s) for {count} row(s)"
        )
    width = len(values) // count
    return [
        Prediction(value, tuple(values[i * width : (i + 1) * width]))
        for i, value in enumerate(labels)
    ]


def _model_path(model: str) -> str:
    return f"/v2/models/{urllib.parse.quote(model, safe='')}"


def fetch_signature(url: str, model: str, timeout: float = 10.0) -> Signature:
    """The model's metadata from the endpoint (``GET /v2/models/NAME``)."""
    document = _exchange(url, "GET", _model_path(model), None, timeout)
    return Signature.parse(document, model, f"{url.rstrip('/')}{_model_path(model)}")


def _exchange(url: str, method: str, path: str, body: bytes | None, timeout: float) -> Any:
    connection = _Connection(url, timeout)
    try:
        return connection.call(method, path, body)
    finally:
        connection.close()


class _Connection:
    """One kept-alive HTTP/1.1 connection; each answer is read whole and parsed as JSON."""

    def __init__(self, url: str, timeout: float) -> None:
        self.url = url.rstrip("/")
        self.kind, self.netloc, self.base = split_endpoint(url)
        self.timeout = timeout
        self.connection: http.client.HTTPConnection | None = None

    def call(self, method: str, path: str, body: bytes | None, what: str = "") -> Any:
        """The JSON answer; a SourceError naming the URL (and ``what`` was sent) if none."""
        headers = {"Content-Type": "application/json"} if body is not None else {}
        where = f"{self.url}{path}"
        sent = f" ({what})" if what else ""
        try:
            if self.connection is None:
                self.connection = self.kind(self.netloc, timeout=self.timeout)
            self.connection.request(method, self.base + path, body=body, headers=headers)
            response = self.connection.getresponse()
            reply = response.read()
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            raise SourceError(f"{where}: cannot reach the endpoint ({exc}){sent}") from None
        if response.status != 200:
            text = reply[:300].decode(errors="replace").strip()
            raise SourceError(f"{where}: HTTP {response.status} {text}{sent}")
        try:
            return json.loads(reply)
        except ValueError:
            raise SourceError(f"{where}: the answer is not JSON: {reply[:100]!r}{sent}") from None

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None


def predict(
    url: str, signature: Signature, batches: Sequence[Batch], timeout: float = 30.0
) -> list[Prediction]:
    """Send ``batches`` in order over one kept-alive connection; one prediction per row.

    A failed request (no connection, a status other than 200, a reply without the
    rows' outputs) is a SourceError naming the endpoint and the rows.
    """
    connection = _Connection(url, timeout)
    path = _model_path(signature.model) + "/infer"
    predictions: list[Prediction] = []
    try:
        for batch in batches:
            rows = f"rows {batch.start + 1}-{batch.start + batch.count} of the table"
            reply = connection.call("POST", path, batch.body, rows)
            try:
                predictions += decode(signature, reply, batch.count)
            except SourceError as exc:
                raise SourceError(f"{connection.url}{path}: {exc} ({rows})") from None
    finally:
        connection.close()
    return predictions
