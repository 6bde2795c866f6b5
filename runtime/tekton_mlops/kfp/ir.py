"""Reading KFP's pipeline IR: the ``PipelineSpec`` YAML the ``kfp`` 2.x compiler writes.

The file holds one document, the PipelineSpec, and a second one when the pipeline uses
``kfp-kubernetes`` (a ``PlatformSpec`` with per-executor Kubernetes settings). The parts
read here (field names as protojson spells them, see ``pipeline_spec.proto``)::

    pipelineInfo: {name, displayName, description}
    root: {inputDefinitions, outputDefinitions, dag: {tasks, outputs}}
    components: {comp-x: {executorLabel | dag, inputDefinitions, outputDefinitions}}
    deploymentSpec: {executors: {exec-x: {container: {image, command, args, env, resources}
                                          | importer: {artifactUri, typeSchema, metadata}}}}
    schemaVersion: 2.1.0

Example::

    spec = load(Path("pipeline.yaml").read_text())
    spec.name, spec.component("comp-train").executor
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tekton_mlops.kfp.errors import CompileError
from tekton_mlops.yamlio import load_all

SCHEMA_VERSIONS = ("2.0.0", "2.1.0")


@dataclass(frozen=True)
class Component:
    """One entry of ``components`` (or ``root``): an executor or a sub-DAG."""

    name: str
    data: dict[str, Any]
    executor: dict[str, Any] | None
    platform: dict[str, Any]

    @property
    def dag(self) -> dict[str, Any] | None:
        dag = self.data.get("dag")
        return dag if isinstance(dag, dict) else None

    @property
    def executor_label(self) -> str:
        return str(self.data.get("executorLabel", ""))

    def inputs(self, kind: str) -> dict[str, Any]:
        """``parameters`` or ``artifacts`` of the input definitions."""
        found = (self.data.get("inputDefinitions") or {}).get(kind) or {}
        return dict(found)

    def outputs(self, kind: str) -> dict[str, Any]:
        found = (self.data.get("outputDefinitions") or {}).get(kind) or {}
        return dict(found)


@dataclass
class PipelineSpec:
    """The IR of one pipeline (with its platform spec, when there is one)."""

    data: dict[str, Any]
    platform: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return str((self.data.get("pipelineInfo") or {}).get("name") or "pipeline")

    @property
    def display_name(self) -> str:
        return str((self.data.get("pipelineInfo") or {}).get("displayName") or "")

    @property
    def description(self) -> str:
        return str((self.data.get("pipelineInfo") or {}).get("description") or "")

    @property
    def sdk_version(self) -> str:
        return str(self.data.get("sdkVersion") or "")

    @property
    def root(self) -> Component:
        return Component("root", dict(self.data.get("root") or {}), None, {})

    def component(self, name: str) -> Component:
        components = self.data.get("components") or {}
        if name not in components:
            raise CompileError(f"the IR names component {name} but does not define it")
        data = dict(components[name] or {})
        label = str(data.get("executorLabel") or "")
        executor = None
        if label:
            executors = (self.data.get("deploymentSpec") or {}).get("executors") or {}
            if label not in executors:
                raise CompileError(f"component {name} names executor {label}, which is missing")
            executor = dict(executors[label] or {})
        platform = self._platform_executor(label) if label else {}
        return Component(name, data, executor, platform)

    def _platform_executor(self, label: str) -> dict[str, Any]:
        kubernetes = (self.platform.get("platforms") or {}).get("kubernetes") or {}
        executors = (kubernetes.get("deploymentSpec") or {}).get("executors") or {}
        return dict(executors.get(label) or {})


def load(text: str, source: str = "the IR") -> PipelineSpec:
    """The PipelineSpec (and PlatformSpec) of an IR file; CompileError when it is not one."""
    try:
        documents = [d for d in load_all(text) if d is not None]
    except Exception as exc:  # yaml.YAMLError and friends: any unreadable file
        raise CompileError(f"{source} is not YAML: {str(exc).splitlines()[0]}") from None
    if not documents or not all(isinstance(d, dict) for d in documents):
        raise CompileError(f"{source} is not a KFP pipeline IR (no YAML mapping)")
    spec = next((d for d in documents if "root" in d or "pipelineInfo" in d), None)
    if spec is None:
        if any(d.get("kind") in ("Pipeline", "PipelineRun") for d in documents):
            raise CompileError(f"{source} is Tekton YAML already; run it with tekton-mlops run")
        raise CompileError(f"{source} is not a KFP pipeline IR (no root or pipelineInfo)")
    platform: dict[str, Any] = next((d for d in documents if "platforms" in d), {})
    version = str(spec.get("schemaVersion") or "")
    if version not in SCHEMA_VERSIONS:
        raise CompileError(
            f"{source}: schemaVersion {version or '(none)'} is not one this compiler reads "
            f"({', '.join(SCHEMA_VERSIONS)}); compile with the kfp 2.x SDK"
        )
    if not isinstance(spec.get("root"), dict) or not isinstance(
        (spec.get("root") or {}).get("dag"), dict
    ):
        raise CompileError(f"{source}: the root of a pipeline IR must be a DAG")
    return PipelineSpec(spec, platform)
