"""The IR's nested DAGs flattened into what a Tekton Pipeline can hold.

Tekton has one level of tasks; KFP nests DAGs (pipelines in pipelines, ParallelFor,
If/Elif/Else, ExitHandler). Flattening keeps every executor task (a *leaf*) and turns
each control-flow group into what decides, at run time, whether and how often its
leaves run:

- a ParallelFor is a :class:`Loop`; its leaves fan out over the loop's iteration keys
  (a Tekton matrix), known at compile time for literal items, else computed by a
  *driver* task whose array result the matrix reads;
- a condition outside loops is a :class:`Condition` task with a ``true``/``false``
  result that the ``when`` of every task inside reads; a condition inside a loop is a
  driver too, passing on only the iteration keys for which it holds;
- an ExitHandler's exit task and ``ignore_upstream_failure()`` tasks go to ``finally``;
- nested pipelines disappear: their tasks join the parent, names prefixed.

Each leaf input becomes a *source* (``resolve.py`` documents them) that the launcher
evaluates in the step against the run's store.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from tekton_mlops.kfp.errors import CompileError, Unsupported
from tekton_mlops.kfp.ir import Component, PipelineSpec
from tekton_mlops.kfp.names import Namer
from tekton_mlops.kfp.values import FINAL_STATUS, coerce

Source = dict[str, Any]
_CONTROL_FLOW = re.compile(r"^(for-loop|condition|condition-branches|exit-handler)-\d+$")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)s\s*$")
_SELECTOR = re.compile(r"""\[\s*(?:"((?:[^"\\]|\\.)*)"|'((?:[^'\\]|\\.)*)'|(-?\d+))\s*\]""")
#: Names the compiler itself gives tasks.
OUTPUTS_TASK = "kfp-outputs"


@dataclass
class Loop:
    name: str
    depth: int
    items: Source
    artifacts: bool
    parent: str | None
    parallelism: int
    when: list[str]
    deps: set[str]
    kfp_name: str
    static_keys: list[str] | None = None


@dataclass
class Condition:
    name: str
    expression: str
    operands: dict[str, Source]
    depth: int
    parent: str | None
    when: list[str]
    deps: set[str]
    kfp_name: str
    #: Evaluated by each leaf's own launcher (inside a finally task): no Tekton task.
    guard: bool = False

    @property
    def in_loop(self) -> bool:
        return self.depth > 0


@dataclass(frozen=True)
class Backoff:
    """KFP's retry backoff (``set_retry``): before retry n, wait
    ``min(duration * factor ** (n - 1), maximum)`` seconds."""

    duration: float
    factor: float
    maximum: float

    def plan(self) -> dict[str, float]:
        return {"duration": self.duration, "factor": self.factor, "max": self.maximum}


@dataclass
class Leaf:
    name: str
    kfp_name: str
    component: Component
    parameters: dict[str, dict[str, Any]]
    artifacts: dict[str, dict[str, Any]]
    depth: int
    scope: str | None
    when: list[str]
    deps: set[str]
    final: bool
    retries: int = 0
    #: ``set_retry``'s backoff, for the launcher to wait before a retry (Tekton has none).
    backoff: Backoff | None = None
    caching: bool = False
    display: str = ""
    guards: list[str] = field(default_factory=list)
    final_group: str = ""
    #: The loops around the leaf, outermost first.
    loops: list[str] = field(default_factory=list)


@dataclass
class Graph:
    """The flattened pipeline."""

    spec: PipelineSpec
    leaves: list[Leaf] = field(default_factory=list)
    loops: dict[str, Loop] = field(default_factory=dict)
    conditions: dict[str, Condition] = field(default_factory=dict)
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    namer: Namer = field(default_factory=lambda: Namer(reserved=(OUTPUTS_TASK,)))

    def scope_keys(self, scope: str | None) -> list[str] | None:
        """Static iteration keys of a scope, None when a driver computes them."""
        if scope is None:
            return [""]
        loop = self.loops.get(scope)
        return loop.static_keys if loop else None


@dataclass
class _Ctx:
    prefix: str
    params: dict[str, Source]
    artifacts: dict[str, Source]
    loops: list[str]
    scope: str | None
    when: list[str]
    deps: set[str]
    final: bool
    guards: list[str] = field(default_factory=list)
    final_group: str = ""
    #: Inputs the DAG's component declares; one left unbound is an absent optional input.
    declared: set[str] = field(default_factory=set)


@dataclass
class _Produced:
    """How to read the outputs of one task of a DAG."""

    param: Callable[[str], Source]
    artifact: Callable[[str], Source]


def flatten(spec: PipelineSpec) -> Graph:
    graph = Graph(spec)
    root = spec.root
    params: dict[str, Source] = {}
    for name, definition in root.inputs("parameters").items():
        params[name] = {"param": name, "type": str(definition.get("parameterType", "STRING"))}
    artifacts: dict[str, Source] = {
        name: {"input-artifact": name, "type": definition.get("artifactType") or {}}
        for name, definition in root.inputs("artifacts").items()
    }
    walker = _Walker(graph, graph.namer)
    ctx = _Ctx("", params, artifacts, [], None, [], set(), False)
    produced, _ = walker.walk(root, ctx)
    dag = root.dag or {}
    for name, definition in root.outputs("parameters").items():
        selector = ((dag.get("outputs") or {}).get("parameters") or {}).get(name)
        if selector is None:
            raise CompileError(f"pipeline output {name} has no producer in the root DAG")
        graph.outputs[name] = {
            "artifact": False,
            "list": definition.get("parameterType") == "LIST",
            "type": definition.get("parameterType", "STRING"),
            "source": _dag_parameter(selector, produced, name),
        }
    for name, definition in root.outputs("artifacts").items():
        selector = ((dag.get("outputs") or {}).get("artifacts") or {}).get(name)
        if selector is None:
            raise CompileError(f"pipeline output {name} has no producer in the root DAG")
        graph.outputs[name] = {
            "artifact": True,
            "list": bool(definition.get("isArtifactList")),
            "type": definition.get("artifactType") or {},
            "source": _dag_artifact(selector, produced, name),
        }
    return graph


def _dag_parameter(selector: dict[str, Any], produced: dict[str, _Produced], name: str) -> Source:
    if "valueFromParameter" in selector:
        ref = selector["valueFromParameter"]
        return _produced(produced, ref["producerSubtask"], name).param(ref["outputParameterKey"])
    if "valueFromOneof" in selector:
        options = selector["valueFromOneof"].get("parameterSelectors") or []
        return {
            "oneof": [
                _produced(produced, o["producerSubtask"], name).param(o["outputParameterKey"])
                for o in options
            ]
        }
    raise CompileError(f"output {name}: unknown output selector {json.dumps(selector)}")


def _dag_artifact(selector: dict[str, Any], produced: dict[str, _Produced], name: str) -> Source:
    options = [
        _produced(produced, o["producerSubtask"], name).artifact(o["outputArtifactKey"])
        for o in selector.get("artifactSelectors") or []
    ]
    if not options:
        raise CompileError(f"output {name}: no artifact selector")
    return options[0] if len(options) == 1 else {"oneof": options}


def _produced(produced: dict[str, _Produced], task: str, name: str) -> _Produced:
    if task not in produced:
        raise CompileError(f"output {name} names task {task}, which the DAG does not have")
    return produced[task]


def _selector(text: str, task: str) -> list[Any]:
    """``parseJson(string_value)["a"][0]`` -> ``["a", 0]``."""
    body = text.strip()
    if not body.startswith("parseJson(string_value)"):
        raise Unsupported(f"parameterExpressionSelector {text!r}", task)
    rest = body[len("parseJson(string_value)") :]
    path: list[Any] = []
    position = 0
    while position < len(rest):
        match = _SELECTOR.match(rest, position)
        if not match:
            raise Unsupported(f"parameterExpressionSelector {text!r}", task)
        double, single, number = match.groups()
        path.append(
            int(number) if number is not None else (double if double is not None else single)
        )
        position = match.end()
    return path


def _order(tasks: dict[str, Any]) -> list[str]:
    """The DAG's tasks with every task after those it depends on (IR order otherwise)."""
    done: list[str] = []
    seen: set[str] = set()

    def needs(name: str) -> set[str]:
        task = tasks[name]
        found = set(task.get("dependentTasks") or [])
        for spec in ((task.get("inputs") or {}).get("parameters") or {}).values():
            ref = spec.get("taskOutputParameter") or spec.get("taskFinalStatus")
            if ref:
                found.add(ref["producerTask"])
        for spec in ((task.get("inputs") or {}).get("artifacts") or {}).values():
            if spec.get("taskOutputArtifact"):
                found.add(spec["taskOutputArtifact"]["producerTask"])
        return {n for n in found if n in tasks}

    def visit(name: str, path: tuple[str, ...]) -> None:
        if name in seen:
            return
        if name in path:
            raise CompileError(f"the DAG has a cycle through {' -> '.join((*path, name))}")
        for need in sorted(needs(name)):
            visit(need, (*path, name))
        seen.add(name)
        done.append(name)

    for name in tasks:
        visit(name, ())
    return done


class _Walker:
    def __init__(self, graph: Graph, namer: Namer) -> None:
        self.graph = graph
        self.namer = namer
        #: taskInfo names of the DAG being walked (an ExitHandler's name, for its status).
        self.displays: dict[str, str] = {}

    def walk(self, component: Component, ctx: _Ctx) -> tuple[dict[str, _Produced], set[str]]:
        """Flatten one DAG; what each of its tasks produces, and every Tekton task made."""
        dag = component.dag or {}
        tasks: dict[str, Any] = dict(dag.get("tasks") or {})
        produced: dict[str, _Produced] = {}
        members: dict[str, set[str]] = {}
        self.displays = {
            name: str((task.get("taskInfo") or {}).get("name") or name)
            for name, task in tasks.items()
        }
        displays = self.displays
        for name in _order(tasks):
            task = tasks[name]
            deps = set(ctx.deps)
            for dependency in task.get("dependentTasks") or []:
                deps |= members.get(dependency, set())
            self.displays = displays  # a nested walk replaced them
            produced[name], members[name] = self.task(name, task, ctx, deps, produced, members)
        made: set[str] = set()
        for found in members.values():
            made |= found
        return produced, made

    # One task of a DAG ----------------------------------------------------------------

    def task(
        self,
        name: str,
        task: dict[str, Any],
        ctx: _Ctx,
        deps: set[str],
        produced: dict[str, _Produced],
        members: dict[str, set[str]],
    ) -> tuple[_Produced, set[str]]:
        ref = (task.get("componentRef") or {}).get("name")
        if not ref:
            raise CompileError(f"task {name} has no componentRef")
        component = self.graph.spec.component(str(ref))
        label = f"{ctx.prefix}{name}"
        param_sources = self._parameter_sources(name, task, component, ctx, produced, members)
        artifact_sources = self._artifact_sources(name, task, ctx, produced)
        policy = task.get("triggerPolicy") or {}
        final = ctx.final or policy.get("strategy") == "ALL_UPSTREAM_TASKS_COMPLETED"
        inner = _Ctx(ctx.prefix, {}, {}, list(ctx.loops), ctx.scope, list(ctx.when), deps, final)
        inner.guards = list(ctx.guards)
        inner.final_group = ctx.final_group or (label if final else "")
        made: set[str] = set()
        if policy.get("condition"):
            condition = self._condition(label, str(policy["condition"]), param_sources, inner)
            if condition.guard:
                # Inside finally: each leaf's launcher checks it (finally tasks cannot wait
                # for a condition task).
                inner.guards = [*inner.guards, condition.name]
            else:
                made.add(condition.name)
                if condition.in_loop:
                    inner.scope = condition.name
                else:
                    inner.when = [*inner.when, condition.name]
                inner.deps = inner.deps | {condition.name}
        loop: Loop | None = None
        if task.get("parameterIterator") or task.get("artifactIterator"):
            loop = self._loop(label, task, param_sources, artifact_sources, inner)
            made.add(loop.name)
            inner.loops = [*inner.loops, loop.name]
            inner.scope = loop.name
            if loop.static_keys is None:
                inner.deps = inner.deps | {loop.name}
        if component.executor is not None:
            leaf = self._leaf(label, name, task, component, param_sources, artifact_sources, inner)
            made.add(leaf.name)
            return self._leaf_outputs(leaf), made
        if component.dag is None:
            raise CompileError(f"component {component.name} has neither an executor nor a DAG")
        # A sub-DAG: a control-flow group or a pipeline in the pipeline.
        inner.params = dict(param_sources)
        inner.artifacts = dict(artifact_sources)
        inner.declared = set(component.inputs("parameters")) | set(component.inputs("artifacts"))
        for key, definition in component.inputs("parameters").items():
            if key not in inner.params and "defaultValue" in definition:
                kind = str(definition.get("parameterType", "STRING"))
                inner.params[key] = {"const": coerce(definition["defaultValue"], kind)}
        if loop is not None:
            item = (task.get("parameterIterator") or task.get("artifactIterator") or {}).get(
                "itemInput"
            )
            if item:
                target = inner.artifacts if loop.artifacts else inner.params
                target[str(item)] = {"item": loop.name}
        if not _CONTROL_FLOW.match(name):
            inner.prefix = f"{ctx.prefix}{name}-"
        sub_produced, sub_made = self.walk(component, inner)
        made |= sub_made
        return self._group_outputs(component, sub_produced, loop), made

    def _parameter_sources(
        self,
        name: str,
        task: dict[str, Any],
        component: Component,
        ctx: _Ctx,
        produced: dict[str, _Produced],
        members: dict[str, set[str]],
    ) -> dict[str, Source]:
        declared = component.inputs("parameters")
        sources: dict[str, Source] = {}
        for key, spec in ((task.get("inputs") or {}).get("parameters") or {}).items():
            kind = str((declared.get(key) or {}).get("parameterType", ""))
            if "componentInputParameter" in spec:
                upstream = str(spec["componentInputParameter"])
                if upstream in ctx.params:
                    source = ctx.params[upstream]
                elif upstream in ctx.declared:
                    source = {"none": True}  # an optional input the caller left out
                else:
                    raise CompileError(f"task {name}: input {key} reads {upstream}, not an input")
            elif "taskOutputParameter" in spec:
                ref = spec["taskOutputParameter"]
                source = _produced(produced, ref["producerTask"], key).param(
                    ref["outputParameterKey"]
                )
            elif "runtimeValue" in spec:
                constant = (spec["runtimeValue"] or {}).get("constant")
                if constant is None and "constantValue" in (spec["runtimeValue"] or {}):
                    constant = _legacy_constant(spec["runtimeValue"]["constantValue"])
                source = {"const": coerce(constant, kind)}
            elif "taskFinalStatus" in spec:
                group = str(spec["taskFinalStatus"]["producerTask"])
                source = {
                    "status": {
                        "group": self.displays.get(group, group),
                        "tasks": sorted(members.get(group, set())),
                    }
                }
            else:
                raise Unsupported(f"parameter input {json.dumps(spec)[:80]}", name)
            selector = spec.get("parameterExpressionSelector")
            if selector:
                source = {"field": _selector(str(selector), name), "of": source}
            sources[key] = source
        return sources

    def _artifact_sources(
        self, name: str, task: dict[str, Any], ctx: _Ctx, produced: dict[str, _Produced]
    ) -> dict[str, Source]:
        sources: dict[str, Source] = {}
        for key, spec in ((task.get("inputs") or {}).get("artifacts") or {}).items():
            if "componentInputArtifact" in spec:
                upstream = str(spec["componentInputArtifact"])
                if upstream in ctx.artifacts:
                    sources[key] = ctx.artifacts[upstream]
                elif upstream in ctx.declared:
                    sources[key] = {"none": True}
                else:
                    raise CompileError(f"task {name}: input {key} reads {upstream}, not an input")
            elif "taskOutputArtifact" in spec:
                ref = spec["taskOutputArtifact"]
                sources[key] = _produced(produced, ref["producerTask"], key).artifact(
                    ref["outputArtifactKey"]
                )
            else:
                raise Unsupported(f"artifact input {json.dumps(spec)[:80]}", name)
        return sources

    # Control flow ---------------------------------------------------------------------

    def _condition(
        self, label: str, expression: str, operands: dict[str, Source], ctx: _Ctx
    ) -> Condition:
        from tekton_mlops.kfp.cel import ConditionError, check_syntax

        try:
            check_syntax(expression)
        except ConditionError as exc:
            raise Unsupported(f"condition {expression!r}", label, str(exc)) from None
        condition = Condition(
            name=self.namer.name(label),
            expression=expression,
            operands=operands,
            depth=len(ctx.loops),
            parent=ctx.scope,
            when=list(ctx.when),
            deps=set(ctx.deps),
            kfp_name=label,
            guard=ctx.final,
        )
        self.graph.conditions[condition.name] = condition
        return condition

    def _loop(
        self,
        label: str,
        task: dict[str, Any],
        params: dict[str, Source],
        artifacts: dict[str, Source],
        ctx: _Ctx,
    ) -> Loop:
        if ctx.final:
            raise Unsupported(
                "a ParallelFor in an exit handler's exit task or after ignore_upstream_failure()",
                label,
                "Tekton's finally tasks cannot wait for a driver",
            )
        iterator = task.get("parameterIterator") or task.get("artifactIterator") or {}
        is_artifacts = "artifactIterator" in task
        spec = iterator.get("items") or {}
        items: Source
        if "raw" in spec:
            try:
                raw = json.loads(spec["raw"]) if isinstance(spec["raw"], str) else spec["raw"]
            except ValueError:
                raise CompileError(
                    f"{label}: the loop items are not JSON: {spec['raw']!r}"
                ) from None
            if not isinstance(raw, list):
                raise CompileError(f"{label}: the loop items are not a list")
            items = {"raw": raw}
        elif "inputParameter" in spec:
            wanted = str(spec["inputParameter"])
            if wanted not in params:
                raise CompileError(
                    f"{label}: the loop reads {wanted}, which the task does not bind"
                )
            items = params[wanted]
        elif "inputArtifact" in spec:
            wanted = str(spec["inputArtifact"])
            if wanted not in artifacts:
                raise CompileError(
                    f"{label}: the loop reads {wanted}, which the task does not bind"
                )
            items = artifacts[wanted]
        else:
            raise Unsupported(f"loop items {json.dumps(spec)[:80]}", label)
        parallelism = int((task.get("iteratorPolicy") or {}).get("parallelismLimit") or 0)
        loop = Loop(
            name=self.namer.name(label),
            depth=len(ctx.loops) + 1,
            items=items,
            artifacts=is_artifacts,
            parent=ctx.scope,
            parallelism=parallelism,
            when=list(ctx.when),
            deps=set(ctx.deps),
            kfp_name=label,
        )
        parent_keys = self.graph.scope_keys(ctx.scope)
        if "raw" in items and items["raw"] and parent_keys is not None:
            count = len(items["raw"])
            loop.static_keys = [
                f"{parent}.{index}" if parent else str(index)
                for parent in parent_keys
                for index in range(count)
            ]
        self.graph.loops[loop.name] = loop
        return loop

    # Leaves ---------------------------------------------------------------------------

    def _leaf(
        self,
        label: str,
        kfp_name: str,
        task: dict[str, Any],
        component: Component,
        params: dict[str, Source],
        artifacts: dict[str, Source],
        ctx: _Ctx,
    ) -> Leaf:
        name = self.namer.name(label)
        if ctx.final and ctx.loops:
            raise Unsupported(
                "a finally task inside a ParallelFor", label, "Tekton's finally tasks fan out once"
            )
        parameters: dict[str, dict[str, Any]] = {}
        for key, definition in component.inputs("parameters").items():
            kind = str(definition.get("parameterType", "STRING"))
            entry: dict[str, Any] = {"type": kind, "optional": bool(definition.get("isOptional"))}
            if "defaultValue" in definition:
                entry["default"] = coerce(definition["defaultValue"], kind)
            if key in params:
                entry["source"] = params[key]
            elif kind == FINAL_STATUS:
                raise CompileError(f"task {label}: input {key} needs an ExitHandler's status")
            parameters[key] = entry
        for key, source in params.items():
            if key not in parameters:
                # An input the component does not declare: a channel an f-string of another
                # input refers to ({{$.inputs.parameters['pipelinechannel--x']}}).
                parameters[key] = {"type": "", "optional": True, "extra": True, "source": source}
        artifact_inputs: dict[str, dict[str, Any]] = {}
        for key, definition in component.inputs("artifacts").items():
            entry = {
                "type": definition.get("artifactType") or {},
                "list": bool(definition.get("isArtifactList")),
                "optional": bool(definition.get("isOptional")),
            }
            if key in artifacts:
                entry["source"] = artifacts[key]
            artifact_inputs[key] = entry
        retry = task.get("retryPolicy") or {}
        retries = int(retry.get("maxRetryCount") or 0)
        leaf = Leaf(
            name=name,
            kfp_name=kfp_name,
            component=component,
            parameters=parameters,
            artifacts=artifact_inputs,
            depth=len(ctx.loops),
            scope=ctx.scope,
            when=list(ctx.when),
            deps=set(ctx.deps),
            final=ctx.final,
            guards=list(ctx.guards),
            final_group=ctx.final_group,
            retries=retries,
            backoff=_backoff(retry, label) if retries else None,
            caching=bool((task.get("cachingOptions") or {}).get("enableCache")),
            display=str((task.get("taskInfo") or {}).get("name") or kfp_name),
            loops=list(ctx.loops),
        )
        self.graph.leaves.append(leaf)
        return leaf

    @staticmethod
    def _leaf_outputs(leaf: Leaf) -> _Produced:
        def param(key: str) -> Source:
            if key not in leaf.component.outputs("parameters"):
                raise CompileError(f"task {leaf.kfp_name} has no output parameter {key}")
            return {"output": leaf.name, "key": key, "depth": leaf.depth}

        def artifact(key: str) -> Source:
            if key not in leaf.component.outputs("artifacts"):
                raise CompileError(f"task {leaf.kfp_name} has no output artifact {key}")
            return {"artifact": leaf.name, "key": key, "depth": leaf.depth}

        return _Produced(param, artifact)

    @staticmethod
    def _group_outputs(
        component: Component, inner: dict[str, _Produced], loop: Loop | None
    ) -> _Produced:
        outputs = (component.dag or {}).get("outputs") or {}

        def wrap(source: Source) -> Source:
            return {"collect": loop.name, "of": source} if loop is not None else source

        def param(key: str) -> Source:
            selector = (outputs.get("parameters") or {}).get(key)
            if selector is None:
                raise CompileError(f"{component.name} has no output parameter {key}")
            return wrap(_dag_parameter(selector, inner, key))

        def artifact(key: str) -> Source:
            selector = (outputs.get("artifacts") or {}).get(key)
            if selector is None:
                raise CompileError(f"{component.name} has no output artifact {key}")
            return wrap(_dag_artifact(selector, inner, key))

        return _Produced(param, artifact)


def _seconds(value: Any, field_name: str, task: str) -> float:
    """A protobuf Duration as the IR writes it (``"30s"``, ``"0.5s"``), in seconds."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    match = _DURATION.match(str(value))
    if not match:
        raise CompileError(
            f"task {task}: retryPolicy.{field_name} {value!r} is not a duration in seconds "
            "such as '30s'"
        )
    return float(match.group(1))


def _backoff(policy: dict[str, Any], task: str) -> Backoff | None:
    """The backoff of a retry policy; None when retries start at once."""
    duration = _seconds(policy.get("backoffDuration") or "0s", "backoffDuration", task)
    if duration <= 0:
        return None
    factor = float(policy.get("backoffFactor") or 2.0)  # 0 is proto's "unset": KFP's 2.0
    if factor < 0:
        raise CompileError(f"task {task}: retryPolicy.backoffFactor {factor} is negative")
    maximum = _seconds(policy.get("backoffMaxDuration") or "3600s", "backoffMaxDuration", task)
    return Backoff(duration, factor, maximum)


def _legacy_constant(value: Any) -> Any:
    """schemaVersion 2.0.0 wrote constants as ``{stringValue|intValue|doubleValue: v}``."""
    if isinstance(value, dict) and len(value) == 1:
        return next(iter(value.values()))
    return value


def walk(source: Source) -> Iterator[Source]:
    """A source and every source inside it (never the inside of a constant)."""
    yield source
    if "const" in source or "raw" in source:
        return
    if isinstance(source.get("of"), dict):
        yield from walk(source["of"])
    for option in source.get("oneof") or []:
        yield from walk(option)


def entry_sources(entries: dict[str, dict[str, Any]]) -> list[Source]:
    """The sources of a leaf's ``parameters`` or ``artifacts`` entries."""
    return [entry["source"] for entry in entries.values() if "source" in entry]
