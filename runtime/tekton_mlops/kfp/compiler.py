"""KFP pipeline IR -> a ``tekton.dev/v1`` Pipeline and a PipelineRun that starts it.

Every task of the Pipeline embeds its Task (``taskSpec``) and mounts the ``kfp``
workspace, the run's store (``store.py``). Its steps run ``tekton-mlops kfp launch``
from the runtime image around the component:

===================  ==========================================================================
leaf kind            steps
===================  ==========================================================================
lightweight Python   ``run``: the launcher runs the function with KFP's executor
container            ``prepare`` (inputs, placeholders -> step results), ``main`` (the
                     component's image, argv from ``$(steps.prepare.results.*[*])``), ``publish``
importer             ``resolve`` (the URI), ``fetch`` (``tekton-mlops fetch-data``), ``publish``
(in a ParallelFor    a ``slots`` sidecar holds the iteration's slot while the steps run, the
with parallelism)    first step waits for it; a lightweight component's ``run`` holds its own
loop driver          ``iterations``: the iteration keys as an array result for the matrix
condition            ``condition``: ``true``/``false`` for ``when``
pipeline outputs     ``outputs`` (a ``finally`` task): the outputs as Pipeline results
===================  ==========================================================================

Everything written is admitted by ``tekton.admission.admit`` first; a refusal is a bug
of this compiler and is reported as one (exit 2, nothing written).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from tekton_mlops import __version__
from tekton_mlops.kfp import executors
from tekton_mlops.kfp.errors import CompileError, Unsupported
from tekton_mlops.kfp.graph import (
    OUTPUTS_TASK,
    Condition,
    Graph,
    Leaf,
    Loop,
    Source,
    entry_sources,
    flatten,
    walk,
)
from tekton_mlops.kfp.ir import PipelineSpec
from tekton_mlops.kfp.names import dns_label, param_name, result_name
from tekton_mlops.kfp.values import NONE_TEXT, coerce, to_text

#: The runtime image a release publishes (``make image`` builds it as
#: localhost/tekton-mlops-runtime:<version>); lightweight components need its ``kfp`` extra.
RUNTIME_IMAGE = f"ghcr.io/tekton-mlops/runtime:{__version__}"
WORKSPACE = "kfp"
RUN_PARAM = "kfp-run"
RUN_UID_PARAM = "kfp-run-uid"
ITERATION_PARAM = "kfp-iteration"
ANNOTATION = "tekton-mlops.dev"
RUNTIME_SECURITY = {
    "runAsNonRoot": True,
    "runAsUser": 65532,
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
}
RUNTIME_RESOURCES = {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "1Gi"}}
SIDECAR_RESOURCES = {"requests": {"cpu": "10m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}}
#: One pod of a TaskRun: a retry is a new pod with the same TaskRun uid.
POD_ID = "$(context.taskRun.uid)-$(context.task.retry-count)"


@dataclass
class Options:
    runtime_image: str = RUNTIME_IMAGE
    storage: str = "1Gi"


@dataclass
class Compiled:
    pipeline: dict[str, Any]
    pipeline_run: dict[str, Any]
    graph: Graph
    notes: list[str] = field(default_factory=list)
    #: KFP pipeline input name -> Tekton param name.
    params: dict[str, str] = field(default_factory=dict)

    def documents(self) -> list[dict[str, Any]]:
        return [self.pipeline, self.pipeline_run]


def carry(text: str) -> str:
    """A value safe from Tekton's substitution: ``$(`` would be read as a variable."""
    if "$(" in text:
        return "b64:" + base64.b64encode(text.encode()).decode()
    return text


def _json(value: Any) -> str:
    return carry(json.dumps(value, separators=(",", ":"), sort_keys=True))


def compile_spec(spec: PipelineSpec, options: Options | None = None) -> Compiled:
    options = options or Options()
    graph = flatten(spec)
    builder = _Builder(graph, options)
    compiled = builder.build()
    compiled.notes += _workspace_notes(spec, options)
    _admit(compiled)
    return compiled


def _workspace_notes(spec: PipelineSpec, options: Options) -> list[str]:
    """KFP gives ``PipelineConfig(workspace=...)`` a claim of its own; here the pipeline's
    workspace is a folder of the kfp workspace, so its size is that claim's."""
    kubernetes = (spec.platform.get("platforms") or {}).get("kubernetes") or {}
    workspace = (kubernetes.get("pipelineConfig") or {}).get("workspace") or {}
    if not workspace.get("size"):
        return []
    return [
        f"the pipeline workspace (PipelineConfig size {workspace['size']}) is a folder of the "
        f"kfp workspace, whose claim requests {options.storage} (--storage)"
    ]


def _admit(compiled: Compiled) -> None:
    from tekton_mlops.tekton.admission import admit, rejection

    for document in compiled.documents():
        problems = admit(document)
        if problems:
            raise CompileError(
                f"the compiled {document['kind']} would be refused (a compiler bug): "
                f"{rejection(problems)}"
            )


@dataclass
class _Parts:
    """One leaf's steps and what its Task must declare for them."""

    steps: list[dict[str, Any]]
    params: list[str]
    statuses: list[str]
    results: list[dict[str, Any]]
    settings: executors.PodSettings
    producers: set[str]
    iterated: bool
    #: The component reads {{$.pipeline_job_uuid}}: the task passes the PipelineRun's uid.
    run_uid: bool = False
    sidecars: list[dict[str, Any]] = field(default_factory=list)


def _leaf_sources(leaf: Leaf) -> list[Source]:
    return [*entry_sources(leaf.parameters), *entry_sources(leaf.artifacts)]


class _Builder:
    def __init__(self, graph: Graph, options: Options) -> None:
        self.graph = graph
        self.options = options
        self.spec = graph.spec
        self.name = dns_label(self.spec.name)
        self.param_names: dict[str, str] = {}
        self.finals = {leaf.name for leaf in graph.leaves if leaf.final}
        self.task_runs: list[dict[str, Any]] = []

    # Top level ------------------------------------------------------------------------

    def build(self) -> Compiled:
        params = self._pipeline_params()
        tasks: list[dict[str, Any]] = []
        finally_tasks: list[dict[str, Any]] = []
        for condition in self.graph.conditions.values():
            tasks.append(self._condition_task(condition))
        for loop in self.graph.loops.values():
            if loop.static_keys is None:
                tasks.append(self._driver_task(loop))
        groups: dict[str, list[Leaf]] = {}
        for leaf in self.graph.leaves:
            if leaf.final:
                groups.setdefault(leaf.final_group, []).append(leaf)
            else:
                tasks.append(self._leaf_task(leaf))
        for group, members in groups.items():
            names = {leaf.name for leaf in members}
            sequenced = any(
                leaf.guards
                or (leaf.deps | self._uses(_leaf_sources(leaf))[1]) & (names - {leaf.name})
                for leaf in members
            )
            if (sequenced and len(members) > 1) or any(leaf.guards for leaf in members):
                finally_tasks.append(self._sequenced_task(group, members))
            else:
                finally_tasks += [self._leaf_task(leaf) for leaf in members]
        results: list[dict[str, Any]] = []
        if self.graph.outputs:
            finally_tasks.append(self._outputs_task())
            for name in self.graph.outputs:
                results.append(
                    {
                        "name": result_name(name),
                        "description": f"KFP pipeline output {name}",
                        "value": f"$(finally.{OUTPUTS_TASK}.results.{result_name(name)})",
                    }
                )
        spec: dict[str, Any] = {}
        description = (
            self.spec.description or f"KFP pipeline {self.spec.name}, compiled by tekton-mlops."
        )
        spec["description"] = description
        if self.spec.display_name:
            spec["displayName"] = self.spec.display_name
        spec["params"] = params
        spec["workspaces"] = [
            {
                "name": WORKSPACE,
                "description": "The run's store: artifacts, output parameters and records of "
                "every task (what KFP keeps in object storage and ML Metadata).",
            }
        ]
        spec["tasks"] = _topological(tasks)
        if finally_tasks:
            spec["finally"] = finally_tasks
        if results:
            spec["results"] = results
        annotations = {
            f"{ANNOTATION}/kfp-pipeline": self.spec.name,
            f"{ANNOTATION}/kfp-outputs": json.dumps(
                {
                    name: {"artifact": o["artifact"], "list": o["list"], "type": o["type"]}
                    for name, o in self.graph.outputs.items()
                },
                sort_keys=True,
            ),
        }
        if self.spec.sdk_version:
            annotations[f"{ANNOTATION}/kfp-sdk"] = self.spec.sdk_version
        pipeline = {
            "apiVersion": "tekton.dev/v1",
            "kind": "Pipeline",
            "metadata": {
                "name": self.name,
                "labels": {"app.kubernetes.io/managed-by": "tekton-mlops"},
                "annotations": annotations,
            },
            "spec": spec,
        }
        run_spec: dict[str, Any] = {
            "pipelineRef": {"name": self.name},
            "workspaces": [
                {
                    "name": WORKSPACE,
                    "volumeClaimTemplate": {
                        "spec": {
                            "accessModes": ["ReadWriteOnce"],
                            "resources": {"requests": {"storage": self.options.storage}},
                        }
                    },
                }
            ],
            # Runtime steps run as 65532; the fsGroup lets them write the claim.
            "taskRunTemplate": {"podTemplate": {"securityContext": {"fsGroup": 65532}}},
        }
        if self.task_runs:
            run_spec["taskRunSpecs"] = self.task_runs
        pipeline_run = {
            "apiVersion": "tekton.dev/v1",
            "kind": "PipelineRun",
            "metadata": {
                "generateName": f"{dns_label(self.spec.name, 56)}-",
                "labels": {"app.kubernetes.io/managed-by": "tekton-mlops"},
            },
            "spec": run_spec,
        }
        return Compiled(
            pipeline, pipeline_run, self.graph, list(self.graph.notes), dict(self.param_names)
        )

    def _pipeline_params(self) -> list[dict[str, Any]]:
        params: list[dict[str, Any]] = []
        root = self.spec.root
        for name, definition in root.inputs("parameters").items():
            kind = str(definition.get("parameterType", "STRING"))
            entry: dict[str, Any] = {"name": self._param(name), "type": "string"}
            text = f"KFP {kind} parameter {name}"
            if definition.get("description"):
                text = f"{definition['description']} ({kind})"
            entry["description"] = text
            if "defaultValue" in definition:
                entry["default"] = carry(to_text(coerce(definition["defaultValue"], kind)))
            elif definition.get("isOptional"):
                entry["default"] = NONE_TEXT
            params.append(entry)
        for name, definition in root.inputs("artifacts").items():
            title = (definition.get("artifactType") or {}).get("schemaTitle", "system.Artifact")
            entry = {
                "name": self._param(name),
                "type": "string",
                "description": f"URI (a path in the kfp workspace or a file) of {title} {name}",
            }
            if definition.get("isOptional"):
                entry["default"] = NONE_TEXT
            params.append(entry)
        return params

    def _param(self, name: str) -> str:
        found = self.param_names.get(name)
        if found is None:
            found = param_name(name)
            if found in (RUN_PARAM, RUN_UID_PARAM, ITERATION_PARAM) or found.startswith("status-"):
                found = param_name(f"p-{name}")
            self.param_names[name] = found
        return found

    # Pieces shared by every task --------------------------------------------------------

    def _loops_for(self, sources: list[Source]) -> dict[str, Any]:
        """The loops these sources reach (an item, a collection, a loop's own items)."""
        found: dict[str, Any] = {}
        pending = list(sources)
        while pending:
            for node in walk(pending.pop()):
                for key in ("item", "collect"):
                    name = node.get(key)
                    if not isinstance(name, str) or name in found:
                        continue
                    loop = self.graph.loops[name]
                    found[name] = {
                        "depth": loop.depth,
                        "items": loop.items,
                        "artifacts": loop.artifacts,
                    }
                    pending.append(loop.items)
        return found

    def _uses(self, sources: list[Source]) -> tuple[list[str], set[str]]:
        """Pipeline params and producer tasks these sources (and their loops) read."""
        params: list[str] = []
        producers: set[str] = set()
        loops = self._loops_for(sources).values()
        for tree in [*sources, *[loop["items"] for loop in loops]]:
            for node in walk(tree):
                name = node.get("param") or node.get("input-artifact")
                if isinstance(name, str) and name not in params:
                    params.append(name)
                producer = node.get("output") or node.get("artifact")
                if isinstance(producer, str):
                    producers.add(producer)
        return params, producers

    def _run_after(self, deps: set[str], own: str) -> list[str]:
        known = self._task_names()
        return sorted(d for d in deps if d != own and d in known and d not in self.finals)

    def _task_names(self) -> set[str]:
        names = set(self.graph.conditions) | {
            name for name, loop in self.graph.loops.items() if loop.static_keys is None
        }
        return names | {leaf.name for leaf in self.graph.leaves}

    def _when(self, conditions: list[str]) -> list[dict[str, Any]]:
        return [
            {"input": f"$(tasks.{name}.results.status)", "operator": "in", "values": ["true"]}
            for name in conditions
        ]

    def _matrix(self, scope: str | None) -> dict[str, Any] | None:
        if scope is None:
            return None
        keys = self.graph.scope_keys(scope)
        value: Any = keys if keys is not None else f"$(tasks.{scope}.results.iterations[*])"
        return {"params": [{"name": ITERATION_PARAM, "value": value}]}

    def _parent(self, scope: str | None) -> dict[str, Any] | None:
        if scope is None:
            return None
        keys = self.graph.scope_keys(scope)
        return {"static": keys} if keys is not None else {"driver": scope}

    def _common_args(self, iterated: bool) -> list[str]:
        args = [f"--store=$(workspaces.{WORKSPACE}.path)", f"--run=$(params.{RUN_PARAM})"]
        if iterated:
            args.append(f"--iteration=$(params.{ITERATION_PARAM})")
        return args

    def _task(
        self,
        name: str,
        steps: list[dict[str, Any]],
        params: list[str],
        iterated: bool,
        results: list[dict[str, Any]] | None = None,
        extra_params: Sequence[tuple[str, str]] = (),
    ) -> dict[str, Any]:
        """A pipeline task with its embedded Task: the store, the run name, the params."""
        task_params = [{"name": RUN_PARAM, "value": "$(context.pipelineRun.name)"}]
        spec_params: list[dict[str, Any]] = [{"name": RUN_PARAM, "type": "string"}]
        if iterated:
            spec_params.append({"name": ITERATION_PARAM, "type": "string"})
        for pipeline_param in params:
            tekton = self._param(pipeline_param)
            task_params.append({"name": tekton, "value": f"$(params.{tekton})"})
            spec_params.append({"name": tekton, "type": "string"})
        for tekton, value in extra_params:
            task_params.append({"name": tekton, "value": value})
            spec_params.append({"name": tekton, "type": "string"})
        task_spec: dict[str, Any] = {
            "params": spec_params,
            "workspaces": [{"name": WORKSPACE}],
        }
        if results:
            task_spec["results"] = results
        task_spec["steps"] = steps
        return {
            "name": name,
            "params": task_params,
            "workspaces": [{"name": WORKSPACE, "workspace": WORKSPACE}],
            "taskSpec": task_spec,
        }

    def _param_args(self, params: list[str]) -> list[str]:
        return [f"--param={name}=$(params.{self._param(name)})" for name in params]

    def _runtime_step(self, name: str, mode: str, args: list[str]) -> dict[str, Any]:
        return {
            "name": name,
            "image": self.options.runtime_image,
            "command": ["tekton-mlops", "kfp", "launch", mode],
            "args": args,
            "computeResources": RUNTIME_RESOURCES,
            "securityContext": RUNTIME_SECURITY,
        }

    # Control-flow tasks -------------------------------------------------------------------

    def _condition_task(self, condition: Condition) -> dict[str, Any]:
        plan: dict[str, Any] = {
            "task": condition.name,
            "kfp_task": condition.kfp_name,
            "pipeline": self.spec.name,
            "condition": condition.expression,
            "operands": condition.operands,
            "loops": self._loops_for(list(condition.operands.values())),
        }
        params, producers = self._uses(list(condition.operands.values()))
        if condition.in_loop:
            plan["parent"] = self._parent(condition.parent)
            mode, results = "iterations", [self._iterations_result()]
            result_args = ["--result=iterations=$(results.iterations.path)"]
        else:
            mode = "condition"
            results = [{"name": "status", "description": f"whether {condition.kfp_name} holds"}]
            result_args = ["--result=status=$(results.status.path)"]
        args = [
            *self._common_args(False),
            *self._param_args(params),
            *result_args,
            f"--plan={_json(plan)}",
        ]
        task = self._task(
            condition.name, [self._runtime_step("condition", mode, args)], params, False, results
        )
        deps = condition.deps | producers
        if condition.parent and self.graph.scope_keys(condition.parent) is None:
            deps.add(condition.parent)
        self._place(task, deps, condition.when)
        return _ordered(task)

    def _iterations_result(self) -> dict[str, Any]:
        return {"name": "iterations", "type": "array", "description": "iteration keys to run"}

    def _driver_task(self, loop: Loop) -> dict[str, Any]:
        plan: dict[str, Any] = {
            "task": loop.name,
            "kfp_task": loop.kfp_name,
            "pipeline": self.spec.name,
            "loop": loop.name,
            "parent": self._parent(loop.parent),
            "loops": self._loops_for([{"item": loop.name}]),
        }
        params, producers = self._uses([{"item": loop.name}])
        args = [
            *self._common_args(False),
            *self._param_args(params),
            "--result=iterations=$(results.iterations.path)",
            f"--plan={_json(plan)}",
        ]
        step = self._runtime_step("iterations", "iterations", args)
        task = self._task(loop.name, [step], params, False, [self._iterations_result()])
        deps = loop.deps | producers
        if loop.parent and self.graph.scope_keys(loop.parent) is None:
            deps.add(loop.parent)
        self._place(task, deps, loop.when)
        if loop.parallelism:
            task["description"] = (
                f"ParallelFor {loop.kfp_name}: at most {loop.parallelism} iterations run at "
                "once, each taking a slot in the kfp workspace (a Tekton matrix has no limit)"
            )
        return _ordered(task)

    def _place(self, task: dict[str, Any], deps: set[str], when: list[str]) -> None:
        run_after = self._run_after(deps, task["name"])
        if run_after:
            task["runAfter"] = run_after
        if when:
            task["when"] = self._when(when)

    # Leaves ---------------------------------------------------------------------------

    def _leaf_parts(self, leaf: Leaf, prefix: str = "") -> _Parts:
        """The steps of one leaf and what they need; ``prefix`` names them apart when
        several leaves share a Task (a sequenced finally group)."""
        executor = executors.classify(leaf.component.executor or {}, leaf.kfp_name)
        settings = executors.pod_settings(leaf.component.platform, leaf.kfp_name)
        outputs = {
            "parameters": {
                k: {"type": d.get("parameterType", "STRING")}
                for k, d in leaf.component.outputs("parameters").items()
            },
            "artifacts": {
                k: {"type": d.get("artifactType") or {}}
                for k, d in leaf.component.outputs("artifacts").items()
            },
        }
        result_names = {
            key: result_name(f"{prefix}{key}")
            for key in (*outputs["parameters"], *outputs["artifacts"])
        }
        plan: dict[str, Any] = {
            "kind": executor.kind,
            "task": leaf.name,
            "kfp_task": leaf.kfp_name,
            "pipeline": self.spec.name,
            "depth": leaf.depth,
            "parameters": leaf.parameters,
            "artifacts": leaf.artifacts,
            "outputs": outputs,
            "results": result_names,
        }
        sources = [*entry_sources(leaf.parameters), *entry_sources(leaf.artifacts)]
        if leaf.guards:
            if executor.kind != "python":
                raise Unsupported(
                    f"a condition around a {executor.kind} component in an exit task",
                    leaf.kfp_name,
                    "inside finally only a lightweight Python component can skip itself",
                )
            guards = [self.graph.conditions[name] for name in leaf.guards]
            plan["guards"] = [
                {"condition": g.expression, "operands": g.operands, "name": g.kfp_name}
                for g in guards
            ]
            sources += [source for g in guards for source in g.operands.values()]
        plan["loops"] = self._loops_for(sources)
        slots = self._slots(leaf)
        if slots:
            plan["slots"] = slots
        if leaf.backoff is not None:
            plan["backoff"] = leaf.backoff.plan()
        params, producers = self._uses(sources)
        statuses = sorted(
            {t for s in _status_sources(leaf.parameters) for t in s["tasks"]} - self.finals
        )
        iterated = leaf.scope is not None
        results = [
            {"name": result_names[k], "description": f"KFP output {k} of {leaf.kfp_name}"}
            for k in (*outputs["parameters"], *outputs["artifacts"])
        ]
        result_args = [f"--result={r['name']}=$(results.{r['name']}.path)" for r in results]
        run_uid = "pipeline_job_uuid" in json.dumps(
            [plan, leaf.component.executor, leaf.component.data]
        )
        common = [
            *self._common_args(iterated),
            *self._param_args(params),
            *[f"--status={t}=$(params.status-{t})" for t in statuses],
            *result_args,
            "--task-run=$(context.taskRun.name)",
            "--task-uid=$(context.taskRun.uid)",
            *([f"--run-uid=$(params.{RUN_UID_PARAM})"] if run_uid else []),
            # The attempt, for the launcher to wait set_retry's backoff before a retry.
            *(["--retry-count=$(context.task.retry-count)"] if leaf.backoff else []),
        ]
        sidecars: list[dict[str, Any]] = []
        if slots and executor.kind != "python":
            # The user's container runs in a step of its own: a sidecar holds the slot for
            # the pod's life, and the first step waits until it does.
            sidecars.append(self._slots_sidecar(leaf, slots, iterated))
            common.append(f"--slots-held={POD_ID}")
        if executor.kind == "python":
            assert executor.python is not None
            plan["function"] = executor.python.function
            plan["packages"] = executor.python.packages
            plan["base_image"] = executor.python.base_image
            step = self._runtime_step(
                f"{prefix}run",
                "python",
                [*common, f"--plan={_json(plan)}", f"--source={carry(executor.python.source)}"],
            )
            del step["computeResources"]
            self._component_settings(step, executor, settings, leaf.kfp_name)
            steps = [step]
        elif executor.kind == "container":
            plan["container"] = {"command": executor.command, "args": executor.args}
            prepare = self._runtime_step(
                f"{prefix}prepare",
                "prepare",
                [
                    *[arg for arg in common if arg not in result_args],
                    "--command-result=$(step.results.command.path)",
                    "--args-result=$(step.results.args.path)",
                    f"--plan={_json(plan)}",
                ],
            )
            prepare["results"] = [
                {"name": "command", "type": "array"},
                {"name": "args", "type": "array"},
            ]
            main: dict[str, Any] = {"name": f"{prefix}main", "image": executor.image}
            if executor.command:
                main["command"] = [f"$(steps.{prefix}prepare.results.command[*])"]
            main["args"] = [f"$(steps.{prefix}prepare.results.args[*])"]
            self._component_settings(main, executor, settings, leaf.kfp_name)
            publish = self._runtime_step(
                f"{prefix}publish",
                "publish",
                [*self._common_args(iterated), f"--task={leaf.name}", *result_args],
            )
            steps = [prepare, main, publish]
        else:
            executors.check_importer(executor.importer, leaf.kfp_name)
            steps = self._importer_steps(
                leaf, executor, plan, common, iterated, result_args, prefix
            )
        return _Parts(
            steps, params, statuses, results, settings, producers, iterated, run_uid, sidecars
        )

    def _slots(self, leaf: Leaf) -> list[dict[str, Any]]:
        """The ParallelFor parallelism limits around a leaf, outermost first."""
        loops = [self.graph.loops[name] for name in leaf.loops]
        return [
            {"loop": loop.name, "depth": loop.depth, "parallelism": loop.parallelism}
            for loop in loops
            if loop.parallelism
        ]

    def _slots_sidecar(
        self, leaf: Leaf, slots: list[dict[str, Any]], iterated: bool
    ) -> dict[str, Any]:
        plan = {"task": leaf.name, "kfp_task": leaf.kfp_name, "slots": slots}
        return {
            "name": "slots",
            "image": self.options.runtime_image,
            "command": ["tekton-mlops", "kfp", "launch", "slots"],
            "args": [
                *self._common_args(iterated),
                f"--slots-held={POD_ID}",
                f"--plan={_json(plan)}",
            ],
            "computeResources": SIDECAR_RESOURCES,
            "securityContext": RUNTIME_SECURITY,
        }

    def _leaf_task(self, leaf: Leaf) -> dict[str, Any]:
        parts = self._leaf_parts(leaf)
        extra = [(f"status-{t}", f"$(tasks.{t}.status)") for t in parts.statuses]
        if parts.run_uid:
            extra.append((RUN_UID_PARAM, "$(context.pipelineRun.uid)"))
        task = self._task(
            leaf.name, parts.steps, parts.params, parts.iterated, parts.results, extra
        )
        settings = parts.settings
        if settings.volumes:
            task["taskSpec"]["volumes"] = settings.volumes
        if parts.sidecars:
            task["taskSpec"]["sidecars"] = parts.sidecars
        deps = set(leaf.deps) | parts.producers
        self._place(task, deps if not leaf.final else set(), leaf.when)
        matrix = self._matrix(leaf.scope)
        if matrix:
            task["matrix"] = matrix
        if leaf.retries:
            task["retries"] = leaf.retries
        if settings.timeout:
            task["timeout"] = settings.timeout
        if leaf.display != leaf.name:
            task["displayName"] = leaf.display
        self._task_run_spec(leaf.name, settings)
        return _ordered(task)

    def _task_run_spec(self, name: str, settings: executors.PodSettings) -> None:
        if settings.pod_template or settings.metadata:
            entry: dict[str, Any] = {"pipelineTaskName": name}
            if settings.pod_template:
                entry["podTemplate"] = settings.pod_template
            if settings.metadata:
                entry["metadata"] = settings.metadata
            self.task_runs.append(entry)

    def _sequenced_task(self, group: str, leaves: list[Leaf]) -> dict[str, Any]:
        """Several finally leaves that depend on one another, as the steps of one Task:
        Tekton runs finally tasks side by side, steps run in order."""
        name = self.graph.namer.name(group)
        steps: list[dict[str, Any]] = []
        params: list[str] = []
        statuses: set[str] = set()
        results: list[dict[str, Any]] = []
        volumes: list[dict[str, Any]] = []
        run_uid = False
        for leaf in leaves:
            if leaf.when or leaf.scope:
                raise Unsupported("a condition or loop around an exit task", leaf.kfp_name)
            parts = self._leaf_parts(leaf, prefix=f"{leaf.name}-")
            steps += parts.steps
            params += [p for p in parts.params if p not in params]
            statuses |= set(parts.statuses)
            results += parts.results
            volumes += [v for v in parts.settings.volumes if v not in volumes]
            run_uid = run_uid or parts.run_uid
            self._task_run_spec(name, parts.settings)
        extra = [(f"status-{t}", f"$(tasks.{t}.status)") for t in sorted(statuses)]
        if run_uid:
            extra.append((RUN_UID_PARAM, "$(context.pipelineRun.uid)"))
        task = self._task(name, steps, params, False, results, extra)
        if volumes:
            task["taskSpec"]["volumes"] = volumes
        task["description"] = (
            f"KFP tasks {', '.join(leaf.kfp_name for leaf in leaves)} of {group}, in order: "
            "they depend on one another and Tekton's finally tasks cannot wait for each other"
        )
        return _ordered(task)

    def _component_settings(
        self,
        step: dict[str, Any],
        executor: executors.Executor,
        settings: executors.PodSettings,
        task: str,
    ) -> None:
        env = [*executors.env(executor.container), *settings.env]
        if env:
            step["env"] = env
        resources = executors.compute_resources(executor.container, task)
        if resources:
            step["computeResources"] = resources
        if settings.mounts:
            step["volumeMounts"] = settings.mounts
        if settings.image_pull_policy:
            step["imagePullPolicy"] = settings.image_pull_policy

    def _importer_steps(
        self,
        leaf: Leaf,
        executor: executors.Executor,
        plan: dict[str, Any],
        common: list[str],
        iterated: bool,
        result_args: list[str],
        prefix: str = "",
    ) -> list[dict[str, Any]]:
        importer = executor.importer
        uri_spec = importer.get("artifactUri") or {}
        if "runtimeParameter" in uri_spec:
            wanted = str(uri_spec["runtimeParameter"])
            if "source" not in leaf.parameters.get(wanted, {}):
                raise CompileError(f"importer {leaf.kfp_name}: input {wanted} is not bound")
            uri: Source = leaf.parameters[wanted]["source"]
        elif "constant" in uri_spec:
            uri = {"const": uri_spec["constant"]}
        else:
            raise Unsupported("an importer without an artifact URI", leaf.kfp_name)
        output = next(iter(plan["outputs"]["artifacts"]), "artifact")
        plan["importer"] = {
            "uri": uri,
            "metadata": importer.get("metadata") or {},
            "type": importer.get("typeSchema") or {},
            "output": output,
        }
        resolve = self._runtime_step(
            f"{prefix}resolve",
            "import",
            [
                *common,
                "--source-result=$(step.results.source.path)",
                "--output-result=$(step.results.output.path)",
                f"--plan={_json(plan)}",
            ],
        )
        resolve["results"] = [{"name": "source"}, {"name": "output"}]
        fetch = {
            "name": f"{prefix}fetch",
            "image": self.options.runtime_image,
            "command": ["tekton-mlops", "fetch-data"],
            "args": [
                f"--source=$(steps.{prefix}resolve.results.source)",
                f"--output=$(steps.{prefix}resolve.results.output)",
                f"--results-dir=$(steps.{prefix}resolve.results.output).results",
            ],
            "computeResources": RUNTIME_RESOURCES,
            "securityContext": RUNTIME_SECURITY,
        }
        publish = self._runtime_step(
            f"{prefix}publish",
            "import-publish",
            [*self._common_args(iterated), f"--task={leaf.name}", *result_args],
        )
        return [resolve, fetch, publish]

    # Pipeline outputs -----------------------------------------------------------------

    def _outputs_task(self) -> dict[str, Any]:
        plan: dict[str, Any] = {
            "task": OUTPUTS_TASK,
            "kfp_task": OUTPUTS_TASK,
            "pipeline": self.spec.name,
            "outputs": self.graph.outputs,
            "results": {name: result_name(name) for name in self.graph.outputs},
        }
        sources = entry_sources(self.graph.outputs)
        plan["loops"] = self._loops_for(sources)
        params, _ = self._uses(sources)
        results = [
            {"name": result_name(name), "description": f"KFP pipeline output {name}"}
            for name in self.graph.outputs
        ]
        args = [
            *self._common_args(False),
            *self._param_args(params),
            "--run-status=$(params.kfp-status)",
            *[f"--result={r['name']}=$(results.{r['name']}.path)" for r in results],
            f"--plan={_json(plan)}",
        ]
        return self._task(
            OUTPUTS_TASK,
            [self._runtime_step("outputs", "outputs", args)],
            params,
            False,
            results,
            [("kfp-status", "$(tasks.status)")],
        )


def _topological(tasks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Tasks after those they depend on (IR order otherwise): the order a reader follows,
    and one in which a scheduler that looks once per pass sees parents settled first."""
    from tekton_mlops.tekton.pipeline_rules import dependencies

    by_name = {task["name"]: task for task in tasks}
    ordered: list[dict[str, Any]] = []
    seen: set[str] = set()

    def visit(name: str) -> None:
        if name in seen or name not in by_name:
            return
        seen.add(name)
        for need in dependencies(by_name[name]):
            visit(need)
        ordered.append(by_name[name])

    for task in tasks:
        visit(task["name"])
    return ordered


_ORDER = (
    "name",
    "displayName",
    "description",
    "runAfter",
    "when",
    "matrix",
    "retries",
    "timeout",
    "params",
    "workspaces",
    "taskSpec",
)


def _ordered(task: dict[str, Any]) -> dict[str, Any]:
    """A pipeline task's fields in reading order: what it is, when it runs, what it runs."""
    return {key: task[key] for key in _ORDER if key in task} | task


def _status_sources(parameters: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The exit-handler statuses a leaf's inputs read."""
    return [
        node["status"]
        for source in entry_sources(parameters)
        for node in walk(source)
        if isinstance(node.get("status"), dict)
    ]
