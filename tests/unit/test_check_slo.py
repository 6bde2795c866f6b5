"""check-slo: the A/B verdict where lower and where higher is better, the report, the record.

The step runs in-process against endpoints whose latency the test sets
(tests/unit/delay_endpoint.py), so which one must win is known, not a coin toss.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tekton_mlops.serving.load import SLO_METRICS
from tekton_mlops.steps.check_slo import _markdown, _winner
from tests.unit.delay_endpoint import DelayEndpoint

LOWER_IS_BETTER = ["latency_mean_ms", "latency_p50_ms", "latency_p95_ms", "latency_p99_ms",
                   "error_rate"]  # fmt: skip


@pytest.mark.parametrize("metric", LOWER_IS_BETTER)
def test_lower_wins_for_latencies_and_errors(metric: str) -> None:
    assert _winner(metric, {metric: 10.0}, {metric: 20.0}) == "candidate"
    assert _winner(metric, {metric: 20.0}, {metric: 10.0}) == "baseline"
    assert _winner(metric, {metric: 0.0}, {metric: 0.5}) == "candidate"


def test_higher_wins_for_throughput() -> None:
    metric = "throughput_rps"
    assert _winner(metric, {metric: 200.0}, {metric: 100.0}) == "candidate"
    assert _winner(metric, {metric: 100.0}, {metric: 200.0}) == "baseline"


def test_ties_and_missing_measurements() -> None:
    metric = "latency_p99_ms"
    assert _winner(metric, {metric: 12.5}, {metric: 12.5}) == "tie"
    # No request of a side succeeded (no latency): the other side wins.
    assert _winner(metric, {metric: None}, {metric: 12.5}) == "baseline"
    assert _winner(metric, {metric: 12.5}, {metric: None}) == "candidate"
    assert _winner(metric, {metric: None}, {metric: None}) == "tie"
    assert _winner(metric, {}, {metric: 1.0}) == "baseline"


REPORT: dict[str, Any] = {
    "url": "http://canary:8080",
    "model": "iris",
    "passed": False,
    "load": {"requests": 10, "concurrency": 2, "duration": 0.0},
    "measured": {"requests": 10, "latency_p99_ms": 12.5, "error_rate": 0.1},
    "checks": [
        {"metric": "error_rate", "condition": "<=0", "value": 0.1, "passed": False},
        {"metric": "latency_p99_ms", "condition": "<=50", "value": 12.5, "passed": True},
    ],
    "error_samples": ["HTTP 500 boom"],
}


def test_markdown_report_without_baseline() -> None:
    assert _markdown(REPORT) == (
        "# SLO check of iris at http://canary:8080\n"
        "\n"
        "Verdict: **failed** (10 requests, concurrency 2).\n"
        "\n"
        "| metric | candidate | SLO | result |\n"
        "| --- | --- | --- | --- |\n"
        "| requests | 10 |  |  |\n"
        "| latency_p99_ms | 12.5 | <=50 | met |\n"
        "| error_rate | 0.1 | <=0 | **not met** |\n"
        "\n"
        "Errors seen:\n"
        "- `HTTP 500 boom`\n"
    )


def test_markdown_report_with_baseline() -> None:
    report = REPORT | {
        "passed": True,
        "error_samples": [],
        "baseline": {"url": "http://stable", "measured": {"requests": 10, "latency_p99_ms": 30.0}},
        "compare_metric": "latency_p99_ms",
        "winner": "candidate",
    }
    assert _markdown(report) == (
        "# SLO check of iris at http://canary:8080\n"
        "\n"
        "Verdict: **passed** (10 requests, concurrency 2).\n"
        "\n"
        "| metric | candidate | SLO | result | baseline |\n"
        "| --- | --- | --- | --- | --- |\n"
        "| requests | 10 |  |  | 10 |\n"
        "| latency_p99_ms | 12.5 | <=50 | met | 30.0 |\n"
        "| error_rate | 0.1 | <=0 | **not met** | None |\n"
        "\n"
        "Winner by latency_p99_ms: **candidate**.\n"
    )


METADATA = {"name": "iris", "inputs": [{"name": "X", "datatype": "FP32", "shape": [-1, 2]}]}
SAMPLE = {"inputs": [{"name": "X", "datatype": "FP32", "shape": [1, 2], "data": [0, 0]}]}


@pytest.fixture
def fast() -> Iterator[DelayEndpoint]:
    with DelayEndpoint(delay=0.0) as endpoint:
        endpoint.metadata = METADATA
        yield endpoint


@pytest.fixture
def slow() -> Iterator[DelayEndpoint]:
    with DelayEndpoint(delay=0.03) as endpoint:
        endpoint.metadata = METADATA
        yield endpoint


def check_slo(run_step, url: str, out: Path, *extra: str):  # type: ignore[no-untyped-def]
    return run_step(
        "check-slo", f"--url={url}", "--model=iris", "--requests=12", "--concurrency=2",
        f"--output={out}", *extra,
    )  # fmt: skip


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_results_report_and_lineage(run_step, fast: DelayEndpoint, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "report"
    done = check_slo(run_step, fast.url, out, '--slos={"error_rate": "<=0"}')
    assert done.exit_code == 0, done.output
    # Without a payload the request is built from the model's metadata.
    assert fast.requests[0][:2] == ("GET", "/v2/models/iris")
    assert {json.loads(r[3]) == SAMPLE for r in fast.requests if r[0] == "POST"} == {True}
    summary = json.loads(done.results["summary"])
    assert done.results == {
        "passed": "true",
        "summary": json.dumps(summary, separators=(",", ":"), sort_keys=True),
        "report": str(out / "slo-report.json"),
        "winner": "",
    }
    assert summary["requests"] == 12
    assert summary["error_rate"] == 0.0
    assert done.output.splitlines()[-1] == (
        f"check-slo: verdict: passed (report {out / 'slo-report.json'})"
    )
    report = json.loads((out / "slo-report.json").read_text())
    assert report == {
        "url": fast.url,
        "model": "iris",
        "passed": True,
        "load": {"requests": 12, "concurrency": 2, "duration": 0.0},
        "measured": summary,
        "checks": [{"metric": "error_rate", "condition": "<=0", "value": 0.0, "passed": True}],
        "error_samples": [],
    }
    # The Markdown lists the metrics in the order they are measured, not sorted.
    in_order = {k: summary[k] for k in ("requests", *SLO_METRICS)}
    assert (out / "slo-report.md").read_text() == _markdown(report | {"measured": in_order})

    record = json.loads((out / ".mlops/lineage/check-slo.intoto.json").read_text())
    build = record["predicate"]["buildDefinition"]
    assert build["buildType"] == "https://tekton-mlops.dev/step/v1/check-slo"
    body = json.dumps(SAMPLE).encode()
    assert build["resolvedDependencies"] == [
        {"name": "endpoint", "uri": fast.url},
        {"name": "request", "uri": f"{fast.url}/v2/models/iris/infer",
         "digest": {"sha256": hashlib.sha256(body).hexdigest()}},
    ]  # fmt: skip
    assert fast.requests[-1][3] == body
    assert record["subject"] == [
        {"name": "slo-report.json", "digest": {"sha256": sha256(out / "slo-report.json")}},
        {"name": "slo-report.md", "digest": {"sha256": sha256(out / "slo-report.md")}},
    ]


def test_a_failed_slo_passes_false_or_fails_the_step(  # type: ignore[no-untyped-def]
    run_step, slow: DelayEndpoint, tmp_path: Path
) -> None:
    # Every request takes at least the server's 30 ms.
    soft = check_slo(run_step, slow.url, tmp_path / "soft", '--slos={"latency_p50_ms": "<=20"}')
    assert soft.exit_code == 0, soft.output
    assert soft.results["passed"] == "false"
    assert json.loads(soft.results["summary"])["latency_p50_ms"] >= 30

    hard = check_slo(
        run_step, slow.url, tmp_path / "hard", '--slos={"latency_p50_ms": "<=20"}', "--fail-on-slo"
    )
    assert hard.exit_code == 1
    assert "error: SLOs not met: latency_p50_ms" in hard.output
    assert "fails <=20" in hard.output
    assert hard.results == {}
    # The evidence stays: the report and the record of what was measured.
    report = json.loads((tmp_path / "hard" / "slo-report.json").read_text())
    assert report["passed"] is False
    assert (tmp_path / "hard" / ".mlops/lineage/check-slo.intoto.json").is_file()


@pytest.mark.parametrize(
    ("metric", "winner"),
    # One metric where lower is better, the one where higher is (the rest: _winner above).
    [("latency_p99_ms", "candidate"), ("throughput_rps", "candidate")],
)
def test_ab_names_the_faster_endpoint(  # type: ignore[no-untyped-def]
    run_step, fast: DelayEndpoint, slow: DelayEndpoint, tmp_path: Path, metric: str, winner: str
) -> None:
    # The baseline holds every request 30 ms; the candidate answers at once.
    done = check_slo(
        run_step, fast.url, tmp_path / "ab", f"--baseline-url={slow.url}",
        f"--compare-metric={metric}",
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    assert done.results["winner"] == winner
    report = json.loads((tmp_path / "ab" / "slo-report.json").read_text())
    assert report["winner"] == winner
    assert report["compare_metric"] == metric
    assert report["baseline"]["url"] == slow.url
    assert report["baseline"]["measured"]["requests"] == 12
    assert report["baseline"]["measured"]["latency_p50_ms"] >= 30
    assert len([r for r in slow.requests if r[0] == "POST"]) == 12  # the same load on both
    record = json.loads((tmp_path / "ab" / ".mlops/lineage/check-slo.intoto.json").read_text())
    deps = record["predicate"]["buildDefinition"]["resolvedDependencies"]
    assert deps[:2] == [
        {"name": "endpoint", "uri": fast.url},
        {"name": "baseline-endpoint", "uri": slow.url},
    ]
    swapped = check_slo(
        run_step, slow.url, tmp_path / "ba", f"--baseline-url={fast.url}",
        f"--compare-metric={metric}",
    )  # fmt: skip
    assert swapped.results["winner"] == "baseline"


def test_a_payload_that_is_not_json_is_refused_before_any_load(  # type: ignore[no-untyped-def]
    run_step, fast: DelayEndpoint, tmp_path: Path
) -> None:
    done = check_slo(run_step, fast.url, tmp_path / "r", "--payload={not json")
    assert done.exit_code == 2
    assert "error: check-slo: 1 invalid parameter(s):\n  --payload='{not json': not JSON" in (
        done.output
    )
    assert fast.requests == []
    assert not (tmp_path / "r").exists()


def test_the_given_payload_is_sent_as_json(run_step, fast: DelayEndpoint, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    payload = '{"inputs": [{"name": "X", "datatype": "FP32", "shape": [1, 2], "data": [5, 6]}]}'
    done = check_slo(run_step, fast.url, tmp_path / "r", f"--payload={payload}")
    assert done.exit_code == 0, done.output
    assert all(r[0] == "POST" for r in fast.requests)  # no metadata needed
    assert {r[3] for r in fast.requests} == {json.dumps(json.loads(payload)).encode()}


def test_a_report_folder_that_cannot_be_written_fails_before_the_load(  # type: ignore[no-untyped-def]
    run_step, fast: DelayEndpoint, tmp_path: Path
) -> None:
    (tmp_path / "file").write_text("x")
    done = check_slo(run_step, fast.url, tmp_path / "file")
    assert done.exit_code == 1
    assert "exists and is not a directory" in done.output
    assert fast.requests == []


def test_the_log_tells_the_run_line_by_line(  # type: ignore[no-untyped-def]
    run_step, fast: DelayEndpoint, slow: DelayEndpoint, tmp_path: Path
) -> None:
    out = tmp_path / "r"
    done = check_slo(
        run_step, fast.url + "/", out, '--slos={"error_rate": "<=0", "latency_p50_ms": "<=0"}',
        f"--baseline-url={slow.url}", "--fail-on-slo",
    )  # fmt: skip
    assert done.exit_code == 1
    p50 = json.loads((out / "slo-report.json").read_text())["measured"]["latency_p50_ms"]
    assert done.output.splitlines() == [
        f"check-slo: driving {fast.url}/: {{'requests': 12, 'concurrency': 2, 'duration': 0}}",
        "check-slo: error_rate 0 meets <=0",
        f"check-slo: latency_p50_ms {p50:g} fails <=0",
        f"check-slo: driving the baseline {slow.url} with the same load",
        "check-slo: winner by latency_p99_ms: candidate",
        f"check-slo: verdict: failed (report {out / 'slo-report.json'})",
        f"error: SLOs not met: latency_p50_ms {p50:g} fails <=0",
    ]
    # The request is named without a doubled slash, whatever the URL ends with.
    record = json.loads((out / ".mlops/lineage/check-slo.intoto.json").read_text())
    deps = record["predicate"]["buildDefinition"]["resolvedDependencies"]
    assert deps[2]["uri"] == f"{fast.url}/v2/models/iris/infer"


def test_every_failed_slo_is_named(run_step, slow: DelayEndpoint, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    done = check_slo(
        run_step, slow.url, tmp_path / "r", "--fail-on-slo",
        '--slos={"latency_p50_ms": "<=1", "throughput_rps": ">=100000"}',
    )  # fmt: skip
    line = done.output.strip().splitlines()[-1]
    assert line.startswith("error: SLOs not met: latency_p50_ms ")
    assert "fails <=1; throughput_rps " in line
    assert line.endswith("fails >=100000")


def test_the_report_is_indented_sorted_json(run_step, fast: DelayEndpoint, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert check_slo(run_step, fast.url, tmp_path / "r").exit_code == 0
    text = (tmp_path / "r" / "slo-report.json").read_text()
    assert text == json.dumps(json.loads(text), indent=2, sort_keys=True) + "\n"


def test_duration_bounds_both_sides_of_an_ab_run(  # type: ignore[no-untyped-def]
    run_step, slow: DelayEndpoint, tmp_path: Path
) -> None:
    with DelayEndpoint(delay=0.03) as other:
        other.metadata = METADATA
        done = run_step(
            "check-slo", f"--url={slow.url}", "--model=iris", "--requests=1000000",
            "--concurrency=2", "--duration=0.3", f"--baseline-url={other.url}",
            f"--output={tmp_path / 'r'}",
        )  # fmt: skip
    assert done.exit_code == 0, done.output
    report = json.loads((tmp_path / "r" / "slo-report.json").read_text())
    # 30 ms a request, two at a time, for 0.3 s: about 20 requests, nowhere near the budget.
    for measured in (report["measured"], report["baseline"]["measured"]):
        assert 4 <= measured["requests"] <= 60
    assert report["load"] == {"requests": 1000000, "concurrency": 2, "duration": 0.3}
