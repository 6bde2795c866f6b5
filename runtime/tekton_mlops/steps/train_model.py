"""train-model: a scikit-learn model on tabular data, exported to ONNX and proven equal."""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tekton_mlops.contract import StepContext
from tekton_mlops.digests import as_digest, build_manifest, write_manifest
from tekton_mlops.errors import DataError, ParameterError, Violation
from tekton_mlops.lineage import Artifact, carry_upstream
from tekton_mlops.ml.model_dir import METADATA_FILE, METRICS_FILE, MODEL_FILE
from tekton_mlops.results import ResultValue
from tekton_mlops.storage.publish import check_destination, staged_directory

if TYPE_CHECKING:  # numpy-backed: imported when a model is trained, not on --help
    from tekton_mlops.ml.tabular import DataSource


@dataclass(frozen=True)
class Params:
    data: str
    target_column: str
    categorical_columns: list[str]
    numeric_columns: list[str]
    categorical_encoding: str
    numeric_imputation: str
    categorical_imputation: str
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
    mlflow_tracking_uri: str
    mlflow_experiment: str


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


def _holdout(frame: Any, test_size: float, seed: int, classifier: bool) -> tuple[Any, Any]:
    """Training and holdout rows. The split is of row positions, which train_test_split
    shuffles exactly as it would the feature matrix: the same rows as ever for a seed."""
    import numpy as np

    positions = np.arange(len(frame.target))
    train, test = _split(_Rows(positions, frame.target), test_size, seed, classifier)[:2]
    return frame.take(train), frame.take(test)


@dataclass(frozen=True)
class _Rows:
    """What :func:`_split` reads of a table: the features to split, and the target."""

    features: Any
    target: Any


def _check_kinds(params: Params) -> None:
    """A column cannot be forced both ways; refused before anything is read or written."""
    both = sorted(set(params.categorical_columns) & set(params.numeric_columns))
    if both:
        raise ParameterError(
            "train-model",
            [
                Violation(
                    "numeric-columns",
                    json.dumps(params.numeric_columns),
                    f"names {', '.join(map(repr, both))}, also in categorical-columns",
                )
            ],
        )


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
    from tekton_mlops import tracking
    from tekton_mlops.ml import tabular

    _check_kinds(params)
    output = Path(params.output)
    check_destination(output, params.overwrite)

    source = tabular.locate(params.data, params.data_digest)
    # The run is opened before training, so a tracking server that cannot be reached fails
    # the step before anything is written; it ends FAILED when training fails.
    with tracking.run_for(
        params.mlflow_tracking_uri,
        params.mlflow_experiment,
        step="train-model",
        params=ctx.params,
        tags={tracking.DATASET_URI: source.uri, tracking.DATASET_DIGEST: as_digest(source.digest)},
    ) as tracked:
        results = _train(params, ctx, source, output)
        tracked.log_params(
            {
                "estimator": params.estimator,
                "seed": params.seed,
                "test_size": params.test_size,
                **params.hyperparameters,
            }
        )
        tracked.log_metrics(json.loads(str(results["metrics"])))
        tracked.set_tags({tracking.MODEL_DIGEST: results["model-root-digest"]})
        tracked.log_artifacts(output, "model")
    return {**results, "mlflow-run-id": tracked.run_id}


def _train(
    params: Params, ctx: StepContext, source: DataSource, output: Path
) -> dict[str, ResultValue]:
    import numpy as np

    from tekton_mlops.ml import columns, estimators, inputs, metrics, onnx_export, preprocessing

    spec = estimators.ESTIMATORS[params.estimator]
    classifier = spec.task == "classification"
    frame = columns.read_frame(
        source.csv,
        params.target_column,
        numeric_target=not classifier,
        categorical=params.categorical_columns,
        numeric=params.numeric_columns,
    )
    if classifier and len(np.unique(frame.target)) < 2:
        raise DataError(f"target column {params.target_column!r} has a single class")
    plan = preprocessing.plan_for(
        frame, params.categorical_encoding, params.numeric_imputation, params.categorical_imputation
    )
    ctx.log.info(
        "training %s on %d rows x %d features from %s",
        params.estimator,
        len(frame.target),
        len(frame.feature_names),
        source.csv,
    )
    if plan.layout != preprocessing.MATRIX or plan.impute:
        categorical = frame.names_of(columns.CATEGORICAL)
        shown = ", ".join(categorical[:10]) + (" ..." if len(categorical) > 10 else "")
        ctx.log.info(
            "categorical features: %s; %d missing cell(s), imputed in the model",
            shown or "none",
            frame.missing(),
        )
    train, test = _holdout(frame, params.test_size, params.seed, classifier)
    y_train, y_test = train.target, test.target
    model = preprocessing.build(plan, params.estimator, params.hyperparameters, params.seed)
    _fit(model, train.matrix(), y_train, params.estimator, ctx)

    exported = onnx_export.export(
        model,
        len(frame.feature_names),
        params.onnx_opset,
        classifier,
        initial_types=inputs.initial_types(plan, frame),
    )
    runtime = onnx_export.session(exported.model_bytes)
    layout = inputs.layout_metadata(plan, frame, [i.name for i in runtime.get_inputs()])
    test_feeds = inputs.feeds(layout, test)
    if plan.layout == preprocessing.MATRIX:
        proof = onnx_export.prove_equal(model, runtime, test.matrix(), classifier)
    else:
        proof = onnx_export.prove_equal(
            model, runtime, test.matrix(float32=True), classifier, feeds=test_feeds
        )
    ctx.log.info(
        "onnxruntime equals scikit-learn on %d holdout rows (largest difference %.2g)",
        proof.rows,
        proof.max_abs_diff,
    )

    predicted = onnx_export.predict_feeds(runtime, test_feeds)
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
        "preprocessing": preprocessing.describe(plan, params.estimator),
        "feature_names": list(frame.feature_names),
        "target_column": frame.target_name,
        "classes": model.classes_.tolist() if classifier else None,
        **layout,
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
        carry_upstream(Path(params.data), source.digest, stage)  # the model's lineage to its data

    ctx.log.info("wrote %s (%s)", output / MODEL_FILE, as_digest(model_entry.sha256))
    return {
        "model-digest": as_digest(model_entry.sha256),
        "model-root-digest": manifest.root,
        "metrics": json.dumps(quality, separators=(",", ":"), sort_keys=True),
        "dataset_ARTIFACT_INPUTS": {"uri": source.uri, "digest": as_digest(source.digest)},
    }
