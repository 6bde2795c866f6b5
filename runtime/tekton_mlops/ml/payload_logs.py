"""Table columns from payload logs: the requests a served model received, as its inputs.

A payload-log directory holds ``*.jsonl`` files (``serve --log-payloads`` and KServe's
logger write them), one CloudEvent-shaped record a line::

    {"specversion": "1.0", "id": "...", "type": "org.kubeflow.serving.inference.request",
     "source": "...", "time": "...", "datacontenttype": "application/json",
     "inferenceservicename": "iris", "endpoint": "/v2/models/iris/infer",
     "data": {"inputs": [{"name": "X", "datatype": "FP32", "shape": [2, 4], "data": [...]}]}}

Request records are read; their Open Inference Protocol input
tensors become table rows through the model's input layout (:mod:`tekton_mlops.ml.inputs`):
one 2-D input whose columns are the features in order, or one ``[n, 1]`` input per
feature column. Tensor data may be flat or nested; ``null`` is a missing value (NaN for
a number, ``""`` for a category), as the server reads it. ``data`` may also be JSON text,
or ``data_base64`` (the CloudEvents JSON format for bytes). Files still being written
(``*.jsonl.partial``) are not read.

Only the requests the model accepted are data it served. The server logs a request once its
body parses, refused or not, and a response only for a 200 (KServe's logger does the same),
so when the logs hold responses, a request without a response of the same id is skipped.
Without any response record (``--log-mode request``) a request whose inputs do not fit the
model's layout is skipped: the model refused it. Both are counted (``skipped``; a response
the logger dropped for its size counts its request too). A request the model answered whose
inputs do not fit is an error: the layout read is not the model's.

Example::

    logs = read_requests(Path("/workspace/payloads"), metadata)
    logs.values["sepal_length"], logs.rows, logs.requests, logs.skipped
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tekton_mlops.digests import METADATA_DIR
from tekton_mlops.errors import DataError
from tekton_mlops.ml.columns import CATEGORICAL, MISSING_CATEGORY, NUMERIC
from tekton_mlops.ml.onnx_export import INPUT_NAME

#: KServe's CloudEvent types for a logged request and its response.
REQUEST_TYPE = "org.kubeflow.serving.inference.request"
RESPONSE_TYPE = "org.kubeflow.serving.inference.response"
SUFFIX = ".jsonl"


@dataclass(frozen=True)
class LoggedRows:
    values: dict[str, np.ndarray]  # per feature column, as column_arrays reads a CSV
    rows: int
    requests: int  # the requests read as rows
    files: list[Path]
    skipped: int = 0  # requests the model did not accept (see the module's docstring)


def log_files(directory: Path) -> list[Path]:
    """The closed log files under ``directory`` (any depth), sorted by path."""
    return sorted(
        path
        for path in directory.rglob(f"*{SUFFIX}")
        if path.is_file() and METADATA_DIR not in path.relative_to(directory).parts
    )


def is_payload_log_dir(path: Path) -> bool:
    """A directory with log files and no CSV: what ``auto`` takes for payload logs."""
    if not path.is_dir() or not log_files(path):
        return False
    return not any(p.suffix.lower() == ".csv" for p in path.rglob("*") if p.is_file())


def read_requests(directory: Path, metadata: Mapping[str, Any]) -> LoggedRows:
    """The rows of every logged request the model accepted, as the columns of
    ``metadata["feature_names"]``.

    Raises:
        DataError: naming the file and line of a record that is not a CloudEvent of
            KServe's types, or of an accepted request whose inputs the model would not take.
    """
    files = log_files(directory)
    if not files:
        raise DataError(f"{directory}: no payload log files (*{SUFFIX})")
    names = list(metadata["feature_names"])
    kinds = metadata.get("feature_kinds") or dict.fromkeys(names, NUMERIC)
    answered: set[str] = set()
    logged: list[_Logged] = []
    for record in _records(files):
        if record.kind == RESPONSE_TYPE:
            answered.add(record.id)
            continue
        # Only the columns are kept, never the request's text: memory as for the rows.
        try:
            columns = _columns(record.body, metadata, names, kinds)
            logged.append(_Logged(record.where, record.id, columns))
        except _Invalid as exc:
            logged.append(_Logged(record.where, record.id, None, str(exc)))
    if not logged:
        raise DataError(f"{directory}: the payload logs hold no request records")
    accepted = _accepted(logged, answered)
    if not accepted:
        raise DataError(
            f"{directory}: none of the {len(logged)} logged request(s) was accepted by the "
            "model (no response logged, or inputs that do not fit it)"
        )
    values = {
        name: np.concatenate([c[name] for c in accepted])
        if kinds[name] == NUMERIC
        else np.concatenate([np.asarray(c[name], dtype=str) for c in accepted])
        for name in names
    }
    rows = sum(len(c[names[0]]) for c in accepted)
    return LoggedRows(values, rows, len(accepted), files, len(logged) - len(accepted))


class _Invalid(Exception):
    """What is wrong with one record; the caller names the file and line."""


@dataclass(frozen=True)
class _Record:
    where: str  # file:line
    kind: str  # REQUEST_TYPE or RESPONSE_TYPE
    id: str
    body: Any  # the V2 request (None for a response: never read)


@dataclass(frozen=True)
class _Logged:
    where: str
    id: str
    columns: dict[str, np.ndarray] | None
    problem: str = ""


def _accepted(logged: list[_Logged], answered: set[str]) -> list[dict[str, np.ndarray]]:
    """The columns of the requests the model accepted (see the module's docstring)."""
    if not answered:  # responses are not logged: what fits the model is what it took
        return [r.columns for r in logged if r.columns is not None]
    accepted = []
    for request in logged:
        if request.id not in answered:
            continue  # refused: only a 200 is logged as a response
        if request.columns is None:
            raise DataError(f"{request.where}: {request.problem}")
        accepted.append(request.columns)
    return accepted


def _records(files: list[Path]) -> Iterator[_Record]:
    """Every request and response record, in file and line order."""
    for path in files:
        try:
            with path.open(encoding="utf-8") as handle:
                for number, line in enumerate(handle, start=1):
                    if not line.strip():
                        continue
                    where = f"{path}:{number}"
                    try:
                        yield _record(line, where)
                    except _Invalid as exc:
                        raise DataError(f"{where}: {exc}") from None
        except UnicodeDecodeError:
            raise DataError(f"{path}: not UTF-8 text; a payload log is JSON lines") from None
        except OSError as exc:
            raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None


def _record(line: str, where: str) -> _Record:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        raise _Invalid(f"not a JSON object ({exc.msg} at column {exc.colno})") from None
    if not isinstance(record, dict):
        raise _Invalid("not a JSON object")
    kind = record.get("type")
    identity = str(record.get("id", ""))
    if kind == RESPONSE_TYPE:
        return _Record(where, kind, identity, None)
    if kind != REQUEST_TYPE:
        raise _Invalid(f"type {kind!r} is neither {REQUEST_TYPE} nor {RESPONSE_TYPE}")
    if "data_base64" in record:
        try:
            text = base64.b64decode(record["data_base64"], validate=True).decode("utf-8")
        except (binascii.Error, TypeError, UnicodeDecodeError, ValueError):
            raise _Invalid("data_base64 is not base64 of UTF-8 text") from None
        return _Record(where, kind, identity, _parsed(text))
    data = record.get("data")
    return _Record(where, kind, identity, _parsed(data) if isinstance(data, str) else data)


def _parsed(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise _Invalid(f"the request body is not JSON ({exc.msg})") from None


def _columns(
    data: Any, metadata: Mapping[str, Any], names: list[str], kinds: Mapping[str, str]
) -> dict[str, np.ndarray]:
    if not isinstance(data, dict) or not isinstance(data.get("inputs"), list):
        raise _Invalid("the request has no 'inputs' list (an Open Inference Protocol request)")
    tensors = {t.get("name"): t for t in data["inputs"] if isinstance(t, dict)}
    if metadata.get("input_layout", "matrix") == "matrix":
        spec = metadata.get("input")
        name = spec["name"] if isinstance(spec, dict) and "name" in spec else INPUT_NAME
        matrix = _numbers(_tensor(tensors, name), name, width=len(names))
        return {column: matrix[:, i] for i, column in enumerate(names)}
    columns: dict[str, np.ndarray] = {}
    for spec in metadata["inputs"]:
        tensor = _tensor(tensors, spec["name"])
        if kinds[spec["column"]] == CATEGORICAL:
            columns[spec["column"]] = _texts(tensor, spec["name"])
        else:
            columns[spec["column"]] = _numbers(tensor, spec["name"], width=1)[:, 0]
    sizes = {len(c) for c in columns.values()}
    if len(sizes) > 1:
        raise _Invalid(f"the inputs hold different numbers of rows ({sorted(sizes)})")
    return columns


def _tensor(tensors: Mapping[Any, Any], name: str) -> dict[str, Any]:
    tensor = tensors.get(name)
    if tensor is None:
        given = ", ".join(repr(n) for n in tensors) or "none"
        raise _Invalid(f"no input {name!r} in the request (it has {given})")
    return dict(tensor)


def _flat(tensor: Mapping[str, Any], name: str, width: int) -> tuple[list[Any], int]:
    """The tensor's values row-major, and its row count, checked against its shape."""
    shape, data = tensor.get("shape"), tensor.get("data")
    if (
        not isinstance(shape, list)
        or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)
        or len(shape) not in (1, 2)
        or len(shape) == 2
        and shape[1] != width
        or len(shape) == 1
        and width != 1
    ):
        raise _Invalid(f"input {name!r}: shape {shape!r}, the model takes [-1, {width}]")
    if not isinstance(data, list):
        raise _Invalid(f"input {name!r}: 'data' must be a list")
    values = list(_flatten(data))
    if len(values) != shape[0] * width:
        raise _Invalid(f"input {name!r}: {len(values)} values for shape {shape}")
    return values, shape[0]


def _flatten(data: list[Any]) -> Iterator[Any]:
    for item in data:
        if isinstance(item, list):
            yield from _flatten(item)
        else:
            yield item


def _numbers(tensor: Mapping[str, Any], name: str, width: int) -> np.ndarray:
    values, rows = _flat(tensor, name, width)
    if not all(v is None or isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        raise _Invalid(f"input {name!r}: the model takes numbers")
    try:
        array = np.array([math.nan if v is None else v for v in values], dtype=np.float64)
    except OverflowError:
        raise _Invalid(f"input {name!r}: a value is out of range for a number") from None
    if np.isinf(array).any():
        raise _Invalid(f"input {name!r}: a value is not a finite number")
    return array.reshape(rows, width)


def _texts(tensor: Mapping[str, Any], name: str) -> np.ndarray:
    values, _ = _flat(tensor, name, 1)
    if not all(v is None or isinstance(v, str) for v in values):
        raise _Invalid(f"input {name!r}: the model takes strings (BYTES)")
    return np.array([MISSING_CATEGORY if v is None else v.strip() for v in values], dtype=str)
