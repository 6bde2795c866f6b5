"""What Tekton refuses when a document is applied: strict decoding, then its webhook.

``admit(document)`` returns the problems, each with the rule it breaks, where it is,
and Tekton's message; :func:`rejection` words them the way ``kubectl apply`` prints
them. Feature flags change what is admitted (``enable-api-fields``, step actions,
param enums); pass the flags in force.

Example::

    problems = admit(yaml.safe_load(open("pipeline.yaml")))
    if problems:
        print(rejection(problems))
"""

from __future__ import annotations

from typing import Any

from tekton_mlops.tekton.flags import FeatureFlags
from tekton_mlops.tekton.pipeline_rules import RESULT_REF, check_pipeline_spec, propagated_scope
from tekton_mlops.tekton.problems import DNS_LABEL, Problem, denial
from tekton_mlops.tekton.schema import decode_errors
from tekton_mlops.tekton.task_rules import check_step_action, check_task_spec, params_by_name
from tekton_mlops.tekton.variables import references

TEKTON_KINDS = ("Task", "Pipeline", "TaskRun", "PipelineRun", "StepAction", "CustomRun")
API_VERSIONS = ("tekton.dev/v1", "tekton.dev/v1beta1")


def admit(document: dict[str, Any], flags: FeatureFlags | None = None) -> list[Problem]:
    """Everything the API server and Tekton's webhook refuse in this document."""
    flags = flags or FeatureFlags()
    kind = document.get("kind")
    if kind not in TEKTON_KINDS or document.get("apiVersion") not in API_VERSIONS:
        return []
    decoding = decode_errors(document)
    if decoding:
        # The API server stops at decoding: the webhook never sees the document.
        return [Problem("decode", (), message) for message in decoding]
    problems = _metadata(document)
    spec = document.get("spec") or {}
    if kind == "Task":
        problems += check_task_spec(spec, ("spec",), flags)
    elif kind == "Pipeline":
        problems += check_pipeline_spec(spec, ("spec",), flags)
    elif kind == "TaskRun":
        problems += _run(spec, "taskRef", "taskSpec", flags)
    elif kind == "PipelineRun":
        problems += _run(spec, "pipelineRef", "pipelineSpec", flags)
    elif kind == "StepAction":
        problems += check_step_action(document, flags)
    return problems


def rejection(problems: list[Problem]) -> str:
    """How ``kubectl apply`` reports these problems (decoding errors come from the API server)."""
    decoding = [p.message for p in problems if p.rule == "decode"]
    if decoding:
        return "; ".join(decoding)
    return denial(problems)


def _metadata(document: dict[str, Any]) -> list[Problem]:
    metadata = document.get("metadata") or {}
    name = metadata.get("name")
    if not name and not metadata.get("generateName"):
        return [Problem("name", ("metadata", "name"), "missing field(s)")]
    if name and not DNS_LABEL.match(str(name)) and len(str(name)) > 63:
        message = "Invalid resource name: length must be no more than 63 characters"
        return [Problem("name", ("metadata", "name"), message)]
    return []


def _run(spec: dict[str, Any], ref: str, inline: str, flags: FeatureFlags) -> list[Problem]:
    problems: list[Problem] = []
    if (ref in spec) == (inline in spec):
        problems.append(
            Problem(
                "reference",
                ("spec",),
                f"expected exactly one, got {'both' if ref in spec else 'neither'}",
                shown=f"spec.{ref}, spec.{inline}",
            )
        )
    params = spec.get("params") or []
    seen: set[str] = set()
    for index, param in enumerate(params):
        name = str(param.get("name", ""))
        if name.lower() in seen:
            problems.append(
                Problem(
                    "unique",
                    ("spec", "params", index, "name"),
                    "expected exactly one, got both",
                    shown=f"spec.params[{name}].name",
                )
            )
        seen.add(name.lower())
        results = [e for e in references(param.get("value")) if RESULT_REF.match(e)]
        if results:
            problems.append(
                Problem(
                    "reference",
                    ("spec", "params", index, "value"),
                    f"invalid value: cannot use result expressions in [{' '.join(results)}] as "
                    "PipelineRun parameter values",
                    shown=f"spec.params[{name}].value",
                )
            )
    bound: dict[str, int] = {}
    for index, binding in enumerate(spec.get("workspaces") or []):
        name = str(binding.get("name", ""))
        if name in bound:
            problems.append(
                Problem(
                    "unique",
                    ("spec", "workspaces", index, "name"),
                    f'workspace "{name}" provided by pipelinerun more than once, at index '
                    f"{bound[name]} and {index}",
                )
            )
        bound.setdefault(name, index)
    embedded = spec.get(inline)
    if isinstance(embedded, dict):
        if inline == "taskSpec":
            # A TaskRun's params propagate into its embedded spec.
            given = {str(p.get("name")): _param_spec(p.get("value")) for p in params}
            problems += check_task_spec(embedded, ("spec", inline), flags, given)
        else:
            scope = propagated_scope(params, embedded)
            run_workspaces = {str(b.get("name")) for b in spec.get("workspaces") or []}
            problems += check_pipeline_spec(
                embedded, ("spec", inline), flags, scope, run_workspaces
            )
    problems += _timeouts(spec)
    return problems


def _param_spec(value: Any) -> dict[str, Any]:
    if isinstance(value, list):
        return {"type": "array"}
    if isinstance(value, dict):
        return {"type": "object", "properties": {key: {"type": "string"} for key in value}}
    return {"type": "string"}


def _timeouts(spec: dict[str, Any]) -> list[Problem]:
    from tekton_mlops.tekton.durations import parse_duration

    timeouts = spec.get("timeouts") or {}
    problems: list[Problem] = []
    values = {}
    for key in ("pipeline", "tasks", "finally"):
        if key in timeouts:
            try:
                values[key] = parse_duration(str(timeouts[key]))
            except ValueError:
                continue  # strict decoding already named the bad syntax
            if values[key] < 0:
                problems.append(
                    Problem(
                        "timeout",
                        ("spec", "timeouts", key),
                        f"invalid value: {timeouts[key]} should be >= 0",
                    )
                )
    pipeline = values.get("pipeline")
    for key in ("tasks", "finally"):
        if pipeline and key in values and values[key] > pipeline:
            problems.append(
                Problem(
                    "timeout",
                    ("spec", "timeouts", key),
                    f"invalid value: {timeouts[key]} should be <= pipeline duration",
                )
            )
    if (
        pipeline
        and "tasks" in values
        and "finally" in values
        and (values["tasks"] + values["finally"] > pipeline)
    ):
        problems.append(
            Problem(
                "timeout",
                ("spec", "timeouts", "finally"),
                f"invalid value: {timeouts['tasks']} + {timeouts['finally']} should be <= "
                f"pipeline duration",
            )
        )
    return problems


__all__ = ["admit", "params_by_name", "rejection"]
