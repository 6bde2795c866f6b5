"""An ONNX model a bring-your-own training step wrote: checked, tried, and described.

What passes is what the rest of the catalog can take unchanged: onnx.checker's full check,
an onnxruntime session, and a test inference on the first rows of the verified dataset
with finite outputs. A model that brings its own ``metadata.json`` is fed as that file
says and checked as evaluate-model checks it. One without is fed the feature columns as
one float32 matrix (what the V2 server and evaluate-model send); when its outputs are a
classifier's ``label`` and ``probabilities`` or a regressor's ``variable``, the
``metadata.json`` they need is written for it (:mod:`train_custom_metadata`), else the
model is published without one and can be signed, pushed and served but not evaluated.

Example::

    checked = check(stage, Path("/workspace/train-custom/model"), source, "species", 5, training)
    checked.sha256, checked.metadata_written
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tekton_mlops.digests import sha256_file
from tekton_mlops.errors import ModelError
from tekton_mlops.ml.model_dir import METADATA_FILE, MODEL_FILE

if TYPE_CHECKING:
    import numpy as np

    from tekton_mlops.ml.tabular import DataSource


@dataclass(frozen=True)
class Checked:
    sha256: str  # of model.onnx
    metadata_written: bool


def check(
    stage: Path,
    shown: Path,
    source: DataSource,
    target: str,
    rows: int,
    training: dict[str, Any],
) -> Checked:
    """Check ``stage/model.onnx``; errors name the file where the training step wrote it
    (``shown``). ``training`` (dataset digest, image, command) goes into a metadata.json
    written for the model."""
    from tekton_mlops.steps import train_custom_metadata

    path, where = stage / MODEL_FILE, shown / MODEL_FILE
    if not path.is_file():
        raise ModelError(
            f"{where}: missing (format onnx needs model.onnx at the top of MODEL_DIR; "
            "other models take format files)"
        )
    opset, ir_version = _check_proto(path, where)
    runtime = _session(path, where)
    written = False
    if (stage / METADATA_FILE).is_file():
        _score_with_metadata(runtime, stage / METADATA_FILE, shown, source, target, rows)
    else:
        table, outputs = _score_matrix(runtime, where, source, target, rows)
        about = {"training": training, "opset": opset, "ir_version": ir_version}
        metadata = train_custom_metadata.derive(runtime, outputs, table, where, about)
        if metadata is not None:
            (stage / METADATA_FILE).write_text(
                json.dumps(metadata, indent=2, sort_keys=True) + "\n"
            )
            written = True
    return Checked(sha256_file(path), written)


def _check_proto(path: Path, where: Path) -> tuple[int, int]:
    """onnx.checker's full check (shape inference included); the default opset and IR version."""
    import onnx

    try:
        # By path, so a model with external data files beside it is checked whole.
        onnx.checker.check_model(str(path), full_check=True)
        proto = onnx.load(str(path), load_external_data=False)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        raise ModelError(f"{where}: not a valid ONNX model ({_first_line(exc)})") from None
    opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), 0)
    return int(opset), int(proto.ir_version)


def _session(path: Path, where: Path) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only: a pod log is not a debug console
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - onnxruntime's errors are not typed
        raise ModelError(f"{where}: onnxruntime cannot load it ({_first_line(exc)})") from None


def _score_with_metadata(
    runtime: Any, metadata_file: Path, shown: Path, source: DataSource, target: str, rows: int
) -> None:
    """A model with its own metadata.json: checked as evaluate-model checks it, fed as it says."""
    from tekton_mlops.ml.inputs import read_model_inputs
    from tekton_mlops.ml.model_dir import check_metadata, check_model_input

    where = shown / METADATA_FILE
    try:
        metadata = json.loads(metadata_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"{where}: unreadable ({_first_line(exc)})") from None
    check_metadata(metadata, where)
    if metadata["target_column"] != target:
        raise ModelError(
            f"{where}: target_column is {metadata['target_column']!r}, "
            f"but the Task's target-column is {target!r}"
        )
    check_model_input(runtime, metadata, shown / MODEL_FILE)
    _, feeds = read_model_inputs(source.csv, target, metadata)
    _score(runtime, {name: value[:rows] for name, value in feeds.items()}, shown / MODEL_FILE)


def _score_matrix(
    runtime: Any, where: Path, source: DataSource, target: str, rows: int
) -> tuple[Any, dict[str, np.ndarray]]:
    """A model without metadata.json: one float input taking the feature columns in order."""
    import numpy as np

    from tekton_mlops.ml.tabular import read_table

    table = read_table(source.csv, target)  # numbers only: a matrix has no categories
    inputs = runtime.get_inputs()
    width = len(table.feature_names)
    if len(inputs) != 1:
        raise ModelError(
            f"{where}: takes {len(inputs)} inputs ({', '.join(i.name for i in inputs)}); "
            f"without a metadata.json listing them, a model takes one float tensor of the "
            f"{width} feature columns"
        )
    node = inputs[0]
    if node.type != "tensor(float)":
        raise ModelError(
            f"{where}: input {node.name!r} is {node.type}; without a metadata.json a model is "
            "fed the feature columns as float32, as evaluate-model and the V2 server send them"
        )
    shape = list(node.shape)
    if len(shape) != 2 or (isinstance(shape[1], int) and shape[1] != width):
        raise ModelError(
            f"{where}: input {node.name!r} has shape {shape}, but the dataset has {width} "
            f"feature column(s) besides {target!r}: {', '.join(table.feature_names)}"
        )
    features = np.asarray(table.features[:rows], dtype=np.float32)
    return table, _score(runtime, {node.name: features}, where)


def _score(runtime: Any, feeds: dict[str, Any], where: Path) -> dict[str, np.ndarray]:
    """Run the model on dataset rows; every tensor output has a row each, all finite."""
    import numpy as np

    from tekton_mlops.ml.onnx_export import predict_feeds

    count = len(next(iter(feeds.values())))
    try:
        # Any: onnxruntime gives lists for sequence and map outputs, whatever the annotation.
        outputs: dict[str, Any] = predict_feeds(runtime, feeds)
    except Exception as exc:  # noqa: BLE001 - onnxruntime's errors are not typed
        raise ModelError(
            f"{where}: onnxruntime cannot score the first {count} dataset row(s) "
            f"({_first_line(exc)})"
        ) from None
    for name, value in outputs.items():
        if not isinstance(value, np.ndarray):
            continue  # a sequence or map output: nothing here reads it
        if value.ndim and value.shape[0] != count:
            raise ModelError(
                f"{where}: output {name!r} has {value.shape[0]} row(s) for {count} input row(s)"
            )
        if value.dtype.kind == "f" and not np.isfinite(value).all():
            raise ModelError(
                f"{where}: output {name!r} is not finite on the first {count} dataset row(s)"
            )
    return outputs


def _first_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."
