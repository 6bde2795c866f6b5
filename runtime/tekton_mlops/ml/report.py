"""The evaluation report as one self-contained HTML page.

    >>> from tekton_mlops.ml.report import Page, render
    >>> html = render(Page(title="Evaluation of random-forest-classifier", ...))

The page carries everything it shows: the figures are PNG data URIs, the style
sheet is inline, there is no script and no link to anything outside it, so the
file can be archived, attached to a review or opened from a workspace copy
years later and still read the same. Numbers are written as the step's JSON
writes them (``repr`` of the float), so the page and the ``metrics`` result
can be compared exactly.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from tekton_mlops.ml.plots import Plot

REPORT_HTML = "report.html"

#: The look every report page shares (the evaluation's, detect-drift's); each adds its own.
BASE_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 60rem;
       padding: 0 1rem; color: #1b1b1b; line-height: 1.45; }
h1 { font-size: 1.6rem; } h2 { font-size: 1.25rem; margin-top: 2rem; }
/* A wide table scrolls in its own box; the page never scrolls sideways on a phone. */
table { border-collapse: collapse; margin: 0.5rem 0 1rem; display: block; max-width: 100%;
        overflow-x: auto; }
th, td { border: 1px solid #c8c8c8; padding: 0.25rem 0.6rem; text-align: left; }
td.number { text-align: right; font-variant-numeric: tabular-nums; }
code { font-size: 0.85rem; word-break: break-all; }
td { overflow-wrap: anywhere; }
"""

_STYLE = (
    BASE_STYLE
    + """figure { margin: 1.5rem 0; } figure img { max-width: 100%; height: auto; }
figcaption { font-size: 0.9rem; color: #444; }
.passed { color: #0a6b2d; } .failed { color: #a3140f; }
"""
)


@dataclass(frozen=True)
class Page:
    """What the report shows; every field is already computed."""

    title: str
    passed: bool
    rows: int
    metrics: Mapping[str, float]
    digests: Sequence[tuple[str, str, str]]  # (what, where, sha256:...)
    figures: Sequence[Plot]
    checks: Sequence[tuple[str, str, bool]] = ()  # (metric, condition, met)
    importance: Sequence[tuple[str, float, float]] = ()  # (feature, mean, std)
    importance_note: str = ""
    baseline: Mapping[str, float] = field(default_factory=dict)  # the baseline's metrics


def deltas(candidate: Mapping[str, float], baseline: Mapping[str, float]) -> dict[str, float]:
    """Candidate minus baseline for every metric both have, rounded as metrics are."""
    return {n: round(candidate[n] - baseline[n], 6) for n in sorted(candidate) if n in baseline}


def _table(header: Sequence[str], rows: Sequence[Sequence[object]], table_id: str) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = []
    for row in rows:
        cells = []
        for cell in row:
            if isinstance(cell, float):
                cells.append(f'<td class="number">{cell!r}</td>')
            else:
                cells.append(f"<td>{html.escape(str(cell))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f'<table id="{table_id}"><tr>{head}</tr>\n' + "\n".join(body) + "\n</table>"


def _figure(plot: Plot) -> str:
    data = base64.b64encode(plot.png).decode("ascii")
    alt = html.escape(plot.title, quote=True)
    return (
        f'<figure id="{html.escape(plot.name, quote=True)}">'
        f'<img src="data:image/png;base64,{data}" alt="{alt}">'
        f"<figcaption><strong>{html.escape(plot.title)}.</strong> "
        f"{html.escape(plot.caption)} <em>({html.escape(plot.name)})</em></figcaption></figure>"
    )


def render(page: Page) -> str:
    """The whole HTML document."""
    verdict = "passed" if page.passed else "failed"
    conditions = {metric: (condition, met) for metric, condition, met in page.checks}
    metric_rows = [
        (
            name,
            float(value),
            conditions.get(name, ("", False))[0],
            ("met" if conditions[name][1] else "not met") if name in conditions else "",
        )
        for name, value in sorted(page.metrics.items())
    ]
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(page.title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{html.escape(page.title)}</h1>",
        f'<p>Verdict: <strong class="{verdict}">{verdict}</strong> on {page.rows} rows.</p>',
        "<h2>Metrics</h2>",
        _table(("metric", "value", "threshold", "result"), metric_rows, "metrics"),
        "<h2>Inputs</h2>",
        _table(("input", "location", "digest"), page.digests, "digests"),
    ]
    if page.baseline:
        changes = deltas(page.metrics, page.baseline)
        rows = [(n, float(page.metrics[n]), float(page.baseline[n]), changes[n]) for n in changes]
        parts += [
            "<h2>Against the baseline</h2>",
            "<p>Both models scored on the same rows; delta is candidate minus baseline.</p>",
            _table(("metric", "candidate", "baseline", "delta"), rows, "baseline-deltas"),
        ]
    if page.importance:
        parts += [
            "<h2>Permutation feature importance</h2>",
            f"<p>{html.escape(page.importance_note)}</p>",
            _table(
                ("feature", "mean decrease", "std"),
                [(n, round(m, 6), round(s, 6)) for n, m, s in page.importance],
                "importance",
            ),
        ]
    parts.append("<h2>Figures</h2>")
    parts += [_figure(plot) for plot in page.figures]
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
