"""evaluate-model: metrics of an ONNX model on labelled data, compared with thresholds."""

from __future__ import annotations

import json
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tekton_mlops.conditions import check
from tekton_mlops.contract import StepContext
from tekton_mlops.digests import (
    as_digest,
    sha256_file,
)
from tekton_mlops.errors import (
    DataError,
    MlopsError,
    ParameterError,
    Violation,
)
from tekton_mlops.lineage import Artifact
from tekton_mlops.ml.model_dir import (
    MODEL_FILE,
    check_model_input,
    load_model_dir,
    root_digest,
)
from tekton_mlops.results import ResultValue

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
    report: str
    baseline_path: str
    seed: int
    mlflow_tracking_uri: str
    mlflow_experiment: str


class ThresholdNotMet(MlopsError):
    """A threshold failed and the caller asked for a failing step."""


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
    from tekton_mlops import tracking
    from tekton_mlops.ml import inputs, metrics, onnx_export, tabular
    from tekton_mlops.storage.publish import atomic_write_text, check_writable_directory

    # The MLflow run opens once the model and data are verified (bad input creates no run)
    # and ends FAILED when the evaluation fails, FINISHED with a verdict either way.
    with ExitStack() as stack:
        model_dir = Path(params.model_path)
        output = Path(params.output) if params.output else model_dir
        metadata, model_bytes, model_digest = load_model_dir(model_dir, params.model_digest)
        task = metadata["task"]
        _check_thresholds_apply(task, params.thresholds)
        check_writable_directory(output)
        from tekton_mlops.steps import evaluate_report

        report_target = evaluate_report.prepare(
            params.report, output, model_dir, params.baseline_path, metadata
        )

        # The same data checks as training: the features the model was trained on, by name,
        # finite and within float32; labels present. A gate on data it cannot score is no gate.
        source = tabular.locate(params.data, params.data_digest)
        target = params.target_column or metadata["target_column"]
        table, feeds = inputs.read_model_inputs(
            source.csv, target, metadata, numeric_target=task == "regression"
        )
        rows = len(table.target)
        if rows < params.min_rows:
            raise DataError(
                f"{source.csv}: {rows} data row(s), fewer than min-rows ({params.min_rows}); "
                "metrics on so few rows cannot gate a model"
            )
        tracked = stack.enter_context(
            tracking.run_for(
                params.mlflow_tracking_uri,
                params.mlflow_experiment,
                step="evaluate-model",
                params=ctx.params,
                tags={
                    tracking.DATASET_URI: source.uri,
                    tracking.DATASET_DIGEST: as_digest(source.digest),
                    tracking.MODEL_DIGEST: root_digest(model_dir),
                },
            )
        )
        runtime = onnx_export.session(model_bytes, model_dir / MODEL_FILE)
        check_model_input(runtime, metadata, model_dir / MODEL_FILE)
        outputs = onnx_export.predict_feeds(runtime, feeds)
        if report_target is not None:  # drawn on the other core while the metrics are made
            evaluate_report.draw_early(
                report_target,
                metadata,
                table.features,
                table.target,
                outputs,
                lambda rows: inputs.predict_rows(runtime, metadata, rows),
                params.seed,
            )
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
        written = None
        if report_target is not None:
            written = evaluate_report.write(
                report_target,
                evaluate_report.Evaluation(
                    f"Evaluation of {metadata.get('estimator', 'unknown')}",
                    metadata,
                    table.features,
                    table.target,
                    outputs,
                    quality,
                    checks,
                    passed,
                    [
                        ("model", (model_dir / MODEL_FILE).resolve().as_uri(), model_digest),
                        ("dataset", source.uri, source.digest),
                    ],
                    lambda rows: inputs.predict_rows(runtime, metadata, rows),
                    params.seed,
                ),
            )
            ctx.log.info("report: %s (%s)", written.path / "report.html", written.digest)

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
                *evaluate_report.baseline_artifacts(report_target),
            ],
            outputs=[
                Artifact("evaluation", report_path.resolve().as_uri(), sha256_file(report_path)),
                *(written.artifacts if written else []),
            ],
        )
        ctx.log.info("verdict: %s (report %s)", "passed" if passed else "failed", report_path)
        tracked.log_params({f"threshold.{k}": v for k, v in params.thresholds.items()})
        tracked.log_metrics(quality)
        tracked.set_tags({"tekton-mlops.passed": "true" if passed else "false"})
        tracked.log_artifact(report_path, "evaluation")
        tracked.log_artifact(output / REPORT_MARKDOWN, "evaluation")
        if written is not None:
            tracked.log_artifacts(written.path, "report")
        if not passed and params.fail_on_threshold:
            failed = "; ".join(c.describe() for c in checks if not c.passed)
            raise ThresholdNotMet(f"thresholds not met: {failed}")
        return {
            "passed": "true" if passed else "false",
            "metrics": json.dumps(quality, separators=(",", ":"), sort_keys=True),
            "report": str(report_path),
            "report-digest": written.digest if written else "",
            "mlflow-run-id": tracked.run_id,
        }
