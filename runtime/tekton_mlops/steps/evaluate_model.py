"""evaluate-model: metrics of an ONNX model on labelled data, compared with thresholds."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tekton_mlops.conditions import check
from tekton_mlops.contract import StepContext
from tekton_mlops.digests import (
    as_digest,
    check_file_digest,
    parse_digest,
    read_manifest,
    sha256_file,
    verify_files,
)
from tekton_mlops.errors import (
    DataError,
    IntegrityError,
    MlopsError,
    ModelError,
    ParameterError,
    Violation,
)
from tekton_mlops.lineage import Artifact
from tekton_mlops.results import ResultValue
from tekton_mlops.steps.train_model import METADATA_FILE, MODEL_FILE

REPORT_JSON = "evaluation.json"
REPORT_MARKDOWN = "evaluation.md"


@dataclass(frozen=True)
class Params:
    model_path: str
    data: str
    target_column: str
    thresholds: dict[str, str]
    output: str
    fail_on_threshold: bool
    min_rows: int
    model_digest: str
    data_digest: str


class ThresholdNotMet(MlopsError):
    """A threshold failed and the caller asked for a failing step."""


def load_model_dir(path: Path, pinned: str) -> tuple[dict[str, Any], bytes, str]:
    """Read and verify a train-model directory; return metadata, model bytes, model sha256."""
    expected = "expected a train-model output directory"
    if not path.exists():
        raise ModelError(f"{path}: no such directory ({expected})")
    if not path.is_dir():
        raise ModelError(f"{path}: not a directory ({expected})")
    if not (path / MODEL_FILE).is_file():
        raise ModelError(f"{path}: no {MODEL_FILE} ({expected})")
    # Read once, hash those bytes: what runs is exactly what was verified.
    try:
        model_bytes = (path / MODEL_FILE).read_bytes()
    except OSError as exc:
        raise ModelError(f"{path / MODEL_FILE}: cannot read ({exc.strerror or exc})") from None
    digest = hashlib.sha256(model_bytes).hexdigest()
    manifest = read_manifest(path)
    if manifest is not None:
        check_file_digest(path, manifest, MODEL_FILE, digest)
        verify_files(path, manifest, [METADATA_FILE])
    if pinned and parse_digest(pinned) != digest:
        raise IntegrityError(
            f"{path / MODEL_FILE}: sha256 {digest} does not match the pinned {parse_digest(pinned)}"
        )
    try:
        metadata = json.loads((path / METADATA_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ModelError(f"{path / METADATA_FILE}: unreadable ({detail})") from None
    check_metadata(metadata, path / METADATA_FILE)
    return metadata, model_bytes, digest


def check_metadata(metadata: Any, where: Path) -> None:
    """The fields evaluation relies on, as train-model writes them, or a ModelError naming one."""

    def wrong(field: str, rule: str) -> ModelError:
        return ModelError(f"{where}: {field} {rule} (not what train-model writes)")

    if not isinstance(metadata, dict):
        raise wrong("the document", "must be a JSON object")
    if metadata.get("task") not in ("classification", "regression"):
        raise wrong("task", "must be classification or regression")
    names = metadata.get("feature_names")
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise wrong("feature_names", "must be a non-empty list of column names")
    if len(set(names)) != len(names):
        raise wrong("feature_names", "must not name a column twice")
    if not isinstance(metadata.get("target_column"), str):
        raise wrong("target_column", "must be a column name")
    classes = metadata.get("classes")
    if metadata["task"] == "classification" and (not isinstance(classes, list) or len(classes) < 2):
        raise wrong("classes", "must list the model's classes")


def check_model_input(runtime: Any, metadata: dict[str, Any], model_file: Path) -> None:
    """The ONNX graph must take the features the metadata names and give the task's outputs."""
    inputs = runtime.get_inputs()
    width = len(metadata["feature_names"])
    shape = inputs[0].shape if len(inputs) == 1 else []
    # A dimension is an int when fixed; None or a name when symbolic (then anything goes).
    if len(inputs) != 1 or len(shape) != 2 or (isinstance(shape[1], int) and shape[1] != width):
        raise ModelError(
            f"{model_file}: takes {[(i.name, i.shape) for i in inputs]}, "
            f"but its metadata names {width} feature column(s)"
        )
    wanted = {"label", "probabilities"} if metadata["task"] == "classification" else {"variable"}
    names = {o.name for o in runtime.get_outputs()}
    if not wanted <= names:
        raise ModelError(
            f"{model_file}: outputs {sorted(names)}, a {metadata['task']} model from "
            f"train-model has {sorted(wanted)}"
        )


def _check_thresholds_apply(task: str, thresholds: dict[str, str]) -> None:
    from tekton_mlops.ml.metrics import CLASSIFICATION_METRICS, REGRESSION_METRICS

    allowed = CLASSIFICATION_METRICS if task == "classification" else REGRESSION_METRICS
    wrong = [
        Violation(
            f"thresholds[{name!r}]",
            condition,
            f"not a {task} metric; use one of " + ", ".join(allowed),
        )
        for name, condition in sorted(thresholds.items())
        if name not in allowed
    ]
    if wrong:
        raise ParameterError("evaluate-model", wrong)


def _markdown(report: dict[str, Any]) -> str:
    lines = [
        f"# Evaluation of {report['model']['estimator']}",
        "",
        f"Verdict: **{'passed' if report['passed'] else 'failed'}** "
        f"on {report['data']['rows']} rows.",
        "",
        "| metric | value | threshold | result |",
        "| --- | --- | --- | --- |",
    ]
    conditions = {c["metric"]: c for c in report["checks"]}
    for name, value in sorted(report["metrics"].items()):
        check = conditions.get(name)
        verdict = "" if check is None else ("met" if check["passed"] else "**not met**")
        lines.append(f"| {name} | {value:g} | {check['condition'] if check else ''} | {verdict} |")
    lines += ["", f"Model: `{report['model']['digest']}`  ", f"Data: `{report['data']['digest']}`"]
    return "\n".join(lines) + "\n"


def run(params: Params, ctx: StepContext) -> dict[str, ResultValue]:
    from tekton_mlops.ml import metrics, onnx_export, tabular
    from tekton_mlops.storage.publish import atomic_write_text, check_writable_directory

    model_dir = Path(params.model_path)
    output = Path(params.output) if params.output else model_dir
    metadata, model_bytes, model_digest = load_model_dir(model_dir, params.model_digest)
    task = metadata["task"]
    _check_thresholds_apply(task, params.thresholds)
    check_writable_directory(output)

    # The same data checks as training: the features the model was trained on, by name,
    # finite and within float32; labels present. A gate on data it cannot score is no gate.
    source = tabular.locate(params.data, params.data_digest)
    target = params.target_column or metadata["target_column"]
    table = tabular.read_table(
        source.csv,
        target,
        features=metadata["feature_names"],
        numeric_target=task == "regression",
    )
    rows = len(table.target)
    if rows < params.min_rows:
        raise DataError(
            f"{source.csv}: {rows} data row(s), fewer than min-rows ({params.min_rows}); "
            "metrics on so few rows cannot gate a model"
        )
    runtime = onnx_export.session(model_bytes, model_dir / MODEL_FILE)
    check_model_input(runtime, metadata, model_dir / MODEL_FILE)
    outputs = onnx_export.predict(runtime, table.features)
    if task == "classification":
        import numpy as np

        classes = np.asarray(metadata["classes"])
        unknown = sorted(set(np.unique(table.target).tolist()) - set(classes.tolist()), key=str)
        if unknown:
            raise DataError(
                f"{source.csv}: labels {unknown[:5]} in column {target!r} were never seen "
                "in training"
            )
        quality = metrics.classification(
            table.target, outputs["label"], outputs["probabilities"], classes
        )
    else:
        quality = metrics.regression(table.target, outputs["variable"].reshape(-1))
    checks = check(quality, params.thresholds)
    passed = all(c.passed for c in checks)
    for c in checks:
        ctx.log.info("%s", c.describe())

    report = {
        "passed": passed,
        "metrics": quality,
        "checks": [c.__dict__ for c in checks],
        "model": {
            "path": str(model_dir),
            "digest": as_digest(model_digest),
            "estimator": metadata.get("estimator", "unknown"),
        },
        "data": {
            "uri": source.uri,
            "digest": as_digest(source.digest),
            "rows": len(table.target),
            "target_column": target,
        },
    }
    report_path = output / REPORT_JSON
    atomic_write_text(report_path, json.dumps(report, indent=2, sort_keys=True) + "\n")
    atomic_write_text(output / REPORT_MARKDOWN, _markdown(report))
    ctx.write_lineage(
        output,
        inputs=[
            Artifact("model", (model_dir / MODEL_FILE).resolve().as_uri(), model_digest),
            Artifact("dataset", source.uri, source.digest),
        ],
        outputs=[Artifact("evaluation", report_path.resolve().as_uri(), sha256_file(report_path))],
    )
    ctx.log.info("verdict: %s (report %s)", "passed" if passed else "failed", report_path)
    if not passed and params.fail_on_threshold:
        failed = "; ".join(c.describe() for c in checks if not c.passed)
        raise ThresholdNotMet(f"thresholds not met: {failed}")
    return {
        "passed": "true" if passed else "false",
        "metrics": json.dumps(quality, separators=(",", ":"), sort_keys=True),
        "report": str(report_path),
    }
