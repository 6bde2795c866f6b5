"""The pictures of the run page, drawn on the server: the task graph (inline SVG) and the
timeline of TaskRuns and their steps (HTML rows, each bar a small SVG).

Every state is written as text beside its colour (a person who cannot tell the colours
apart, or reads the page with a screen reader, loses nothing), and nothing is styled
inline: the colours are classes of ``static/dashboard.css``, as the page's
Content-Security-Policy allows style sheets only.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from tekton_mlops.dashboard.layout import NODE_HEIGHT, Drawing, implied, layered
from tekton_mlops.dashboard.runs import Run, Status

#: A mark per state, beside its name: shapes tell states apart without colour too.
ICONS = {
    "succeeded": "\u2713",  # check mark
    "failed": "\u2717",  # ballot x
    "running": "\u25b6",  # play
    "pending": "\u25cb",  # circle
    "skipped": "\u21b7",  # arrow over
    "cancelled": "\u2298",  # circled slash
    "unknown": "?",
}
#: Characters of a node's lines that fit its width at the style sheet's font sizes.
_NAME_CHARS, _STATE_CHARS = 23, 27
_TOP = 26.0  # room above the boxes for the "finally" label


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def duration(seconds: float | None) -> str:
    """``<1 s``, ``42 s``, ``3 min 5 s``, ``2 h 4 min``."""
    if seconds is None:
        return ""
    whole = int(round(seconds))
    if whole < 1:
        return "<1 s"
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        return f"{whole // 60} min {whole % 60} s"
    return f"{whole // 3600} h {whole % 3600 // 60} min"


def badge(status: Status) -> str:
    """A state as a mark and its reason, in a span the style sheet colours."""
    icon = ICONS.get(status.state, "?")
    return (
        f'<span class="status state-{status.state}">'
        f'<span class="icon" aria-hidden="true">{icon}</span> {esc(status.reason)}</span>'
    )


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


@dataclass(frozen=True)
class Node:
    """How one node of a graph looks: two lines of text, a class, where it links to."""

    title: str
    subtitle: str
    css: str
    href: str
    tooltip: str


def graph_svg(drawing: Drawing, nodes: Mapping[str, Node], label: str, last_label: str = "") -> str:
    """A drawing as SVG: curved edges through their lanes, boxes as links."""
    top = _TOP if drawing.last_layer is not None else 0.0
    width, height = drawing.width, drawing.height + top
    parts = [
        f'<svg class="graph" xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" '
        f'height="{height:.0f}" viewBox="0 0 {width:.0f} {height:.0f}" role="group" '
        f'aria-label="{esc(label)}">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path class="arrowhead" '
        'd="M0,0 L10,5 L0,10 z"/></marker></defs>',
        f'<g transform="translate(0 {top:.0f})">',
    ]
    if drawing.last_layer is not None:
        boxes = [b for b in drawing.boxes.values() if b.layer == drawing.last_layer]
        if boxes:
            x = boxes[0].x - 10
            y0 = min(b.y for b in boxes) - 20
            y1 = max(b.y + b.height for b in boxes) + 8
            wide = boxes[0].width + 20
            parts.append(
                f'<rect class="finally-box" x="{x:.1f}" y="{y0:.1f}" width="{wide:.1f}" '
                f'height="{y1 - y0:.1f}" rx="8"/><text class="finally-label" x="{x + 8:.1f}" '
                f'y="{y0 + 14:.1f}">{esc(last_label)}</text>'
            )
    for line in drawing.lines:
        kind = f" edge-{line.kind}" if line.kind else ""
        parts.append(
            f'<path class="edge{kind}" d="{_curve(line.points)}" marker-end="url(#arrow)">'
            f"<title>{esc(line.target)} after {esc(line.source)}"
            f"{' (reads its results)' if line.kind == 'results' else ''}</title></path>"
        )
    for name, box in drawing.boxes.items():
        node = nodes[name]
        middle = box.y + NODE_HEIGHT / 2
        parts.append(
            f'<a class="node {esc(node.css)}" href="{esc(node.href)}" data-node="{esc(name)}">'
            f"<title>{esc(node.tooltip)}</title>"
            f'<rect x="{box.x:.1f}" y="{box.y:.1f}" width="{box.width:.1f}" '
            f'height="{box.height:.1f}" rx="6"/>'
            f'<text class="node-name" x="{box.x + 10:.1f}" y="{middle - 5:.1f}">'
            f"{esc(_clip(node.title, _NAME_CHARS))}</text>"
            f'<text class="node-state" x="{box.x + 10:.1f}" y="{middle + 14:.1f}">'
            f"{esc(_clip(node.subtitle, _STATE_CHARS))}</text></a>"
        )
    parts.append("</g></svg>")
    return "".join(parts)


def _curve(points: Sequence[tuple[float, float]]) -> str:
    """Horizontal S-curves between layers, straight through the lanes inside them."""
    (x, y), *rest = points
    path = [f"M{x:.1f},{y:.1f}"]
    for index, (nx, ny) in enumerate(rest):
        if index % 2 == 1 and index < len(rest) - 1:  # across a layer, inside its lane
            path.append(f"L{nx:.1f},{ny:.1f}")
        else:
            bend = (nx - x) / 2
            path.append(f"C{x + bend:.1f},{y:.1f} {nx - bend:.1f},{ny:.1f} {nx:.1f},{ny:.1f}")
        x, y = nx, ny
    return " ".join(path)


def task_graph(run: Run) -> str:
    """One node per pipeline task, coloured and labelled with its state, ``finally`` apart."""
    main = [t.name for t in run.tasks if not t.is_finally]
    last = [t.name for t in run.tasks if t.is_finally]
    edges = [(e.source, e.target) for e in run.edges]
    left_out = implied(edges)
    drawing = layered(
        main,
        [(e.source, e.target, e.via) for e in run.edges if (e.source, e.target) not in left_out],
        last,
    )
    nodes = {}
    for task in run.tasks:
        took = _span(task.started, task.finished, run.now)
        subtitle = f"{ICONS.get(task.status.state, '?')} {task.status.reason}"
        if took:
            subtitle += f" \u00b7 {took}"
        tooltip = f"{task.name}: {task.status.reason}"
        if task.status.message:
            tooltip += f" ({task.status.message})"
        nodes[task.name] = Node(
            task.name, subtitle, f"state-{task.status.state}", f"#task-{task.name}", tooltip
        )
    count = len(run.tasks)
    return graph_svg(
        drawing, nodes, f"Task graph: {count} task{'s' if count != 1 else ''}", "finally"
    )


def _tick(seconds: float) -> float:
    """A round step of the time axis that gives it at most 6 intervals."""
    for step in (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400):
        if seconds / step <= 6:
            return float(step)
    return float(math.ceil(seconds / 6 / 3600) * 3600)


def _span(started: float | None, finished: float | None, now: float) -> str:
    if started is None:
        return ""
    return duration((finished if finished is not None else now) - started)


def timeline(run: Run) -> str:
    """A row per TaskRun (skipped tasks too), its bar over the run's span, its steps inside."""
    starts = [c.started for t in run.tasks for c in t.runs if c.started is not None]
    begin = run.summary.started or (min(starts) if starts else None)
    if begin is None:
        return '<p class="muted">Nothing has started yet.</p>'
    end = run.summary.finished or run.now
    ends = [c.finished for t in run.tasks for c in t.runs if c.finished is not None]
    end = max([end, *ends])
    tick = _tick(end - begin)
    span = max(math.ceil((end - begin) / tick), 1) * tick  # the axis ends on a tick

    def x(moment: float) -> float:
        return max(0.0, min(1000.0, (moment - begin) / span * 1000))

    rows = []
    for task in run.tasks:
        if not task.runs:
            rows.append(
                f'<div class="gantt-row" role="row"><a role="rowheader" class="gantt-label" '
                f'href="#task-{esc(task.name)}">{esc(task.name)}</a>'
                f'<span role="cell" class="gantt-bar gantt-none">{badge(task.status)}</span>'
                f'<span role="cell" class="gantt-time"></span></div>'
            )
            continue
        for child in task.runs:
            label = task.name if len(task.runs) == 1 else child.name.removeprefix(f"{run.name}-")
            bars = []
            if child.started is not None:
                stop = child.finished if child.finished is not None else run.now
                left = x(child.started)
                bars.append(
                    f'<rect class="run state-{child.status.state}" x="{left:.1f}" y="0" '
                    f'width="{max(x(stop) - left, 4):.1f}" height="14"/>'
                )
                for index, step in enumerate(child.steps):
                    if step.started is None or step.sidecar:
                        continue
                    step_end = step.finished if step.finished is not None else run.now
                    step_left = x(step.started)
                    bars.append(
                        f'<rect class="step step-{index % 2} state-{step.status.state}" '
                        f'x="{step_left:.1f}" y="4" width="{max(x(step_end) - step_left, 3):.1f}" '
                        f'height="6"><title>step {esc(step.name)}: {esc(step.status.reason)}'
                        f" {duration(step_end - step.started)}</title></rect>"
                    )
            took = _span(child.started, child.finished, run.now)
            rows.append(
                f'<div class="gantt-row" role="row"><a role="rowheader" class="gantt-label" '
                f'href="#task-{esc(task.name)}">{esc(label)}</a>'
                f'<span role="cell" class="gantt-bar"><svg viewBox="0 0 1000 14" '
                f'preserveAspectRatio="none" aria-hidden="true">{"".join(bars)}</svg>'
                f'<span class="visually-hidden">{esc(child.status.reason)}</span></span>'
                f'<span role="cell" class="gantt-time">{esc(took)}</span></div>'
            )
    count = round(span / tick)
    ticks = "".join(f"<span>{duration(tick * i) if i else '0 s'}</span>" for i in range(count + 1))
    return (
        '<div class="gantt" role="table" aria-label="Timeline of the TaskRuns and their steps">'
        '<div class="gantt-row gantt-axis" role="row"><span role="columnheader" '
        'class="gantt-label">TaskRun</span><span role="columnheader" class="gantt-bar '
        f'gantt-ticks">{ticks}</span><span role="columnheader" class="gantt-time">'
        "took</span></div>" + "".join(rows) + "</div>"
    )
