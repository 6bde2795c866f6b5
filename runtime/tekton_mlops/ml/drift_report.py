"""The drift report: a JSON document, and one self-contained HTML page drawn from it.

    >>> document = report_json(drift, options, inputs)
    >>> page = render(document, drift)

Numbers are rounded once, to six significant digits, in the JSON document, and the page
prints those same numbers as JSON writes them (``json.dumps``), so the page and the
document can be compared exactly. Each drifted column gets a histogram of the reference
against the current data (shares of each side's values), drawn as inline SVG from numpy
counts: no script, no image file, no link out of the page, and no plotting library to
import.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from typing import Any

import numpy as np

from tekton_mlops.ml.drift import ColumnDrift, Counts, Drift, Numbers, Options, histogram
from tekton_mlops.ml.report import BASE_STYLE

REPORT_JSON = "drift-report.json"
REPORT_HTML = "drift-report.html"
#: Bins of a numeric column's histogram, and categories shown before the rest are "other".
HISTOGRAM_BINS = 30
SHOWN_CATEGORIES = 20
#: Bar colours, also set on each bar so that an SVG copied out of the page keeps them.
COLOURS = {"reference": "#4a78b0", "current": "#e08a2c"}

_STYLE = (
    BASE_STYLE
    + """body { max-width: 66rem; }  /* room for a histogram beside each column's numbers */
h3 { font-size: 1.05rem; margin-top: 1.5rem; }
th, td { padding: 0.2rem 0.5rem; }
.drifted { color: #a3140f; font-weight: 600; } .stable { color: #0a6b2d; }
svg text { font-size: 11px; fill: #333; }
svg { max-width: 100%; height: auto; }  /* viewBox keeps its proportions */
"""
)


def rounded(value: float | None) -> float | None:
    """Six significant digits: what the document stores and the page prints."""
    return None if value is None else float(f"{value:.6g}")


def _column_json(column: ColumnDrift) -> dict[str, Any]:
    found = asdict(column)
    for key in ("statistic", "p_value", "score", "threshold", "psi"):
        found[key] = rounded(found[key])
    return found


def report_json(drift: Drift, options: Options, inputs: Mapping[str, Any]) -> dict[str, Any]:
    """The whole report as a JSON-ready document. ``inputs``: model, reference and
    current, each a mapping (uri or path, digest, rows, ...)."""
    return {
        "drifted": drift.drifted,
        "drifted_share": rounded(drift.drifted_share),
        "drifted_count": drift.drifted_count,
        "columns_count": len(drift.columns),
        "drift_share": drift.drift_share,
        "options": {
            "numeric_test": options.numeric_test,
            "categorical_test": options.categorical_test,
            "thresholds": asdict(options.thresholds),
            "psi_bins": options.psi_bins,
        },
        **inputs,
        "columns": [_column_json(c) for c in drift.columns],
    }


def _number(value: Any) -> str:
    return "" if value is None else json.dumps(value)


_COLUMNS_HEADER = (
    "column",
    "kind",
    "test",
    "score",
    "threshold",
    "drifted",
    "statistic",
    "psi",
    "reference values",
    "current values",
    "missing (reference / current)",
    "note",
)


def _columns_table(columns: Sequence[Mapping[str, Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in _COLUMNS_HEADER)
    rows = []
    for c in columns:
        verdict = "drifted" if c["drifted"] else "stable"
        cells = [
            f"<td>{html.escape(c['column'])}</td>",
            f"<td>{c['kind']}</td>",
            f"<td>{c['test']}</td>",
            f'<td class="number">{_number(c["score"])}</td>',
            f'<td class="number">{_number(c["threshold"])}</td>',
            f'<td class="{verdict}">{"yes" if c["drifted"] else "no"}</td>',
            f'<td class="number">{_number(c["statistic"])}</td>',
            f'<td class="number">{_number(c["psi"])}</td>',
            f'<td class="number">{c["reference_count"]}</td>',
            f'<td class="number">{c["current_count"]}</td>',
            f'<td class="number">{c["reference_missing"]} / {c["current_missing"]}</td>',
            f"<td>{html.escape(c['note'])}</td>",
        ]
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return f'<table id="columns"><tr>{head}</tr>\n' + "\n".join(rows) + "\n</table>"


def _inputs_table(document: Mapping[str, Any]) -> str:
    rows = []
    for name in ("model", "reference", "current"):
        found = document.get(name) or {}
        where = found.get("uri") or found.get("path") or ""
        extra = f"{found['rows']} rows" if "rows" in found else ""
        if "requests" in found:
            extra += f" from {found['requests']} requests"
        if found.get("skipped_requests"):
            extra += f" ({found['skipped_requests']} not accepted by the model, skipped)"
        rows.append(
            f"<tr><td>{name}</td><td><code>{html.escape(str(where))}</code></td>"
            f"<td><code>{html.escape(str(found.get('digest', '')))}</code></td>"
            f"<td>{html.escape(extra)}</td></tr>"
        )
    head = "<tr><th>input</th><th>location</th><th>digest</th><th>size</th></tr>"
    return f'<table id="inputs">{head}\n' + "\n".join(rows) + "\n</table>"


# --- histograms ----------------------------------------------------------------------------


def shares(sample: Numbers | Counts) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Bar labels and each side's share of its values per bar: equal-width bins over both
    sides for numbers, the most frequent categories (and "other") for categories."""
    if isinstance(sample, Numbers):
        low = min(sample.reference[0], sample.current[0])
        high = max(sample.reference[-1], sample.current[-1])
        if low == high:
            low, high = low - 0.5, high + 0.5
        edges = np.linspace(low, high, HISTOGRAM_BINS + 1)
        labels = [f"[{a:.4g}, {b:.4g})" for a, b in zip(edges[:-1], edges[1:], strict=True)]
        labels[-1] = labels[-1][:-1] + "]"
        ref = histogram(sample.reference, edges) / len(sample.reference)
        cur = histogram(sample.current, edges) / len(sample.current)
        return labels, ref, cur
    ref = sample.reference / max(int(sample.reference.sum()), 1)
    cur = sample.current / max(int(sample.current.sum()), 1)
    order = np.argsort(-np.maximum(ref, cur), kind="stable")
    shown, rest = order[:SHOWN_CATEGORIES], order[SHOWN_CATEGORIES:]
    labels = [str(sample.keys[i]) for i in shown]
    ref_shown, cur_shown = ref[shown], cur[shown]
    if len(rest):
        labels.append(f"other ({len(rest)})")
        ref_shown = np.append(ref_shown, ref[rest].sum())
        cur_shown = np.append(cur_shown, cur[rest].sum())
    return labels, ref_shown, cur_shown


def histogram_svg(name: str, sample: Numbers | Counts) -> str:
    """Reference and current side by side per bar, heights as shares of each side."""
    labels, ref, cur = shares(sample)
    width, height, left, bottom, top = 720, 240, 44, 64 if isinstance(sample, Counts) else 34, 12
    plot_w, plot_h = width - left - 8, height - bottom - top
    peak = float(max(ref.max(initial=0.0), cur.max(initial=0.0))) or 1.0
    slot = plot_w / len(labels)
    bar = max(slot * 0.4, 0.5)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{html.escape(f"histogram of {name}", quote=True)}">',
        f'<line x1="{left}" y1="{top + plot_h}" x2="{width - 8}" y2="{top + plot_h}" '
        'stroke="#888"/>',
        f'<text x="{left - 4}" y="{top + 4}" text-anchor="end">{peak:.0%}</text>',
        f'<text x="{left - 4}" y="{top + plot_h}" text-anchor="end">0%</text>',
    ]
    for index, label in enumerate(labels):
        x = left + index * slot + (slot - 2 * bar) / 2
        tip = html.escape(f"{label}: reference {ref[index]:.2%}, current {cur[index]:.2%}")
        for offset, value, side in ((0.0, ref[index], "reference"), (bar, cur[index], "current")):
            h = plot_h * float(value) / peak
            parts.append(
                f'<rect class="{side}" fill="{COLOURS[side]}" x="{x + offset:.1f}" '
                f'y="{top + plot_h - h:.1f}" '
                f'width="{bar:.1f}" height="{h:.1f}"><title>{tip}</title></rect>'
            )
        if isinstance(sample, Counts):
            shown = label if len(label) <= 14 else label[:13] + "…"
            cx, cy = left + (index + 0.5) * slot, top + plot_h + 10
            parts.append(
                f'<text x="{cx:.1f}" y="{cy}" text-anchor="end" '
                f'transform="rotate(-40 {cx:.1f} {cy})">{html.escape(shown)}</text>'
            )
    if isinstance(sample, Numbers):
        first, last = labels[0][1:].split(",")[0], labels[-1].split(", ")[1][:-1]
        parts.append(f'<text x="{left}" y="{top + plot_h + 14}">{html.escape(first)}</text>')
        parts.append(
            f'<text x="{width - 8}" y="{top + plot_h + 14}" text-anchor="end">'
            f"{html.escape(last)}</text>"
        )
    legend_y = height - 6
    parts.append(
        f'<rect fill="{COLOURS["reference"]}" x="{left}" y="{legend_y - 9}" width="10" '
        'height="10"/>'
        f'<text x="{left + 14}" y="{legend_y}">reference</text>'
        f'<rect fill="{COLOURS["current"]}" x="{left + 90}" y="{legend_y - 9}" width="10" '
        'height="10"/>'
        f'<text x="{left + 104}" y="{legend_y}">current</text></svg>'
    )
    return "".join(parts)


# --- the page ------------------------------------------------------------------------------


def render(document: Mapping[str, Any], drift: Drift) -> str:
    """The HTML page of ``document`` (from :func:`report_json`), histograms from ``drift``."""
    detected = document["drifted"]
    title = "Data drift " + ("detected" if detected else "not detected")
    summary = (
        f'Dataset drift: <strong class="{"drifted" if detected else "stable"}">'
        f"{'detected' if detected else 'not detected'}</strong>: "
        f'<span id="drifted-count">{document["drifted_count"]}</span> of '
        f'<span id="columns-count">{document["columns_count"]}</span> columns drifted, a share '
        f'of <span id="drifted-share">{_number(document["drifted_share"])}</span> against the '
        f'drift share <span id="drift-share">{_number(document["drift_share"])}</span>.'
    )
    options = document["options"]
    thresholds = ", ".join(f"{k} {_number(v)}" for k, v in options["thresholds"].items())
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{title}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{title}</h1>",
        f"<p>{summary}</p>",
        f"<p>Tests: numeric {options['numeric_test']}, categorical "
        f"{options['categorical_test']}; thresholds: {thresholds}; population stability "
        f"index on {options['psi_bins']} reference quantile bins.</p>",
        "<h2>Inputs</h2>",
        _inputs_table(document),
        "<h2>Columns</h2>",
        "<p>A p-value test (ks, chisquare, z) flags a column when its score is at most "
        "(ks) or below the threshold; a distance (wasserstein, jensenshannon, psi) when it "
        "is at least the threshold.</p>",
        _columns_table(document["columns"]),
        "<h2>Drifted columns</h2>",
    ]
    drifted = [c for c in document["columns"] if c["drifted"]]
    if not drifted:
        parts.append("<p>None.</p>")
    for column in drifted:
        name = column["column"]
        parts.append(f'<h3 id="histogram-{html.escape(name, quote=True)}">{html.escape(name)}</h3>')
        sample = drift.samples[name]
        if column["current_count"] == 0:
            parts.append(f"<p>{html.escape(column['note'])}.</p>")
            continue
        parts.append(
            f"<p>{column['test']} {_number(column['score'])} against threshold "
            f"{_number(column['threshold'])}; shares of each side's "
            f"{column['reference_count']} and {column['current_count']} values.</p>"
        )
        parts.append(histogram_svg(name, sample))
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
