"""check-slo's Markdown report, rendered from the JSON report alone.

One endpoint: its metrics against the SLOs. Versions compared: one table row per version
(requests, error rate, latencies, throughput, the model metric, the SLO verdict), then
each decision with the tests it rests on (statistic, p-value, Holm-adjusted p-value,
the side the data favour and what the test saw), and why there is a winner or none.
"""

from __future__ import annotations

from typing import Any

_COLUMNS = (
    ("requests", "requests"),
    ("error_rate", "error rate"),
    ("latency_mean_ms", "mean ms"),
    ("latency_p50_ms", "p50 ms"),
    ("latency_p95_ms", "p95 ms"),
    ("latency_p99_ms", "p99 ms"),
    ("throughput_rps", "throughput rps"),
)


def _cell(value: Any) -> str:
    """A figure for a table: 3 significant digits, whole numbers from 1000 up (no 2.03e+03)."""
    if value is None:
        return "n/a"
    if not isinstance(value, float):
        return str(value)
    return f"{value:.0f}" if abs(value) >= 1000 else f"{value:.3g}"


def markdown(report: dict[str, Any]) -> str:
    return _comparison(report) if "versions" in report else _single(report)


def _single(report: dict[str, Any]) -> str:
    lines = [
        f"# SLO check of {report['model']} at {report['url']}",
        "",
        f"Verdict: **{'passed' if report['passed'] else 'failed'}** "
        f"({report['measured']['requests']} requests, "
        f"concurrency {report['load']['concurrency']}).",
        "",
        "| metric | candidate | SLO | result |",
        "| --- | --- | --- | --- |",
    ]
    checks = {c["metric"]: c for c in report["checks"]}
    for name, value in report["measured"].items():
        check = checks.get(name)
        verdict = "" if check is None else ("met" if check["passed"] else "**not met**")
        lines.append(f"| {name} | {value} | {check['condition'] if check else ''} | {verdict} |")
    if metric := report.get("model_metric"):
        lines += ["", f"{metric['metric']} on {metric['rows']} labelled rows: {metric['value']}."]
    if report["error_samples"]:
        lines += ["", "Errors seen:", *(f"- `{e}`" for e in report["error_samples"])]
    return "\n".join(lines) + "\n"


def _slo_verdict(version: dict[str, Any]) -> str:
    if not version["checks"]:
        return "none set"
    failed = [c for c in version["checks"] if not c["passed"]]
    if not failed:
        return "met"
    return "**not met**: " + "; ".join(
        f"{c['metric']} {_cell(c['value'])} fails {c['condition']}" for c in failed
    )


def _comparison(report: dict[str, Any]) -> str:
    versions = report["versions"]
    two_way = "baseline" in report
    title = (
        f"A/B check of {report['model']}: candidate against baseline"
        if two_way
        else f"A/B/n check of {report['model']}: {len(versions)} versions"
    )
    who = "the candidate meets" if two_way else "every version meets"
    load = report["load"]
    lines = [
        f"# {title}",
        "",
        f"Verdict: **{'passed' if report['passed'] else 'failed'}** "
        f"({who if report['passed'] else who.replace('meets', 'does not meet')} the SLOs).",
        f"Load: {load['requests']} requests per version, concurrency {load['concurrency']}"
        + (f", at most {load['duration']:g} s" if load["duration"] else "")
        + f", in {load['rounds']} round(s) with the order rotating.",
        "",
    ]
    metric = versions[0].get("model_metric", {}).get("metric")
    header = ["version", "url", *(label for _, label in _COLUMNS)]
    header += [metric] if metric else []
    lines += ["| " + " | ".join([*header, "SLOs"]) + " |", "|" + " --- |" * (len(header) + 1)]
    for version in versions:
        cells = [
            version["name"],
            version["url"],
            *(_cell(version["measured"].get(k)) for k, _ in _COLUMNS),
        ]
        if metric:
            cells.append(_cell(version["model_metric"]["value"]))
        lines.append("| " + " | ".join([*cells, _slo_verdict(version)]) + " |")
    decisions = report["decisions"]
    for index, decision in enumerate(decisions):
        deciding = index == len(decisions) - 1
        lines += [
            "",
            f"## {'Winner' if deciding else 'Serving comparison'} by {decision['metric']} "
            f"at confidence {decision['confidence']:g}",
            "",
        ]
        if deciding:
            lines.append(f"Winner: **{decision['winner'] or 'none'}**: {decision['reason']}.")
        else:
            verdict = f"{decision['winner']} would win" if decision["winner"] else "no winner"
            lines.append(
                f"For information ({decisions[-1]['metric']} decides): {verdict}: "
                f"{decision['reason']}."
            )
        if decision["tests"]:
            lines += [
                "",
                f"| compared | test | statistic | p | {decision['correction']}-adjusted p "
                "| favours | seen |",
                "| --- | --- | --- | --- | --- | --- | --- |",
            ]
            for test in decision["tests"]:
                lines.append(
                    f"| {' vs '.join(test['versions'])} | {test['test']} | "
                    f"{_cell(test['statistic'])} | {_cell(test['p_value'])} | "
                    f"{_cell(test['adjusted_p'])} | {test['favours'] or 'neither'} | "
                    f"{test['detail']} |"
                )
    errors = [(v["name"], e) for v in versions for e in v["error_samples"]]
    if errors:
        lines += ["", "Errors seen:", *(f"- {name}: `{e}`" for name, e in errors)]
    return "\n".join(lines) + "\n"
