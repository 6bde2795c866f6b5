"""check-slo: SLO verdicts, A/B and A/B/n winners with their reasons, the reports, the record.

The step runs in-process against endpoints whose latency the test sets
(tests/unit/delay_endpoint.py), so which one must win is known, not a coin toss; the
statistics themselves are tested on constructed samples in test_abtest.py.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tekton_mlops.serving.load import SLO_METRICS
from tekton_mlops.steps.check_slo_report import markdown as _markdown
from tests.unit.delay_endpoint import DelayEndpoint

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


COMPARED: dict[str, Any] = {
    "model": "iris",
    "passed": False,
    "load": {"requests": 10, "concurrency": 2, "duration": 0.0, "rounds": 1},
    "versions": [
        {"name": "v1", "url": "http://v1", "passed": True, "error_samples": [],
         "measured": {"requests": 10, "error_rate": 0.0, "latency_p50_ms": 1.25,
                      "latency_p99_ms": 2.5, "throughput_rps": 2027.4},
         "checks": [{"metric": "error_rate", "condition": "<=0", "value": 0.0, "passed": True}]},
        {"name": "v2", "url": "http://v2", "passed": False, "error_samples": ["HTTP 500 boom"],
         "measured": {"requests": 10, "error_rate": 0.1, "latency_p50_ms": 30.5,
                      "latency_p99_ms": None, "throughput_rps": 60.0},
         "checks": [{"metric": "error_rate", "condition": "<=0", "value": 0.1, "passed": False}]},
    ],
    "decisions": [
        {"metric": "latency_p99_ms", "confidence": 0.95, "correction": "Holm", "winner": "v1",
         "reason": "only v1 meets the SLOs", "tests": []},
    ],
}  # fmt: skip


def test_markdown_report_of_versions_compared() -> None:
    assert _markdown(COMPARED) == (
        "# A/B/n check of iris: 2 versions\n"
        "\n"
        "Verdict: **failed** (every version does not meet the SLOs).\n"
        "Load: 10 requests per version, concurrency 2, in 1 round(s) with the order rotating.\n"
        "\n"
        "| version | url | requests | error rate | mean ms | p50 ms | p95 ms | p99 ms "
        "| throughput rps | SLOs |\n"
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n"
        "| v1 | http://v1 | 10 | 0 | n/a | 1.25 | n/a | 2.5 | 2027 | met |\n"
        "| v2 | http://v2 | 10 | 0.1 | n/a | 30.5 | n/a | n/a | 60 "
        "| **not met**: error_rate 0.1 fails <=0 |\n"
        "\n"
        "## Winner by latency_p99_ms at confidence 0.95\n"
        "\n"
        "Winner: **v1**: only v1 meets the SLOs.\n"
        "\n"
        "Errors seen:\n"
        "- v2: `HTTP 500 boom`\n"
    )


def test_markdown_lists_every_test_and_the_deciding_metric_last() -> None:
    test = {"versions": ["v1", "v2"], "test": "Mann-Whitney U", "statistic": 3.0,
            "p_value": 0.000123456, "adjusted_p": 0.000123456, "favours": "v1",
            "detail": "median 1.25 ms against 30.5 ms"}  # fmt: skip
    serving = COMPARED["decisions"][0] | {"reason": "v1 is better", "tests": [test]}
    model = {"metric": "accuracy", "confidence": 0.95, "correction": "Holm", "winner": "",
             "reason": "not significant", "tests": []}  # fmt: skip
    versions = [
        v | {"model_metric": {"metric": "accuracy", "value": a, "rows": 150}}
        for v, a in zip(COMPARED["versions"], (0.96, 0.953333), strict=True)
    ]
    text = _markdown(COMPARED | {"versions": versions, "decisions": [serving, model]})
    assert "| throughput rps | accuracy | SLOs |" in text
    assert "| 2027 | 0.96 | met |" in text
    assert "| 60 | 0.953 | **not met**" in text
    assert (
        "## Serving comparison by latency_p99_ms at confidence 0.95\n\n"
        "For information (accuracy decides): v1 would win: v1 is better.\n\n"
        "| compared | test | statistic | p | Holm-adjusted p | favours | seen |\n"
        "| --- | --- | --- | --- | --- | --- | --- |\n"
        "| v1 vs v2 | Mann-Whitney U | 3 | 0.000123 | 0.000123 | v1 "
        "| median 1.25 ms against 30.5 ms |\n"
    ) in text
    assert (
        "## Winner by accuracy at confidence 0.95\n\nWinner: **none**: not significant.\n" in text
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
        "winner-reason": "",
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
    "metric",
    # One metric where lower is better, the one where higher is (the rest: test_abtest.py).
    ["latency_p99_ms", "throughput_rps"],
)
def test_ab_names_the_faster_endpoint(  # type: ignore[no-untyped-def]
    run_step, fast: DelayEndpoint, slow: DelayEndpoint, tmp_path: Path, metric: str
) -> None:
    # The baseline holds every request 30 ms; the candidate answers at once.
    done = check_slo(
        run_step, fast.url, tmp_path / "ab", f"--baseline-url={slow.url}",
        f"--compare-metric={metric}",
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    assert done.results["winner"] == "candidate"
    # 12 against 12 latencies that do not overlap: U = 0, whose p-value (scipy's normal
    # approximation with continuity correction, for samples this size) is 3.66e-05.
    assert done.results["winner-reason"] == (
        f"candidate is better by {metric} than baseline: Mann-Whitney U p=3.66e-05 <= 0.05"
    )
    report = json.loads((tmp_path / "ab" / "slo-report.json").read_text())
    assert report["winner"] == "candidate"
    assert report["winner_reason"] == done.results["winner-reason"]
    assert report["compare_metric"] == metric
    assert [v["name"] for v in report["versions"]] == ["candidate", "baseline"]
    (decision,) = report["decisions"]
    (test,) = decision["tests"]
    assert (test["versions"], test["test"], test["statistic"], test["favours"]) == (
        ["candidate", "baseline"], "Mann-Whitney U", 0.0, "candidate",
    )  # fmt: skip
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
    # The candidate's figures stay at the top of the report, as before A/B/n.
    assert report["measured"] == report["versions"][0]["measured"]
    assert report["baseline"]["measured"] == report["versions"][1]["measured"]


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
    base_p50 = json.loads((out / "slo-report.json").read_text())["baseline"]["measured"][
        "latency_p50_ms"
    ]
    assert done.output.splitlines() == [
        "check-slo: driving 2 versions with the same load in 1 round(s), the order rotating: "
        "{'requests': 12, 'concurrency': 2, 'duration': 0}",
        "check-slo: candidate: error_rate 0 meets <=0",
        f"check-slo: candidate: latency_p50_ms {p50:g} fails <=0",
        "check-slo: baseline: error_rate 0 meets <=0",
        f"check-slo: baseline: latency_p50_ms {base_p50:g} fails <=0",
        "check-slo: winner by latency_p99_ms: none (no version meets the SLOs)",
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
    # The duration is each side's, spread over 10 alternating rounds.
    assert report["load"] == {
        "requests": 1000000, "concurrency": 2, "duration": 0.3, "rounds": 10,
    }  # fmt: skip


# A/B/n: named versions ---------------------------------------------------------------------


def endpoints(**urls: str) -> str:
    return "--endpoints=" + json.dumps(urls)


def check_versions(run_step, out: Path, *extra: str, requests: int = 40):  # type: ignore[no-untyped-def]
    return run_step(
        "check-slo", "--model=iris", f"--requests={requests}", "--concurrency=2",
        f"--output={out}", *extra,
    )  # fmt: skip


def posts(endpoint: DelayEndpoint) -> int:
    return len([r for r in endpoint.requests if r[0] == "POST"])


def test_abn_the_fastest_of_three_wins(  # type: ignore[no-untyped-def]
    run_step, fast: DelayEndpoint, slow: DelayEndpoint, tmp_path: Path
) -> None:
    with DelayEndpoint(delay=0.01) as medium:
        medium.metadata = METADATA
        done = check_versions(
            run_step, tmp_path / "r",
            endpoints(**{"v1-medium": medium.url, "v2-slow": slow.url, "v3-fast": fast.url}),
            '--slos={"error_rate": "<=0"}', "--compare-metric=latency_p50_ms",
        )  # fmt: skip
        assert posts(medium) == 40
    assert done.exit_code == 0, done.output
    assert posts(fast) == posts(slow) == 40  # the same load on each
    report = json.loads((tmp_path / "r" / "slo-report.json").read_text())
    assert done.results["winner"] == report["winner"] == "v3-fast"
    assert done.results["winner-reason"].startswith(
        "v3-fast is best by latency_p50_ms, significantly better than each of the 2 others "
        "(Holm-adjusted p <= "
    )
    assert done.results["passed"] == "true"  # every version met the SLOs
    # summary: the winner's figures.
    fast_side = next(v for v in report["versions"] if v["name"] == "v3-fast")
    assert json.loads(done.results["summary"]) == fast_side["measured"]
    assert [v["name"] for v in report["versions"]] == ["v1-medium", "v2-slow", "v3-fast"]
    assert [v["measured"]["requests"] for v in report["versions"]] == [40, 40, 40]
    assert report["load"]["rounds"] == 4  # 40 requests, 2 workers: 4 rounds of 10
    (decision,) = report["decisions"]
    assert decision["correction"] == "Holm"
    tests = decision["tests"]
    assert [t["versions"] for t in tests] == [["v3-fast", "v1-medium"], ["v3-fast", "v2-slow"]]
    assert all(t["favours"] == "v3-fast" and t["adjusted_p"] <= 0.05 for t in tests)
    assert all(t["adjusted_p"] >= t["p_value"] for t in tests)
    # The top-level fields of one candidate belong to A/B and single runs, not to A/B/n.
    assert not {"url", "measured", "baseline"} & set(report)
    md = (tmp_path / "r" / "slo-report.md").read_text()
    assert md.startswith("# A/B/n check of iris: 3 versions\n")
    assert "Winner: **v3-fast**: v3-fast is best by latency_p50_ms" in md
    # Each endpoint is named in the record, under its version's name.
    record = json.loads((tmp_path / "r" / ".mlops/lineage/check-slo.intoto.json").read_text())
    deps = record["predicate"]["buildDefinition"]["resolvedDependencies"]
    assert deps[:3] == [
        {"name": "endpoint-v1-medium", "uri": medium.url},
        {"name": "endpoint-v2-slow", "uri": slow.url},
        {"name": "endpoint-v3-fast", "uri": fast.url},
    ]


def test_abn_equal_endpoints_have_no_winner_and_say_why(  # type: ignore[no-untyped-def]
    run_step, tmp_path: Path
) -> None:
    # Two endpoints alike (10 ms each). A difference significant at 0.999 between them has a
    # chance of 1 in 1000: the confidence keeps this test from failing by chance.
    with DelayEndpoint(delay=0.01) as one, DelayEndpoint(delay=0.01) as two:
        one.metadata = two.metadata = METADATA
        done = check_versions(
            run_step, tmp_path / "r", endpoints(one=one.url, two=two.url), "--confidence=0.999",
            "--compare-metric=latency_p50_ms",
        )  # fmt: skip
    assert done.exit_code == 0, done.output
    assert done.results["winner"] == ""
    assert done.results["summary"] == "{}"
    report = json.loads((tmp_path / "r" / "slo-report.json").read_text())
    (test,) = report["decisions"][0]["tests"]
    best, other = test["versions"]
    reason = done.results["winner-reason"]
    # On busy cores two alike endpoints can differ a little, yet significantly: min-effect
    # (5% by default) is what keeps such a difference from naming a winner.
    if test["adjusted_p"] > 0.001:
        assert reason == (
            f"not significant: p={test['adjusted_p']:.3g} > 0.001 between {best} and {other} "
            "(Mann-Whitney U)"
        )
    else:
        assert reason.endswith("below min-effect 5.0%"), reason
    assert f"Winner: **none**: {reason}" in (tmp_path / "r" / "slo-report.md").read_text()


def test_abn_a_failing_version_is_reported_and_cannot_win(  # type: ignore[no-untyped-def]
    run_step, slow: DelayEndpoint, tmp_path: Path
) -> None:
    # Every answer of "failing" is HTTP 500 (its metadata too: the request body comes from
    # the first version's metadata, steady's).
    with DelayEndpoint(status=500, body={"error": "down"}) as failing:
        done = check_versions(
            run_step, tmp_path / "r", endpoints(steady=slow.url, failing=failing.url),
            '--slos={"error_rate": "<=0.01"}', "--compare-metric=error_rate",
        )  # fmt: skip
    assert done.exit_code == 0, done.output
    assert (done.results["winner"], done.results["winner-reason"]) == (
        "steady", "only steady meets the SLOs",
    )  # fmt: skip
    assert done.results["passed"] == "false"  # A/B/n: every version must meet the SLOs
    report = json.loads((tmp_path / "r" / "slo-report.json").read_text())
    failing_side = report["versions"][1]
    assert (failing_side["passed"], failing_side["measured"]["error_rate"]) == (False, 1.0)
    assert failing_side["error_samples"][0].startswith('HTTP 500 {"error": "down"}')
    md = (tmp_path / "r" / "slo-report.md").read_text()
    assert "| **not met**: error_rate 1 fails <=0.01 |" in md
    assert '- failing: `HTTP 500 {"error": "down"}`' in md


def test_abn_fail_on_slo_names_each_version_that_failed(  # type: ignore[no-untyped-def]
    run_step, fast: DelayEndpoint, slow: DelayEndpoint, tmp_path: Path
) -> None:
    done = check_versions(
        run_step, tmp_path / "r", endpoints(quick=fast.url, late=slow.url),
        '--slos={"latency_p50_ms": "<=20"}', "--fail-on-slo",
    )  # fmt: skip
    assert done.exit_code == 1
    line = done.output.strip().splitlines()[-1]
    assert line.startswith("error: SLOs not met: late: latency_p50_ms ")
    assert line.endswith(" fails <=20")
    assert "quick:" not in line
    assert json.loads((tmp_path / "r" / "slo-report.json").read_text())["winner"] == "quick"


def test_ab_a_candidate_out_of_its_slos_is_no_winner(  # type: ignore[no-untyped-def]
    run_step, fast: DelayEndpoint, slow: DelayEndpoint, tmp_path: Path
) -> None:
    # The candidate is faster, but only the baseline meets the (odd) SLO of a slow p50.
    done = check_slo(
        run_step, fast.url, tmp_path / "r", f"--baseline-url={slow.url}",
        '--slos={"latency_p50_ms": ">=20"}',
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    assert done.results["passed"] == "false"  # A/B: the candidate's verdict
    assert (done.results["winner"], done.results["winner-reason"]) == (
        "baseline", "only baseline meets the SLOs",
    )  # fmt: skip


# Bad input: exit 2, the parameter named, nothing sent, nothing written ------------------------

BAD = [
    (["--url={fast}", "--baseline-url={slow}", '--endpoints={{"a": "{fast}", "b": "{slow}"}}'],
     "cannot be combined with --url: name every version in endpoints"),
    (['--baseline-url={slow}', '--endpoints={{"a": "{fast}", "b": "{slow}"}}'],
     "cannot be combined with --baseline-url: name the baseline in endpoints"),
    (['--endpoints={{"only": "{fast}"}}'], "must name 2 to 10 versions, not 1"),
    (['--endpoints={{"V_1": "{fast}", "b": "{slow}"}}'],
     "version names must be DNS labels (lowercase letters, digits and -, at most 63)"),
    (['--endpoints={{"a": "ftp://{fast}", "b": "{slow}"}}'], "must be an http:// or https:// URL"),
    (['--endpoints=["{fast}", "{slow}"]'], "is not of type 'object'"),
    (["--url={fast}", "--confidence=0.3"], "must be >= 0.5"),
    (["--url={fast}", "--confidence=1"], "must be <= 0.999"),
    ([], "--url='': is required (or endpoints, to compare versions)"),
    (["--url={fast}", "--target-column=species"], "--target-column='species': needs --dataset"),
    (["--url={fast}", "--model-metric=auc"], "must be one of accuracy, f1, rmse"),
    (["--url={fast}", "--dataset={data}"], "--target-column='': is required with --dataset"),
]  # fmt: skip


@pytest.mark.parametrize(("args", "message"), BAD)
def test_bad_input_exits_2_naming_the_parameter(  # type: ignore[no-untyped-def]
    run_step,
    fast: DelayEndpoint,
    slow: DelayEndpoint,
    tmp_path: Path,
    args: list[str],
    message: str,
) -> None:
    filled = [a.format(fast=fast.url, slow=slow.url, data=tmp_path) for a in args]
    done = check_versions(run_step, tmp_path / "out", *filled)
    assert done.exit_code == 2, done.output
    assert "error: check-slo: " in done.output
    assert message in done.output
    assert fast.requests == slow.requests == []
    assert not (tmp_path / "out").exists()
    assert done.results == {}


def test_winner_reason_stays_within_its_share_of_the_results_budget() -> None:
    from tekton_mlops.params import load_schema
    from tekton_mlops.steps.check_slo import REASON_BYTES, _reason

    declared = {r.name: r.max_bytes for r in load_schema("check-slo").results}
    assert declared["winner-reason"] == REASON_BYTES
    assert _reason("short") == "short"
    # Cut on a whole character, never inside a multi-byte one.
    cut = _reason("é" * 400)
    assert len(cut.encode()) <= REASON_BYTES
    assert cut.endswith("...")
    assert cut == "é" * ((REASON_BYTES - 3) // 2) + "..."
