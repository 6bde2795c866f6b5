"""A lineage graph as a text tree, as JSON, and as Graphviz DOT (SVG or PNG through ``dot``).

The tree starts at the model: the runs about the model in the order they ran (train,
evaluate, sign, push, deploy), each with its status, and under each run the data it
read, under each dataset the run that made it, back to where the data came from.

Example::

    print(text(graph))
    svg = picture(dot(graph), "svg")      # needs Graphviz's dot program
"""

from __future__ import annotations

import json
import shutil
import subprocess
from typing import Any

from tekton_mlops.errors import MlopsError
from tekton_mlops.lineage_store.attestations import Status
from tekton_mlops.lineage_store.graph import ArtifactRef, Graph, StepRun

_WIDTH = 90  # a parameter value longer than this is cut in the tree (JSON has it whole)
_COLOURS = {
    Status.VERIFIED: "#c8e6c9",
    Status.UNSIGNED: "#fff3c4",
    Status.UNCHECKED: "#eeeeee",
    Status.FAILED: "#ffcdd2",
}


def _value(value: Any) -> str:
    shown = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    return shown if len(shown) <= _WIDTH else shown[: _WIDTH - 1] + "…"


def _facts(run: StepRun) -> list[str]:
    if run.status is Status.FAILED:
        return [f"attestation {run.attestation}", f"reason: {run.reason}"]
    lines = [f"attestation {run.attestation}"]
    when = f"{run.started} .. {run.finished}" if run.started else ""
    lines += [f"ran {when}"] if when else []
    lines += [f"pipeline run {run.invocation}"] if run.invocation else []
    lines += [f"image {run.image}"] if run.image else []
    lines += [f"code {a.uri}@{a.digest.removeprefix('gitCommit:')}" for a in run.code]
    params = [f"{k}={_value(v)}" for k, v in sorted(run.params.items()) if v not in ("", None)]
    lines += [f"param {p}" for p in params]
    lines += [f"output {_artifact(a)}" for a in run.outputs]
    for extra in run.byproducts:
        notes = ", ".join(f"{k} {v}" for k, v in sorted((extra.get("annotations") or {}).items()))
        lines.append(
            f"{extra.get('name', '')} {extra.get('uri', '')}" + (f" ({notes})" if notes else "")
        )
    return lines


def _artifact(artifact: ArtifactRef) -> str:
    return "  ".join(part for part in (artifact.name, artifact.uri, artifact.digest) if part)


def _title(run: StepRun) -> str:
    label = run.step if run.step != "?" else "attestation"
    return f"{label}  [{run.status.value}]"


def text(graph: Graph) -> str:
    """The tree, one fact a line."""
    lines = [f"model {graph.subject}"]
    for revoked in graph.revocations:  # first, before anything a reader could act on
        reason = revoked.params.get("reason", "")
        lines.append(f"REVOKED {revoked.finished} by {revoked.params.get('actor', '?')}: {reason}")
    if graph.deployment:
        lines.append(f"deployment {graph.deployment}")
    top = graph.model_runs()
    shown = {r.id for r in top}

    def run_lines(run: StepRun, prefix: str, last: bool) -> None:
        lines.append(f"{prefix}{'└── ' if last else '├── '}{_title(run)}")
        inner = prefix + ("    " if last else "│   ")
        children = run.data_inputs if run.trusted else []
        for fact in _facts(run):
            lines.append(f"{inner}{'│ ' if children else '  '} {fact}")
        for i, artifact in enumerate(children):
            artifact_lines(artifact, run, inner, i == len(children) - 1)

    def artifact_lines(artifact: ArtifactRef, reader: StepRun, prefix: str, last: bool) -> None:
        lines.append(f"{prefix}{'└── ' if last else '├── '}{_artifact(artifact)}")
        inner = prefix + ("    " if last else "│   ")
        # A push to a store named by the root digest reads and writes the same digest.
        producers = [p for p in graph.producers(artifact.id) if p.id != reader.id]
        for i, producer in enumerate(producers):
            end = i == len(producers) - 1
            if producer.id in shown:
                lines.append(f"{inner}{'└── ' if end else '├── '}made by {producer.step} (above)")
                continue
            shown.add(producer.id)
            run_lines(producer, inner, end)

    for i, run in enumerate(top):
        run_lines(run, "", i == len(top) - 1)
    orphans = [r for r in graph.runs if r.id not in shown]
    for i, run in enumerate(orphans):  # records about data no run here read
        run_lines(run, "", i == len(orphans) - 1)
    return "\n".join(lines) + "\n"


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _short(digest: str) -> str:
    algorithm, _, value = digest.partition(":")
    return f"{algorithm}:{value[:12]}" if value else ""


def dot(graph: Graph) -> str:
    """Graphviz DOT: runs as boxes coloured by status, artifacts as ellipses, data flowing
    left to right into the model."""
    revoked = " (REVOKED)" if graph.revocations else ""
    lines = [
        "digraph lineage {",
        "  rankdir=LR;",
        '  node [fontname="Helvetica", fontsize=10];',
        f"  label={_quote('lineage of ' + graph.subject + revoked)};",
    ]
    for artifact in graph.artifacts().values():
        label = "\\n".join(p for p in (artifact.name, artifact.uri, _short(artifact.digest)) if p)
        lines.append(f"  {_quote(artifact.id)} [shape=ellipse, label={_quote(label)}];")
    for run in graph.runs:
        label = f"{run.step}\\n{run.status.value}"
        if run.status is Status.FAILED:
            label += f"\\n{run.attestation}"
        colour = _COLOURS[run.status]
        lines.append(
            f"  {_quote(run.id)} [shape=box, style=filled, fillcolor={_quote(colour)}, "
            f"label={_quote(label)}];"
        )
        lines += [f"  {_quote(a.id)} -> {_quote(run.id)};" for a in run.data_inputs]
        lines += [f"  {_quote(run.id)} -> {_quote(a.id)};" for a in run.outputs]
    lines.append("}")
    return "\n".join(lines) + "\n"


def picture(source: str, kind: str) -> bytes:
    """SVG or PNG of DOT ``source`` through Graphviz's ``dot`` program."""
    program = shutil.which("dot")
    if program is None:
        raise MlopsError(
            f"-o {kind} needs Graphviz's dot program, which is not installed here; "
            "use -o dot and render the file where Graphviz is"
        )
    done = subprocess.run(
        [program, f"-T{kind}"], input=source.encode(), capture_output=True, check=False
    )
    if done.returncode != 0:
        detail = done.stderr.decode(errors="replace").strip().splitlines()
        raise MlopsError(f"dot -T{kind} failed: {detail[0] if detail else done.returncode}")
    return done.stdout
