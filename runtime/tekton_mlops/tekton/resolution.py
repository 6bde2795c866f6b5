"""What Tekton's reconciler checks once a run's references are resolved.

Admission sees a run before its Task or Pipeline is fetched; missing params and
params of the wrong type are only found when the controller has both, and fail the
run (``ParameterMissing``, ``ParameterTypeMismatch``, ``TaskRunValidationFailed``)
rather than being refused at apply time.

Example::

    values, problems = resolve_params(task_spec, {"url": "https://…"})
"""

from __future__ import annotations

from typing import Any

from tekton_mlops.tekton.defaults import value_type
from tekton_mlops.tekton.resources import ParamSpec
from tekton_mlops.tekton.variables import Value


def _declared(spec: dict[str, Any]) -> list[ParamSpec]:
    return [ParamSpec(p) for p in spec.get("params") or []]


def resolve_params(
    spec: dict[str, Any], given: dict[str, Value]
) -> tuple[dict[str, Value], list[str]]:
    """Declared params with defaults and given values; problems in Tekton's words.

    Params that are given but not declared stay in the values: Tekton propagates them
    into embedded specs (and ignores them otherwise).
    """
    values: dict[str, Value] = dict(given)
    problems: list[str] = []
    missing = []
    mismatched = []
    missing_keys: dict[str, list[str]] = {}
    for param in _declared(spec):
        name = param.name
        if name in given:
            if value_type(given[name]) != param.type:
                mismatched.append(name)
            elif param.type == "object":
                merged = {**(param.default or {}), **given[name]}  # type: ignore[dict-item]
                values[name] = merged
                absent = [k for k in param.properties if k not in merged]
                if absent:
                    missing_keys[name] = absent
        elif param.has_default:
            values[name] = param.default
        else:
            missing.append(name)
    if missing:
        problems.append(
            f"missing values for these params which have no default values: [{' '.join(missing)}]"
        )
    if mismatched:
        problems.append(
            f"param types don't match the user-specified type: [{' '.join(mismatched)}]"
        )
    if missing_keys:
        shown = " ".join(f"{k}:[{' '.join(v)}]" for k, v in missing_keys.items())
        problems.append(
            "missing keys for these params which are required in ParamSpec's properties "
            f"map[{shown}]"
        )
    return values, problems


def missing_params(spec: dict[str, Any], given: dict[str, Value]) -> list[str]:
    """Declared params without a value or a default (a PipelineRun's ``ParameterMissing``)."""
    return [p.name for p in _declared(spec) if p.name not in given and not p.has_default]


def mismatched_params(spec: dict[str, Any], given: dict[str, Value]) -> list[str]:
    """Declared params given a value of another type (``ParameterTypeMismatch``)."""
    return [
        p.name for p in _declared(spec) if p.name in given and value_type(given[p.name]) != p.type
    ]
