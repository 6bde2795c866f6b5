"""Custom tasks: which pipeline tasks Tekton hands to another controller, and what it checks.

A pipeline task whose ``taskRef`` or ``taskSpec`` names an ``apiVersion``, or a ``kind``
other than Task (or ClusterTask), is a custom task: Tekton creates a ``tekton.dev/v1beta1``
CustomRun for it instead of a TaskRun, and the controller of that kind reports its status.
Admission checks only that both the apiVersion and the kind are given (Tekton's
``PipelineTask.validateCustomTask``), and that an embedded Task with steps names neither.

Example::

    custom_reference({"name": "gate", "taskRef": {"apiVersion": "a/v1", "kind": "Gate"}})
    # -> ("a/v1", "Gate")
"""

from __future__ import annotations

from typing import Any

from tekton_mlops.tekton.problems import Path, Problem

#: Kinds a pipeline task may name without being custom (an empty kind means Task).
TASK_KINDS = ("", "Task", "ClusterTask")
#: What the API server calls the object Tekton creates for a custom task.
CUSTOM_RUN_API_VERSION = "tekton.dev/v1beta1"


def custom_reference(task: dict[str, Any]) -> tuple[str, str] | None:
    """``(apiVersion, kind)`` of a custom pipeline task; None for a Task."""
    for field in ("taskRef", "taskSpec"):
        ref = task.get(field)
        if not isinstance(ref, dict):
            continue
        api_version, kind = str(ref.get("apiVersion") or ""), str(ref.get("kind") or "")
        if api_version or kind not in TASK_KINDS:
            return api_version, kind
    return None


def check_custom_task(task: dict[str, Any], where: Path) -> list[Problem]:
    """What the webhook refuses in a custom pipeline task (found at ``where``)."""
    problems = []
    for field, what in (("taskRef", "ref"), ("taskSpec", "spec")):
        ref = task.get(field)
        if not isinstance(ref, dict):
            continue
        for key in ("kind", "apiVersion"):
            if not ref.get(key):
                problems.append(
                    Problem(
                        "custom-task",
                        (*where, field, key),
                        f"invalid value: custom task {what} must specify {key}",
                    )
                )
    return problems


def check_embedded_or_type(task: dict[str, Any], where: Path) -> list[Problem]:
    """An embedded Task with steps is a Task: it may name no apiVersion or kind."""
    inline = task.get("taskSpec")
    if not isinstance(inline, dict) or not inline.get("steps"):
        return []
    return [
        Problem(
            "custom-task",
            (*where, "taskSpec", key),
            f"taskSpec.{key} cannot be specified when using taskSpec.steps",
        )
        for key in ("apiVersion", "kind")
        if inline.get(key)
    ]


def custom_run_spec(
    task: dict[str, Any], params: dict[str, Any], timeout: str | None
) -> dict[str, Any]:
    """The spec of the CustomRun Tekton creates for a custom pipeline task: the reference
    (``customRef``) or the embedded spec (``customSpec``), params, retries and the pipeline
    task's own timeout (none when it sets none: the controller picks its default)."""
    spec: dict[str, Any] = {"params": [{"name": k, "value": v} for k, v in params.items()]}
    if isinstance(task.get("taskRef"), dict):
        spec["customRef"] = dict(task["taskRef"])
    else:
        inline = task.get("taskSpec") or {}
        spec["customSpec"] = {
            "apiVersion": inline.get("apiVersion", ""),
            "kind": inline.get("kind", ""),
            **({"metadata": inline["metadata"]} if inline.get("metadata") else {}),
            "spec": inline.get("spec") or {},
        }
    if task.get("retries"):
        spec["retries"] = int(task["retries"])
    if timeout:
        spec["timeout"] = timeout
    return spec
