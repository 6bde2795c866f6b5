"""metadata.json for an ONNX model a training step wrote without one, where it can be honest.

evaluate-model, check-golden and detect-drift read a model through the fields train-model
writes. For a model fed the feature columns as one float matrix, most of them are facts
of the table and the graph: the feature names and order, the input's name and width, the
target. The task and the classes are read off the outputs' names, train-model's
convention: ``label`` and ``probabilities`` make a classifier, whose classes are the
target column's distinct values in sorted order (the order a model fitted on that column
gives its probabilities); ``variable`` makes a regressor. What the test inference showed
must agree (one probability column per class, every label a class), or the step fails
rather than describe the model wrongly. With other outputs nothing is guessed: no file.

The document says who wrote it (``written_by``) and carries the training image, command
and dataset digest under ``training``, so detect-drift finds the reference data.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from tekton_mlops.errors import ModelError
from tekton_mlops.ml.tabular import Table

_TEXT = {"O", "U", "S"}  # numpy kinds of text
WRITTEN_BY = (
    "finish-training, from the ONNX graph and the training data (the training step wrote none)"
)


def derive(
    runtime: Any, outputs: dict[str, np.ndarray], table: Table, where: Path, about: dict[str, Any]
) -> dict[str, Any] | None:
    """The metadata of a matrix-fed model from its scored ``outputs``; None when its outputs
    are not a classifier's or a regressor's. ``about``: training, opset and ir_version."""
    import onnx
    import onnxruntime

    names = {node.name for node in runtime.get_outputs()}
    if {"label", "probabilities"} <= names:
        task, classes = "classification", _classes(outputs, table, where)
    elif "variable" in names:
        task, classes = "regression", None
    else:
        return None
    node = runtime.get_inputs()[0]
    width = len(table.feature_names)
    return {
        "format": "onnx",
        "task": task,
        "estimator": "custom",
        "hyperparameters": {},
        "feature_names": list(table.feature_names),
        "target_column": table.target_name,
        "classes": classes,
        "input_layout": "matrix",
        "input": {"name": node.name, "datatype": "FP32", "shape": [-1, width]},
        "missing_values": "refused",
        "opset": about["opset"],
        "ir_version": about["ir_version"],
        "training": about["training"],
        "versions": {"onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__},
        "written_by": WRITTEN_BY,
    }


def _classes(outputs: dict[str, np.ndarray], table: Table, where: Path) -> list[Any]:
    classes = np.unique(table.target)
    probabilities, labels = outputs["probabilities"], outputs["label"]
    if probabilities.ndim != 2 or probabilities.shape[1] != len(classes):
        raise ModelError(
            f"{where}: probabilities has shape {list(probabilities.shape)} on the test rows, but "
            f"target column {table.target_name!r} has {len(classes)} classes"
        )
    labels = np.asarray(labels)
    known = {str(c) for c in classes.tolist()}
    strange = sorted({str(v) for v in labels.ravel().tolist()} - known)
    kinds = {labels.dtype.kind, classes.dtype.kind}
    # Integers for integer classes, text for class names: evaluate-model compares them as is.
    if strange or not (len(kinds) == 1 or kinds <= _TEXT):
        shown = ", ".join(strange[:5]) or f"{labels.dtype} values"
        raise ModelError(
            f"{where}: label gives {shown} on the test rows, not among target column "
            f"{table.target_name!r}'s classes ({', '.join(sorted(known)[:10])})"
        )
    return list(classes.tolist())
