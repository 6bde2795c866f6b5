"""KFP's command-line placeholders, filled the way KFP's launcher fills them.

A container component's ``command`` and ``args`` hold:

- structured placeholders, JSON strings ``{"Concat": [...]}`` and ``{"IfPresent":
  {"InputName": "x", "Then": ..., "Else": ...}}``; an IfPresent whose branch is a list
  becomes several arguments, a missing branch none;
- ``{{$.inputs.parameters['x']}}``, ``{{$.inputs.artifacts['a'].path|uri|metadata}}``,
  ``{{$.inputs.artifacts['a'].metadata['k']}}``, ``{{$.inputs.artifacts['a']}}`` (a list),
  ``{{$.outputs.parameters['p'].output_file}}``, ``{{$.outputs.artifacts['a'].path|uri}}``,
  ``{{$.outputs.output_file}}`` and ``{{$}}`` (the whole executor input as JSON);
- run-level placeholders (``{{$.pipeline_job_name}}``, ``{{$.pipeline_task_uuid}}`` ...),
  which may also sit inside parameter values (f-strings and defaults such as
  ``dsl.PIPELINE_JOB_NAME_PLACEHOLDER``).

Parameters render as their text form (``values.to_text``). An artifact's path is its
URI here: artifacts live in the run's workspace, so the URI is already a local path.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tekton_mlops.kfp.values import to_text

_PLACEHOLDER = re.compile(r"\{\{\$(?:\.([^{}]*?))?\}\}")
_ITEM = re.compile(
    r"""\s*(?:\.?([A-Za-z_]\w*)|\[\s*'((?:[^'\\]|\\.)*)'\s*\]|\[\s*"((?:[^"\\]|\\.)*)"\s*\])"""
)


@dataclass
class RunContext:
    """What run-level placeholders stand for in this task."""

    pipeline_name: str = ""
    job_name: str = ""
    job_uid: str = ""
    task_name: str = ""
    task_uid: str = ""
    pipeline_root: str = ""
    workspace_path: str = ""
    create_time: str = ""
    schedule_time: str = ""
    extra: dict[str, str] = field(default_factory=dict)

    def table(self) -> dict[str, str]:
        return {
            "pipeline_job_name": self.job_name,
            "pipeline_job_resource_name": self.job_name,
            "pipeline_job_uuid": self.job_uid,
            "pipeline_task_name": self.task_name,
            "pipeline_task_uuid": self.task_uid,
            "pipeline_root": self.pipeline_root,
            "workspace_path": self.workspace_path,
            "pipeline_job_create_time_utc": self.create_time,
            "pipeline_job_schedule_time_utc": self.schedule_time or self.create_time,
            **self.extra,
        }


class PlaceholderError(ValueError):
    """A placeholder that names nothing this task has."""


def path_parts(expression: str) -> list[str]:
    """``inputs.artifacts['a'].metadata['k']`` -> ``[inputs, artifacts, a, metadata, k]``."""
    parts: list[str] = []
    position = 0
    while position < len(expression):
        match = _ITEM.match(expression, position)
        if not match or match.end() == position:
            raise PlaceholderError(f"cannot read placeholder {{{{$.{expression}}}}}")
        parts.append(next(g for g in match.groups() if g is not None))
        position = match.end()
    return parts


def _artifact(executor_input: Mapping[str, Any], side: str, name: str) -> list[dict[str, Any]]:
    group = executor_input.get(side, {}).get("artifacts", {}).get(name)
    if group is None:
        return []
    return list(group.get("artifacts") or [])


def _render(value: Any) -> str:
    return to_text(value) if not isinstance(value, dict | list) else json.dumps(value)


def lookup(
    expression: str | None, executor_input: Mapping[str, Any], context: RunContext
) -> str | None:
    """The text a placeholder stands for; None when its input is absent."""
    if expression is None:
        return json.dumps(executor_input)
    parts = path_parts(expression)
    run_level = context.table()
    if len(parts) == 1 and parts[0] in run_level:
        return run_level[parts[0]]
    if parts[0] == "outputs" and parts[1:] == ["output_file"]:
        return str(executor_input.get("outputs", {}).get("outputFile", ""))
    if len(parts) < 3 or parts[0] not in ("inputs", "outputs"):
        raise PlaceholderError(f"unknown placeholder {{{{$.{expression}}}}}")
    side, kind, name, rest = parts[0], parts[1], parts[2], parts[3:]
    if kind == "parameters":
        if side == "inputs":
            values = executor_input.get("inputs", {}).get("parameterValues", {})
            if name not in values or values[name] is None:
                return None
            return _render(values[name])
        declared = executor_input.get("outputs", {}).get("parameters", {}).get(name)
        if declared is None:
            raise PlaceholderError(f"the component has no output parameter {name!r}")
        return str(declared.get("outputFile", ""))
    if kind == "artifacts":
        artifacts = _artifact(executor_input, side, name)
        if not rest:
            return json.dumps(artifacts)
        if not artifacts:
            return None
        first = artifacts[0]
        if rest[0] in ("path", "uri"):
            return str(first.get("uri", ""))
        if rest[0] == "metadata":
            metadata = first.get("metadata") or {}
            if len(rest) == 1:
                return json.dumps(metadata)
            value = metadata.get(rest[1])
            return None if value is None else _render(value)
        if rest[0] == "name":
            return str(first.get("name", name))
    raise PlaceholderError(f"unknown placeholder {{{{$.{expression}}}}}")


def fill(text: str, executor_input: Mapping[str, Any], context: RunContext) -> str:
    """Every placeholder in one string replaced; an absent input renders as ``null``, as
    ``kfp.local`` renders it (guard optional inputs with IfPresent)."""

    def replace(match: re.Match[str]) -> str:
        value = lookup(match.group(1), executor_input, context)
        return "null" if value is None else value

    return _PLACEHOLDER.sub(replace, text)


_INPUT_PARAMETER = re.compile(r"""\{\{\$\.inputs\.parameters\[\s*'([^']*)'\s*\]\}\}""")


def fill_inputs(value: Any, values: Mapping[str, Any]) -> Any:
    """Input values that quote other inputs (an f-string of a channel: ``f'Hello {name}'``
    compiles to ``Hello {{$.inputs.parameters['pipelinechannel--name']}}``), filled in,
    inside lists and dicts too, as KFP's driver fills them."""
    if isinstance(value, str):

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            return _render(values[name]) if name in values else match.group(0)

        return _INPUT_PARAMETER.sub(replace, value)
    if isinstance(value, list):
        return [fill_inputs(v, values) for v in value]
    if isinstance(value, dict):
        return {fill_inputs(k, values): fill_inputs(v, values) for k, v in value.items()}
    return value


def fill_run_level(text: str, context: RunContext) -> str:
    """Only the run-level placeholders of a string (parameter values and defaults)."""
    table = context.table()

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        return table[name] if name in table else match.group(0)

    return _PLACEHOLDER.sub(replace, text)


def _structure(element: Any) -> Any:
    """A command-line element as a structure: JSON placeholders decoded, text as is."""
    if isinstance(element, str) and element.startswith(('{"Concat"', '{"IfPresent"')):
        try:
            return json.loads(element)
        except ValueError:
            return element
    return element


def _expand(element: Any, present: set[str]) -> list[str | dict[str, Any]] | None:
    """Structured placeholders resolved to plain elements (None: the element vanishes)."""
    element = _structure(element)
    if isinstance(element, str):
        return [element]
    if isinstance(element, list):
        out: list[str | dict[str, Any]] = []
        for item in element:
            out.extend(_expand(item, present) or [])
        return out
    if isinstance(element, dict) and "Concat" in element:
        pieces: list[str] = []
        for item in element["Concat"]:
            for piece in _expand(item, present) or []:
                pieces.append(piece if isinstance(piece, str) else json.dumps(piece))
        return ["".join(pieces)]
    if isinstance(element, dict) and "IfPresent" in element:
        spec = element["IfPresent"]
        branch = spec.get("Then") if spec.get("InputName") in present else spec.get("Else")
        if branch is None:
            return None
        return _expand(branch if isinstance(branch, list) else [branch], present)
    raise PlaceholderError(f"unknown command-line placeholder {element!r}")


def present_inputs(executor_input: Mapping[str, Any]) -> set[str]:
    """Inputs IfPresent counts as given: parameters with a value, artifacts with one."""
    inputs = executor_input.get("inputs", {})
    names = {k for k, v in (inputs.get("parameterValues") or {}).items() if v is not None}
    names |= {k for k, v in (inputs.get("artifacts") or {}).items() if v and v.get("artifacts")}
    return names


def resolve_command(
    elements: list[Any], executor_input: Mapping[str, Any], context: RunContext
) -> list[str]:
    """A component's command or args, ready to run."""
    present = present_inputs(executor_input)
    resolved: list[str] = []
    for element in elements:
        for item in _expand(element, present) or []:
            text = item if isinstance(item, str) else json.dumps(item)
            resolved.append(fill(text, executor_input, context))
    return resolved
