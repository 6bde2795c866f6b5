"""The model's inputs: how rows of a table become ONNX feeds, as metadata.json records it.

train-model writes, beside ``feature_names``:

- ``input_layout``: ``matrix`` (one FP32 input, ``input``) or ``columns`` (one
  input per feature column, ``inputs``: name, column, datatype FP32 or BYTES,
  shape [-1, 1], in feature order); :mod:`preprocessing` says why.
- ``feature_kinds``: each column, numeric or categorical.
- ``missing_values``: ``imputed`` when the model's graph fills them in, else
  ``refused`` (a model trained on a complete all-numeric table, or one written
  before this field existed: data with a missing value is an error, as it was).

evaluate-model and anyone scoring a CSV build the feeds the same way from it:

Example::

    table, feeds = read_model_inputs(Path("holdout.csv"), "species", metadata)
    outputs = onnx_export.predict_feeds(session, feeds)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from tekton_mlops.errors import ModelError
from tekton_mlops.ml import tabular
from tekton_mlops.ml.columns import CATEGORICAL, NUMERIC, Frame, read_frame
from tekton_mlops.ml.onnx_export import INPUT_NAME
from tekton_mlops.ml.preprocessing import COLUMNS, MATRIX, Plan

#: V2 datatype and ONNX type of a column's input, by kind.
DATATYPES = {NUMERIC: "FP32", CATEGORICAL: "BYTES"}
_ONNX_TYPES = {"FP32": "tensor(float)", "BYTES": "tensor(string)"}


def initial_types(plan: Plan, frame: Frame) -> list[tuple[str, Any]] | None:
    """skl2onnx's input types for the ``columns`` layout; None for a matrix (input ``X``)."""
    if plan.layout != COLUMNS:
        return None
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType

    kinds = {NUMERIC: FloatTensorType, CATEGORICAL: StringTensorType}
    return [(name, kinds[frame.kinds[name]]([None, 1])) for name in frame.feature_names]


def layout_metadata(plan: Plan, frame: Frame, input_names: list[str]) -> dict[str, Any]:
    """The metadata.json fields that say how to feed the model; names as the graph has them."""
    names = list(frame.feature_names)
    document: dict[str, Any] = {
        "input_layout": plan.layout,
        "feature_kinds": {n: frame.kinds[n] for n in names},
        "missing_values": "imputed" if plan.impute else "refused",
    }
    if plan.layout == MATRIX:
        document["input"] = {"name": INPUT_NAME, "datatype": "FP32", "shape": [-1, len(names)]}
    else:
        document["inputs"] = [
            {"name": given, "column": n, "datatype": DATATYPES[frame.kinds[n]], "shape": [-1, 1]}
            for given, n in zip(input_names, names, strict=True)
        ]
    return document


def feeds(metadata: dict[str, Any], frame: Frame) -> dict[str, np.ndarray]:
    """The ONNX feeds for ``frame``'s rows: numbers as float32 (NaN where missing),
    categories as strings ("" where missing)."""
    if metadata.get("input_layout", MATRIX) == MATRIX:
        return {metadata["input"]["name"]: frame.matrix().astype(np.float32)}
    fed: dict[str, np.ndarray] = {}
    for spec in metadata["inputs"]:
        column = frame.values[spec["column"]]
        if spec["datatype"] == "FP32":
            fed[spec["name"]] = column.astype(np.float32).reshape(-1, 1)
        else:
            fed[spec["name"]] = np.asarray(column, dtype=object).reshape(-1, 1)
    return fed


def rows_feeds(metadata: dict[str, Any], rows: np.ndarray) -> dict[str, np.ndarray]:
    """The feeds for a feature matrix in ``feature_names`` order (``Frame.features``)."""
    if metadata.get("input_layout", MATRIX) == MATRIX:
        return {_matrix_input(metadata): np.asarray(rows, dtype=np.float32)}
    fed: dict[str, np.ndarray] = {}
    for position, spec in enumerate(metadata["inputs"]):
        column = rows[:, position : position + 1]
        numeric = spec["datatype"] == "FP32"
        fed[spec["name"]] = column.astype(np.float32 if numeric else object)
    return fed


def predict_rows(runtime: Any, metadata: dict[str, Any], rows: np.ndarray) -> dict[str, Any]:
    """Run the model on a feature matrix in ``feature_names`` order; outputs by name."""
    from tekton_mlops.ml.onnx_export import predict_feeds

    return predict_feeds(runtime, rows_feeds(metadata, rows))


def read_model_inputs(
    csv_path: Path, target: str, metadata: dict[str, Any], numeric_target: bool = False
) -> tuple[Any, dict[str, np.ndarray]]:
    """Read labelled rows the way the model takes them; the table (``target``,
    ``feature_names``) and the feeds. ``metadata`` passed :func:`check_metadata`."""
    names = metadata["feature_names"]
    if metadata.get("missing_values", "refused") == "refused":
        table = tabular.read_table(csv_path, target, names, numeric_target)
        return table, {_matrix_input(metadata): table.features.astype(np.float32)}
    frame = read_frame(csv_path, target, names, numeric_target, kinds=metadata["feature_kinds"])
    return frame, feeds(metadata, frame)


def _matrix_input(metadata: dict[str, Any]) -> str:
    spec = metadata.get("input")
    return str(spec["name"]) if isinstance(spec, dict) and "name" in spec else INPUT_NAME


def check_metadata(metadata: dict[str, Any], where: Path) -> None:
    """The layout fields are consistent with ``feature_names``, or a ModelError naming one."""
    layout = metadata.get("input_layout", MATRIX)
    names = metadata["feature_names"]

    def wrong(field: str, rule: str) -> ModelError:
        return ModelError(f"{where}: {field} {rule} (not what train-model writes)")

    if layout not in (MATRIX, COLUMNS):
        raise wrong("input_layout", "must be matrix or columns")
    if metadata.get("missing_values", "refused") not in ("imputed", "refused"):
        raise wrong("missing_values", "must be imputed or refused")
    if layout == MATRIX and metadata.get("missing_values") != "imputed":
        return
    kinds = metadata.get("feature_kinds")
    if not isinstance(kinds, dict) or sorted(kinds) != sorted(names):
        raise wrong("feature_kinds", "must give a kind for every feature column")
    if any(kind not in (NUMERIC, CATEGORICAL) for kind in kinds.values()):
        raise wrong("feature_kinds", "must be numeric or categorical")
    if layout == MATRIX:
        return
    specs = metadata.get("inputs")
    if (
        not isinstance(specs, list)
        or not all(isinstance(s, dict) for s in specs)
        or [s.get("column") for s in specs] != names
    ):
        raise wrong("inputs", "must list one input per feature column, in order")
    for spec in specs:
        if spec.get("datatype") != DATATYPES[kinds[spec["column"]]]:
            raise wrong("inputs", f"must give column {spec['column']!r} its kind's datatype")
        if not isinstance(spec.get("name"), str):
            raise wrong("inputs", "must name each input")


def check_session(runtime: Any, metadata: dict[str, Any], model_file: Path) -> None:
    """The graph takes the per-column inputs metadata.json lists, each of its type."""
    graph = [(i.name, i.type) for i in runtime.get_inputs()]
    listed = [(s["name"], _ONNX_TYPES[s["datatype"]]) for s in metadata["inputs"]]
    if sorted(graph) != sorted(listed):
        raise ModelError(f"{model_file}: takes inputs {graph}, but its metadata lists {listed}")
