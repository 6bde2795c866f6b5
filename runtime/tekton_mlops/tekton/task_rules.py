"""Admission of a TaskSpec (a Task, or one embedded in a run or a Pipeline) and a StepAction.

What Tekton's ``TaskSpec.Validate`` refuses, and nothing more: steps, names, params,
results, workspaces, volumes, and the variables *steps* use (sidecars, volumes and
the step template are not variable-checked by Tekton, so not here either).

Params in scope: a Task sees its own params; an embedded spec also sees what is
propagated into it (a TaskRun's params; in a Pipeline, the Pipeline's params; in a
PipelineRun, those of the run, the Pipeline and every pipeline task), which the
caller passes as ``scope``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from tekton_mlops.tekton.defaults import param_type
from tekton_mlops.tekton.flags import FeatureFlags
from tekton_mlops.tekton.problems import (
    DNS_LABEL,
    NAMES_URL,
    PARAM_NAME,
    RESULT_NAME,
    RESULT_NAME_DETAILS,
    Path,
    Problem,
)
from tekton_mlops.tekton.schema import field_path
from tekton_mlops.tekton.variables import EXPRESSION, parse

ON_ERROR = ("continue", "stopAndFail")
TASK_RUN_CONTEXT = ("name", "namespace", "uid")
TASK_CONTEXT = ("name", "retry-count")
#: Step fields a StepAction reference replaces: a step with ``ref`` may not set them.
REF_EXCLUDES = ("image", "command", "args", "script", "workingDir", "env", "volumeMounts")

Params = Mapping[str, dict[str, Any]]  # name -> ParamSpec


def params_by_name(specs: list[dict[str, Any]] | None) -> dict[str, dict[str, Any]]:
    return {str(p.get("name")): p for p in specs or [] if isinstance(p, dict)}


def check_params(
    specs: list[dict[str, Any]] | None, at: Path, flags: FeatureFlags
) -> list[Problem]:
    """ParamSpecs: unique, well named, a known type, defaults of that type."""
    problems: list[Problem] = []
    seen: set[str] = set()
    invalid_names: list[str] = []
    for spec in specs or []:
        name = str(spec.get("name", ""))
        if name in seen:
            problems.append(
                Problem(
                    "unique",
                    (*at, "params"),
                    "parameter appears more than once",
                    shown=f"{_dotted(at)}.params[{name}]",
                )
            )
        seen.add(name)
        kind = param_type(spec)
        if not PARAM_NAME.match(name):
            invalid_names.append(name)
        if kind not in ("string", "array", "object"):
            problems.append(
                Problem(
                    "param-type",
                    (*at, "params"),
                    f"invalid value: {kind}",
                    shown=f"{_dotted(at)}.params.{name}.type",
                )
            )
            continue
        if kind == "object" and not flags.allows("beta"):
            problems.append(_gate("object type parameter", "beta", flags, (*at, "params")))
        if "default" in spec and param_type({"default": spec["default"]}) != kind:
            got = param_type({"default": spec["default"]})
            problems.append(
                Problem(
                    "param-type",
                    (*at, "params"),
                    f'"{kind}" type does not match default value\'s type: "{got}"',
                    shown=f"{_dotted(at)}.params.{name}.default.type, "
                    f"{_dotted(at)}.params.{name}.type",
                )
            )
        if spec.get("enum") and not flags.enable_param_enum:
            problems.append(
                Problem(
                    "param-type",
                    (*at, "params"),
                    "feature flag `enable-param-enum` should be set to true to use Enum",
                    shown=f"{_dotted(at)}.params[{name}]",
                )
            )
    if invalid_names:
        problems.append(
            Problem(
                "name",
                (*at, "params"),
                "The format of following array and string variable names is invalid: "
                f"[{' '.join(invalid_names)}]",
                details="String/Array Names: \nMust only contain alphanumeric characters, "
                "hyphens (-), underscores (_), and dots (.)\nMust begin with a letter or an "
                "underscore (_)",
            )
        )
    return problems


def check_task_spec(
    spec: dict[str, Any],
    at: Path,
    flags: FeatureFlags,
    scope: Params | None = None,
) -> list[Problem]:
    """Everything ``TaskSpec.Validate`` refuses in ``spec`` (found at ``at``)."""
    problems: list[Problem] = []
    own = params_by_name(spec.get("params"))
    visible: dict[str, dict[str, Any]] = {**(scope or {}), **own}
    problems += check_params(spec.get("params"), at, flags)
    steps = spec.get("steps") or []
    if not steps:
        problems.append(Problem("step-image", (*at, "steps"), "missing field(s)"))
    template_image = (spec.get("stepTemplate") or {}).get("image")
    names: set[str] = set()
    for index, step in enumerate(steps):
        where = (*at, "steps", index)
        problems += _check_step(step, where, template_image, flags)
        name = str(step.get("name") or "")
        if name and name in names:
            problems.append(Problem("unique", (*where, "name"), f"invalid value: {name}"))
        names.add(name)
        problems += _step_variables(step, where, visible, spec)
    problems += _check_results(spec.get("results"), at)
    problems += _check_workspaces(spec.get("workspaces"), at)
    volumes: set[str] = set()
    for index, volume in enumerate(spec.get("volumes") or []):
        name = str(volume.get("name", ""))
        if name in volumes:
            problems.append(
                Problem(
                    "unique",
                    (*at, "volumes", index, "name"),
                    f'multiple volumes with same name "{name}"',
                )
            )
        volumes.add(name)
    for index, sidecar in enumerate(spec.get("sidecars") or []):
        where = (*at, "sidecars", index)
        if sidecar.get("script") and sidecar.get("command"):
            problems.append(
                Problem("script-command", (*where, "script"), "script cannot be used with command")
            )
        if not sidecar.get("image"):
            problems.append(Problem("step-image", (*where, "image"), "missing field(s)"))
    return problems


def _check_step(
    step: dict[str, Any], where: Path, template_image: Any, flags: FeatureFlags
) -> list[Problem]:
    problems: list[Problem] = []
    if "ref" in step:
        if not flags.enable_step_actions:
            problems.append(
                Problem(
                    "step-image",
                    (*where, "ref"),
                    "feature flag enable-step-actions should be set to true to reference "
                    "StepActions in Steps.",
                )
            )
        for field in REF_EXCLUDES:
            if step.get(field):
                problems.append(
                    Problem("step-image", (*where, field), f"{field} cannot be used with Ref")
                )
    else:
        if step.get("params"):
            problems.append(
                Problem("step-image", (*where, "params"), "params cannot be used without Ref")
            )
        if not step.get("image") and not template_image:
            problems.append(Problem("step-image", (*where, "Image"), "missing field(s)"))
        if step.get("script") and step.get("command"):
            problems.append(
                Problem("script-command", (*where, "script"), "script cannot be used with command")
            )
    name = step.get("name")
    if name and not DNS_LABEL.match(str(name)) and "$(" not in str(name):
        problems.append(
            Problem(
                "name",
                (*where, "name"),
                f'invalid value "{name}"',
                details=f"Task step name must be a valid DNS Label, For more info refer to "
                f"{NAMES_URL}",
            )
        )
    on_error = step.get("onError")
    if on_error and on_error not in ON_ERROR and "$(" not in str(on_error):
        problems.append(
            Problem(
                "on-error",
                (*where, "onError"),
                f'invalid value: "{on_error}"',
                details='Task step onError must be either "continue" or "stopAndFail"',
            )
        )
    for index, mount in enumerate(step.get("volumeMounts") or []):
        path = str(mount.get("mountPath", ""))
        if path.startswith("/tekton/") and not path.startswith("/tekton/home"):
            problems.append(
                Problem(
                    "volume-mount",
                    (*where, "volumeMounts", index, "mountPath"),
                    f"volumeMount cannot be mounted under /tekton/ (volumeMount "
                    f'"{mount.get("name")}" mounted at "{path}")',
                )
            )
        if str(mount.get("name", "")).startswith("tekton-internal-"):
            problems.append(
                Problem(
                    "volume-mount",
                    (*where, "volumeMounts", index, "name"),
                    f'volumeMount name "{mount.get("name")}" cannot start with "tekton-internal-"',
                )
            )
    return problems


def _check_results(results: list[dict[str, Any]] | None, at: Path) -> list[Problem]:
    problems = []
    for index, result in enumerate(results or []):
        name = str(result.get("name", ""))
        if not RESULT_NAME.match(name):
            problems.append(
                Problem(
                    "name",
                    (*at, "results", index, "name"),
                    f'invalid key name "{name}"',
                    details=RESULT_NAME_DETAILS,
                )
            )
    return problems


def _check_workspaces(workspaces: list[dict[str, Any]] | None, at: Path) -> list[Problem]:
    problems = []
    names: set[str] = set()
    paths: set[str] = set()
    for index, workspace in enumerate(workspaces or []):
        name = str(workspace.get("name", ""))
        mount = str(workspace.get("mountPath") or f"/workspace/{name}")
        if name in names:
            problems.append(
                Problem(
                    "unique",
                    (*at, "workspaces", index, "name"),
                    f'workspace name "{name}" must be unique',
                )
            )
        elif mount in paths:
            problems.append(
                Problem(
                    "unique",
                    (*at, "workspaces", index, "mountPath"),
                    f'workspace mount path "{mount}" must be unique',
                )
            )
        names.add(name)
        paths.add(mount)
    return problems


def step_fields(step: dict[str, Any]) -> Iterator[tuple[Path, str, bool]]:
    """The step fields Tekton checks variables in: (relative path, value, array allowed)."""
    for field in ("name", "image", "workingDir", "script", "onError"):
        if isinstance(step.get(field), str):
            yield (field,), step[field], False
    for field in ("command", "args"):
        for index, value in enumerate(step.get(field) or []):
            if isinstance(value, str):
                yield (field, index), value, True
    for index, entry in enumerate(step.get("env") or []):
        if isinstance(entry.get("value"), str):
            yield ("env", index, "value"), entry["value"], False
    for index, mount in enumerate(step.get("volumeMounts") or []):
        for field in ("name", "mountPath", "subPath"):
            if isinstance(mount.get(field), str):
                yield ("volumeMounts", index, field), mount[field], False


def _step_variables(
    step: dict[str, Any], where: Path, params: Params, spec: dict[str, Any]
) -> list[Problem]:
    problems: list[Problem] = []
    results = {str(r.get("name")) for r in spec.get("results") or []}
    for relative, value, array_ok in step_fields(step):
        path = (*where, *relative)
        for expression in EXPRESSION.findall(value):
            head = expression.split(".", 1)[0].split("[", 1)[0]
            if head == "params":
                problems += param_usage(expression, value, path, params, array_ok)
            elif head == "context":
                problems += _context_usage(expression, value, path)
            elif head == "results" and relative == ("script",):
                name = parse(expression).name
                result = name[len("results.") :].rpartition(".")[0]
                # Only what reads as a result name is a variable to Tekton; a shell
                # expansion such as $(results.digest-${i}.path) is left to the shell.
                if RESULT_NAME.match(result) and result not in results:
                    problems.append(
                        Problem("reference", path, f'non-existent variable in "{value}"')
                    )
    return problems


def resolve_param(expression: str, params: Params) -> tuple[str, dict[str, Any] | None, str]:
    """(param name, its spec or None, object key or "") for a ``params…`` expression."""
    reference = parse(expression)
    name = reference.name[len("params.") :]
    if name in params:
        return name, params[name], ""
    parent, _, key = name.rpartition(".")
    if parent in params and param_type(params[parent]) == "object":
        return parent, params[parent], key
    return name, None, ""


def param_usage(
    expression: str, value: str, path: Path, params: Params, array_ok: bool
) -> list[Problem]:
    """A ``$(params…)`` used in a field: declared, a known key, arrays only where they fit."""
    name, spec, key = resolve_param(expression, params)
    reference = parse(expression)
    if spec is None:
        return [Problem("reference", path, f'non-existent variable in "{value}"')]
    kind = param_type(spec)
    if kind == "object":
        properties = spec.get("properties") or {}
        if key and properties and key not in properties:
            return [Problem("reference", path, f'non-existent variable in "{value}"')]
        if not key and not array_ok:
            return [Problem("param-type", path, f'variable type invalid in "{value}"')]
    if kind == "array" and reference.index is None:
        whole = value.strip() == f"$({expression})"
        if not array_ok:
            return [Problem("param-type", path, f'variable type invalid in "{value}"')]
        if not whole:
            return [Problem("param-type", path, f'variable is not properly isolated in "{value}"')]
    return []


def _context_usage(expression: str, value: str, path: Path) -> list[Problem]:
    parts = expression.split(".")
    if len(parts) < 3:
        return []
    scope, field = parts[1], ".".join(parts[2:])
    if (scope == "taskRun" and field not in TASK_RUN_CONTEXT) or (
        scope == "task" and field not in TASK_CONTEXT
    ):
        return [Problem("reference", path, f'non-existent variable in "{value}"')]
    return []


def check_step_action(document: dict[str, Any], flags: FeatureFlags) -> list[Problem]:
    """A StepAction: an image, script or command (not both), valid params and results."""
    spec = document.get("spec") or {}
    at: Path = ("spec",)
    problems = check_params(spec.get("params"), at, flags)
    if not spec.get("image"):
        problems.append(Problem("step-image", (*at, "Image"), "missing field(s)"))
    if spec.get("script") and spec.get("command"):
        problems.append(
            Problem("script-command", (*at, "script"), "script cannot be used with command")
        )
    problems += _check_results(spec.get("results"), at)
    own = params_by_name(spec.get("params"))
    for relative, value, array_ok in step_fields(spec):
        for expression in EXPRESSION.findall(value):
            if expression.startswith("params"):
                problems += param_usage(expression, value, (*at, *relative), own, array_ok)
    return problems


def _gate(feature: str, stability: str, flags: FeatureFlags, path: Path) -> Problem:
    wanted = '"alpha" or "beta"' if stability == "beta" else '"alpha"'
    return Problem(
        "feature-gate",
        path,
        f'{feature} requires "enable-api-fields" feature gate to be {wanted} but it is '
        f'"{flags.enable_api_fields}"',
    )


def _dotted(at: Path) -> str:
    return field_path(at)
