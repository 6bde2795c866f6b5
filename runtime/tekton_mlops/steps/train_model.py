"""train-model: a scikit-learn model on tabular data, exported to ONNX and proven equal."""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tekton_mlops.contract import StepContext
from tekton_mlops.digests import as_digest, build_manifest, write_manifest
from tekton_mlops.errors import DataError
from tekton_mlops.lineage import Artifact
from tekton_mlops.results import ResultValue
from tekton_mlops.storage.publish import check_destination, staged_directory

MODEL_FILE = "model.onnx"
METADATA_FILE = "metadata.json"
METRICS_FILE = "metrics.json"


@dataclass(frozen=True)
class Params:
    data: str
    target_column: str
    output: str
    estimator: str
    hyperparameters: dict[str, Any]
    seed: int
    test_size: float
    onnx_opset: int
    data_digest: str
    overwrite: bool
    source_url: str
    source_revision: str


def _split(table: Any, test_size: float, seed: int, classifier: bool) -> tuple[Any, ...]:
    from sklearn.model_selection import train_test_split

    stratify = table.target if classifier else None
    try:
        return tuple(
            train_test_split(
                table.features,
                table.target,
                test_size=test_size,
                random_state=seed,
                stratify=stratify,
            )
        )
    except ValueError as exc:
        raise DataError(f"cannot split {len(table.target)} rows for a holdout: {exc}") from None


def _versions() -> dict[str, str]:
    import onnx
    import onnxruntime
    import skl2onnx
    import sklearn

    return {
        "scikit-learn": sklearn.__version__,
        "skl2onnx": skl2onnx.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": onnxruntime.__version__,
    }


def _fit(model: Any, x_train: Any, y_train: Any, estimator: str, ctx: StepContext) -> None:
    """Fit; a convergence problem becomes one log line, not a multi-line Python warning.

    The defaults converge on well-formed data (logistic regression sees standardized
    features); on data where they still do not, the user learns it once, with the remedy.
    """
    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        try:
            model.fit(x_train, y_train)
        except ValueError as exc:
            detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise DataError(f"{estimator} cannot fit this data: {detail}") from None
    for warning in caught:
        if issubclass(warning.category, ConvergenceWarning):
            first = str(warning.message).strip().splitlines()[0].rstrip(":")
            ctx.log.warning(
                "%s did not converge (%s); raise max_iter or tol in hyperparameters",
                estimator,
                first,
            )
        else:  # not ours to judge: pass it on as it came
            warnings.warn_explicit(
                warning.message, warning.category, warning.filename, warning.lineno
            )


def run(params: Params, ctx: StepContext) -> dict[str, ResultValue]:
    import numpy as np

    from tekton_mlops.ml import estimators, metrics, onnx_export, tabular

    output = Path(params.output)
    check_destination(output, params.overwrite)
    spec = estimators.ESTIMATORS[params.estimator]
    classifier = spec.task == "classification"

    source = tabular.locate(params.data, params.data_digest)
    table = tabular.read_table(source.csv, params.target_column, numeric_target=not classifier)
    if classifier and len(np.unique(table.target)) < 2:
        raise DataError(f"target column {params.target_column!r} has a single class")
    ctx.log.info(
        "training %s on %d rows x %d features from %s",
        params.estimator,
        len(table.target),
        len(table.feature_names),
        source.csv,
    )
    x_train, x_test, y_train, y_test = _split(table, params.test_size, params.seed, classifier)
    model = estimators.build(params.estimator, params.hyperparameters, params.seed)
    _fit(model, x_train, y_train, params.estimator, ctx)

    exported = onnx_export.export(model, len(table.feature_names), params.onnx_opset, classifier)
    runtime = onnx_export.session(exported.model_bytes)
    proof = onnx_export.prove_equal(model, runtime, x_test, classifier)
    ctx.log.info(
        "onnxruntime equals scikit-learn on %d holdout rows (largest difference %.2g)",
        proof.rows,
        proof.max_abs_diff,
    )

    predicted = onnx_export.predict(runtime, x_test)
    if classifier:
        quality = metrics.classification(
            y_test, predicted["label"], predicted["probabilities"], model.classes_
        )
    else:
        quality = metrics.regression(y_test, predicted["variable"].reshape(-1))
    ctx.log.info("holdout metrics: %s", json.dumps(quality, sort_keys=True))

    metadata = {
        "format": "onnx",
        "task": spec.task,
        "estimator": params.estimator,
        "hyperparameters": params.hyperparameters,
        "preprocessing": estimators.preprocessing(params.estimator),
        "feature_names": list(table.feature_names),
        "target_column": table.target_name,
        "classes": model.classes_.tolist() if classifier else None,
        "input": {
            "name": onnx_export.INPUT_NAME,
            "datatype": "FP32",
            "shape": [-1, len(table.feature_names)],
        },
        "opset": exported.opset,
        "ir_version": exported.ir_version,
        "training": {
            "rows": len(y_train),
            "holdout_rows": len(y_test),
            "seed": params.seed,
            "test_size": params.test_size,
            "dataset_digest": as_digest(source.digest),
        },
        "equivalence": {"rows": proof.rows, "max_abs_diff": proof.max_abs_diff, "ties": proof.ties},
        "versions": _versions(),
    }

    with staged_directory(output, overwrite=params.overwrite) as stage:
        (stage / MODEL_FILE).write_bytes(exported.model_bytes)
        (stage / METADATA_FILE).write_text(json.dumps(metadata, indent=2, sort_keys=True) + "\n")
        (stage / METRICS_FILE).write_text(json.dumps(quality, indent=2, sort_keys=True) + "\n")
        manifest = build_manifest(stage)
        write_manifest(stage, manifest)
        model_entry = manifest.entry(MODEL_FILE)
        assert model_entry is not None
        ctx.write_lineage(
            stage,
            inputs=[Artifact("dataset", source.uri, source.digest)],
            outputs=[
                Artifact("model", (output / MODEL_FILE).resolve().as_uri(), model_entry.sha256),
                Artifact("model-dir", output.resolve().as_uri(), manifest.root_hex),
            ],
        )

    ctx.log.info("wrote %s (%s)", output / MODEL_FILE, as_digest(model_entry.sha256))
    return {
        "model-digest": as_digest(model_entry.sha256),
        "model-root-digest": manifest.root,
        "metrics": json.dumps(quality, separators=(",", ":"), sort_keys=True),
        "dataset_ARTIFACT_INPUTS": {"uri": source.uri, "digest": as_digest(source.digest)},
    }
