"""The Open Inference Protocol (KServe V2) over an onnxruntime session: tensors in and out.

Requests are checked against the model's own signature (input names, datatypes,
ranks and fixed dimensions) before onnxruntime sees them, so a malformed request
is a 400 naming the problem, never a crash or an onnxruntime traceback.

Example::

    model = OnnxModel.load(Path("model/model.onnx"), "iris")
    reply = model.infer({"inputs": [{"name": "input", "datatype": "FP32",
                                      "shape": [1, 4], "data": [5.1, 3.5, 1.4, 0.2]}]})
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

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
_MAX_ELEMENTS = 16 << 20


class RequestError(Exception):
    """A request the protocol rejects; ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


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


class OnnxModel:
    """One ONNX model behind the V2 protocol; ``infer`` is safe to call from many threads."""

    def __init__(self, name: str, session: Any, version: str = "") -> None:
        self.name = name
        self.version = version
        self.session = session
        self.inputs = [_spec(node) for node in session.get_inputs()]
        self.outputs = [_spec(node) for node in session.get_outputs()]
        self._inputs_by_name = {spec.name: spec for spec in self.inputs}
        self._output_names = [spec.name for spec in self.outputs]
        self.ready = threading.Event()
        self.ready.set()

    @classmethod
    def load(cls, path: Path, name: str, version: str = "", threads: int = 0) -> OnnxModel:
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
        return cls(name, session, version)

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
        feeds: dict[str, np.ndarray] = {}
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
            if name in feeds:
                raise RequestError(f"input {name!r} is given twice")
            feeds[spec.name] = _array(spec, tensor)
        if missing := sorted(set(self._inputs_by_name) - set(feeds)):
            raise RequestError(f"missing input(s): {', '.join(missing)}")
        return feeds

    def requested_outputs(self, request: dict[str, Any]) -> list[str]:
        asked = request.get("outputs")
        if asked is None:
            return self._output_names
        if not isinstance(asked, list) or not all(isinstance(o, dict) for o in asked):
            raise RequestError("'outputs' must be a list of objects with a name")
        names = [o.get("name") for o in asked]
        if unknown := [n for n in names if n not in self._output_names]:
            raise RequestError(f"unknown output(s) {unknown} (the model has {self._output_names})")
        return [str(n) for n in names]

    def infer(self, request: Any) -> dict[str, Any]:
        feeds = self.decode(request)
        names = self.requested_outputs(request)
        try:
            values = self.session.run(names, feeds)
        except Exception as exc:  # onnxruntime raises its own exception types; one line is enough
            raise RequestError(
                f"the model could not run on this input: {str(exc).splitlines()[0]}"
            ) from None
        reply: dict[str, Any] = {
            "model_name": self.name,
            "outputs": [_encode(name, value) for name, value in zip(names, values, strict=True)],
        }
        if self.version:
            reply["model_version"] = self.version
        if "id" in request:
            reply["id"] = request["id"]
        return reply


def _array(spec: TensorSpec, tensor: dict[str, Any]) -> np.ndarray:
    datatype, shape, data = tensor.get("datatype"), tensor.get("shape"), tensor.get("data")
    where = f"input {spec.name!r}"
    if datatype != spec.datatype:
        raise RequestError(f"{where}: datatype {datatype!r}, the model takes {spec.datatype}")
    if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
        raise RequestError(f"{where}: 'shape' must be a list of non-negative integers")
    if len(shape) != len(spec.shape) or any(
        want >= 0 and got != want for got, want in zip(shape, spec.shape, strict=True)
    ):
        raise RequestError(f"{where}: shape {shape}, the model takes {list(spec.shape)} (-1: any)")
    count = int(np.prod(shape)) if shape else 1
    if count > _MAX_ELEMENTS:
        raise RequestError(f"{where}: {count} elements is over the limit of {_MAX_ELEMENTS}", 413)
    if not isinstance(data, list):
        raise RequestError(f"{where}: 'data' must be a list")
    try:
        if spec.datatype == "BYTES":
            flat = np.array([_text(v) for v in _flatten(data)], dtype=np.object_)
        elif spec.datatype == "BOOL":
            values = list(_flatten(data))
            if not all(isinstance(v, bool) for v in values):
                raise RequestError(f"{where}: BOOL data must be true or false")
            flat = np.array(values, dtype=np.bool_)
        else:
            values = list(_flatten(data))
            integer = spec.datatype.startswith(("INT", "UINT"))
            if not all(
                isinstance(v, int) and not isinstance(v, bool)
                if integer
                else isinstance(v, (int, float)) and not isinstance(v, bool)
                for v in values
            ):
                kind = "integers" if integer else "numbers"
                raise RequestError(f"{where}: {spec.datatype} data must be {kind}")
            flat = np.array(values, dtype=spec.dtype)
    except OverflowError:
        raise RequestError(f"{where}: a value is out of range for {spec.datatype}") from None
    if flat.size != count:
        raise RequestError(f"{where}: {flat.size} values for shape {shape} ({count} expected)")
    return flat.reshape(shape)


def _flatten(data: list[Any]) -> Any:
    """V2 allows the data flat (row-major) or nested as the shape."""
    for item in data:
        if isinstance(item, list):
            yield from _flatten(item)
        else:
            yield item


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise RequestError("BYTES data must be strings")
    return value


def _encode(name: str, value: Any) -> dict[str, Any]:
    array = np.asarray(value)
    datatype = next(
        (
            v2
            for v2, dtype in ONNX_TO_V2.values()
            if dtype is not np.object_ and array.dtype == dtype
        ),
        "BYTES",
    )
    data = array.reshape(-1).tolist()
    if datatype == "BYTES":
        data = [v.decode() if isinstance(v, bytes) else str(v) for v in data]
    return {"name": name, "datatype": datatype, "shape": list(array.shape), "data": data}
