"""Typed views of Tekton documents, read with strict field checks.

:func:`read` decodes a document as the API server would (unknown fields refused, field
names matched without regard to case, see ``schema``) and returns a :class:`Resource`
whose ``task``, ``pipeline``, ``run`` and ``step_action`` views give the parts code
reads by name instead of by dictionary key. The views are read-only windows on the
decoded document: they never copy or change it.

Example::

    resource = read(yaml.safe_load(open("pipeline.yaml")))
    for task in resource.pipeline.tasks:
        print(task.name, task.run_after, [p.name for p in task.params])
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tekton_mlops.tekton.defaults import param_type, step_name, workspace_mount_path
from tekton_mlops.tekton.schema import decode_errors

KINDS = ("Task", "Pipeline", "TaskRun", "PipelineRun", "StepAction", "CustomRun")


class Rejected(ValueError):
    """The API server would not accept the document; ``errors`` in its words."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = errors


@dataclass(frozen=True)
class ParamSpec:
    raw: dict[str, Any]

    @property
    def name(self) -> str:
        return str(self.raw.get("name", ""))

    @property
    def type(self) -> str:
        return param_type(self.raw)

    @property
    def has_default(self) -> bool:
        return "default" in self.raw

    @property
    def default(self) -> Any:
        return self.raw.get("default")

    @property
    def properties(self) -> dict[str, Any]:
        return dict(self.raw.get("properties") or {})


@dataclass(frozen=True)
class Param:
    """A value given to a param (a run's, a pipeline task's, a step's)."""

    raw: dict[str, Any]

    @property
    def name(self) -> str:
        return str(self.raw.get("name", ""))

    @property
    def value(self) -> Any:
        return self.raw.get("value")


@dataclass(frozen=True)
class WorkspaceDeclaration:
    raw: dict[str, Any]

    @property
    def name(self) -> str:
        return str(self.raw.get("name", ""))

    @property
    def mount_path(self) -> str:
        return workspace_mount_path(self.raw)

    @property
    def optional(self) -> bool:
        return bool(self.raw.get("optional"))

    @property
    def read_only(self) -> bool:
        return bool(self.raw.get("readOnly"))


@dataclass(frozen=True)
class Step:
    raw: dict[str, Any]
    index: int

    @property
    def name(self) -> str:
        return step_name(self.raw, self.index)

    @property
    def container(self) -> str:
        return f"step-{self.name}"

    @property
    def references_action(self) -> bool:
        return "ref" in self.raw


@dataclass(frozen=True)
class TaskSpec:
    raw: dict[str, Any]

    @property
    def params(self) -> list[ParamSpec]:
        return [ParamSpec(p) for p in self.raw.get("params") or []]

    @property
    def results(self) -> list[str]:
        return [str(r.get("name")) for r in self.raw.get("results") or []]

    @property
    def workspaces(self) -> list[WorkspaceDeclaration]:
        return [WorkspaceDeclaration(w) for w in self.raw.get("workspaces") or []]

    @property
    def steps(self) -> list[Step]:
        return [Step(s, i) for i, s in enumerate(self.raw.get("steps") or [])]

    @property
    def sidecars(self) -> list[Step]:
        return [Step(s, i) for i, s in enumerate(self.raw.get("sidecars") or [])]

    @property
    def step_template(self) -> dict[str, Any]:
        return dict(self.raw.get("stepTemplate") or {})


@dataclass(frozen=True)
class PipelineTask:
    raw: dict[str, Any]
    in_finally: bool = False

    @property
    def name(self) -> str:
        return str(self.raw.get("name", ""))

    @property
    def params(self) -> list[Param]:
        return [Param(p) for p in self.raw.get("params") or []]

    @property
    def run_after(self) -> list[str]:
        return [str(n) for n in self.raw.get("runAfter") or []]

    @property
    def task_spec(self) -> TaskSpec | None:
        inline = self.raw.get("taskSpec")
        return TaskSpec(inline) if isinstance(inline, dict) else None

    @property
    def task_ref(self) -> dict[str, Any] | None:
        ref = self.raw.get("taskRef")
        return dict(ref) if isinstance(ref, dict) else None

    @property
    def retries(self) -> int:
        return int(self.raw.get("retries") or 0)

    @property
    def matrixed(self) -> bool:
        return "matrix" in self.raw


@dataclass(frozen=True)
class PipelineSpec:
    raw: dict[str, Any]

    @property
    def params(self) -> list[ParamSpec]:
        return [ParamSpec(p) for p in self.raw.get("params") or []]

    @property
    def workspaces(self) -> list[WorkspaceDeclaration]:
        return [WorkspaceDeclaration(w) for w in self.raw.get("workspaces") or []]

    @property
    def tasks(self) -> list[PipelineTask]:
        return [PipelineTask(t) for t in self.raw.get("tasks") or []]

    @property
    def finally_tasks(self) -> list[PipelineTask]:
        return [PipelineTask(t, in_finally=True) for t in self.raw.get("finally") or []]

    @property
    def results(self) -> list[Param]:
        return [Param(r) for r in self.raw.get("results") or []]


@dataclass(frozen=True)
class RunSpec:
    """A TaskRun's or PipelineRun's spec: what it runs and what it is given."""

    raw: dict[str, Any]
    kind: str

    @property
    def params(self) -> list[Param]:
        return [Param(p) for p in self.raw.get("params") or []]

    @property
    def reference(self) -> dict[str, Any] | None:
        ref = self.raw.get("taskRef" if self.kind == "TaskRun" else "pipelineRef")
        return dict(ref) if isinstance(ref, dict) else None

    @property
    def task_spec(self) -> TaskSpec | None:
        inline = self.raw.get("taskSpec")
        return TaskSpec(inline) if self.kind == "TaskRun" and isinstance(inline, dict) else None

    @property
    def pipeline_spec(self) -> PipelineSpec | None:
        inline = self.raw.get("pipelineSpec")
        if self.kind == "PipelineRun" and isinstance(inline, dict):
            return PipelineSpec(inline)
        return None

    @property
    def workspace_bindings(self) -> list[dict[str, Any]]:
        return [dict(b) for b in self.raw.get("workspaces") or []]


@dataclass(frozen=True)
class Resource:
    """A decoded Tekton document."""

    raw: dict[str, Any]

    @property
    def kind(self) -> str:
        return str(self.raw.get("kind", ""))

    @property
    def api_version(self) -> str:
        return str(self.raw.get("apiVersion", ""))

    @property
    def name(self) -> str:
        return str((self.raw.get("metadata") or {}).get("name", ""))

    @property
    def spec(self) -> dict[str, Any]:
        return self.raw.setdefault("spec", {})  # type: ignore[no-any-return]

    @property
    def task(self) -> TaskSpec:
        self._expect("Task")
        return TaskSpec(self.spec)

    @property
    def pipeline(self) -> PipelineSpec:
        self._expect("Pipeline")
        return PipelineSpec(self.spec)

    @property
    def run(self) -> RunSpec:
        if self.kind not in ("TaskRun", "PipelineRun"):
            raise TypeError(f"a {self.kind} is not a run")
        return RunSpec(self.spec, self.kind)

    @property
    def step_action(self) -> Step:
        self._expect("StepAction")
        return Step(self.spec, 0)

    def _expect(self, kind: str) -> None:
        if self.kind != kind:
            raise TypeError(f"a {self.kind} is not a {kind}")


def read(document: dict[str, Any]) -> Resource:
    """A Tekton document decoded strictly (raises :class:`Rejected` as the API server would)."""
    if document.get("kind") not in KINDS:
        raise Rejected([f"{document.get('kind')!r} is not a Tekton kind this reads"])
    errors = decode_errors(document)
    if errors:
        raise Rejected(errors)
    return Resource(document)
