"""``tekton-mlops catalog lint``: Tekton's admission checks, catlin's rules, the project's.

Each finding is ``file:line: rule: message``. The Tekton checks here are the
ones the API server's webhook makes and a JSON Schema cannot: variables that
must resolve, types of param references, the pipeline DAG. The project rules
tie each Task to its step's JSON Schema, so a Task, the runtime and the docs
cannot drift apart.

Example::

    findings = lint_tree(Path("catalog"))
    print("\\n".join(f.format() for f in findings))
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tekton_mlops.catalog.rules import HUB_CATEGORIES, RULES
from tekton_mlops.catalog.source import Document, load
from tekton_mlops.params import load_schema, step_names
from tekton_mlops.results import RESULTS_BUDGET

RUNTIME = "tekton-mlops"
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
PARAM_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_.-]*$")
RESULT_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
VARIABLE = re.compile(r"\$\(([^()]*)\)")
IMAGE = re.compile(
    r"^(?P<host>[^/]+\.[^/]+)/(?P<repo>[a-z0-9._/-]+):(?P<tag>[\w][\w.-]{0,127})"
    r"@sha256:[0-9a-f]{64}$"
)
PLATFORM = re.compile(r"^[a-z0-9]+/[a-z0-9]+$")
TASK_CONTEXT = {
    "taskRun.name",
    "taskRun.namespace",
    "taskRun.uid",
    "taskRun.retry-count",
    "task.name",
    "task.retry-count",
}
PIPELINE_CONTEXT = {
    "pipelineRun.name",
    "pipelineRun.namespace",
    "pipelineRun.uid",
    "pipeline.name",
    "pipelineTask.retries",
}
WORKSPACE_FIELDS = {"path", "bound", "claim", "volume"}


@dataclass(frozen=True)
class Finding:
    path: Path
    line: int
    rule: str
    message: str

    def format(self, style: str = "text") -> str:
        if style == "github":
            return f"::error file={self.path},line={self.line},title={self.rule}::{self.message}"
        return f"{self.path}:{self.line}: {self.rule}: {self.message}"


class Linter:
    """Collects findings for one tree; rules are methods named after their group."""

    def __init__(self, root: Path, runtime_image: str | None) -> None:
        self.root = root
        self.runtime_image = runtime_image
        self.findings: list[Finding] = []
        self.tasks: dict[str, dict[str, Any]] = {}  # catalog Task name -> spec

    def report(self, doc: Document, key: tuple[str | int, ...], rule: str, message: str) -> None:
        assert rule in RULES, rule
        self.findings.append(Finding(doc.path, doc.line(*key), rule, message))

    # --- entry points -------------------------------------------------------------------

    def lint(self, files: list[Path]) -> list[Finding]:
        documents: list[Document] = []
        for path in files:
            try:
                documents += load(path)
            except yaml.YAMLError as exc:
                mark = getattr(exc, "problem_mark", None)
                line = mark.line + 1 if mark else 1
                self.findings.append(Finding(path, line, "yaml", str(exc).splitlines()[0]))
        for doc in documents:  # Tasks first: pipelines and runs are checked against them
            if isinstance(doc.data, dict) and doc.data.get("kind") == "Task" and _is_resource(doc):
                self.tasks[doc.data.get("metadata", {}).get("name", "")] = doc.data.get("spec", {})
        for doc in documents:
            self.document(doc)
        return sorted(self.findings, key=lambda f: (str(f.path), f.line, f.rule))

    def document(self, doc: Document) -> None:
        data = doc.data
        if not isinstance(data, dict):
            return
        kind = data.get("kind", "")
        if (
            kind in ("Task", "Pipeline", "TaskRun", "PipelineRun")
            and data.get("apiVersion") != "tekton.dev/v1"
        ):
            self.report(
                doc,
                ("apiVersion",),
                "api-version",
                f"{kind} must be tekton.dev/v1, not {data.get('apiVersion')}",
            )
        spec = data.get("spec") or {}
        if kind in ("Task", "Pipeline") and _is_resource(doc):
            self.catalog_resource(doc, kind)
        if kind == "Task":
            self.task(doc, spec, ("spec",))
        elif kind == "Pipeline":
            self.pipeline(doc, spec, ("spec",))
        elif kind == "TaskRun":
            self.run(doc, spec, "taskRef", "taskSpec")
        elif kind == "PipelineRun":
            self.run(doc, spec, "pipelineRef", "pipelineSpec")

    # --- (a) structure and (c) catlin ----------------------------------------------------

    def catalog_resource(self, doc: Document, kind: str) -> None:
        meta = doc.data.get("metadata") or {}
        name = meta.get("name", "")
        labels = meta.get("labels") or {}
        annotations = meta.get("annotations") or {}
        version = str(labels.get("app.kubernetes.io/version", ""))
        parts = doc.path.parts
        expected = (kind.lower(), name, version, f"{name}.yaml")
        if tuple(parts[-4:]) != expected:
            self.report(
                doc,
                ("metadata", "name"),
                "path",
                f"expected path {'/'.join(expected)} for {kind} {name!r} "
                f"version {version!r}, found {'/'.join(parts[-4:])}",
            )
        for key in (
            "tekton.dev/pipelines.minVersion",
            "tekton.dev/categories",
            "tekton.dev/displayName",
            "tekton.dev/tags",
            "tekton.dev/platforms",
        ):
            if not str(annotations.get(key, "")).strip():
                self.report(
                    doc, ("metadata", "annotations"), "metadata", f"annotation {key} is missing"
                )
        if not version:
            self.report(
                doc,
                ("metadata", "labels"),
                "metadata",
                "label app.kubernetes.io/version is missing",
            )
        for category in _split(annotations.get("tekton.dev/categories", "")):
            if category not in HUB_CATEGORIES:
                self.report(
                    doc,
                    ("metadata", "annotations", "tekton.dev/categories"),
                    "category",
                    f"{category!r} is not a Tekton Hub category",
                )
        for platform in _split(annotations.get("tekton.dev/platforms", "")):
            if not PLATFORM.match(platform):
                self.report(
                    doc,
                    ("metadata", "annotations", "tekton.dev/platforms"),
                    "platforms",
                    f"{platform!r} is not os/arch",
                )
        minimum = str(annotations.get("tekton.dev/pipelines.minVersion", ""))
        if minimum and not re.match(r"^\d+\.\d+\.\d+$", minimum):
            self.report(
                doc,
                ("metadata", "annotations", "tekton.dev/pipelines.minVersion"),
                "min-version",
                f"{minimum!r} is not X.Y.Z (tkn compares it as a string)",
            )
        description = str((doc.data.get("spec") or {}).get("description", ""))
        lines = description.split("\n")
        if len(lines) < 3 or not lines[0].strip() or lines[1].strip() or not lines[2].strip():
            self.report(
                doc,
                ("spec", "description"),
                "description",
                "spec.description must be a summary line, a blank line, then the body",
            )
        self.layout(doc, name)

    def layout(self, doc: Document, name: str) -> None:
        version_dir = doc.path.parent
        missing = [p for p in ("README.md", "tests/run.yaml") if not (version_dir / p).is_file()]
        if not list((version_dir / "samples").glob("*.yaml")):
            missing.append("samples/*.yaml")
        if not (version_dir.parent / "CHANGELOG.md").is_file():
            missing.append(f"../CHANGELOG.md (for {name})")
        for item in missing:
            self.report(doc, ("metadata", "name"), "layout", f"{item} is missing beside the YAML")

    # --- Tasks -----------------------------------------------------------------------------

    def task(self, doc: Document, spec: dict[str, Any], at: tuple[str | int, ...]) -> None:
        params = {p.get("name"): p for p in spec.get("params") or []}
        results = {r.get("name"): r for r in spec.get("results") or []}
        workspaces = {w.get("name") for w in spec.get("workspaces") or []}
        self.names(doc, spec, at)
        steps = spec.get("steps") or []
        template = spec.get("stepTemplate") or {}
        used: set[str] = set()
        scopes = [("steps", i, s) for i, s in enumerate(steps)]
        scopes += [("sidecars", i, s) for i, s in enumerate(spec.get("sidecars") or [])]
        for group, index, step in scopes:
            where = (*at, group, index)
            if step.get("script") and step.get("command"):
                self.report(
                    doc,
                    where,
                    "script-command",
                    f"{group[:-1]} {step.get('name')!r} has both script and command",
                )
            if "$(params." in str(step.get("script", "")):
                self.report(
                    doc,
                    (*where, "script"),
                    "script-params",
                    f"{group[:-1]} {step.get('name')!r} puts $(params…) in its script; "
                    "pass values as args or env",
                )
            image = step.get("image") or template.get("image")
            if "ref" in step:
                pass  # a StepAction brings its own image
            elif not image:
                self.report(
                    doc, where, "step-image", f"{group[:-1]} {step.get('name')!r} names no image"
                )
            elif "$(" not in image and not IMAGE.match(image):
                self.report(
                    doc,
                    (*where, "image"),
                    "image",
                    f"{image!r} is not host/repo:tag@sha256:<digest>",
                )
            elif ":latest@" in image:
                self.report(doc, (*where, "image"), "image", f"{image!r} uses the latest tag")
        for key, text in _strings(spec, at):
            for expression in VARIABLE.findall(text):
                used |= self.task_variable(doc, key, expression, params, results, workspaces)
        for name in params:
            if name not in used:
                self.report(doc, (*at, "params"), "param-used", f"param {name!r} is never used")
        for index, step in enumerate(steps):
            self.runtime_step(doc, (*at, "steps", index), step, template, spec)

    def task_variable(
        self,
        doc: Document,
        key: tuple[str | int, ...],
        expression: str,
        params: dict[str, Any],
        results: dict[str, Any],
        workspaces: set[str],
    ) -> set[str]:
        head, _, rest = expression.partition(".")
        if head == "params" or expression.startswith("params["):
            name, accessor = _param_reference(expression)
            if name not in params:
                self.report(doc, key, "reference", f"$({expression}): no param {name!r}")
                return set()
            self.param_type(doc, key, expression, params[name], accessor)
            return {name}
        if head == "results":
            name, _, field = rest.rpartition(".")
            if name not in results or field != "path":
                self.report(doc, key, "reference", f"$({expression}): no result {name!r} path")
        elif head == "workspaces":
            name, _, field = rest.rpartition(".")
            if name not in workspaces or field not in WORKSPACE_FIELDS:
                self.report(doc, key, "reference", f"$({expression}): no workspace {name!r}")
        elif head == "context" and rest not in TASK_CONTEXT:
            self.report(doc, key, "reference", f"$({expression}): unknown Task context variable")
        # Anything else (e.g. a shell's $(pwd)) is not Tekton's to check.
        return set()

    def param_type(
        self,
        doc: Document,
        key: tuple[str | int, ...],
        expression: str,
        param: dict[str, Any],
        accessor: str,
    ) -> None:
        kind = param.get("type", "string")
        if accessor.startswith("[") and kind != "array":
            self.report(
                doc, key, "param-type", f"$({expression}): {kind} param indexed like an array"
            )
        elif accessor.startswith(".") and kind != "object":
            self.report(doc, key, "param-type", f"$({expression}): {kind} param has no keys")
        elif accessor.startswith(".") and accessor[1:] not in (param.get("properties") or {}):
            self.report(doc, key, "param-type", f"$({expression}): no key {accessor[1:]!r}")

    def names(self, doc: Document, spec: dict[str, Any], at: tuple[str | int, ...]) -> None:
        checks = (
            ("params", PARAM_NAME),
            ("results", RESULT_NAME),
            ("workspaces", DNS_LABEL),
            ("steps", DNS_LABEL),
            ("tasks", DNS_LABEL),
            ("finally", DNS_LABEL),
        )
        seen_tasks: set[str] = set()
        for field, pattern in checks:
            seen: set[str] = set()
            for index, item in enumerate(spec.get(field) or []):
                name = str((item or {}).get("name", ""))
                if name and not pattern.match(name):
                    self.report(
                        doc,
                        (*at, field, index, "name"),
                        "name",
                        f"{'finally task' if field == 'finally' else field[:-1]} name "
                        f"{name!r} is invalid",
                    )
                bucket = seen_tasks if field in ("tasks", "finally") else seen
                if name and name in bucket:
                    self.report(
                        doc,
                        (*at, field, index, "name"),
                        "unique",
                        f"{name!r} appears twice in {field}",
                    )
                bucket.add(name)
        name = str((doc.data.get("metadata") or {}).get("name", ""))
        if name and not DNS_LABEL.match(name):
            self.report(doc, ("metadata", "name"), "name", f"resource name {name!r} is invalid")

    # --- project rules: a Task step and its schema ----------------------------------------

    def runtime_step(
        self,
        doc: Document,
        at: tuple[str | int, ...],
        step: dict[str, Any],
        template: dict[str, Any],
        spec: dict[str, Any],
    ) -> None:
        command = step.get("command") or []
        if not command or command[0] != RUNTIME:
            return
        if len(command) != 2 or command[1] not in step_names():
            self.report(
                doc,
                (*at, "command"),
                "step-command",
                f"command {command} is not [{RUNTIME}, <one of {', '.join(step_names())}>]",
            )
            return
        if self.runtime_image and step.get("image") != self.runtime_image:
            self.report(
                doc,
                (*at, "image"),
                "runtime-image",
                f"image must be the pinned runtime {self.runtime_image}",
            )
        security = {
            **(template.get("securityContext") or {}),
            **(step.get("securityContext") or {}),
        }
        drops = (security.get("capabilities") or {}).get("drop") or []
        if not (
            security.get("runAsNonRoot") is True
            and security.get("runAsUser") == 65532
            and security.get("allowPrivilegeEscalation") is False
            and "ALL" in drops
        ):
            self.report(
                doc,
                at,
                "security-context",
                f"step {step.get('name')!r} must set runAsNonRoot: true, runAsUser: 65532, "
                "allowPrivilegeEscalation: false, capabilities.drop: [ALL]",
            )
        resources = step.get("computeResources") or template.get("computeResources") or {}
        requests, limits = resources.get("requests") or {}, resources.get("limits") or {}
        if not ({"cpu", "memory"} <= set(requests) and "memory" in limits):
            self.report(
                doc,
                at,
                "compute-resources",
                f"step {step.get('name')!r} must request cpu and memory and limit memory",
            )
        if doc.data.get("kind") == "Task" and _is_resource(doc):
            self.schema_contract(doc, at, step, spec, command[1])

    def schema_contract(
        self,
        doc: Document,
        at: tuple[str | int, ...],
        step: dict[str, Any],
        spec: dict[str, Any],
        step_name: str,
    ) -> None:
        schema = load_schema(step_name)
        params = {p.get("name"): p for p in spec.get("params") or []}
        args = [str(a) for a in step.get("args") or []]
        expected_params = {n: p for n, p in schema.properties.items() if "x-workspace" not in p}
        for name in sorted(set(expected_params) - set(params)):
            self.report(
                doc,
                ("spec", "params"),
                "schema-params",
                f"the {step_name} schema has param {name!r}; the Task does not",
            )
        for index, (name, param) in enumerate(params.items()):
            where = ("spec", "params", index)
            prop = expected_params.get(name)
            if prop is None:
                self.report(
                    doc, where, "schema-params", f"param {name!r} is not in the {step_name} schema"
                )
                continue
            if param.get("type", "string") != "string":
                self.report(
                    doc,
                    (*where, "type"),
                    "schema-params",
                    f"param {name!r} must be a string (the runtime parses it by schema)",
                )
            want = " ".join(str(prop.get("description", "")).split())
            if " ".join(str(param.get("description", "")).split()) != want:
                self.report(
                    doc,
                    (*where, "description"),
                    "schema-params",
                    f"param {name!r} description differs from the schema's: {want!r}",
                )
            if "default" in prop and param.get("default") != _as_text(prop["default"]):
                self.report(
                    doc,
                    (*where, "default"),
                    "schema-params",
                    f"param {name!r} default must be {_as_text(prop['default'])!r}",
                )
            if "default" not in prop and "default" in param:
                self.report(
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
                self.report(
                    doc, (*at, "args"), "schema-args", f"args must include --{name}={source}"
                )
        self.results_contract(doc, spec, step_name)

    def results_contract(self, doc: Document, spec: dict[str, Any], step_name: str) -> None:
        declared = {r.name: r for r in load_schema(step_name).results}
        results = {r.get("name"): r for r in spec.get("results") or []}
        for name in sorted(set(declared) - set(results)):
            self.report(
                doc,
                ("spec", "results"),
                "results-match",
                f"{step_name} writes result {name!r}; the Task does not declare it",
            )
        for index, (name, result) in enumerate(results.items()):
            spec_result = declared.get(name)
            if spec_result is None:
                self.report(
                    doc,
                    ("spec", "results", index),
                    "results-match",
                    f"result {name!r} is never written by {step_name}",
                )
                continue
            kind = result.get("type", "string")
            keys = set((result.get("properties") or {}).keys())
            if kind != spec_result.type or (
                kind == "object" and keys != set(spec_result.properties)
            ):
                self.report(
                    doc,
                    ("spec", "results", index),
                    "results-match",
                    f"result {name!r} must be {spec_result.type}"
                    + (
                        f" with {', '.join(spec_result.properties)}"
                        if spec_result.properties
                        else ""
                    ),
                )
        worst = sum(r.max_bytes + len(r.name) + 30 for r in declared.values()) + 2
        if worst > RESULTS_BUDGET:
            self.report(
                doc,
                ("spec", "results"),
                "results-budget",
                f"the results can reach {worst} bytes, over Tekton's {RESULTS_BUDGET}",
            )

    # --- Pipelines -------------------------------------------------------------------------

    def pipeline(self, doc: Document, spec: dict[str, Any], at: tuple[str | int, ...]) -> None:
        self.names(doc, spec, at)
        params = {p.get("name"): p for p in spec.get("params") or []}
        workspaces = {w.get("name") for w in spec.get("workspaces") or []}
        tasks = {t.get("name"): t for t in spec.get("tasks") or []}
        finals = {t.get("name"): t for t in spec.get("finally") or []}
        graph: dict[str, set[str]] = {name: set() for name in tasks}
        for group, members in (("tasks", tasks), ("finally", finals)):
            for index, (name, task) in enumerate(members.items()):
                where = (*at, group, index)
                for target in task.get("runAfter") or []:
                    if group == "finally":
                        self.report(
                            doc,
                            (*where, "runAfter"),
                            "run-after",
                            f"finally task {name!r} cannot have runAfter",
                        )
                    elif target == name or target not in tasks:
                        self.report(
                            doc,
                            (*where, "runAfter"),
                            "run-after",
                            f"task {name!r} runs after unknown task {target!r}",
                        )
                    else:
                        graph[name].add(target)
                for workspace in task.get("workspaces") or []:
                    if workspace.get("workspace") not in workspaces:
                        self.report(
                            doc,
                            (*where, "workspaces"),
                            "reference",
                            f"task {name!r} binds unknown workspace {workspace.get('workspace')!r}",
                        )
                for key, text in _strings(task, where):
                    for expression in VARIABLE.findall(text):
                        depends = self.pipeline_variable(
                            doc,
                            key,
                            expression,
                            params,
                            workspaces,
                            tasks,
                            group == "finally",
                            name,
                        )
                        if group == "tasks" and depends:
                            graph[name].add(depends)
                if "taskSpec" in task:
                    self.task(doc, task["taskSpec"], (*where, "taskSpec"))
                self.task_call(doc, where, task)
        for index, result in enumerate(spec.get("results") or []):
            for key, text in _strings(result, (*at, "results", index)):
                for expression in VARIABLE.findall(text):
                    self.pipeline_variable(
                        doc, key, expression, params, workspaces, tasks, False, ""
                    )
        if cycle := _cycle(graph):
            self.report(doc, (*at, "tasks"), "dag", f"tasks form a cycle: {' -> '.join(cycle)}")

    def pipeline_variable(
        self,
        doc: Document,
        key: tuple[str | int, ...],
        expression: str,
        params: dict[str, Any],
        workspaces: set[str],
        tasks: dict[str, Any],
        in_finally: bool,
        current: str,
    ) -> str:
        """Check one $(…) in a pipeline; return the task it depends on, if any."""
        head, _, rest = expression.partition(".")
        if head == "params" or expression.startswith("params["):
            name, accessor = _param_reference(expression)
            if name not in params:
                self.report(doc, key, "reference", f"$({expression}): no pipeline param {name!r}")
            else:
                self.param_type(doc, key, expression, params[name], accessor)
        elif head == "tasks":
            if rest == "status" or rest.endswith(".status") and rest.count(".") == 1:
                if not in_finally:
                    self.report(
                        doc,
                        key,
                        "finally-only",
                        f"$({expression}) is only available in finally tasks",
                    )
                name = rest.split(".")[0]
                if rest != "status" and name not in tasks:
                    self.report(doc, key, "reference", f"$({expression}): no task {name!r}")
                return ""
            if ".matrix." in rest:  # $(tasks.<t>.matrix.length), $(tasks.<t>.matrix.<r>.length)
                name = rest.split(".matrix.")[0]
                if name not in tasks:
                    self.report(doc, key, "reference", f"$({expression}): no task {name!r}")
                    return ""
                if "matrix" not in tasks[name]:
                    self.report(
                        doc, key, "reference", f"$({expression}): task {name!r} has no matrix"
                    )
                return name
            name, _, tail = rest.partition(".results.")
            result = tail.split(".")[0].split("[")[0]
            if name not in tasks:
                self.report(doc, key, "reference", f"$({expression}): no task {name!r}")
                return ""
            if name == current:
                self.report(doc, key, "dag", f"$({expression}): task {name!r} uses its own result")
                return ""
            declared = self._declared_results(tasks[name])
            if not tail or (declared is not None and result not in declared):
                self.report(
                    doc,
                    key,
                    "reference",
                    f"$({expression}): task {name!r} has no result {result!r}",
                )
            return name
        elif head == "workspaces":
            name, _, field = rest.rpartition(".")
            if name not in workspaces or field != "bound":
                self.report(
                    doc, key, "reference", f"$({expression}): no pipeline workspace {name!r}"
                )
        elif head == "context" and rest not in PIPELINE_CONTEXT:
            self.report(
                doc, key, "reference", f"$({expression}): unknown Pipeline context variable"
            )
        return ""

    def _referenced_task(self, task: dict[str, Any]) -> dict[str, Any] | None:
        """The spec of a pipeline task: inline, or a catalog Task it references."""
        if "taskSpec" in task:
            spec: dict[str, Any] = task["taskSpec"]
            return spec
        ref = task.get("taskRef") or {}
        if ref.get("name") in self.tasks:
            return self.tasks[ref["name"]]
        resolver_params = {p.get("name"): p.get("value") for p in ref.get("params") or []}
        path = str(resolver_params.get("pathInRepo") or resolver_params.get("name") or "")
        stem = Path(path).stem if path else ""
        return self.tasks.get(stem)

    def _declared_results(self, task: dict[str, Any]) -> set[str] | None:
        spec = self._referenced_task(task)
        return None if spec is None else {r.get("name") for r in spec.get("results") or []}

    def task_call(self, doc: Document, at: tuple[str | int, ...], task: dict[str, Any]) -> None:
        """A pipeline task (or run) passes only params its catalog Task declares."""
        spec = self._referenced_task(task)
        if spec is None or "taskSpec" in task:
            return
        declared = {p.get("name") for p in spec.get("params") or []}
        required = {p.get("name") for p in spec.get("params") or [] if "default" not in p}
        given = {p.get("name") for p in task.get("params") or []}
        for name in sorted(given - declared):
            self.report(
                doc,
                (*at, "params"),
                "run-params",
                f"{task.get('name', 'run')!r} passes {name!r}, which the Task does not declare",
            )
        for name in sorted(required - given):
            self.report(
                doc,
                (*at, "params"),
                "run-params",
                f"{task.get('name', 'run')!r} does not pass required param {name!r}",
            )

    # --- runs (samples and tests) ----------------------------------------------------------

    def run(self, doc: Document, spec: dict[str, Any], ref_field: str, spec_field: str) -> None:
        if spec_field in spec:
            inline = spec[spec_field]
            if spec_field == "taskSpec":
                self.task(doc, inline, ("spec", spec_field))
            else:
                self.pipeline(doc, inline, ("spec", spec_field))
        elif ref_field == "taskRef":
            self.task_call(
                doc,
                ("spec",),
                {"taskRef": spec.get("taskRef"), "params": spec.get("params"), "name": "TaskRun"},
            )


def _is_resource(doc: Document) -> bool:
    """A catalog resource file (not a sample or test run).

    Either it sits where resources sit (<kind>/<name>/<version>/<file>.yaml), or it is named
    after its resource outside samples/ and tests/; the path rule then says where it belongs.
    """
    in_layout = doc.path.parent.parent.parent.name in ("task", "pipeline")
    named_like_one = doc.path.parent.name not in ("samples", "tests") and doc.path.stem == str(
        (doc.data.get("metadata") or {}).get("name", "")
    )
    return in_layout or named_like_one


def _split(value: Any) -> list[str]:
    return [item.strip() for item in str(value or "").split(",") if item.strip()]


def _as_text(value: Any) -> str:
    import json

    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else json.dumps(value)


def _param_reference(expression: str) -> tuple[str, str]:
    """``params.x[*]`` -> ("x", "[*]"); ``params['a.b'].k`` -> ("a.b", ".k")."""
    rest = expression[len("params") :]
    if rest.startswith("["):
        match = re.match(r"^\[(['\"])(.+?)\1\](.*)$", rest)
        return (match.group(2), match.group(3)) if match else (rest, "")
    body = rest[1:]
    match = re.match(r"^([^.\[]+)(.*)$", body)
    return (match.group(1), match.group(2)) if match else (body, "")


def _strings(value: Any, at: tuple[str | int, ...]) -> Iterator[tuple[tuple[str | int, ...], str]]:
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


def _cycle(graph: dict[str, set[str]]) -> list[str]:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return []

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return []


def yaml_files(paths: list[Path]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files += sorted(p for p in path.rglob("*.y*ml") if not p.name.startswith("artifacthub"))
        else:
            files.append(path)
    return files


def runtime_image(root: Path) -> str | None:
    pinned = root / "runtime-image.txt"
    return pinned.read_text().strip() if pinned.is_file() else None


def lint_tree(root: Path, paths: list[Path] | None = None) -> list[Finding]:
    """Lint ``paths`` (default: the whole catalog under ``root``)."""
    files = yaml_files(paths or [root])
    # Pipelines and runs are checked against every catalog Task, even when only they are named.
    context = [p for p in yaml_files([root]) if p not in files] if paths else []
    linter = Linter(root, runtime_image(root))
    findings = linter.lint(files + context)
    names = {str(f) for f in files}
    return [f for f in findings if str(f.path) in names]
