"""detect-drift: current data against the data a model was trained on, column by column.

The lineage record goes with the reports, ``<output>/.mlops/lineage/detect-drift.intoto.json``:
the model, the reference and the current data (their digests) in, the report files out, the
decision (the results) as a byproduct. It is written whatever the verdict, before drift fails
the step; with ``model-uri`` it is signed and attached beside the stored model as
:mod:`tekton_mlops.lineage_store.decisions` says.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tekton_mlops.contract import StepContext
from tekton_mlops.digests import as_digest, build_manifest, hash_files, root_hex, write_manifest
from tekton_mlops.errors import DataError, IntegrityError, MlopsError
from tekton_mlops.lineage import Artifact
from tekton_mlops.results import ResultValue, termination_message_size
from tekton_mlops.storage.publish import check_destination, staged_directory

if TYPE_CHECKING:  # numpy-backed: imported when the step runs, not on --help
    from tekton_mlops.ml.drift import Options
    from tekton_mlops.ml.training_data import TrainingData

CSV = "csv"
PAYLOAD_LOGS = "payload-logs"
#: drifted-columns holds names up to this many bytes (as Tekton encodes them).
COLUMNS_RESULT_BYTES = 1000


@dataclass(frozen=True)
class Params:
    model_path: str
    current: str
    reference: str
    output: str
    current_format: str
    numeric_test: str
    categorical_test: str
    ks_threshold: float
    chisquare_threshold: float
    z_threshold: float
    wasserstein_threshold: float
    jensenshannon_threshold: float
    psi_threshold: float
    psi_bins: int
    drift_share: float
    min_rows: int
    model_digest: str
    current_digest: str
    fail_on_drift: bool
    overwrite: bool
    model_uri: str
    signing_key: str
    endpoint_url: str
    addressing_style: str
    registry_auth: str
    insecure_registry: bool


class DriftDetected(MlopsError):
    """The table drifted and the caller asked for a failing step."""


@dataclass(frozen=True)
class _Current:
    values: dict[str, Any]
    rows: int
    uri: str
    digest: str  # hex
    format: str
    requests: int | None = None
    skipped: int = 0  # payload logs: requests the model did not accept


def _options(params: Params) -> Options:
    from tekton_mlops.ml.drift import Options, Thresholds

    return Options(
        numeric_test=params.numeric_test,
        categorical_test=params.categorical_test,
        thresholds=Thresholds(
            ks=params.ks_threshold,
            chisquare=params.chisquare_threshold,
            z=params.z_threshold,
            wasserstein=params.wasserstein_threshold,
            jensenshannon=params.jensenshannon_threshold,
            psi=params.psi_threshold,
        ),
        psi_bins=params.psi_bins,
        drift_share=params.drift_share,
    )


def _read_current(params: Params, metadata: dict[str, Any], kinds: dict[str, str]) -> _Current:
    from tekton_mlops.digests import parse_digest
    from tekton_mlops.ml import payload_logs, tabular
    from tekton_mlops.ml.column_arrays import read_columns

    path = Path(params.current)
    kind = params.current_format
    if kind == "auto":
        kind = PAYLOAD_LOGS if payload_logs.is_payload_log_dir(path) else CSV
    if kind == CSV:
        source = tabular.locate(params.current, params.current_digest)
        table = read_columns(source.csv, kinds)
        return _Current(table.values, table.rows, source.uri, source.digest, CSV)
    if not path.is_dir():
        raise DataError(f"{path}: not a directory of payload logs")
    files = payload_logs.log_files(path)
    # The logs' identity: the root digest of their files, as a dataset's; pinned before use.
    digest = root_hex(hash_files(path, [f.relative_to(path).as_posix() for f in files]))
    if params.current_digest and parse_digest(params.current_digest) != digest:
        raise IntegrityError(
            f"{path}: payload logs digest sha256:{digest} does not match the pinned "
            f"{params.current_digest}"
        )
    logged = payload_logs.read_requests(path, metadata)
    return _Current(
        logged.values,
        logged.rows,
        path.resolve().as_uri(),
        digest,
        PAYLOAD_LOGS,
        logged.requests,
        logged.skipped,
    )


def _reference_path(reference: str, trained_on: TrainingData) -> str:
    """The reference given, else the path of the recorded ``file://`` URI."""
    if reference:
        return reference
    if trained_on.uri.startswith("file:"):
        from tekton_mlops.storage.files import local_path

        return str(local_path(trained_on.uri))
    if trained_on.uri:
        raise DataError(
            f"the model was trained on {trained_on.uri}, which is not a local path: fetch it "
            f"(fetch-data with sha256:{trained_on.digest}) and give it as the reference data"
        )
    raise DataError(
        "no URI of the training data is recorded; give the data the model was trained "
        f"on (sha256:{trained_on.digest}) as the reference data"
    )


def drifted_columns(names: list[str], total: int) -> str:
    """The drifted-columns result: as many names as fit COLUMNS_RESULT_BYTES the way
    Tekton writes results (in order); the count is always whole."""

    def encoded(kept: list[str]) -> str:
        document = {"count": len(names), "of": total, "columns": kept}
        return json.dumps(document, separators=(",", ":"), ensure_ascii=False)

    kept: list[str] = []
    for name in names:
        if _result_bytes(encoded([*kept, name])) > COLUMNS_RESULT_BYTES:
            break
        kept.append(name)
    return encoded(kept)


def _result_bytes(text: str) -> int:
    return termination_message_size({"r": text}) - termination_message_size({"r": ""})


def run(params: Params, ctx: StepContext) -> dict[str, ResultValue]:
    from tekton_mlops.lineage_store import decisions as decision_records
    from tekton_mlops.ml import training_data
    from tekton_mlops.ml.column_arrays import read_columns
    from tekton_mlops.ml.columns import NUMERIC
    from tekton_mlops.ml.drift import compare
    from tekton_mlops.ml.drift_report import REPORT_HTML, REPORT_JSON, render, report_json
    from tekton_mlops.ml.model_dir import MODEL_FILE, load_model_dir

    options = _options(params)
    output = Path(params.output)
    check_destination(output, params.overwrite)
    recorder = decision_records.prepare(params)  # the key and the stored model, before any data
    model_dir = Path(params.model_path)
    metadata, _, model_digest = load_model_dir(model_dir, params.model_digest)
    names = list(metadata["feature_names"])
    kinds = {n: metadata.get("feature_kinds", {}).get(n, NUMERIC) for n in names}

    trained_on = training_data.recorded(model_dir, metadata)
    reference = training_data.locate(_reference_path(params.reference, trained_on), trained_on)
    current = _read_current(params, metadata, kinds)
    if current.rows < params.min_rows:
        raise DataError(
            f"{params.current}: {current.rows} current row(s), fewer than min-rows "
            f"({params.min_rows}); drift on so few rows says little"
        )
    ctx.log.info("current: %d rows (%s) from %s", current.rows, current.format, current.uri)
    if current.skipped:
        ctx.log.info(
            "skipped %d logged request(s) the model did not accept",
            current.skipped,
        )
    table = read_columns(reference.csv, kinds)
    ctx.log.info(
        "reference: %d rows from %s (the model's training data, sha256:%s)",
        table.rows,
        reference.uri,
        trained_on.digest,
    )
    drift = compare(table.values, current.values, kinds, options)
    drifted = [c.column for c in drift.columns if c.drifted]

    inputs: dict[str, Any] = {
        "model": {
            "path": str(model_dir),
            "uri": (model_dir / MODEL_FILE).resolve().as_uri(),
            "digest": as_digest(model_digest),
        },
        "reference": {
            "uri": reference.uri,
            # The dataset's identity as training recorded it (the same bytes, verified).
            "digest": as_digest(trained_on.digest),
            "rows": table.rows,
        },
        "current": {
            "uri": current.uri,
            "digest": as_digest(current.digest),
            "format": current.format,
            "rows": current.rows,
            **(
                {"requests": current.requests, "skipped_requests": current.skipped}
                if current.requests is not None
                else {}
            ),
        },
    }
    document = report_json(drift, options, inputs)
    share = document["drifted_share"]
    with staged_directory(output, overwrite=params.overwrite) as stage:
        (stage / REPORT_JSON).write_text(json.dumps(document, indent=2, allow_nan=False) + "\n")
        (stage / REPORT_HTML).write_text(render(document, drift), encoding="utf-8")
        manifest = build_manifest(stage)
        write_manifest(stage, manifest)
        results: dict[str, ResultValue] = {
            "drifted": "true" if drift.drifted else "false",
            "drifted-share": json.dumps(share),
            "drifted-columns": drifted_columns(drifted, len(drift.columns)),
            "report": str(output / REPORT_JSON),
            "report-digest": manifest.root,
        }
        staged = decision_records.write(
            recorder,
            stage,
            ctx.step,
            ctx.params,
            ctx.started,
            inputs=[
                Artifact("model", inputs["model"]["uri"], model_digest),
                Artifact("reference", reference.uri, trained_on.digest),
                Artifact("current", current.uri, current.digest),
            ],
            outputs=[
                *(
                    Artifact(e.path, (output / e.path).resolve().as_uri(), e.sha256)
                    for e in manifest.files
                ),
                Artifact("drift-report", output.resolve().as_uri(), manifest.root_hex),
            ],
            decided=decision_records.decision(results, output / REPORT_JSON),
        )
    # Attached once the reports are in place: a decision never names a report not there.
    decision_records.attach(recorder, output / staged.relative_to(stage), ctx.log)

    ctx.log.info(
        "%s: %d of %d columns drifted (share %s, drift-share %s)%s",
        "drift detected" if drift.drifted else "no drift",
        len(drifted),
        len(drift.columns),
        share,
        params.drift_share,
        ": " + ", ".join(drifted[:20]) + (" ..." if len(drifted) > 20 else "") if drifted else "",
    )
    if drift.drifted and params.fail_on_drift:
        raise DriftDetected(
            f"drift detected: {len(drifted)} of {len(drift.columns)} columns drifted "
            f"(share {share} >= drift-share {params.drift_share}); see {output / REPORT_JSON}"
        )
    return results
