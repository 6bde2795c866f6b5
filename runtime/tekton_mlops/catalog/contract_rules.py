"""Rule set three: this project's contract, and references checked more strictly than Tekton.

A catalog Task and its step's JSON Schema cannot drift apart (params, args, results,
the results budget); every runtime step is pinned, confined and sized; samples pass
only what a Task declares. Tekton checks some references only when a run starts, or
never (sidecars, a result a Task does not declare, context variables in all but the
last pipeline task): the catalog checks them all, here.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tekton_mlops.catalog.catlin_rules import Key
from tekton_mlops.catalog.source import Document, Reporter, is_resource
from tekton_mlops.params import load_schema, step_names
from tekton_mlops.results import RESULTS_BUDGET
from tekton_mlops.tekton.defaults import param_type
from tekton_mlops.tekton.pipeline_rules import PIPELINE_CONTEXT, RESULT_REF
from tekton_mlops.tekton.task_rules import TASK_CONTEXT, TASK_RUN_CONTEXT, resolve_param
from tekton_mlops.tekton.variables import EXPRESSION, parse

RUNTIME = "tekton-mlops"
WORKSPACE_FIELDS = ("path", "bound", "claim", "volume")


def check(linter: Reporter, doc: Document) -> None:
    data = doc.data
    kind = data.get("kind")
    spec = data.get("spec") or {}
    if kind == "Task":
        _task(linter, doc, spec, ("spec",), {})
    elif kind == "Pipeline":
        _pipeline(linter, doc, spec, ("spec",), {})
    elif kind == "TaskRun":
        if isinstance(spec.get("taskSpec"), dict):
            given = {str(p.get("name")): _typed(p.get("value")) for p in spec.get("params") or []}
            _task(linter, doc, spec["taskSpec"], ("spec", "taskSpec"), given)
        elif "taskRef" in spec:
            call = {"taskRef": spec["taskRef"], "params": spec.get("params"), "name": "TaskRun"}
            _task_call(linter, doc, ("spec",), call)
    elif kind == "PipelineRun" and isinstance(spec.get("pipelineSpec"), dict):
        given = {str(p.get("name")): _typed(p.get("value")) for p in spec.get("params") or []}
        _pipeline(linter, doc, spec["pipelineSpec"], ("spec", "pipelineSpec"), given)


# --- Tasks -----------------------------------------------------------------------------


def _strings(value: Any, at: Key) -> Iterator[tuple[Key, str]]:
    if isinstance(value, str):
        yield at, value
    elif isinstance(value, dict):
        for key, item in value.items():
            if key in ("description", "taskSpec", "pipelineSpec"):
                continue  # prose, or a spec checked on its own
            yield from _strings(item, (*at, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _strings(item, (*at, index))


def _task(
    linter: Reporter,
    doc: Document,
    spec: dict[str, Any],
    at: Key,
    propagated: dict[str, dict[str, Any]],
) -> None:
    params = {str(p.get("name")): p for p in spec.get("params") or []}
    visible = {**propagated, **params}
    results = {str(r.get("name")) for r in spec.get("results") or []}
    workspaces = {str(w.get("name")) for w in spec.get("workspaces") or []}
    used: set[str] = set()
    for key, text in _strings(spec, at):
        for expression in EXPRESSION.findall(text):
            used |= _task_variable(linter, doc, key, expression, visible, results, workspaces)
    for name in params:
        if name not in used:
            linter.report(doc, (*at, "params"), "param-used", f"param {name!r} is never used")
    template = spec.get("stepTemplate") or {}
    for index, step in enumerate(spec.get("steps") or []):
        command = step.get("command") or []
        if command and command[0] == RUNTIME:
            where = (*at, "steps", index)
            known = _runtime_step(linter, doc, where, step, template)
            if known and doc.data.get("kind") == "Task" and is_resource(doc):
                _schema_contract(linter, doc, where, step, spec, command[1])


def _task_variable(
    linter: Reporter,
    doc: Document,
    key: Key,
    expression: str,
    params: dict[str, dict[str, Any]],
    results: set[str],
    workspaces: set[str],
) -> set[str]:
    head, _, rest = expression.partition(".")
    if head == "params" or expression.startswith("params["):
        name, spec, object_key = resolve_param(expression, params)
        if spec is None:
            linter.report(doc, key, "catalog-reference", f"$({expression}): no param {name!r}")
            return set()
        _param_access(linter, doc, key, expression, spec, object_key)
        return {name}
    if head == "results":
        name, _, field = parse(expression).name[len("results.") :].rpartition(".")
        if name not in results or field != "path":
            linter.report(
                doc, key, "catalog-reference", f"$({expression}): no result {name!r} path"
            )
    elif head == "workspaces":
        name, _, field = rest.rpartition(".")
        if name not in workspaces or field not in WORKSPACE_FIELDS:
            linter.report(doc, key, "catalog-reference", f"$({expression}): no workspace {name!r}")
    elif head == "context":
        scope, _, field = rest.partition(".")
        known = {"taskRun": TASK_RUN_CONTEXT, "task": TASK_CONTEXT, **PIPELINE_CONTEXT}
        if field not in known.get(scope, ()):
            linter.report(
                doc, key, "catalog-reference", f"$({expression}): unknown context variable"
            )
    return set()


def _param_access(
    linter: Reporter,
    doc: Document,
    key: Key,
    expression: str,
    spec: dict[str, Any],
    object_key: str,
) -> None:
    """``[*]``/``[i]`` only on arrays, ``.key`` only on objects with that key."""
    kind = param_type(spec)
    accessor = parse(expression).accessor
    if accessor and kind not in ("array", "object"):
        linter.report(
            doc, key, "param-access", f"$({expression}): {kind} param indexed like an array"
        )
    elif object_key and spec.get("properties") and object_key not in spec["properties"]:
        linter.report(doc, key, "param-access", f"$({expression}): no key {object_key!r}")


def _runtime_step(
    linter: Reporter, doc: Document, at: Key, step: dict[str, Any], template: dict[str, Any]
) -> bool:
    """The rules every runtime step follows; False when it names no known step."""
    command = step.get("command") or []
    if len(command) != 2 or command[1] not in step_names():
        linter.report(
            doc,
            (*at, "command"),
            "step-command",
            f"command {command} is not [{RUNTIME}, <one of {', '.join(step_names())}>]",
        )
        return False
    if linter.runtime_image and step.get("image") != linter.runtime_image:
        linter.report(
            doc,
            (*at, "image"),
            "runtime-image",
            f"image must be the pinned runtime {linter.runtime_image}",
        )
    security = {**(template.get("securityContext") or {}), **(step.get("securityContext") or {})}
    drops = (security.get("capabilities") or {}).get("drop") or []
    if not (
        security.get("runAsNonRoot") is True
        and security.get("runAsUser") == 65532
        and security.get("allowPrivilegeEscalation") is False
        and "ALL" in drops
    ):
        linter.report(
            doc,
            at,
            "security-context",
            f"step {step.get('name')!r} must set runAsNonRoot: true, runAsUser: 65532, "
            "allowPrivilegeEscalation: false, capabilities.drop: [ALL]",
        )
    resources = step.get("computeResources") or template.get("computeResources") or {}
    requests, limits = resources.get("requests") or {}, resources.get("limits") or {}
    if not ({"cpu", "memory"} <= set(requests) and "memory" in limits):
        linter.report(
            doc,
            at,
            "compute-resources",
            f"step {step.get('name')!r} must request cpu and memory and limit memory",
        )
    return True


def _schema_contract(
    linter: Reporter,
    doc: Document,
    at: Key,
    step: dict[str, Any],
    spec: dict[str, Any],
    step_name: str,
) -> None:
    schema = load_schema(step_name)
    params = {p.get("name"): p for p in spec.get("params") or []}
    args = [str(a) for a in step.get("args") or []]
    expected = {n: p for n, p in schema.properties.items() if "x-workspace" not in p}
    for name in sorted(set(expected) - set(params)):
        linter.report(
            doc,
            ("spec", "params"),
            "schema-params",
            f"the {step_name} schema has param {name!r}; the Task does not",
        )
    for index, (name, param) in enumerate(params.items()):
        where = ("spec", "params", index)
        prop = expected.get(name)
        if prop is None:
            linter.report(
                doc, where, "schema-params", f"param {name!r} is not in the {step_name} schema"
            )
            continue
        if param.get("type", "string") != "string":
            linter.report(
                doc,
                (*where, "type"),
                "schema-params",
                f"param {name!r} must be a string (the runtime parses it by schema)",
            )
        want = " ".join(str(prop.get("description", "")).split())
        if " ".join(str(param.get("description", "")).split()) != want:
            linter.report(
                doc,
                (*where, "description"),
                "schema-params",
                f"param {name!r} description differs from the schema's: {want!r}",
            )
        if "default" in prop and param.get("default") != _as_text(prop["default"]):
            linter.report(
                doc,
                (*where, "default"),
                "schema-params",
                f"param {name!r} default must be {_as_text(prop['default'])!r}",
            )
        if "default" not in prop and "default" in param:
            linter.report(
                doc,
                (*where, "default"),
                "schema-params",
                f"param {name!r} is required by the schema and takes no default",
            )
    for name, prop in schema.properties.items():
        source = (
            f"$(workspaces.{prop['x-workspace']}.path)"
            if "x-workspace" in prop
            else f"$(params.{name})"
        )
        if f"--{name}={source}" not in args:
            linter.report(doc, (*at, "args"), "schema-args", f"args must include --{name}={source}")
    _results_contract(linter, doc, spec, step_name)


def _results_contract(linter: Reporter, doc: Document, spec: dict[str, Any], step: str) -> None:
    declared = {r.name: r for r in load_schema(step).results}
    results = {r.get("name"): r for r in spec.get("results") or []}
    for name in sorted(set(declared) - set(results)):
        linter.report(
            doc,
            ("spec", "results"),
            "results-match",
            f"{step} writes result {name!r}; the Task does not declare it",
        )
    for index, (name, result) in enumerate(results.items()):
        written = declared.get(name)
        if written is None:
            linter.report(
                doc,
                ("spec", "results", index),
                "results-match",
                f"result {name!r} is never written by {step}",
            )
            continue
        kind = result.get("type", "string")
        keys = set((result.get("properties") or {}).keys())
        if kind != written.type or (kind == "object" and keys != set(written.properties)):
            shape = f" with {', '.join(written.properties)}" if written.properties else ""
            linter.report(
                doc,
                ("spec", "results", index),
                "results-match",
                f"result {name!r} must be {written.type}{shape}",
            )
    worst = sum(r.max_bytes + len(r.name) + 30 for r in declared.values()) + 2
    if worst > RESULTS_BUDGET:
        linter.report(
            doc,
            ("spec", "results"),
            "results-budget",
            f"the results can reach {worst} bytes, over Tekton's {RESULTS_BUDGET}",
        )


# --- Pipelines -------------------------------------------------------------------------


def _pipeline(
    linter: Reporter,
    doc: Document,
    spec: dict[str, Any],
    at: Key,
    propagated: dict[str, dict[str, Any]],
) -> None:
    params = {**propagated, **{str(p.get("name")): p for p in spec.get("params") or []}}
    workspaces = {str(w.get("name")) for w in spec.get("workspaces") or []}
    tasks = {str(t.get("name")): t for t in spec.get("tasks") or []}
    finals = {str(t.get("name")): t for t in spec.get("finally") or []}
    everyone = {**tasks, **finals}
    for group, members in (("tasks", tasks), ("finally", finals)):
        for index, task in enumerate(members.values()):
            where = (*at, group, index)
            for key, text in _strings(task, where):
                for expression in EXPRESSION.findall(text):
                    _pipeline_variable(linter, doc, key, expression, params, workspaces, tasks)
            if isinstance(task.get("taskSpec"), dict):
                passed = {
                    str(p.get("name")): _typed(p.get("value")) for p in task.get("params") or []
                }
                for param in (task.get("matrix") or {}).get("params") or []:
                    passed[str(param.get("name"))] = {"type": "string"}
                _task(linter, doc, task["taskSpec"], (*where, "taskSpec"), {**params, **passed})
            else:
                _task_call(linter, doc, where, task)
    for index, result in enumerate(spec.get("results") or []):
        for key, text in _strings(result, (*at, "results", index)):
            for expression in EXPRESSION.findall(text):
                _pipeline_variable(linter, doc, key, expression, params, workspaces, everyone)


def _pipeline_variable(
    linter: Reporter,
    doc: Document,
    key: Key,
    expression: str,
    params: dict[str, dict[str, Any]],
    workspaces: set[str],
    tasks: dict[str, dict[str, Any]],
) -> None:
    head, _, rest = expression.partition(".")
    if head == "params" or expression.startswith("params["):
        name, spec, object_key = resolve_param(expression, params)
        if spec is not None:
            _param_access(linter, doc, key, expression, spec, object_key)
    elif (match := RESULT_REF.match(expression)) and match.group(3) == "results":
        task = tasks.get(match.group(2))
        declared = None if task is None else _declared_results(linter, task)
        result = expression.split(".results.", 1)[1].split(".")[0].split("[")[0]
        if declared is not None and result not in declared:
            linter.report(
                doc,
                key,
                "catalog-reference",
                f"$({expression}): task {match.group(2)!r} has no result {result!r}",
            )
    elif head == "workspaces":
        name, _, field = rest.rpartition(".")
        if name not in workspaces or field != "bound":
            linter.report(
                doc, key, "catalog-reference", f"$({expression}): no pipeline workspace {name!r}"
            )
    elif head == "context":
        scope, _, field = rest.partition(".")
        if field not in PIPELINE_CONTEXT.get(scope, ()):
            linter.report(
                doc, key, "catalog-reference", f"$({expression}): unknown Pipeline context variable"
            )


def _referenced_task(linter: Reporter, task: dict[str, Any]) -> dict[str, Any] | None:
    """The spec of a pipeline task: inline, or a catalog Task it references."""
    if isinstance(task.get("taskSpec"), dict):
        spec: dict[str, Any] = task["taskSpec"]
        return spec
    ref = task.get("taskRef") or {}
    if ref.get("name") in linter.tasks:
        return linter.tasks[ref["name"]]
    resolver_params = {p.get("name"): p.get("value") for p in ref.get("params") or []}
    path = str(resolver_params.get("pathInRepo") or resolver_params.get("name") or "")
    stem = Path(path).stem if path else ""
    return linter.tasks.get(stem)


def _declared_results(linter: Reporter, task: dict[str, Any]) -> set[str] | None:
    spec = _referenced_task(linter, task)
    return None if spec is None else {str(r.get("name")) for r in spec.get("results") or []}


def _task_call(linter: Reporter, doc: Document, at: Key, task: dict[str, Any]) -> None:
    """A pipeline task (or run) passes only params its catalog Task declares."""
    spec = _referenced_task(linter, task)
    if spec is None:
        return
    declared = {p.get("name") for p in spec.get("params") or []}
    required = {p.get("name") for p in spec.get("params") or [] if "default" not in p}
    given = {p.get("name") for p in task.get("params") or []}
    for name in sorted(given - declared):
        linter.report(
            doc,
            (*at, "params"),
            "run-params",
            f"{task.get('name', 'run')!r} passes {name!r}, which the Task does not declare",
        )
    for name in sorted(required - given):
        linter.report(
            doc,
            (*at, "params"),
            "run-params",
            f"{task.get('name', 'run')!r} does not pass required param {name!r}",
        )


def _typed(value: Any) -> dict[str, Any]:
    return {"type": param_type({"default": value}) if value is not None else "string"}


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else json.dumps(value)
