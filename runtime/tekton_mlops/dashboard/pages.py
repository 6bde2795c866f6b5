"""The dashboard's HTML pages, rendered on the server from the views of ``runs.py``.

Pages work without JavaScript (every step's log is a link, every graph node an anchor);
``static/dashboard.js`` adds what a person expects of a live page: it polls the part of
the page marked ``data-live`` (with the ETag it was served with, so an unchanged run
costs a 304) while the run goes, opens a task from the graph, and shows a step's log in
place. Pages use no inline script or style, so the Content-Security-Policy can forbid both.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

from tekton_mlops.dashboard.layout import layered
from tekton_mlops.dashboard.lineage import Record, graph
from tekton_mlops.dashboard.runs import (
    Artifact,
    ChildRun,
    LogTail,
    Run,
    RunSummary,
    Step,
    Task,
)
from tekton_mlops.dashboard.svg import Node, badge, duration, esc, graph_svg, task_graph, timeline
from tekton_mlops.tekton.durations import timestamp

#: Logs are shown from their end: a step can write gigabytes, a page should not.
LOG_TAIL_BYTES = 200 * 1024


def clock(moment: float | None) -> str:
    if moment is None:
        return '<span class="muted">\u2013</span>'
    shown = datetime.fromtimestamp(moment, UTC)
    return f'<time datetime="{timestamp(moment)}">{shown:%Y-%m-%d %H:%M:%S} UTC</time>'


def took(started: float | None, finished: float | None, now: float) -> str:
    if started is None:
        return ""
    if finished is None:
        return f"{duration(now - started)} so far"
    return duration(finished - started)


def run_url(name: str) -> str:
    return f"/runs/{quote(name)}"


def log_url(run: str, child: str, step: Step, api: bool = False) -> str:
    kind = "sidecars" if step.sidecar else "logs"
    return f"{'/api' if api else ''}/runs/{quote(run)}/{kind}/{quote(child)}/{quote(step.name)}"


def file_url(run: str, path: str) -> str:
    return f"/files/{quote(run)}/{quote(path)}"


def document(title: str, body: str, crumbs: Sequence[tuple[str, str]] = ()) -> str:
    trail = "".join(
        f'<li><a href="{esc(href)}">{esc(text)}</a></li>' if href else f"<li>{esc(text)}</li>"
        for text, href in crumbs
    )
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)} \u2013 tekton-mlops dashboard</title>"
        '<link rel="stylesheet" href="/static/dashboard.css">'
        '<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">'
        '<script src="/static/dashboard.js" defer></script></head><body>'
        '<header class="top"><a class="brand" href="/">tekton-mlops runs</a>'
        f'<nav aria-label="Breadcrumb"><ol class="crumbs">{trail}</ol></nav></header>'
        f'<main id="main">{body}</main></body></html>\n'
    )


def live(url: str, etag: str, finished: bool, inner: str) -> str:
    """The part of a page the script refreshes while ``finished`` is false."""
    return (
        f'<div id="live" data-live="{esc(url)}" data-etag="{esc(etag)}" '
        f'data-finished="{"true" if finished else "false"}">{inner}</div>'
        '<p class="visually-hidden" role="status" id="live-status"></p>'
    )


# --- the run list ----------------------------------------------------------------------------


def runs_fragment(summaries: Sequence[RunSummary], root: Path, now: float) -> str:
    if not summaries:
        return (
            f'<p class="empty">No runs in <code>{esc(root)}</code> yet. A run started with '
            f"<code>tekton-mlops run FILE --run-dir {esc(root)}</code> shows here as it "
            "starts.</p>"
        )
    rows = []
    for summary in summaries:
        rows.append(
            f'<tr class="state-{summary.status.state}">'
            f'<td data-label="Status">{badge(summary.status)}</td>'
            f'<td data-label="Run"><a class="run-link" href="{esc(run_url(summary.name))}">'
            f"{esc(summary.name)}</a></td>"
            f'<td data-label="{_of(summary)}">{esc(summary.pipeline or "?")}</td>'
            f'<td data-label="Started">{clock(summary.started)}</td>'
            f'<td data-label="Duration">'
            f"{esc(took(summary.started, summary.finished, now))}</td></tr>"
        )
    return (
        '<table class="runs"><caption class="visually-hidden">Runs, newest first</caption>'
        "<thead><tr><th scope=col>Status</th><th scope=col>Run</th><th scope=col>Pipeline "
        "or Task</th>"
        "<th scope=col>Started</th><th scope=col>Duration</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def _of(summary: RunSummary) -> str:
    return "Task" if summary.kind == "TaskRun" else "Pipeline"


def runs_page(summaries: Sequence[RunSummary], root: Path, etag: str, now: float) -> str:
    body = (
        f'<h1>Runs</h1><p class="muted where">in <code>{esc(root)}</code></p>'
        # The list never stops updating: a new run may start at any time.
        + live("/?part=live", etag, False, runs_fragment(summaries, root, now))
    )
    return document("Runs", body, [("Runs", "")])


# --- one run ---------------------------------------------------------------------------------


def _table(pairs: Sequence[tuple[str, str]], caption: str, css: str) -> str:
    if not pairs:
        return ""
    rows = "".join(
        f'<tr><th scope="row">{esc(k)}</th><td><code>{esc(v)}</code></td></tr>' for k, v in pairs
    )
    return f'<table class="pairs {css}"><caption>{esc(caption)}</caption>{rows}</table>'


def _step(run: Run, child: ChildRun, step: Step, logs: Mapping[str, LogTail]) -> str:
    facts = []
    if step.exit_code is not None and step.status.state != "skipped":
        facts.append(f"exit {step.exit_code}")
    if step.started is not None:
        facts.append(took(step.started, step.finished, run.now))
    panel_id = f"log-{child.name}-{'sidecar-' if step.sidecar else ''}{step.name}"
    shown = logs.get(step.log)
    panel = (
        f'<div class="log-panel" id="{esc(panel_id)}"{"" if shown else " hidden"}>'
        + (_log_body(shown, run.name, step) if shown else "")
        + "</div>"
    )
    what = "sidecar " if step.sidecar else ""
    said = " \u00b7 ".join(f for f in facts if f)
    return (
        f'<li class="step state-{step.status.state}">'
        f'<a class="step-link" href="{esc(log_url(run.name, child.name, step))}" '
        f'data-log="{esc(log_url(run.name, child.name, step, api=True))}" '
        f'aria-controls="{esc(panel_id)}" aria-expanded="{"true" if shown else "false"}">'
        f"{what}{esc(step.name)}</a> {badge(step.status)}"
        f'<span class="muted"> {esc(said)}</span>{panel}</li>'
    )


def _log_body(tail: LogTail, run: str, step: Step) -> str:
    note = ""
    if tail.truncated:
        note = (
            f'<p class="note">The last {len(tail.text.encode()) // 1024} KB of '
            f'{tail.size // 1024} KB: <a href="{esc(file_url(run, step.log))}">the whole log</a>'
            "</p>"
        )
    text = tail.text if tail.text else "(empty)"
    return f'{note}<pre class="log" tabindex="0">{esc(text)}</pre>'


def _child(run: Run, task: Task, child: ChildRun, logs: Mapping[str, LogTail]) -> str:
    head = f'<h3 class="child">{esc(child.kind)} <code>{esc(child.name)}</code>'
    if len(task.runs) > 1 or child.status != task.status:
        head += f" {badge(child.status)}"
    if child.retries:
        tries = "retries" if child.retries > 1 else "retry"
        head += f' <span class="muted">after {child.retries} {tries}</span>'
    head += "</h3>"
    message = (
        f'<p class="message">{esc(child.status.message)}</p>'
        if child.status.message and len(task.runs) > 1
        else ""
    )
    steps = "".join(_step(run, child, step, logs) for step in child.steps)
    listed = f'<ol class="steps">{steps}</ol>' if steps else ""
    return (
        f'<div class="child-run">{head}{message}{listed}'
        f"{_table(child.params, 'Params', 'params')}"
        f"{_table(child.results, 'Results', 'results')}</div>"
    )


def _task(run: Run, task: Task, logs: Mapping[str, LogTail]) -> str:
    opened = task.status.state in ("failed", "running")
    facts = took(task.started, task.finished, run.now)
    details = []
    if task.status.message:
        details.append(f'<p class="message">{esc(task.status.message)}</p>')
    if task.when:
        gates = "".join(f"<li><code>{esc(w)}</code></li>" for w in task.when)
        details.append(f'<div class="when">when <ul>{gates}</ul></div>')
    details += [_child(run, task, child, logs) for child in task.runs]
    finally_mark = ' <span class="tag">finally</span>' if task.is_finally else ""
    return (
        f'<details class="task state-{task.status.state}" id="task-{esc(task.name)}"'
        f'{" open" if opened else ""}><summary><span class="task-name">{esc(task.name)}</span>'
        f"{finally_mark} {badge(task.status)}"
        f'<span class="muted"> {esc(facts)}</span></summary>{"".join(details)}</details>'
    )


def _artifacts(run: Run, artifacts: Sequence[Artifact]) -> str:
    if not artifacts:
        return ""
    items = []
    for artifact in artifacts:
        shown = artifact.path.removeprefix("workspaces/")
        href = (
            f"{run_url(run.name)}/lineage/{quote(artifact.path)}"
            if artifact.kind == "lineage"
            else file_url(run.name, artifact.path)
        )
        items.append(
            f'<li><a class="artifact" data-kind="{esc(artifact.kind)}" href="{esc(href)}">'
            f"{esc(artifact.kind)}</a> <code>{esc(shown)}</code></li>"
        )
    return f'<section><h2>Artifacts</h2><ul class="artifacts">{"".join(items)}</ul></section>'


def run_fragment(run: Run, logs: Mapping[str, LogTail], artifacts: Sequence[Artifact]) -> str:
    summary = run.summary
    count = len(run.tasks)
    facts = [
        ("Status", badge(summary.status)),
        ("Kind", esc(summary.kind)),
        (_of(summary), esc(summary.pipeline or "?")),
        ("Started", clock(summary.started)),
        ("Duration", esc(took(summary.started, summary.finished, run.now))),
    ]
    listed = "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in facts)
    message = (
        f'<p class="message run-message">{esc(summary.status.message)}</p>'
        if summary.status.message
        else ""
    )
    return (
        f'<dl class="facts">{listed}</dl>{message}'
        f'<section><h2>Graph</h2><div class="scroll graph-box">{task_graph(run)}</div>'
        '<p class="legend muted">One box per pipeline task. A solid arrow is <code>runAfter'
        "</code>, a dashed one reads results of the task it comes from (an arrow a longer "
        "path implies is left out); <code>finally</code> tasks run after all the others. "
        "Select a task for its steps.</p></section>"
        f"<section><h2>Timeline</h2>{timeline(run)}</section>"
        f"<section><h2>Task{'s' if count != 1 else ''} ({count})</h2>"
        + "".join(_task(run, task, logs) for task in run.tasks)
        + "</section>"
        + _artifacts(run, artifacts)
        + (
            f"<section><h2>Params and results</h2>{_table(run.params, 'Params', 'params')}"
            f"{_table(run.results, 'Results', 'results')}</section>"
            if run.params or run.results
            else ""
        )
    )


def run_page(
    run: Run, etag: str, logs: Mapping[str, LogTail], artifacts: Sequence[Artifact]
) -> str:
    name = run.name
    fragment = run_fragment(run, logs, artifacts)
    body = f"<h1>{esc(name)}</h1>" + live(
        f"{run_url(name)}?part=live", etag, run.summary.status.finished, fragment
    )
    return document(name, body, [("Runs", "/"), (name, "")])


# --- a log, a lineage folder, an error ------------------------------------------------------------


def log_page(run: Run, child: ChildRun, step: Step, tail: LogTail) -> str:
    what = "sidecar" if step.sidecar else "step"
    body = (
        f"<h1>{what} {esc(step.name)}</h1>"
        f"<p>{esc(child.kind)} <code>{esc(child.name)}</code> {badge(step.status)}</p>"
        + _log_body(tail, run.name, step)
    )
    return document(
        f"{step.name} of {child.name}",
        body,
        [("Runs", "/"), (run.name, run_url(run.name)), (f"{what} {step.name}", "")],
    )


def lineage_page(run: Run, folder: str, records: Sequence[Record]) -> str:
    nodes, edges, labels = graph(list(records))
    steps = {r.key for r in records}
    drawing = layered(nodes, edges)
    looks = {
        key: Node(
            title=labels[key],
            subtitle="step" if key in steps else _short(key.removeprefix("artifact:")),
            css="lineage-step" if key in steps else "lineage-artifact",
            href=f"#{_anchor(key)}" if key in steps else "#records",
            tooltip=f"{labels[key]} ({key.split(':', 1)[1]})",
        )
        for key in nodes
    }
    rows = []
    for record in records:
        ins = "".join(f"<li>{_reference(i)}</li>" for i in record.inputs)
        outs = "".join(f"<li>{_reference(o)}</li>" for o in record.outputs)
        rows.append(
            f'<tr id="{esc(_anchor(record.key))}"><th scope="row">{esc(record.step)}'
            f'<br><span class="muted">{esc(record.invocation)}</span></th>'
            f"<td>{clock(record.started)}</td><td><ul>{ins}</ul></td><td><ul>{outs}</ul></td></tr>"
        )
    shown = folder.removeprefix("workspaces/")
    body = (
        f"<h1>Lineage of <code>{esc(shown)}</code></h1>"
        '<p class="muted">What each step read and made, joined by digest, as the records in '
        "this folder say (unverified here: <code>tekton-mlops lineage show</code> checks "
        "their signatures).</p>"
        f'<div class="scroll graph-box">{graph_svg(drawing, looks, "Lineage graph")}</div>'
        '<table class="records" id="records"><caption>Records</caption><thead><tr>'
        "<th scope=col>Step</th><th scope=col>Started</th><th scope=col>Read</th>"
        f"<th scope=col>Made</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )
    return document(
        f"lineage of {shown}",
        body,
        [("Runs", "/"), (run.name, run_url(run.name)), (f"lineage of {shown}", "")],
    )


def _short(digest: str) -> str:
    algorithm, _, value = digest.partition(":")
    return f"{algorithm}:{value[:12]}" if value else digest


def _anchor(key: str) -> str:
    return "record-" + "".join(c if c.isalnum() else "-" for c in key)


def _reference(reference: object) -> str:
    name = getattr(reference, "name", "")
    uri = getattr(reference, "uri", "")
    digest = getattr(reference, "digest", "")
    parts = [f"<strong>{esc(name)}</strong>"] if name else []
    if uri:
        parts.append(f"<code>{esc(uri)}</code>")
    if digest:
        parts.append(f'<code class="digest">{esc(_short(digest))}</code>')
    return " ".join(parts)


def error_page(status: int, message: str) -> str:
    return document(
        f"{status}",
        f'<h1>{status}</h1><p>{esc(message)}</p><p><a href="/">All runs</a></p>',
        [("Runs", "/")],
    )
