"""Admission of a PipelineSpec: names, references, the DAG, finally, variables, results.

The checks and messages are those of Tekton's ``PipelineSpec.Validate`` and its DAG
builder. Where Tekton checks less than one would expect, so does this module (the
linter's catalog rules are the place to be stricter): pipeline context variables
are checked in the *last* pipeline task's params only, and embedded taskSpec steps
may use ``$(context.pipelineRun.…)`` freely.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from tekton_mlops.tekton.custom_tasks import (
    check_custom_task,
    check_embedded_or_type,
    custom_reference,
)
from tekton_mlops.tekton.defaults import param_type
from tekton_mlops.tekton.flags import FeatureFlags
from tekton_mlops.tekton.problems import DNS_LABEL, NAMES_URL, Path, Problem
from tekton_mlops.tekton.schema import field_path
from tekton_mlops.tekton.task_rules import (
    Params,
    check_params,
    check_task_spec,
    param_usage,
    params_by_name,
)
from tekton_mlops.tekton.variables import EXPRESSION, parse, references

#: ``tasks.<name>.results.<result>…`` and ``tasks.<name>.matrix.…``: a dependency on <name>.
RESULT_REF = re.compile(r"^(tasks|finally)\.([^.\[]+)\.(results|matrix)\b")
STATUS_REF = re.compile(r"^tasks(\.[^.]+)?\.(status|reason)$")
PIPELINE_CONTEXT = {
    "pipelineRun": ("name", "namespace", "uid"),
    "pipeline": ("name",),
    "pipelineTask": ("retries",),
}
REFERENCE_FIELDS = ("taskRef", "taskSpec")


def task_fields(task: dict[str, Any]) -> Iterator[tuple[Path, str]]:
    """Where a pipeline task may use variables: params, matrix, when (input and values)."""
    for param in task.get("params") or []:
        yield from _strings(param.get("value"), ("params", str(param.get("name"))))
    matrix = task.get("matrix") or {}
    for index, param in enumerate(matrix.get("params") or []):
        yield from _strings(param.get("value"), ("matrix", "params", index, "value"))
    for entry, include in enumerate(matrix.get("include") or []):
        for index, param in enumerate(include.get("params") or []):
            where = ("matrix", "include", entry, "params", index, "value")
            yield from _strings(param.get("value"), where)
    for index, when in enumerate(task.get("when") or []):
        yield from _strings(when.get("input"), ("when", index))
        yield from _strings(when.get("values"), ("when", index))


def _strings(value: Any, at: Path) -> Iterator[tuple[Path, str]]:
    if isinstance(value, str):
        yield at, value
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item, at)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item, at)


def dependencies(task: dict[str, Any]) -> list[str]:
    """Tasks this one runs after: ``runAfter`` and every task whose results it uses
    (in params, matrix, when, and the steps and sidecars of an embedded taskSpec)."""
    needs = [str(name) for name in task.get("runAfter") or []]
    scanned = {k: v for k, v in task.items() if k not in ("name", "runAfter", "displayName")}
    for expression in references(scanned):
        match = RESULT_REF.match(expression)
        if match and match.group(1) == "tasks" and match.group(2) not in needs:
            needs.append(match.group(2))
    return needs


def _param_path(at: Path, index: int, relative: Path) -> tuple[Path, str | None]:
    """A pipeline task's param is shown by name (``params[seed]``), as Tekton keys it."""
    if relative[0] == "params":
        shown = f"{_join(at)}[{index}].params[{relative[1]}].value"
        return (*at, index, "params"), shown
    return (*at, index, *relative), None


def _join(at: Path) -> str:
    return field_path(at)


def check_pipeline_spec(
    spec: dict[str, Any],
    at: Path,
    flags: FeatureFlags,
    scope: Params | None = None,
    run_workspaces: set[str] | None = None,
) -> list[Problem]:
    """Everything ``PipelineSpec.Validate`` refuses in ``spec`` (found at ``at``).

    ``scope`` holds params propagated from a PipelineRun into an embedded spec; they are
    visible to embedded taskSpecs (a standalone Pipeline propagates nothing).
    ``run_workspaces`` are the workspaces a PipelineRun binds, which propagate into its
    embedded spec as if declared.
    """
    tasks = spec.get("tasks") or []
    finals = spec.get("finally") or []
    if not any(spec.get(k) for k in ("description", "params", "tasks", "workspaces")):
        return [
            Problem(
                "dag",
                at,
                "expected at least one, got none",
                shown=", ".join(
                    f"{_join(at)}.{k}"
                    for k in ("description", "params", "resources", "tasks", "workspaces")
                ),
            )
        ]
    params = params_by_name(spec.get("params"))
    problems = check_params(spec.get("params"), at, flags)
    problems += _names(tasks, finals, at, flags)
    problems += _pipeline_workspaces(spec, at, run_workspaces or set())
    names = {str(t.get("name")) for t in tasks}
    final_names = {str(t.get("name")) for t in finals}
    for group, members in (("tasks", tasks), ("finally", finals)):
        for index, task in enumerate(members):
            problems += _variables(
                task, (*at, group), index, params, group == "finally", names, final_names
            )
            if custom_reference(task) is not None:  # another controller's: Tekton checks less
                problems += check_custom_task(task, (*at, group, index))
            elif isinstance(task.get("taskSpec"), dict):
                visible = {**(scope or {}), **params}
                problems += check_task_spec(
                    task["taskSpec"], (*at, group, index, "taskSpec"), flags, visible
                )
            problems += check_embedded_or_type(task, (*at, group, index))
            problems += _on_error(task, (*at, group, index), flags)
    problems += _last_task_context(tasks, at)
    problems += _graph(tasks, at)
    if finals and not tasks:
        problems.append(
            Problem(
                "run-after",
                (*at, "finally"),
                f"invalid value: spec.tasks is empty but spec.finally has {len(finals)} tasks",
            )
        )
    for index, task in enumerate(finals):
        if task.get("runAfter"):
            problems.append(
                Problem(
                    "run-after",
                    (*at, "finally", index),
                    "invalid value: no runAfter allowed under spec.finally, final task "
                    f"{task.get('name')} has runAfter specified",
                )
            )
    problems += _results(spec.get("results"), at, names | final_names)
    return problems


def _names(
    tasks: list[dict[str, Any]], finals: list[dict[str, Any]], at: Path, flags: FeatureFlags
) -> list[Problem]:
    problems: list[Problem] = []
    seen: set[str] = set()
    for group, members in (("tasks", tasks), ("finally", finals)):
        for index, task in enumerate(members):
            where = (*at, group, index)
            name = str(task.get("name", ""))
            if not DNS_LABEL.match(name):
                problems.append(
                    Problem(
                        "name",
                        (*where, "name"),
                        f'invalid value "{name}"',
                        details="Pipeline Task name must be a valid DNS Label.For more info "
                        f"refer to {NAMES_URL}",
                    )
                )
            if name in seen:
                problems.append(
                    Problem("unique", (*where, "name"), "expected exactly one, got both")
                )
            seen.add(name)
            given = [k for k in (*REFERENCE_FIELDS, "pipelineRef", "pipelineSpec") if k in task]
            if len(given) > 1:
                problems.append(
                    Problem(
                        "reference",
                        where,
                        "expected exactly one, got multiple",
                        shown=", ".join(f"{_join(where)}.{k}" for k in given),
                    )
                )
            elif not given:
                problems.append(
                    Problem(
                        "reference",
                        where,
                        "expected exactly one, got neither",
                        shown=", ".join(f"{_join(where)}.{k}" for k in REFERENCE_FIELDS),
                    )
                )
            for nested in ("pipelineRef", "pipelineSpec"):
                if nested in task and not flags.allows("alpha"):
                    problems.append(
                        Problem(
                            "feature-gate",
                            (*where, nested),
                            f'{nested} requires "enable-api-fields" feature gate to be '
                            f'"alpha" but it is "{flags.enable_api_fields}"',
                        )
                    )
    return problems


def _pipeline_workspaces(spec: dict[str, Any], at: Path, propagated: set[str]) -> list[Problem]:
    problems: list[Problem] = []
    declared: set[str] = set()
    for index, workspace in enumerate(spec.get("workspaces") or []):
        name = str(workspace.get("name", ""))
        if name in declared:
            problems.append(
                Problem(
                    "unique",
                    (*at, "workspaces", index),
                    f'invalid value: workspace with name "{name}" appears more than once',
                )
            )
        declared.add(name)
    for group in ("tasks", "finally"):
        for index, task in enumerate(spec.get(group) or []):
            bound: set[str] = set()
            for number, binding in enumerate(task.get("workspaces") or []):
                where = (*at, group, index, "workspaces", number)
                source = str(binding.get("workspace") or binding.get("name"))
                if source not in declared and source not in propagated:
                    problems.append(
                        Problem(
                            "reference",
                            where,
                            f'invalid value: pipeline task "{task.get("name")}" expects '
                            f'workspace with name "{source}" but none exists in pipeline spec',
                        )
                    )
                if binding.get("name") in bound:
                    problems.append(
                        Problem(
                            "unique",
                            where,
                            f'workspace name "{binding.get("name")}" must be unique',
                        )
                    )
                bound.add(str(binding.get("name")))
    return problems


def _variables(
    task: dict[str, Any],
    at: Path,
    index: int,
    params: Params,
    in_finally: bool,
    tasks: set[str],
    finals: set[str],
) -> list[Problem]:
    problems: list[Problem] = []
    for relative, text in task_fields(task):
        path, shown = _param_path(at, index, relative)
        for expression in EXPRESSION.findall(text):
            if expression.startswith("params"):
                for problem in param_usage(expression, text, path, params, array_ok=True):
                    problems.append(Problem(problem.rule, path, problem.message, shown=shown))
            elif STATUS_REF.match(expression):
                problems += _status(expression, path, shown, in_finally, tasks)
            elif (match := RESULT_REF.match(expression)) and in_finally:
                problems += _finally_result(match.group(2), path, shown, tasks, finals)
    return problems


def _status(
    expression: str, path: Path, shown: str | None, in_finally: bool, tasks: set[str]
) -> list[Problem]:
    if not in_finally:
        return [
            Problem(
                "finally-only",
                path,
                "invalid value: pipeline tasks can not refer to execution status of any "
                "other pipeline task or aggregate status of tasks",
                shown=shown,
            )
        ]
    name = expression.split(".")[1] if expression.count(".") == 2 else ""
    if name and name not in tasks:
        return [
            Problem(
                "reference",
                path,
                f"invalid value: pipeline task {name} is not defined in the pipeline",
                shown=shown,
            )
        ]
    return []


def _finally_result(
    name: str, path: Path, shown: str | None, tasks: set[str], finals: set[str]
) -> list[Problem]:
    if name in finals:
        message = (
            "invalid value: invalid task result reference, final task has task result "
            f"reference from a final task {name}"
        )
    elif name not in tasks:
        message = (
            "invalid value: invalid task result reference, final task has task result "
            f"reference from a task {name} which is not defined in the pipeline"
        )
    else:
        return []
    return [Problem("reference", path, message, shown=shown)]


def _last_task_context(tasks: list[dict[str, Any]], at: Path) -> list[Problem]:
    """Pipeline context variables in the params of the *last* task.

    Tekton's validator re-assigns the values it checks in a loop over the tasks, so only
    the last task's params are looked at; admission here does the same (the catalog
    linter checks every task).
    """
    if not tasks:
        return []
    problems = []
    last = tasks[-1]
    for relative, text in task_fields(last):
        if relative[0] == "when":
            continue
        for expression in EXPRESSION.findall(text):
            parts = expression.split(".")
            if parts[0] != "context" or len(parts) < 3 or parts[1] not in PIPELINE_CONTEXT:
                continue
            if ".".join(parts[2:]) not in PIPELINE_CONTEXT[parts[1]]:
                problems.append(
                    Problem(
                        "reference",
                        (*at, len(tasks) - 1, *relative),
                        f'non-existent variable in "{text}"',
                        shown=f"{_join(at)}.tasks.value",
                    )
                )
    return problems


def _graph(tasks: list[dict[str, Any]], at: Path) -> list[Problem]:
    """The DAG, as Tekton builds it: a cycle first, then links to tasks that do not exist."""
    names = [str(t.get("name")) for t in tasks]
    needs = {str(t.get("name")): dependencies(t) for t in tasks}
    where = (*at, "tasks")
    if cycle := _cycle(needs):
        task, deps = cycle
        shown = ", ".join(f'"{d}"' for d in deps)
        return [
            Problem(
                "dag", where, f'invalid value: cycle detected; task "{task}" depends on {shown}'
            )
        ]
    for task in names:
        for previous in needs[task]:
            if previous not in needs:
                return [
                    Problem(
                        "run-after",
                        where,
                        f"invalid value: couldn't add link between {task} and {previous}: task "
                        f"{task} depends on {previous} but {previous} wasn't present in Pipeline",
                    )
                ]
    return []


def _cycle(needs: dict[str, list[str]]) -> tuple[str, list[str]] | None:
    """Kahn's algorithm over known tasks; on a cycle, the first remaining task and its
    remaining dependencies (sorted), as Tekton reports them."""
    remaining = {task: {d for d in deps if d in needs} for task, deps in needs.items()}
    while True:
        ready = [task for task, deps in remaining.items() if not deps]
        if not ready:
            break
        for task in ready:
            del remaining[task]
        for deps in remaining.values():
            deps.difference_update(ready)
    if not remaining:
        return None
    first = sorted(remaining)[0]
    return first, sorted(remaining[first])


def _on_error(task: dict[str, Any], where: Path, flags: FeatureFlags) -> list[Problem]:
    value = task.get("onError")
    if value is None:
        return []
    if not flags.allows("beta"):
        return [
            Problem(
                "feature-gate",
                (*where, "onError"),
                'OnError requires "enable-api-fields" feature gate to be "alpha" or "beta" '
                f'but it is "{flags.enable_api_fields}"',
            )
        ]
    if value not in ("continue", "stopAndFail") and "$(" not in str(value):
        return [
            Problem(
                "on-error",
                (*where, "onError"),
                f"invalid value: {value}",
                details='PipelineTask OnError must be either "continue" or "stopAndFail"',
                shown=f"{_join(where)}.OnError",
            )
        ]
    if value == "continue" and int(task.get("retries") or 0) > 0:
        return [
            Problem(
                "on-error",
                where,
                'PipelineTask OnError cannot be set to "continue" when Retries is greater than 0',
            )
        ]
    return []


def _results(results: list[dict[str, Any]] | None, at: Path, known: set[str]) -> list[Problem]:
    problems: list[Problem] = []
    for index, result in enumerate(results or []):
        where = (*at, "results", index, "value")
        found = [e for e in references(result.get("value")) if e]
        if not found:
            problems.append(
                Problem(
                    "reference",
                    where,
                    "invalid value: expected pipeline results to be task result expressions "
                    "but no expressions were found",
                )
            )
            continue
        refs = [RESULT_REF.match(e) for e in found]
        if not any(refs):
            problems.append(
                Problem(
                    "reference",
                    where,
                    "invalid value: expected pipeline results to be task result expressions "
                    "but an invalid expressions was found",
                )
            )
            continue
        if not all(refs):
            valid = [e for e, m in zip(found, refs, strict=True) if m]
            problems.append(
                Problem(
                    "reference",
                    where,
                    f"invalid value: expected all of the expressions [{' '.join(found)}] to be "
                    f"result expressions but only [{' '.join(valid)}] were",
                )
            )
            continue
        if any(m.group(2) not in known for m in refs if m):
            problems.append(
                Problem("reference", where, "invalid value: referencing a nonexistent task")
            )
    return problems


def propagated_scope(run_params: list[dict[str, Any]], spec: dict[str, Any]) -> Params:
    """What an embedded taskSpec of a PipelineRun's pipelineSpec may use without declaring it:
    the run's params, the Pipeline's, and every pipeline task's (Tekton's inline validation)."""
    scope: dict[str, dict[str, Any]] = {}

    def add(name: str, typed: dict[str, Any]) -> None:
        known = scope.get(name)
        if known and known.get("type") == "object" and typed.get("type") == "object":
            # Object params merge key by key across the run and its tasks.
            typed = {**typed, "properties": {**known["properties"], **typed["properties"]}}
        scope[name] = typed

    for group in ("tasks", "finally"):
        for task in spec.get(group) or []:
            for param in task.get("params") or []:
                add(str(param.get("name")), _typed(param.get("value")))
            for param in (task.get("matrix") or {}).get("params") or []:
                # A matrix param is a string in each TaskRun, whatever array feeds it.
                scope.setdefault(str(param.get("name")), {"type": "string"})
    for param in run_params:
        add(str(param.get("name")), _typed(param.get("value")))
    scope.update(params_by_name(spec.get("params")))
    return scope


def _typed(value: Any) -> dict[str, Any]:
    kind = param_type({"default": value}) if value is not None else "string"
    spec: dict[str, Any] = {"type": kind}
    if isinstance(value, dict):
        spec["properties"] = {key: {"type": "string"} for key in value}
    return spec


__all__ = ["check_pipeline_spec", "dependencies", "parse", "propagated_scope", "task_fields"]


WORKSPACE_REF = re.compile(r"\$\(workspaces\.([^.)]+)\.")


def propagate_workspaces(spec: dict[str, Any], bound: set[str]) -> dict[str, Any]:
    """An embedded pipelineSpec with the PipelineRun's workspaces propagated, as Tekton does.

    Workspaces the run binds are declared by the Pipeline; an embedded taskSpec whose steps,
    step template or sidecars use ``$(workspaces.<w>…)`` of one it neither declares nor is
    given gets the declaration and the binding.
    """
    propagated = dict(spec)
    declared = [dict(w) for w in spec.get("workspaces") or []]
    names = {str(w.get("name")) for w in declared}
    declared += [{"name": name} for name in sorted(bound - names)]
    if declared:
        propagated["workspaces"] = declared
    available = names | bound
    for group in ("tasks", "finally"):
        tasks = []
        for task in spec.get(group) or []:
            task = dict(task)
            inline = task.get("taskSpec")
            if isinstance(inline, dict):
                own = {str(w.get("name")) for w in inline.get("workspaces") or []}
                given = {str(b.get("name")) for b in task.get("workspaces") or []}
                scanned = {k: inline.get(k) for k in ("steps", "stepTemplate", "sidecars")}
                used = {m for text in references_text(scanned) for m in WORKSPACE_REF.findall(text)}
                missing = sorted((used - own - given) & available)
                if missing:
                    inline = dict(inline)
                    inline["workspaces"] = [
                        *(inline.get("workspaces") or []),
                        *({"name": name} for name in missing),
                    ]
                    task["taskSpec"] = inline
                    task["workspaces"] = [
                        *(task.get("workspaces") or []),
                        *({"name": name, "workspace": name} for name in missing),
                    ]
            tasks.append(task)
        if group in spec:
            propagated[group] = tasks
    return propagated


def references_text(value: Any) -> list[str]:
    """Every string inside value (to look for variables the grammar does not parse)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [t for item in value for t in references_text(item)]
    if isinstance(value, dict):
        return [t for item in value.values() for t in references_text(item)]
    return []
