"""Rule set two: the Tekton catalog's conventions, as catlin checks them.

Layout and naming (``<kind>/<name>/<X.Y>/<name>.yaml``), the metadata Tekton Hub and
Artifact Hub read, images pinned by digest, and no ``$(params…)`` inside a script.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from tekton_mlops.catalog.rules import HUB_CATEGORIES
from tekton_mlops.catalog.source import Document, Reporter, is_resource

IMAGE = re.compile(
    r"^(?P<host>[^/]+\.[^/]+)/(?P<repo>[a-z0-9._/-]+):(?P<tag>[\w][\w.-]{0,127})"
    r"@sha256:[0-9a-f]{64}$"
)
PLATFORM = re.compile(r"^[a-z0-9]+/[a-z0-9]+$")
ANNOTATIONS = (
    "tekton.dev/pipelines.minVersion",
    "tekton.dev/categories",
    "tekton.dev/displayName",
    "tekton.dev/tags",
    "tekton.dev/platforms",
)
Key = tuple[str | int, ...]


def check(linter: Reporter, doc: Document) -> None:
    data = doc.data
    kind = data.get("kind", "")
    if kind in ("Task", "Pipeline", "TaskRun", "PipelineRun") and data.get("apiVersion") != (
        "tekton.dev/v1"
    ):
        linter.report(
            doc,
            ("apiVersion",),
            "api-version",
            f"{kind} must be tekton.dev/v1, not {data.get('apiVersion')}",
        )
    if kind in ("Task", "Pipeline") and is_resource(doc):
        _resource(linter, doc, kind)
    for at, step, group in task_steps(data):
        _step(linter, doc, at, step, group)


def task_steps(data: dict[str, Any]) -> Iterator[tuple[Key, dict[str, Any], str]]:
    """Every step and sidecar of a document, with its path: in a Task, in embedded specs."""
    spec = data.get("spec") or {}
    specs: list[tuple[Key, dict[str, Any]]] = []
    if data.get("kind") == "Task":
        specs.append((("spec",), spec))
    inline_task = spec.get("taskSpec")
    if isinstance(inline_task, dict):
        specs.append((("spec", "taskSpec"), inline_task))
    pipeline: dict[str, Any] | None = spec if data.get("kind") == "Pipeline" else None
    at: Key = ("spec",)
    if isinstance(spec.get("pipelineSpec"), dict):
        pipeline, at = spec["pipelineSpec"], ("spec", "pipelineSpec")
    if pipeline is not None:
        for group in ("tasks", "finally"):
            for index, task in enumerate(pipeline.get(group) or []):
                if isinstance(task.get("taskSpec"), dict):
                    specs.append(((*at, group, index, "taskSpec"), task["taskSpec"]))
    for where, task_spec in specs:
        template = task_spec.get("stepTemplate") or {}
        for group in ("steps", "sidecars"):
            for index, step in enumerate(task_spec.get(group) or []):
                image = step.get("image") or template.get("image")
                yield (*where, group, index), {**step, "image": image}, group[:-1]


def _step(linter: Reporter, doc: Document, at: Key, step: dict[str, Any], group: str) -> None:
    if "$(params." in str(step.get("script", "")):
        linter.report(
            doc,
            (*at, "script"),
            "script-params",
            f"{group} {step.get('name')!r} puts $(params…) in its script; pass values as args "
            "or env",
        )
    image = step.get("image")
    if "ref" in step or not image or "$(" in image:
        return  # a StepAction brings its own image; a missing one is Tekton's finding
    if not IMAGE.match(image):
        linter.report(
            doc, (*at, "image"), "image", f"{image!r} is not host/repo:tag@sha256:<digest>"
        )
    elif ":latest@" in image:
        linter.report(doc, (*at, "image"), "image", f"{image!r} uses the latest tag")


def _resource(linter: Reporter, doc: Document, kind: str) -> None:
    meta = doc.data.get("metadata") or {}
    name = meta.get("name", "")
    labels = meta.get("labels") or {}
    annotations = meta.get("annotations") or {}
    version = str(labels.get("app.kubernetes.io/version", ""))
    parts = doc.path.parts
    expected = (kind.lower(), name, version, f"{name}.yaml")
    if tuple(parts[-4:]) != expected:
        linter.report(
            doc,
            ("metadata", "name"),
            "path",
            f"expected path {'/'.join(expected)} for {kind} {name!r} "
            f"version {version!r}, found {'/'.join(parts[-4:])}",
        )
    for key in ANNOTATIONS:
        if not str(annotations.get(key, "")).strip():
            linter.report(
                doc, ("metadata", "annotations"), "metadata", f"annotation {key} is missing"
            )
    if not version:
        linter.report(
            doc, ("metadata", "labels"), "metadata", "label app.kubernetes.io/version is missing"
        )
    for category in _split(annotations.get("tekton.dev/categories", "")):
        if category not in HUB_CATEGORIES:
            linter.report(
                doc,
                ("metadata", "annotations", "tekton.dev/categories"),
                "category",
                f"{category!r} is not a Tekton Hub category",
            )
    for platform in _split(annotations.get("tekton.dev/platforms", "")):
        if not PLATFORM.match(platform):
            linter.report(
                doc,
                ("metadata", "annotations", "tekton.dev/platforms"),
                "platforms",
                f"{platform!r} is not os/arch",
            )
    minimum = str(annotations.get("tekton.dev/pipelines.minVersion", ""))
    if minimum and not re.match(r"^\d+\.\d+\.\d+$", minimum):
        linter.report(
            doc,
            ("metadata", "annotations", "tekton.dev/pipelines.minVersion"),
            "min-version",
            f"{minimum!r} is not X.Y.Z (tkn compares it as a string)",
        )
    description = str((doc.data.get("spec") or {}).get("description", ""))
    lines = description.split("\n")
    if len(lines) < 3 or not lines[0].strip() or lines[1].strip() or not lines[2].strip():
        linter.report(
            doc,
            ("spec", "description"),
            "description",
            "spec.description must be a summary line, a blank line, then the body",
        )
    _layout(linter, doc, name)


def _layout(linter: Reporter, doc: Document, name: str) -> None:
    version_dir = doc.path.parent
    missing = [p for p in ("README.md", "tests/run.yaml") if not (version_dir / p).is_file()]
    if not list((version_dir / "samples").glob("*.yaml")):
        missing.append("samples/*.yaml")
    if not (version_dir.parent / "CHANGELOG.md").is_file():
        missing.append(f"../CHANGELOG.md (for {name})")
    for item in missing:
        linter.report(doc, ("metadata", "name"), "layout", f"{item} is missing beside the YAML")


def _split(value: Any) -> list[str]:
    return [item.strip() for item in str(value or "").split(",") if item.strip()]
