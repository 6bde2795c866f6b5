"""check-mirror: judge a mirrored (shadow) candidate from the recorded answers of both versions.

The records are the ones a local deployment's router appends while it mirrors
(``<state>/<name>/router/table.mirror.jsonl``, see serving/mirror.py), or a file given as
``records``. Only the records of one mirrored version count, and with a deployment only
those written since that version's server came up: a version name used again (blue and
green alternate) must not be judged by an earlier candidate's answers. On KServe, where
Istio drops the mirror's answers, ``payload-logs`` names the log sink's files instead: the
candidate InferenceService's logged events are paired with the live one's by x-request-id
and turned into the same records (steps/check_mirror_logs.py).

Everything the params can get wrong exits 2 before anything is read; a deployment or
records that are not there, records that are not the router's, and too few of them exit
1 with one line, and nothing is written. The lineage record goes beside the reports,
``<output>/.mlops/lineage/check-mirror.intoto.json``: the records (the sha256 of the bytes
judged) in, the two reports out, the decision (the results) as a byproduct. It is written
whatever the verdict, before a failing check fails the step; with ``model-uri`` it is signed
and attached beside the stored model as :mod:`tekton_mlops.lineage_store.decisions` says.

Example::

    tekton-mlops check-mirror --state-dir=/workspace/deployments --name=iris \\
        --min-requests=200 --wait-seconds=60 --max-latency-ratio=1.5 --output=/tmp/report
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tekton_mlops.conditions import Check, check
from tekton_mlops.contract import StepContext
from tekton_mlops.errors import DataError, MlopsError, ParameterError, Violation
from tekton_mlops.lineage import Artifact
from tekton_mlops.results import ResultValue
from tekton_mlops.steps.mirror_reading import STEP, Reading, candidate_service

REPORT_JSON = "mirror-report.json"
REPORT_MARKDOWN = "mirror-report.md"
RECORDS_SUFFIX = ".mirror.jsonl"
#: How often the records are read again while waiting for enough of them.
POLL_SECONDS = 0.2
#: The same for payload logs: a listing of a folder or an S3 prefix, new files read.
LOGS_POLL_SECONDS = 1.0


@dataclass(frozen=True)
class Params:
    state_dir: str
    records: str
    payload_logs: str
    live_service: str
    candidate_service: str
    name: str
    version: str
    min_requests: int
    wait_seconds: float
    min_agreement: float
    max_error_rate: float
    max_latency_ratio: float
    output: str
    fail_on_mismatch: bool
    model_uri: str
    signing_key: str
    endpoint_url: str
    addressing_style: str
    registry_auth: str
    insecure_registry: bool


class MirrorMismatch(MlopsError):
    """A check failed and the caller asked for a failing step."""


class TooFewRecords(MlopsError):
    """Not enough mirrored requests were recorded to judge the candidate."""


@dataclass(frozen=True)
class Source:
    """Where the records are, and which of them belong to the candidate."""

    path: Path
    must_exist: bool  # a deployment's router creates its file with the first copy
    version: str  # "": the one version the records hold
    since: float  # records written before this (epoch seconds) are left out
    url: str = ""  # the deployment's address, for the messages


def _check_combination(params: Params) -> None:
    problems = []
    if params.payload_logs:
        if params.records:
            rule = "give a records file or payload logs, one of the two"
            problems.append(Violation("records", params.records, rule))
        if not params.candidate_service and not params.version:
            rule = "names the candidate InferenceService (or give version: <name>-<version>)"
            problems.append(Violation("candidate-service", "", rule))
        if params.state_dir and not params.version:
            rule = "names the deployed version whose deploy record in state-dir says since when"
            problems.append(Violation("version", "", rule))
        if params.live_service and params.live_service == candidate_service(params):
            rule = "is the candidate; name the live InferenceService it mirrors"
            problems.append(Violation("live-service", params.live_service, rule))
    else:
        if bool(params.state_dir) == bool(params.records):
            rule = "give the deployments folder (state-dir) or a records file, one of the two"
            problems.append(Violation("records", params.records, rule))
        for name in ("live-service", "candidate-service"):
            if value := getattr(params, name.replace("-", "_")):
                problems.append(Violation(name, value, "applies with payload-logs only"))
    if problems:
        raise ParameterError(STEP, problems)


def _source(params: Params) -> Source:
    if params.records:
        return Source(_records_file(Path(params.records)), True, params.version, 0.0)
    return _deployment(params)


def _records_file(path: Path) -> Path:
    if path.is_dir():
        found = sorted(path.glob(f"*{RECORDS_SUFFIX}"))
        if len(found) != 1:
            names = ", ".join(p.name for p in found) or "none"
            raise DataError(
                f"{path}: holds {len(found)} *{RECORDS_SUFFIX} files ({names}); name one"
            )
        return found[0]
    if not path.exists():
        raise DataError(f"{path}: no such file or directory")
    return path


def _deployment(params: Params) -> Source:
    """The records of the deployment ``name`` in state-dir, for its candidate."""
    from tekton_mlops.deploy import local_routes

    state = Path(params.state_dir)
    routing = local_routes.status(state, params.name)
    if not routing.versions:
        raise DataError(f"{state}: no local deployment {params.name!r} here (deploy-model first)")
    version = params.version or (routing.mirror.version if routing.mirror else "")
    if not version:
        live = " ".join(f"{v}={w}" for v, w in routing.weights.items())
        raise DataError(
            f"{params.name}: no version is mirrored now ({live}); name the one to judge (version)"
        )
    # The version's server writes its url file once it answers: every copy it received
    # came later. (The folder is deploy/local_routes.py's layout: versions/<version>/.)
    started = state / params.name / "versions" / version / "url"
    since = started.stat().st_mtime if started.is_file() else 0.0
    return Source(routing.records, False, version, since, routing.url)


def _lines(source: Source) -> tuple[list[str], str]:
    """The whole lines of the records and the sha256 of exactly those bytes."""
    try:
        data = source.path.read_bytes()
    except FileNotFoundError:
        if source.must_exist:
            raise DataError(f"{source.path}: no such file or directory") from None
        data = b""  # nothing mirrored yet
    except OSError as exc:
        raise DataError(f"{source.path}: cannot read ({exc.strerror or exc})") from None
    # The router appends line by line: a line it is still writing waits for the next read.
    data = data[: data.rfind(b"\n") + 1]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise _not_records(source, "not UTF-8 text") from None
    return text.splitlines(), hashlib.sha256(data).hexdigest()


def _not_records(source: Source, why: str) -> DataError:
    return DataError(f"{source.path}: not mirror records (JSON lines as the router writes): {why}")


def _read(source: Source) -> Reading:
    from tekton_mlops.serving.mirror import summarize_lines

    lines, digest = _lines(source)

    def since(record: dict[str, Any]) -> bool:
        return float(record.get("time", 0)) >= source.since

    try:
        version = source.version
        if not version:
            held = summarize_lines(lines, since)["mirror_versions"]
            if len(held) > 1:
                rule = f"the records hold several mirrored versions ({', '.join(held)}); name one"
                raise ParameterError(STEP, [Violation("version", "", rule)])
            version = held[0] if held else ""
        summary = summarize_lines(lines, lambda r: r["mirror"] == version and since(r))
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise _not_records(source, f"{type(exc).__name__}: {exc}") from None
    return Reading(version, summary, digest)


def _wait(
    params: Params,
    read: Callable[[], Reading],
    where: str,
    url: str,
    ctx: StepContext,
    poll: float = POLL_SECONDS,
) -> Reading:
    """Read until min-requests records are there or wait-seconds are over."""
    deadline = time.monotonic() + params.wait_seconds
    reading = read()
    if reading.summary["requests"] < params.min_requests and params.wait_seconds:
        ctx.log.info(
            "%d of %d mirrored request(s) recorded; waiting up to %g s for the rest",
            reading.summary["requests"], params.min_requests, params.wait_seconds,
        )  # fmt: skip
    while reading.summary["requests"] < params.min_requests and time.monotonic() < deadline:
        time.sleep(min(poll, max(0.0, deadline - time.monotonic())))
        reading = read()
    if reading.summary["requests"] < params.min_requests:
        waited = f", after waiting {params.wait_seconds:g} s" if params.wait_seconds else ""
        through = f" through {url}" if url else ""
        unpaired = ""
        if reading.pairing is not None:
            unpaired = (
                f"; {reading.pairing['unpaired_live']} live request(s) without a copy, "
                f"{reading.pairing['unpaired_candidate']} copies without a live request, "
                f"{reading.pairing['pending']} awaiting an answer"
            )
        raise TooFewRecords(
            f"only {reading.summary['requests']} mirrored request(s) of "
            f"{reading.version or 'any version'} recorded in {where} (min-requests "
            f"{params.min_requests}{waited}{unpaired}): send more live traffic{through} while "
            "it mirrors, or lower min-requests"
        )
    return reading


def _judged(params: Params, ctx: StepContext) -> tuple[Reading, dict[str, Any]]:
    """The reading judged (once enough is recorded) and what it was read from."""
    if params.payload_logs:
        from tekton_mlops.steps.check_mirror_logs import logs_reader

        read, logs = logs_reader(params)
        reading = _wait(params, read, logs.display, "", ctx, LOGS_POLL_SECONDS)
        uri = logs.uri if logs.uri.startswith("s3://") else Path(logs.uri).resolve().as_uri()
        return reading, {"uri": uri, "digest": reading.digest, "since": logs.since}
    source = _source(params)
    reading = _wait(params, lambda: _read(source), str(source.path), source.url, ctx)
    return reading, {"uri": source.path.resolve().as_uri(), "digest": reading.digest,
                     "since": source.since}  # fmt: skip


def _checks(params: Params, summary: dict[str, Any]) -> list[Check]:
    figures = {
        "agreement": summary["agreement_rate"],
        "mirror_error_rate": summary["mirror_error_rate"],
        "latency_ratio_p50": summary["latency_ratio_p50"],
    }
    rules = {
        "agreement": f">={params.min_agreement!r}",
        "mirror_error_rate": f"<={params.max_error_rate!r}",
    }
    if params.max_latency_ratio:
        rules["latency_ratio_p50"] = f"<={params.max_latency_ratio!r}"
    return check(figures, rules)


def compact(reading: Reading) -> dict[str, Any]:
    """The summary result: the figures a reader of the PipelineRun wants first."""
    summary = reading.summary
    return {
        "version": reading.version,
        "requests": summary["requests"],
        "agreement": summary["agreement_rate"],
        "mirror_error_rate": summary["mirror_error_rate"],
        "live_p50_ms": summary["live_latency_ms"]["p50"],
        "mirror_p50_ms": summary["mirror_latency_ms"]["p50"],
        "latency_ratio_p50": summary["latency_ratio_p50"],
    }


def _text(number: float | None) -> str:
    """0.986667, 1, 0 as a result value; empty for no figure."""
    return "" if number is None else f"{number:.6f}".rstrip("0").rstrip(".")


def run(params: Params, ctx: StepContext) -> dict[str, ResultValue]:
    from tekton_mlops.lineage_store import decisions as decision_records
    from tekton_mlops.steps.check_mirror_report import markdown
    from tekton_mlops.storage.publish import atomic_write_text, check_writable_directory

    _check_combination(params)
    output = Path(params.output)
    check_writable_directory(output)  # before the wait: a report that cannot be written
    recorder = decision_records.prepare(params)  # the key and the stored model, before the wait
    reading, records = _judged(params, ctx)
    checks = _checks(params, reading.summary)
    passed = all(c.passed for c in checks)
    for each in checks:
        ctx.log.info("%s", each.describe())
    report: dict[str, Any] = {
        "name": params.name,
        "version": reading.version,
        "records": records,
        "thresholds": {"min_requests": params.min_requests,
                       "min_agreement": params.min_agreement,
                       "max_error_rate": params.max_error_rate,
                       "max_latency_ratio": params.max_latency_ratio},
        "summary": reading.summary,
        "checks": [c.__dict__ for c in checks],
        "passed": passed,
    }  # fmt: skip
    if reading.pairing is not None:
        report["pairing"] = reading.pairing
    atomic_write_text(output / REPORT_JSON, json.dumps(report, indent=2, sort_keys=True) + "\n")
    atomic_write_text(output / REPORT_MARKDOWN, markdown(report))
    summary = reading.summary
    results: dict[str, ResultValue] = {
        "passed": "true" if passed else "false",
        "agreement": _text(summary["agreement_rate"]),
        "requests": str(summary["requests"]),
        "mirror-error-rate": _text(summary["mirror_error_rate"]),
        "summary": json.dumps(compact(reading), separators=(",", ":"), sort_keys=True),
    }
    decision_records.settle(
        recorder,
        output,
        ctx,
        inputs=[
            Artifact(
                "payload-logs" if params.payload_logs else "mirror-records",
                records["uri"],
                reading.digest,
            )
        ],
        reports=(REPORT_JSON, REPORT_MARKDOWN),
        results=results,
    )
    ctx.log.info("verdict: %s (report %s)", "passed" if passed else "failed", output / REPORT_JSON)
    if not passed and params.fail_on_mismatch:
        failed = "; ".join(c.describe() for c in checks if not c.passed)
        raise MirrorMismatch(f"mirrored version {reading.version} failed: {failed}")
    return results
