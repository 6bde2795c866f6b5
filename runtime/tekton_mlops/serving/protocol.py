"""The Open Inference Protocol (KServe V2) over an onnxruntime session: tensors in and out.

Requests are checked against the model's own signature (input names, datatypes,
ranks and fixed dimensions) before onnxruntime sees them, so a malformed request
is a 400 naming the problem, never a crash or an onnxruntime traceback. Every
tensor's size is known from its shape before any of it is decoded, and the
request as a whole may hold at most ``Limits.max_elements`` elements (413).

Example::

    model = OnnxModel.load(Path("model/model.onnx"), "iris")
    request = jsonio.parse('{"inputs": [{"name": "input", "datatype": "FP32", '
                           '"shape": [1, 4], "data": [5.1, 3.5, 1.4, 0.2]}]}', 1000)
    b"".join(model.infer(request).parts())      # the JSON reply
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tekton_mlops.serving.jsonio import (
    CHUNK_ELEMENTS,
    Numbers,
    RequestError,
    tensor_json,
    tensor_values,
)
from tekton_mlops.serving.limits import Limits

__all__ = ["Limits", "OnnxModel", "Prepared", "Reply", "RequestError", "TensorSpec"]

#: ONNX tensor element types and their V2 datatype and numpy dtype.
ONNX_TO_V2: dict[str, tuple[str, Any]] = {
    "tensor(float)": ("FP32", np.float32),
    "tensor(double)": ("FP64", np.float64),
    "tensor(float16)": ("FP16", np.float16),
    "tensor(int64)": ("INT64", np.int64),
    "tensor(int32)": ("INT32", np.int32),
    "tensor(int16)": ("INT16", np.int16),
    "tensor(int8)": ("INT8", np.int8),
    "tensor(uint8)": ("UINT8", np.uint8),
    "tensor(bool)": ("BOOL", np.bool_),
    "tensor(string)": ("BYTES", np.object_),
}
_COMPACT = (",", ":")


@dataclass(frozen=True)
class TensorSpec:
    name: str
    datatype: str
    shape: tuple[int, ...]  # -1 where the model leaves the dimension free
    dtype: Any

    def metadata(self) -> dict[str, Any]:
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}


def _spec(node: Any) -> TensorSpec:
    datatype, dtype = ONNX_TO_V2.get(node.type, ("", None))
    if not datatype:
        raise ValueError(f"{node.name}: ONNX type {node.type} has no V2 datatype")
    shape = tuple(d if isinstance(d, int) and d >= 0 else -1 for d in node.shape)
    return TensorSpec(node.name, datatype, shape, dtype)


@dataclass(frozen=True)
class Prepared:
    """A checked request: the tensors to feed, the outputs asked for, the request id."""

    feeds: dict[str, np.ndarray]
    outputs: list[str]
    id: str | None


@dataclass(frozen=True)
class Reply:
    model_name: str
    model_version: str
    id: str | None
    outputs: list[tuple[str, np.ndarray]]

    def parts(self) -> Iterator[bytes]:
        """The reply as JSON, in pieces: large tensors are written a chunk at a time."""
        head: dict[str, Any] = {"model_name": self.model_name}
        if self.model_version:
            head["model_version"] = self.model_version
        if self.id is not None:
            head["id"] = self.id
        metas = [
            {"name": name, "datatype": _datatype(array), "shape": list(array.shape)}
            for name, array in self.outputs
        ]
        if sum(array.size for _, array in self.outputs) <= CHUNK_ELEMENTS:
            # The common small reply: one json.dumps, quicker than assembling pieces.
            outputs = [
                {**meta, "data": tensor_values(array)}
                for meta, (_, array) in zip(metas, self.outputs, strict=True)
            ]
            document = {**head, "outputs": outputs}
            yield json.dumps(document, separators=_COMPACT, allow_nan=False).encode()
            return
        yield json.dumps(head, separators=_COMPACT)[:-1].encode() + b',"outputs":['
        for index, (meta, (_, array)) in enumerate(zip(metas, self.outputs, strict=True)):
            opening = ("," if index else "") + json.dumps(meta, separators=_COMPACT)[:-1]
            yield opening.encode() + b',"data":['
            for text in tensor_json(array):
                yield text.encode()
            yield b"]}"
        yield b"]}"


class OnnxModel:
    """One ONNX model behind the V2 protocol; ``infer`` is safe to call from many threads."""

    def __init__(
        self, name: str, session: Any, version: str = "", limits: Limits | None = None
    ) -> None:
        self.name = name
        self.version = version
        self.session = session
        self.limits = limits or Limits()
        self.inputs = [_spec(node) for node in session.get_inputs()]
        self.outputs = [_spec(node) for node in session.get_outputs()]
        self._inputs_by_name = {spec.name: spec for spec in self.inputs}
        self._output_names = [spec.name for spec in self.outputs]
        self.ready = threading.Event()
        self.ready.set()

    @classmethod
    def load(
        cls,
        path: Path,
        name: str,
        version: str = "",
        threads: int = 0,
        limits: Limits | None = None,
    ) -> OnnxModel:
        import onnxruntime as ort

        options = ort.SessionOptions()
        # Small tabular models: one intra-op thread per request; concurrency comes from
        # requests in parallel, not from splitting one tiny matrix product.
        options.intra_op_num_threads = threads or 1
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        session = ort.InferenceSession(
            path.read_bytes(), options, providers=["CPUExecutionProvider"]
        )
        return cls(name, session, version, limits)

    def metadata(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "name": self.name,
            "versions": [self.version] if self.version else [],
            "platform": "onnxruntime_onnx",
            "inputs": [spec.metadata() for spec in self.inputs],
            "outputs": [spec.metadata() for spec in self.outputs],
        }
        return document

    def decode(self, request: Any) -> dict[str, np.ndarray]:
        """The request's input tensors as numpy arrays, checked against the model."""
        if not isinstance(request, dict):
            raise RequestError("the request body must be a JSON object")
        tensors = request.get("inputs")
        if not isinstance(tensors, list) or not tensors:
            raise RequestError("'inputs' must be a non-empty list of tensors")
        checked: list[tuple[TensorSpec, dict[str, Any], list[int]]] = []
        for index, tensor in enumerate(tensors):
            if not isinstance(tensor, dict):
                raise RequestError(f"inputs[{index}] must be an object")
            name = tensor.get("name")
            spec = self._inputs_by_name.get(name) if isinstance(name, str) else None
            if spec is None:
                known = ", ".join(self._inputs_by_name)
                raise RequestError(
                    f"inputs[{index}]: unknown input {name!r} (the model takes {known})"
                )
            if any(spec is seen for seen, _, _ in checked):
                raise RequestError(f"input {name!r} is given twice")
            checked.append((spec, tensor, _shape(spec, tensor)))
        if missing := sorted(set(self._inputs_by_name) - {spec.name for spec, _, _ in checked}):
            raise RequestError(f"missing input(s): {', '.join(missing)}")
        # Every size is known before anything is decoded: the limit costs no memory.
        total = sum(math.prod(shape) for _, _, shape in checked)
        if total > self.limits.max_elements:
            raise RequestError(
                f"the request's tensors hold {total} elements, over the limit of "
                f"{self.limits.max_elements} (--max-elements)",
                413,
            )
        return {spec.name: _array(spec, tensor, shape) for spec, tensor, shape in checked}

    def requested_outputs(self, request: dict[str, Any]) -> list[str]:
        asked = request.get("outputs")
        if asked is None:
            return self._output_names
        if not isinstance(asked, list) or not all(isinstance(o, dict) for o in asked):
            raise RequestError("'outputs' must be a list of objects with a name")
        names = [o.get("name") for o in asked]
        if unknown := [n for n in names if n not in self._output_names]:
            raise RequestError(f"unknown output(s) {unknown} (the model has {self._output_names})")
        if len(set(names)) != len(names):  # each copy would be computed and sent again
            raise RequestError("an output is asked for more than once")
        return [str(n) for n in names]

    def prepare(self, request: Any) -> Prepared:
        """Everything the reply needs from the request, so the request can be dropped."""
        feeds = self.decode(request)
        request_id = request.get("id")
        if request_id is not None and not isinstance(request_id, str):
            raise RequestError("'id' must be a string")
        return Prepared(feeds, self.requested_outputs(request), request_id)

    def run(self, prepared: Prepared) -> Reply:
        try:
            values = self.session.run(prepared.outputs, prepared.feeds)
        except Exception as exc:  # onnxruntime raises its own exception types; one line is enough
            raise RequestError(
                f"the model could not run on this input: {str(exc).splitlines()[0]}"
            ) from None
        outputs = [
            (name, np.asarray(value)) for name, value in zip(prepared.outputs, values, strict=True)
        ]
        return Reply(self.name, self.version, prepared.id, outputs)

    def infer(self, request: Any) -> Reply:
        return self.run(self.prepare(request))


def _shape(spec: TensorSpec, tensor: dict[str, Any]) -> list[int]:
    datatype, shape = tensor.get("datatype"), tensor.get("shape")
    where = f"input {spec.name!r}"
    if datatype != spec.datatype:
        raise RequestError(f"{where}: datatype {datatype!r}, the model takes {spec.datatype}")
    if not isinstance(shape, list) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
    ):
        raise RequestError(f"{where}: 'shape' must be a list of non-negative integers")
    if len(shape) != len(spec.shape) or any(
        want >= 0 and got != want for got, want in zip(shape, spec.shape, strict=True)
    ):
        raise RequestError(f"{where}: shape {shape}, the model takes {list(spec.shape)} (-1: any)")
    return shape


def _array(spec: TensorSpec, tensor: dict[str, Any], shape: list[int]) -> np.ndarray:
    data = tensor.get("data")
    where = f"input {spec.name!r}"
    count = math.prod(shape)
    integer = spec.datatype.startswith(("INT", "UINT"))
    kind = "integers" if integer else "numbers"
    try:
        if isinstance(data, Numbers):
            # Numbers or booleans still as text: checked, then parsed into the tensor.
            if data.count != count:
                raise RequestError(
                    f"{where}: {data.count} values for shape {shape} ({count} expected)"
                )
            if spec.datatype == "BYTES":
                raise RequestError(f"{where}: BYTES data must be strings")
            if spec.datatype == "BOOL" and data.kind != "bool":
                raise RequestError(f"{where}: BOOL data must be true or false")
            if spec.datatype != "BOOL" and (
                data.kind != "number" or integer and not data.integral()
            ):
                raise RequestError(f"{where}: {spec.datatype} data must be {kind}")
            flat = data.to_array(spec.dtype)
        elif not isinstance(data, list):
            raise RequestError(f"{where}: 'data' must be a list")
        elif (given := _count(data)) != count:  # before any value is copied
            raise RequestError(f"{where}: {given} values for shape {shape} ({count} expected)")
        elif spec.datatype == "BYTES":
            flat = np.array([_text(v) for v in _flatten(data)], dtype=np.object_)
        elif spec.datatype == "BOOL":
            values = list(_flatten(data))
            if not all(isinstance(v, bool) for v in values):
                raise RequestError(f"{where}: BOOL data must be true or false")
            flat = np.array(values, dtype=np.bool_)
        else:
            values = list(_flatten(data))
            if not integer:
                # null is a missing value, as KServe's and pandas' JSON write NaN: the
                # model's imputer (train-model on a table with gaps) fills it in.
                values = [math.nan if v is None else v for v in values]
            if not all(
                isinstance(v, int) and not isinstance(v, bool)
                if integer
                else isinstance(v, (int, float)) and not isinstance(v, bool)
                for v in values
            ):
                raise RequestError(f"{where}: {spec.datatype} data must be {kind}")
            # An FP32 value over its range becomes inf, as a cast does; no warning on stderr.
            with np.errstate(over="ignore"):
                flat = np.array(values, dtype=spec.dtype)
    except OverflowError:
        raise RequestError(f"{where}: a value is out of range for {spec.datatype}") from None
    return flat.reshape(shape)


def _count(data: list[Any]) -> int:
    return sum(
        _count(v) if isinstance(v, list) else v.count if isinstance(v, Numbers) else 1 for v in data
    )


def _flatten(data: list[Any]) -> Any:
    """V2 allows the data flat (row-major) or nested as the shape (the parser caps the depth)."""
    for item in data:
        if isinstance(item, list):
            yield from _flatten(item)
        elif isinstance(item, Numbers):  # a long run of numbers among other items
            yield from item.to_array(
                np.bool_ if item.kind == "bool" else np.int64 if item.integral() else np.float64
            ).tolist()
        else:
            yield item


def _text(value: Any) -> str:
    if value is None:  # a missing category: the empty string train-model's imputer looks for
        return ""
    if not isinstance(value, str):
        raise RequestError("BYTES data must be strings")
    return value


_V2_OF_DTYPE = {np.dtype(dtype): v2 for v2, dtype in ONNX_TO_V2.values() if dtype is not np.object_}


def _datatype(array: np.ndarray) -> str:
    return _V2_OF_DTYPE.get(array.dtype, "BYTES")
