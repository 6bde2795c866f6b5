"""check-mirror's Markdown report, rendered from the JSON report alone.

The verdict, the checks against their thresholds, and the two sides side by side: how many
copies were sent and compared, how many the mirror failed or the router dropped, and the
latencies of both versions.
"""

from __future__ import annotations

from typing import Any


def _figure(value: Any) -> str:
    if value is None:
        return "n/a"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def markdown(report: dict[str, Any]) -> str:
    summary = report["summary"]
    live = ", ".join(summary["live_versions"]) or "none"
    lines = [
        f"# Mirror check of {report['name']} version {report['version']}",
        "",
        f"Verdict: **{'passed' if report['passed'] else 'failed'}**: "
        f"{summary['requests']} mirrored request(s), {summary['compared']} compared with the "
        f"live version ({live}).",
        "",
        "| check | value | condition | result |",
        "| --- | --- | --- | --- |",
        *(
            f"| {c['metric']} | {_figure(c['value'])} | {c['condition']} | "
            f"{'met' if c['passed'] else '**not met**'} |"
            for c in report["checks"]
        ),
        "",
        "| latency (ms, answers 200) | live | mirror |",
        "| --- | --- | --- |",
        *(
            f"| {q} | {_figure(summary['live_latency_ms'][q])} | "
            f"{_figure(summary['mirror_latency_ms'][q])} |"
            for q in ("p50", "p95")
        ),
        "",
        f"p50 ratio (mirror / live): {_figure(summary['latency_ratio_p50'])}; "
        + (
            _pairing(report["pairing"])
            if "pairing" in report
            else f"copies dropped by the router (a full queue): {summary['dropped']}."
        ),
        "",
        f"Records: `{report['records']['uri']}` (`sha256:{report['records']['digest']}`).",
    ]
    return "\n".join(lines) + "\n"


def _pairing(counts: dict[str, int]) -> str:
    """What pairing the payload logs by x-request-id left out (check_mirror_logs.py)."""
    return (
        f"from the payload logs, {counts['live_requests']} live and "
        f"{counts['candidate_requests']} candidate request(s), {counts['paired']} paired by "
        f"x-request-id; left out: {counts['unpaired_live']} live request(s) without a copy, "
        f"{counts['unpaired_candidate']} copies without a live request, "
        f"{counts['unidentified']} without a unique x-request-id, {counts['pending']} "
        "awaiting an answer."
    )
