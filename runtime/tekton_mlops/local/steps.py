"""A Task's steps made ready to run: the step template merged, StepActions inlined, env read."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from tekton_mlops.local.cluster import Cluster, ResolutionError
from tekton_mlops.tekton.defaults import param_type, value_type
from tekton_mlops.tekton.resolution import resolve_params
from tekton_mlops.tekton.variables import Value, substitute

#: Fields a step that references a StepAction keeps from itself.
STEP_OWN_FIELDS = ("onError", "timeout", "workingDir", "securityContext", "computeResources")


def merge_template(step: dict[str, Any], template: dict[str, Any]) -> dict[str, Any]:
    """The step with ``stepTemplate`` under it: the step's fields win, env merges by name."""
    merged = {**template, **step}
    env = {e["name"]: e for e in template.get("env") or []}
    env.update({e["name"]: e for e in step.get("env") or []})
    if env:
        merged["env"] = list(env.values())
    return merged


def inline_step_action(
    step: dict[str, Any], cluster: Cluster, task_params: dict[str, Value] | None = None
) -> dict[str, Any]:
    """A step that references a StepAction, as the step the action describes.

    The step's params may read the TaskRun's (``$(params.list[*])`` stays an array); a
    value that does not come out as the type the action declares is dropped for the
    action's default, when it has one.
    """
    action = find_step_action(cluster, step["ref"])
    spec = action.get("spec") or {}
    given = {p["name"]: substitute(p["value"], task_params or {}) for p in step.get("params") or []}
    for param in spec.get("params") or []:
        name = param["name"]
        if name in given and "default" in param and value_type(given[name]) != param_type(param):
            del given[name]
    values, problems = resolve_params(spec, given)
    if problems:
        raise ResolutionError("TaskRunValidationFailed", "; ".join(problems))
    table: dict[str, Value] = {f"params.{k}": v for k, v in values.items()}
    # The action's results stay on the step: they are the step's results.
    body = substitute({k: v for k, v in spec.items() if k != "params"}, table)
    return {
        **body,
        "name": step.get("name", ""),
        **{k: v for k, v in step.items() if k in STEP_OWN_FIELDS},
    }


def find_step_action(cluster: Cluster, ref: dict[str, Any]) -> dict[str, Any]:
    """The StepAction a step's ``ref`` names: applied beside the run, or through a resolver."""
    if ref.get("resolver"):
        try:
            return cluster.resolve("StepAction", ref)
        except ResolutionError as exc:
            raise ResolutionError("TaskRunResolutionFailed", str(exc)) from None
    action = cluster.get("StepAction", str(ref.get("name", "")))
    if action is None:
        raise ResolutionError(
            "TaskRunResolutionFailed", f'stepactions.tekton.dev "{ref.get("name")}" not found'
        )
    return action


def step_env(
    step: dict[str, Any], cluster: Cluster, pod_fields: Mapping[str, Any] | None = None
) -> dict[str, str]:
    """The step's ``env``: values, keys of Secrets and ConfigMaps (optional ones may miss),
    and the pod's own fields through the downward API (``fieldRef``)."""
    env: dict[str, str] = {}
    for entry in step.get("env") or []:
        if "value" in entry:
            env[entry["name"]] = str(entry["value"])
            continue
        source = entry.get("valueFrom") or {}
        if "fieldRef" in source:
            env[entry["name"]] = field_value(pod_fields or {}, source["fieldRef"]["fieldPath"])
            continue
        if "secretKeyRef" in source:
            ref, lookup = source["secretKeyRef"], cluster.secret
        elif "configMapKeyRef" in source:
            ref, lookup = source["configMapKeyRef"], cluster.config_map
        else:
            continue
        try:
            data = lookup(ref["name"])
        except ResolutionError:
            if ref.get("optional"):
                continue
            raise
        if ref["key"] not in data:
            if ref.get("optional"):
                continue
            raise ResolutionError(
                "CreateContainerConfigError", f"couldn't find key {ref['key']} in {ref['name']}"
            )
        env[entry["name"]] = data[ref["key"]].decode()
    return env


_KEYED_FIELD = re.compile(r"^(metadata\.(?:labels|annotations))\['([^']+)'\]$")


def field_value(pod_fields: Mapping[str, Any], path: str) -> str:
    """A downward API ``fieldPath`` of the pod; a label or annotation it lacks is empty, as
    the kubelet gives it. A path the kubelet does not know fails the pod as it does there."""
    keyed = _KEYED_FIELD.match(path)
    if keyed:
        return str(pod_fields.get(keyed.group(1), {}).get(keyed.group(2), ""))
    if path in pod_fields and not isinstance(pod_fields[path], dict):
        return str(pod_fields[path])
    raise ResolutionError(
        "CreateContainerConfigError", f"unsupported fieldPath {path!r} in a step's env"
    )
