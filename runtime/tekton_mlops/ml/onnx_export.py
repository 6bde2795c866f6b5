"""ONNX export of scikit-learn models, checked and proven equal on held-out data.

Exports pin the opset (17-21) and the IR version, because onnx's own defaults
run ahead of what onnxruntime and serving runtimes load. Classifiers are
exported without ZipMap so every output is a tensor the Open Inference
Protocol can carry. The exported model must give scikit-learn's predictions on
the holdout, or nothing is published.

The bytes are canonical (:func:`canonical`): skl2onnx collects the opset
domains a model uses in a set, so their order in ``opset_import`` follows the
process's hash seed, and the same model would get a different digest in
another process. A digest that is signed, pushed and pinned must depend on the
model alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tekton_mlops.errors import ModelError

#: IR version per default-domain opset (onnx's VERSION_TABLE): what runtimes expect.
IR_FOR_OPSET = {17: 8, 18: 8, 19: 9, 20: 9, 21: 10}
#: ai.onnx.ml opset that goes with each default-domain opset.
ML_OPSET_FOR_OPSET = {17: 3, 18: 3, 19: 3, 20: 3, 21: 3}
INPUT_NAME = "X"
#: A label may differ only where the model itself cannot decide in float32.
TIE_MARGIN = 1e-5


@dataclass(frozen=True)
class Exported:
    model_bytes: bytes
    outputs: tuple[dict[str, Any], ...]
    opset: int
    ir_version: int


def export(
    model: Any,
    n_features: int,
    opset: int,
    classifier: bool,
    *,
    initial_types: list[tuple[str, Any]] | None = None,
) -> Exported:
    """Convert, pin versions, and run ``onnx.checker`` with the full check.

    The model takes one float input ``X`` of ``n_features`` columns, or the
    inputs ``initial_types`` names (skl2onnx's types: a table's columns).
    """
    import onnx
    from skl2onnx import to_onnx

    from tekton_mlops.ml.estimators import final_estimator

    sample = np.zeros((1, n_features), dtype=np.float32) if initial_types is None else None
    # Options are keyed by the classifier itself, which may sit at the end of a pipeline.
    options = {id(final_estimator(model)): {"zipmap": False}} if classifier else None
    try:
        proto = to_onnx(
            model,
            sample,
            initial_types=initial_types,
            target_opset={"": opset, "ai.onnx.ml": ML_OPSET_FOR_OPSET[opset]},
            options=options,
        )
    except Exception as exc:  # noqa: BLE001 - skl2onnx raises many unrelated types
        raise ModelError(f"ONNX export failed: {type(exc).__name__}: {exc}") from exc
    proto.ir_version = IR_FOR_OPSET[opset]
    canonical(proto)
    try:
        onnx.checker.check_model(proto, full_check=True)
    except onnx.checker.ValidationError as exc:
        raise ModelError(f"exported model fails onnx.checker: {exc}") from exc
    outputs = tuple(
        {"name": o.name, "elem_type": o.type.tensor_type.elem_type} for o in proto.graph.output
    )
    return Exported(proto.SerializeToString(deterministic=True), outputs, opset, proto.ir_version)


def canonical(proto: Any) -> None:
    """Rewrite, in place, what a converter may leave to chance in a ModelProto.

    - ``opset_import``: one entry per domain (skl2onnx can list the default
      domain twice), the highest version, sorted by domain: the converter's
      order comes from iterating a set.
    - doc strings are dropped: they describe the converter's run, not the model.
    - node names become ``<op_type>_<position>``: unique, and a function of the
      graph alone rather than of a converter's name generator.
    - initializers, value_info and metadata_props are sorted by name; ONNX gives
      their order no meaning, so it should not change the bytes either.

    Inputs, outputs and the node order are kept: they are the model's interface
    and its (topological) evaluation order.
    """
    versions: dict[str, int] = {}
    for entry in proto.opset_import:
        versions[entry.domain] = max(entry.version, versions.get(entry.domain, 0))
    del proto.opset_import[:]
    for domain in sorted(versions):
        added = proto.opset_import.add()
        added.domain = domain
        added.version = versions[domain]

    proto.doc_string = ""
    graph = proto.graph
    graph.doc_string = ""
    for position, node in enumerate(graph.node):
        node.doc_string = ""
        node.name = f"{node.op_type}_{position}"
    graph.initializer.sort(key=lambda tensor: tensor.name)
    graph.value_info.sort(key=lambda value: value.name)
    proto.metadata_props.sort(key=lambda prop: prop.key)


def session(model_bytes: bytes, where: Path | None = None) -> Any:
    """An onnxruntime session on the CPU; ``where`` names the model file in errors."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only: a pod log is not a debug console
    # A step scores in a few batches with work in between (imports, metrics, the report's
    # renderer on the other core); worker threads spinning between runs would steal
    # that core for nothing.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        return ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - onnxruntime's errors are not typed
        detail = " ".join(str(exc).split())
        if len(detail) > 300:
            detail = detail[:297] + "..."
        prefix = f"{where}: " if where is not None else ""
        raise ModelError(f"{prefix}onnxruntime cannot load the model: {detail}") from exc


def predict(runtime: Any, features: np.ndarray) -> dict[str, np.ndarray]:
    """Run a model with one float input; outputs by name."""
    return predict_feeds(runtime, {runtime.get_inputs()[0].name: features.astype(np.float32)})


def predict_feeds(runtime: Any, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Run the model on its inputs by name (see :mod:`tekton_mlops.ml.inputs`); outputs by name."""
    names = [o.name for o in runtime.get_outputs()]
    values = runtime.run(None, feeds)
    return dict(zip(names, values, strict=True))


@dataclass(frozen=True)
class Equivalence:
    rows: int
    label_mismatches: int  # mismatches where scikit-learn itself is decided
    ties: int  # rows where the top two probabilities are within TIE_MARGIN
    max_abs_diff: float


def prove_equal(
    model: Any,
    runtime: Any,
    features: np.ndarray,
    classifier: bool,
    *,
    feeds: dict[str, np.ndarray] | None = None,
) -> Equivalence:
    """Compare onnxruntime with scikit-learn on the same float32 inputs.

    Both see float32 data (what a served model receives). Labels must be equal
    except on exact ties; probabilities and regression values must agree to
    float32 precision. With ``feeds`` (a model with several inputs), scikit-learn
    takes ``features`` as they are (numbers already rounded to float32) and
    onnxruntime the feeds built from the same rows.
    """
    if feeds is None:
        inputs = features.astype(np.float32)
        outputs = predict(runtime, inputs)
    else:
        inputs = features
        outputs = predict_feeds(runtime, feeds)
    if classifier:
        expected_labels = model.predict(inputs)
        expected_proba = model.predict_proba(inputs)
        labels = outputs["label"]
        proba = outputs["probabilities"]
        top2 = np.sort(expected_proba, axis=1)[:, -2:]
        tie = (top2[:, 1] - top2[:, 0]) < TIE_MARGIN
        differ = np.asarray(labels != expected_labels)
        diff = float(np.max(np.abs(proba - expected_proba))) if len(inputs) else 0.0
        result = Equivalence(len(inputs), int(np.sum(differ & ~tie)), int(np.sum(tie)), diff)
        tolerance = 1e-4
    else:
        expected = model.predict(inputs).reshape(-1)
        values = outputs["variable"].reshape(-1)
        scale = max(1.0, float(np.max(np.abs(expected))) if len(expected) else 1.0)
        diff = float(np.max(np.abs(values - expected))) if len(inputs) else 0.0
        result = Equivalence(len(inputs), 0, 0, diff / scale)
        tolerance = 1e-4
    if result.label_mismatches or result.max_abs_diff > tolerance:
        raise ModelError(
            f"onnxruntime disagrees with scikit-learn on the holdout: "
            f"{result.label_mismatches} label(s) differ, largest difference "
            f"{result.max_abs_diff:.3g} (tolerance {tolerance}); the model was not written"
        )
    return result
