"""The lineage records of an artifact folder (``.mlops/lineage/``) as a graph.

Each step's record (an in-toto statement, see ``tekton_mlops.lineage``) names what it
read (resolved dependencies) and what it made (subjects), each by sha256 digest. The
graph joins them by digest: a dataset fetch-data made is the dataset train-model read,
the model train-model made is the model evaluate-model scored. Records are shown as
they are, unverified: ``tekton-mlops lineage show`` checks their signatures.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tekton_mlops.lineage import RECORD_SUFFIX, UPSTREAM_DIR, descriptor_digest
from tekton_mlops.tekton.durations import parse_time


@dataclass(frozen=True)
class Reference:
    """An artifact a record names; ``key`` joins the records (its digest, else its URI)."""

    name: str
    uri: str
    digest: str

    @property
    def key(self) -> str:
        return f"artifact:{self.digest or self.uri or self.name}"


@dataclass(frozen=True)
class Record:
    step: str
    file: str  # relative to the lineage folder
    invocation: str
    started: float | None
    finished: float | None
    inputs: tuple[Reference, ...]
    outputs: tuple[Reference, ...]

    @property
    def key(self) -> str:
        return f"step:{self.file}"


def _reference(entry: dict[str, Any]) -> Reference:
    return Reference(
        name=str(entry.get("name") or ""),
        uri=str(entry.get("uri") or ""),
        digest=descriptor_digest(entry),
    )


def read_records(folder: Path) -> list[Record]:
    """The records in ``folder`` and in its ``upstream/`` (what the data carried)."""
    records = []
    found = [*folder.glob(f"*{RECORD_SUFFIX}"), *folder.glob(f"{UPSTREAM_DIR}/*{RECORD_SUFFIX}")]
    for path in sorted(found):
        if path.is_symlink():
            continue
        try:
            statement = json.loads(path.read_text())
            predicate = statement["predicate"]
            build = predicate.get("buildDefinition") or {}
            details = (predicate.get("runDetails") or {}).get("metadata") or {}
            step = (build.get("externalParameters") or {}).get("step") or path.name.split(".")[0]
            records.append(
                Record(
                    step=str(step),
                    file=path.relative_to(folder).as_posix(),
                    invocation=str(details.get("invocationId") or ""),
                    started=parse_time(details.get("startedOn")),
                    finished=parse_time(details.get("finishedOn")),
                    inputs=tuple(_reference(d) for d in build.get("resolvedDependencies") or []),
                    outputs=tuple(_reference(s) for s in statement.get("subject") or []),
                )
            )
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            continue  # not a record of ours: the page lists what it could read
    return records


def graph(records: list[Record]) -> tuple[list[str], list[tuple[str, str]], dict[str, str]]:
    """Nodes (steps and artifacts, in the order met), edges input -> step -> output, and
    each node's label."""
    nodes: list[str] = []
    labels: dict[str, str] = {}
    edges: list[tuple[str, str]] = []

    def add(key: str, label: str) -> None:
        if key not in labels:
            nodes.append(key)
            labels[key] = label

    for record in sorted(records, key=lambda r: (r.started or 0, r.file)):
        add(record.key, record.step)
        for item in record.inputs:
            add(item.key, item.name or item.uri)
            edges.append((item.key, record.key))
        read = {item.key for item in record.inputs}
        for item in record.outputs:
            add(item.key, item.name or item.uri)
            if item.key not in read:  # a check (verify-artifact) makes nothing new
                edges.append((record.key, item.key))
    return nodes, list(dict.fromkeys(edges)), labels
