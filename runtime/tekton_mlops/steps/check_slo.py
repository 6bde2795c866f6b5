"""check-slo: bounded load against V2 endpoints, compared with SLOs; A/B/n with statistics.

The params choose one of three modes:

- one endpoint (``url``): its metrics and SLO verdict;
- A/B (``url`` and ``baseline-url``): the versions ``candidate`` and ``baseline``;
  ``passed`` is the candidate's verdict, ``winner`` candidate, baseline or empty;
- A/B/n (``endpoints``): named versions; ``passed`` when every version meets the SLOs
  (Iter8's ``assert slos``), ``winner`` a version's name or empty.

When versions are compared, each gets the same load in rounds whose order rotates
(:func:`serving.load.drive_rounds`) and :mod:`serving.abtest` names the winner: best by
compare-metric among the versions that meet the SLOs, by a difference significant at
``confidence``. With a dataset the rows also go to every version after the load, and the
model metric decides the winner instead (:mod:`serving.paired`); the SLOs still decide
which versions may win. Param mistakes, the dataset's and its fit to each model included,
are found before the first inference request: exit 2, nothing written.

The lineage record goes beside the reports, ``<output>/.mlops/lineage/check-slo.intoto.json``:
the endpoints (by URL; an endpoint has no digest), the sha256 of the request body and the
dataset's digest in, the two reports out, the decision (the results) as a byproduct. It is
written whatever the verdict, before a failing SLO fails the step; with ``model-uri`` it is
signed and attached beside the stored model as :mod:`tekton_mlops.lineage_store.decisions` says.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tekton_mlops.conditions import Check, check
from tekton_mlops.contract import StepContext
from tekton_mlops.errors import MlopsError, ParameterError, Violation
from tekton_mlops.lineage import Artifact
from tekton_mlops.results import ResultValue

if TYPE_CHECKING:
    from collections.abc import Sequence

    from tekton_mlops.serving.abtest import Decision
    from tekton_mlops.serving.paired import RowScores
    from tekton_mlops.steps.check_slo_rows import Labelled

STEP = "check-slo"
REPORT_JSON = "slo-report.json"
REPORT_MARKDOWN = "slo-report.md"
MAX_VERSIONS = 10
#: winner-reason's share of the results budget (the schema's maxBytes).
REASON_BYTES = 600


@dataclass(frozen=True)
class Params:
    url: str
    model: str
    requests: int
    concurrency: int
    duration: float
    slos: dict[str, str]
    payload: str
    baseline_url: str
    compare_metric: str
    endpoints: dict[str, str]
    confidence: float
    min_effect: float
    dataset: str
    target_column: str
    model_metric: str
    output: str
    fail_on_slo: bool
    model_uri: str
    signing_key: str
    endpoint_url: str
    addressing_style: str
    registry_auth: str
    insecure_registry: bool


class SloNotMet(MlopsError):
    """An SLO failed and the caller asked for a failing step."""


@dataclass
class Side:
    """One version as the step saw it: where, what the load measured, its SLO checks."""

    name: str
    url: str
    measured: dict[str, float | None]
    checks: list[Check]
    error_samples: list[str]
    latencies_ms: Sequence[float]  # every successful request's, 8 bytes each
    requests: int
    errors: int
    model_metric: float | None = None

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)


def _check_combinations(params: Params) -> None:
    """The rules that span params, every broken one reported at once (exit 2)."""
    problems = []
    shown = json.dumps(params.endpoints)
    if params.endpoints:
        if params.url:
            rule = "cannot be combined with --url: name every version in endpoints"
            problems.append(Violation("endpoints", shown, rule))
        if params.baseline_url:
            rule = "cannot be combined with --baseline-url: name the baseline in endpoints"
            problems.append(Violation("endpoints", shown, rule))
        if not 2 <= len(params.endpoints) <= MAX_VERSIONS:
            rule = f"must name 2 to {MAX_VERSIONS} versions, not {len(params.endpoints)}"
            problems.append(Violation("endpoints", shown, rule))
    elif not params.url:
        problems.append(Violation("url", "", "is required (or endpoints, to compare versions)"))
    if not params.dataset:
        for name, value in (
            ("target-column", params.target_column),
            ("model-metric", params.model_metric),
        ):
            if value:
                problems.append(Violation(name, value, "needs --dataset, the labelled rows"))
    elif not params.target_column:
        problems.append(Violation("target-column", "", "is required with --dataset"))
    if problems:
        raise ParameterError(STEP, problems)


def _versions(params: Params) -> list[tuple[str, str]]:
    if params.endpoints:
        return list(params.endpoints.items())
    if params.baseline_url:
        return [("candidate", params.url), ("baseline", params.baseline_url)]
    return [("candidate", params.url)]


def _request_body(params: Params, url: str) -> bytes:
    from tekton_mlops.serving.load import fetch_json, sample_request

    if params.payload:
        try:
            document = json.loads(params.payload)
        except ValueError as exc:
            raise ParameterError(
                STEP, [Violation("payload", params.payload, f"not JSON: {exc}")]
            ) from None
    else:
        document = sample_request(fetch_json(url, f"/v2/models/{params.model}"))
    return json.dumps(document).encode()


def _measure(
    params: Params, versions: list[tuple[str, str]], body: bytes, ctx: StepContext
) -> list[Side]:
    from tekton_mlops.serving.load import drive, drive_rounds, rounds_for

    if len(versions) == 1:
        ctx.log.info("driving %s: %s", versions[0][1], _load(params))
        runs = [
            drive(
                versions[0][1],
                params.model,
                body,
                params.requests,
                params.concurrency,
                params.duration,
            )
        ]
    else:
        rounds = rounds_for(params.requests, params.concurrency)
        ctx.log.info(
            "driving %d versions with the same load in %d round(s), the order rotating: %s",
            len(versions), rounds, _load(params),
        )  # fmt: skip
        urls = [url for _, url in versions]
        runs = drive_rounds(
            urls, params.model, body, params.requests, params.concurrency, params.duration
        )
    sides = []
    for (name, url), run in zip(versions, runs, strict=True):
        measured = run.summary()
        sides.append(
            Side(name, url, measured, check(measured, params.slos), run.error_samples,
                 run.latencies_ms, run.requests, run.errors)
        )  # fmt: skip
    return sides


def _load(params: Params) -> dict[str, Any]:
    return {
        "requests": params.requests,
        "concurrency": params.concurrency,
        "duration": params.duration,
    }


def _decisions(params: Params, sides: list[Side], scores: RowScores | None) -> list[Decision]:
    """The serving decision, then the model's when there is a dataset; the last one names
    the winner."""
    from tekton_mlops.serving.abtest import Version, decide, serving_test

    metric = params.compare_metric
    versions = [
        Version(s.name, s.measured, s.passed, s.latencies_ms, s.requests, s.errors) for s in sides
    ]
    decisions = [
        decide(versions, metric, params.confidence, serving_test(metric), params.min_effect)
    ]
    if scores is not None:
        by_metric = [Version(s.name, {scores.metric: s.model_metric}, s.passed) for s in sides]
        decisions.append(decide(by_metric, scores.metric, params.confidence, scores.test))
    return decisions


def _reason(text: str) -> str:
    """The reason within its share of the results budget (whole characters)."""
    data = text.encode()
    if len(data) <= REASON_BYTES:
        return text
    return data[: REASON_BYTES - 3].decode(errors="ignore") + "..."


def _score(labelled: Labelled, sides: list[Side], ctx: StepContext) -> RowScores:
    from tekton_mlops.steps.check_slo_rows import score

    ctx.log.info("sending %d labelled row(s) to each version", labelled.row_count)
    scores = score(labelled)
    for side in sides:
        side.model_metric = scores.value(side.name)
        ctx.log.info("%s: %s %g", side.name, scores.metric, side.model_metric)
    return scores


def _model_metric(side: Side, scores: RowScores) -> dict[str, Any]:
    return {"metric": scores.metric, "value": side.model_metric, "rows": len(scores.truth)}


def _side(side: Side, scores: RowScores | None) -> dict[str, Any]:
    """One version in the JSON report."""
    entry: dict[str, Any] = {
        "name": side.name,
        "url": side.url,
        "passed": side.passed,
        "measured": side.measured,
        "checks": [c.__dict__ for c in side.checks],
        "error_samples": side.error_samples,
    }
    if scores is not None:
        entry["model_metric"] = _model_metric(side, scores)
    return entry


def _report(
    params: Params,
    sides: list[Side],
    scores: RowScores | None,
    decisions: list[Decision],
    passed: bool,
) -> dict[str, Any]:
    from tekton_mlops.serving.load import rounds_for

    report: dict[str, Any] = {"model": params.model, "passed": passed, "load": _load(params)}
    if decisions:
        report["load"]["rounds"] = rounds_for(params.requests, params.concurrency)
        report |= {
            "versions": [_side(s, scores) for s in sides],
            "decisions": [d.as_dict() for d in decisions],
            "compare_metric": params.compare_metric,
            "winner": decisions[-1].winner,
            "winner_reason": _reason(decisions[-1].reason),
        }
    if not params.endpoints:  # the candidate's own figures at the top, as before A/B/n
        candidate = sides[0]
        report |= {
            "url": candidate.url,
            "measured": candidate.measured,
            "checks": [c.__dict__ for c in candidate.checks],
            "error_samples": candidate.error_samples,
        }
        if decisions:
            report["baseline"] = {"url": sides[1].url, "measured": sides[1].measured}
        if scores is not None:
            report["model_metric"] = _model_metric(candidate, scores)
    return report


def run(params: Params, ctx: StepContext) -> dict[str, ResultValue]:
    from tekton_mlops.lineage_store import decisions as decision_records
    from tekton_mlops.serving.load import infer_path
    from tekton_mlops.steps.check_slo_report import markdown
    from tekton_mlops.steps.check_slo_rows import prepare
    from tekton_mlops.storage.publish import atomic_write_text, check_writable_directory

    _check_combinations(params)
    output = Path(params.output)
    check_writable_directory(output)  # before the load: a report that cannot be written fails first
    recorder = decision_records.prepare(params)  # the key and the stored model, before the load
    versions = _versions(params)
    labelled = None
    if params.dataset:  # every problem with the rows exits 2 here, before any load
        labelled = prepare(
            params.dataset, params.target_column, params.model_metric, params.model, versions
        )
    body = _request_body(params, versions[0][1])
    sides = _measure(params, versions, body, ctx)
    scores = _score(labelled, sides, ctx) if labelled is not None else None
    compared = len(sides) > 1
    for side in sides:
        for c in side.checks:
            ctx.log.info("%s%s", f"{side.name}: " if compared else "", c.describe())
    # A/B: passed is the candidate's verdict (the baseline is the reference); A/B/n: all.
    passed = all(s.passed for s in sides) if params.endpoints else sides[0].passed
    decisions = _decisions(params, sides, scores) if compared else []
    winner = decisions[-1].winner if decisions else ""
    reason = _reason(decisions[-1].reason) if decisions else ""
    if decisions:
        ctx.log.info("winner by %s: %s (%s)", decisions[-1].metric, winner or "none", reason)
    report = _report(params, sides, scores, decisions, passed)
    atomic_write_text(output / REPORT_JSON, json.dumps(report, indent=2, sort_keys=True) + "\n")
    atomic_write_text(output / REPORT_MARKDOWN, markdown(report))
    if params.endpoints:
        endpoints = [(f"endpoint-{name}", url) for name, url in versions]
    else:
        endpoints = [("endpoint", params.url), ("baseline-endpoint", params.baseline_url)]
    request = hashlib.sha256(body).hexdigest()
    # A/B/n: the winner's figures (none without a winner); otherwise the candidate's.
    summary = (
        next((s.measured for s in sides if s.name == winner), {})
        if params.endpoints
        else sides[0].measured
    )
    results: dict[str, ResultValue] = {
        "passed": "true" if passed else "false",
        "summary": json.dumps(summary, separators=(",", ":"), sort_keys=True),
        "report": str(output / REPORT_JSON),
        "winner": winner,
        "winner-reason": reason,
    }
    decision_records.settle(
        recorder,
        output,
        ctx,
        inputs=[
            *(Artifact(name, url, "") for name, url in endpoints if url),
            Artifact("request", versions[0][1].rstrip("/") + infer_path(params.model), request),
            *([Artifact("dataset", labelled.uri, labelled.digest)] if labelled else []),
        ],
        reports=(REPORT_JSON, REPORT_MARKDOWN),
        results=results,
    )
    ctx.log.info("verdict: %s (report %s)", "passed" if passed else "failed", output / REPORT_JSON)
    if not passed and params.fail_on_slo:
        judged = sides if params.endpoints else sides[:1]
        failed = [
            f"{s.name}: {c.describe()}" if params.endpoints else c.describe()
            for s in judged
            for c in s.checks
            if not c.passed
        ]
        raise SloNotMet("SLOs not met: " + "; ".join(failed))
    return results
