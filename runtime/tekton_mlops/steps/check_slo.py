"""check-slo: bounded load against a V2 endpoint, compared with SLOs; optional A/B.

The lineage record goes beside the reports, ``<output>/.mlops/lineage/check-slo.intoto.json``:
the endpoints (by URL; an endpoint has no digest) and the sha256 of the request body sent in,
the two reports out. It is written whatever the verdict, before a failing SLO fails the step.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tekton_mlops.conditions import check
from tekton_mlops.contract import StepContext
from tekton_mlops.digests import sha256_file
from tekton_mlops.errors import MlopsError, ParameterError, Violation
from tekton_mlops.lineage import Artifact
from tekton_mlops.results import ResultValue

REPORT_JSON = "slo-report.json"
REPORT_MARKDOWN = "slo-report.md"


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
    output: str
    fail_on_slo: bool


class SloNotMet(MlopsError):
    """An SLO failed and the caller asked for a failing step."""


def _request_body(params: Params) -> bytes:
    from tekton_mlops.serving.load import fetch_json, sample_request

    if params.payload:
        try:
            document = json.loads(params.payload)
        except ValueError as exc:
            raise ParameterError(
                "check-slo", [Violation("payload", params.payload, f"not JSON: {exc}")]
            ) from None
    else:
        document = sample_request(fetch_json(params.url, f"/v2/models/{params.model}"))
    return json.dumps(document).encode()


def _winner(metric: str, candidate: dict[str, Any], baseline: dict[str, Any]) -> str:
    from tekton_mlops.serving.load import HIGHER_IS_BETTER

    mine, theirs = candidate.get(metric), baseline.get(metric)
    if mine is None or theirs is None or mine == theirs:
        return "tie" if mine == theirs else ("baseline" if mine is None else "candidate")
    better = mine > theirs if metric in HIGHER_IS_BETTER else mine < theirs
    return "candidate" if better else "baseline"


def _markdown(report: dict[str, Any]) -> str:
    lines = [
        f"# SLO check of {report['model']} at {report['url']}",
        "",
        f"Verdict: **{'passed' if report['passed'] else 'failed'}** "
        f"({report['measured']['requests']} requests, "
        f"concurrency {report['load']['concurrency']}).",
        "",
        "| metric | candidate | SLO | result |" + (" baseline |" if report.get("baseline") else ""),
        "| --- | --- | --- | --- |" + (" --- |" if report.get("baseline") else ""),
    ]
    checks = {c["metric"]: c for c in report["checks"]}
    for name, value in report["measured"].items():
        check = checks.get(name)
        verdict = "" if check is None else ("met" if check["passed"] else "**not met**")
        row = f"| {name} | {value} | {check['condition'] if check else ''} | {verdict} |"
        if report.get("baseline"):
            row += f" {report['baseline']['measured'].get(name)} |"
        lines.append(row)
    if report.get("baseline"):
        lines += ["", f"Winner by {report['compare_metric']}: **{report['winner']}**."]
    if report["error_samples"]:
        lines += ["", "Errors seen:", *(f"- `{e}`" for e in report["error_samples"])]
    return "\n".join(lines) + "\n"


def run(params: Params, ctx: StepContext) -> dict[str, ResultValue]:
    from tekton_mlops.serving.load import drive, infer_path
    from tekton_mlops.storage.publish import atomic_write_text, check_writable_directory

    output = Path(params.output)
    check_writable_directory(output)  # before the load: a report that cannot be written fails first
    body = _request_body(params)
    load = {
        "requests": params.requests,
        "concurrency": params.concurrency,
        "duration": params.duration,
    }
    ctx.log.info("driving %s: %s", params.url, load)
    candidate = drive(
        params.url, params.model, body, params.requests, params.concurrency, params.duration
    )
    measured = candidate.summary()
    checks = check(measured, params.slos)
    passed = all(c.passed for c in checks)
    for c in checks:
        ctx.log.info("%s", c.describe())
    report: dict[str, Any] = {
        "url": params.url,
        "model": params.model,
        "passed": passed,
        "load": load,
        "measured": measured,
        "checks": [c.__dict__ for c in checks],
        "error_samples": candidate.error_samples,
    }
    winner = ""
    if params.baseline_url:
        ctx.log.info("driving the baseline %s with the same load", params.baseline_url)
        baseline = drive(
            params.baseline_url,
            params.model,
            body,
            params.requests,
            params.concurrency,
            params.duration,
        ).summary()
        winner = _winner(params.compare_metric, measured, baseline)
        report |= {
            "baseline": {"url": params.baseline_url, "measured": baseline},
            "compare_metric": params.compare_metric,
            "winner": winner,
        }
        ctx.log.info("winner by %s: %s", params.compare_metric, winner)
    atomic_write_text(output / REPORT_JSON, json.dumps(report, indent=2, sort_keys=True) + "\n")
    atomic_write_text(output / REPORT_MARKDOWN, _markdown(report))
    request = hashlib.sha256(body).hexdigest()
    endpoints = [("endpoint", params.url), ("baseline-endpoint", params.baseline_url)]
    ctx.write_lineage(
        output,
        inputs=[
            *(Artifact(name, url, "") for name, url in endpoints if url),
            Artifact("request", params.url.rstrip("/") + infer_path(params.model), request),
        ],
        outputs=[
            Artifact(name, (output / name).resolve().as_uri(), sha256_file(output / name))
            for name in (REPORT_JSON, REPORT_MARKDOWN)
        ],
    )
    ctx.log.info("verdict: %s (report %s)", "passed" if passed else "failed", output / REPORT_JSON)
    if not passed and params.fail_on_slo:
        raise SloNotMet("SLOs not met: " + "; ".join(c.describe() for c in checks if not c.passed))
    return {
        "passed": "true" if passed else "false",
        "summary": json.dumps(measured, separators=(",", ":"), sort_keys=True),
        "report": str(output / REPORT_JSON),
        "winner": winner,
    }
