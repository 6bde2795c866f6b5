"""Execute a PipelineRun: the DAG, when expressions, finally, results and status."""

from __future__ import annotations

import itertools
import json
import time
import uuid
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tekton_mlops.local.cluster import Cluster, ResolutionError
from tekton_mlops.local.customrun import CustomRunExecutor, CustomRunPlan
from tekton_mlops.local.status import TaskRunOutcome, condition
from tekton_mlops.local.taskrun import TaskRunExecutor, TaskRunPlan
from tekton_mlops.local.workspaces import Workspace
from tekton_mlops.storage.publish import atomic_write_text
from tekton_mlops.tekton import defaults
from tekton_mlops.tekton.custom_tasks import CUSTOM_RUN_API_VERSION, custom_reference
from tekton_mlops.tekton.durations import format_duration, parse_duration, timestamp
from tekton_mlops.tekton.pipeline_rules import RESULT_REF, dependencies
from tekton_mlops.tekton.resolution import mismatched_params, missing_params, resolve_params
from tekton_mlops.tekton.variables import (
    Unresolved,
    Value,
    lookup_in,
    references,
    substitute,
    substitute_string,
)

SKIP_WHEN = "When Expressions evaluated to false"
SKIP_RESULTS = "Results were missing"
SKIP_STOPPING = "PipelineRun was stopping"
SKIP_TIMEOUT = "PipelineRun timeout has been reached"
SKIP_EMPTY_MATRIX = "Matrix Parameters have an empty array"


#: What a pipeline task runs as: a TaskRun, or a CustomRun for another controller's kind.
Plan = TaskRunPlan | CustomRunPlan


@dataclass
class TaskOutcome:
    """What one pipeline task did: one TaskRun, or one per matrix combination."""

    runs: list[TaskRunOutcome]
    matrixed: bool = False

    @property
    def succeeded(self) -> bool:
        return all(run.succeeded for run in self.runs)

    @property
    def condition(self) -> dict[str, Any]:
        failed = [run for run in self.runs if not run.succeeded]
        return (failed or self.runs)[0].condition

    @property
    def results(self) -> dict[str, Value]:
        if not self.matrixed:
            return self.runs[0].results
        # A matrixed task's string results become arrays, in combination order.
        names = {name for run in self.runs for name in run.results}
        return {
            name: [str(run.results[name]) for run in self.runs if name in run.results]
            for name in sorted(names)
        }


def combinations(matrix: dict[str, Any], table: dict[str, Value]) -> list[dict[str, Value]]:
    """The matrix's combinations, with Tekton's rules for include entries."""
    params = substitute(matrix.get("params") or [], table)
    names = [p["name"] for p in params]
    values = [p["value"] if isinstance(p["value"], list) else [p["value"]] for p in params]
    # Tekton fans a matrix out with the first param changing fastest: linux-chrome,
    # mac-chrome, windows-chrome, linux-safari, ... (its examples check this order).
    combos: list[dict[str, Value]] = (
        [
            dict(zip(names, reversed(product), strict=True))
            for product in itertools.product(*reversed(values))
        ]
        if names
        else []
    )
    for entry in substitute(matrix.get("include") or [], table):
        given = {p["name"]: p["value"] for p in entry.get("params") or []}
        overlap = {k: v for k, v in given.items() if k in names}
        extra = {k: v for k, v in given.items() if k not in names}
        matched = [c for c in combos if all(c.get(k) == v for k, v in overlap.items())]
        if matched and (overlap or names):
            for combo in matched:
                for key, value in extra.items():
                    combo.setdefault(key, value)
        else:
            combos.append(dict(given))
    return combos


@dataclass
class TaskState:
    task: dict[str, Any]
    is_finally: bool = False
    state: str = "pending"  # pending, running, succeeded, failed, skipped
    skip_reason: str = ""
    outcome: TaskOutcome | None = None
    spec: dict[str, Any] = field(default_factory=dict)  # the resolved Task spec
    task_name: str = ""

    @property
    def name(self) -> str:
        return str(self.task["name"])

    @property
    def status_word(self) -> str:
        """What $(tasks.<name>.status) says."""
        return {"succeeded": "Succeeded", "failed": "Failed"}.get(self.state, "None")

    @property
    def failure_ignored(self) -> bool:
        """A failed task with ``onError: continue`` does not fail the PipelineRun."""
        return self.state == "failed" and self.task.get("onError") == "continue"

    @property
    def counts_as_failed(self) -> bool:
        return self.state == "failed" and not self.failure_ignored

    @property
    def reason_word(self) -> str:
        """What $(tasks.<name>.reason) says: the TaskRun's reason, or why it did not run."""
        if self.failure_ignored:
            return "FailureIgnored"
        if self.outcome is not None:
            return str(self.outcome.condition.get("reason", ""))
        return "None"


def _skipped(states: dict[str, TaskState]) -> list[dict[str, Any]]:
    """``status.skippedTasks``: each skipped task with its reason (and its when expressions
    when those skipped it)."""
    return [
        {
            "name": s.name,
            "reason": s.skip_reason,
            **({"whenExpressions": s.task["when"]} if s.skip_reason == SKIP_WHEN else {}),
        }
        for s in states.values()
        if s.state == "skipped"
    ]


def _evaluate_when(expressions: list[dict[str, Any]]) -> bool:
    for expression in expressions:
        value = expression.get("input", "")
        values = expression.get("values") or []
        inside = value in values
        if (expression.get("operator") == "in") != inside:
            return False
    return True


class PipelineRunExecutor:
    def __init__(self, cluster: Cluster, tasks: TaskRunExecutor, run_dir: Path, log: Any) -> None:
        self.cluster = cluster
        self.taskruns = tasks
        self.run_dir = run_dir
        self.log = log
        self.customruns = CustomRunExecutor(run_dir, log, tasks.durations)
        #: The run, its tasks and its childReferences, for the pipelinerun.yaml of a run going.
        self._progress: tuple[dict[str, Any], dict[str, TaskState], list[dict[str, Any]]] = (
            {},
            {},
            [],
        )

    def execute(
        self, run: dict[str, Any], spec: dict[str, Any], workspaces: dict[str, Workspace]
    ) -> tuple[dict[str, Any], bool]:
        name = run["metadata"]["name"]
        self.run_spec: dict[str, Any] = run.get("spec") or {}
        started = time.time()
        status: dict[str, Any] = {"startTime": timestamp(started), "pipelineSpec": spec}
        run["status"] = status

        def fail(reason: str, message: str) -> tuple[dict[str, Any], bool]:
            status["completionTime"] = timestamp(time.time())
            status["conditions"] = [condition("False", reason, message, time.time())]
            return run, False

        given = {p["name"]: p["value"] for p in run["spec"].get("params") or []}
        pipeline = f"{defaults.NAMESPACE}/{run['metadata'].get('pipelineName', name)}"
        if missing := missing_params(spec, given):
            return fail(
                "ParameterMissing",
                f"PipelineRun {defaults.NAMESPACE}/{name} is missing some parameters required by "
                f"Pipeline {pipeline}: PipelineRun missing parameters: [{' '.join(missing)}]",
            )
        if mismatched := mismatched_params(spec, given):
            return fail(
                "ParameterTypeMismatch",
                f"PipelineRun {defaults.NAMESPACE}/{name} parameters have mismatching types with "
                f"Pipeline {pipeline}'s parameters: parameters have inconsistent types : "
                f"[{' '.join(mismatched)}]",
            )
        values, _ = resolve_params(spec, given)
        declared = {w["name"]: w for w in spec.get("workspaces") or []}
        for ws_name, ws in declared.items():
            if ws_name not in workspaces and not ws.get("optional"):
                return fail(
                    "InvalidWorkspaceBindings",
                    f'pipeline requires workspace with name "{ws_name}" be provided by pipelinerun',
                )
        timeouts = run["spec"].get("timeouts") or {}
        total = parse_duration(timeouts.get("pipeline", "1h"))
        deadline = time.monotonic() + total if total else None

        table: dict[str, Value] = {f"params.{k}": v for k, v in values.items()}
        run["metadata"].setdefault("uid", str(uuid.uuid4()))
        table |= {
            "context.pipelineRun.name": name,
            "context.pipelineRun.namespace": defaults.NAMESPACE,
            "context.pipelineRun.uid": run["metadata"]["uid"],
            "context.pipeline.name": run["metadata"].get("pipelineName", name),
        }
        # A PipelineRun's workspace subPath may use its params and context.
        workspaces = {
            ws: Workspace(w.root, w.claim, w.volume, substitute_string(w.sub_path, table))
            for ws, w in workspaces.items()
        }
        for ws_name in declared:
            table[f"workspaces.{ws_name}.bound"] = "true" if ws_name in workspaces else "false"

        states = {t["name"]: TaskState(t) for t in spec.get("tasks") or []}
        finals = {t["name"]: TaskState(t, is_finally=True) for t in spec.get("finally") or []}
        children: list[dict[str, Any]] = []
        self._progress = (run, {**states, **finals}, children)
        self._save_progress()  # Running, before the first Task resolves (a git clone may be slow)
        try:  # Tekton resolves every Task before it starts the first one; so do we, at once
            everyone = [*states.values(), *finals.values()]
            with ThreadPoolExecutor(max_workers=max(1, min(len(everyone), 16))) as pool:
                list(pool.map(lambda state: self._resolve(state, table), everyone))
        except ResolutionError as exc:
            return fail(exc.reason, str(exc))
        timed_out = self._schedule(name, states, states, table, workspaces, deadline, children)
        if not timed_out:
            dag = list(states.values())
            overall = (
                "Failed"
                if any(s.counts_as_failed for s in dag)
                else "Completed"
                if any(s.status_word == "None" for s in dag)
                else "Succeeded"
            )
            table["tasks.status"] = overall
            for state in dag:
                table[f"tasks.{state.name}.status"] = state.status_word
                table[f"tasks.{state.name}.reason"] = state.reason_word
            self._schedule(name, finals, {**states, **finals}, table, workspaces, None, children)
        everything = {**states, **finals}
        status["childReferences"] = children
        skipped = _skipped(everything)
        if skipped:
            status["skippedTasks"] = skipped
        results, invalid = self._pipeline_results(spec, everything, table)
        if results:
            status["results"] = results
        status["completionTime"] = timestamp(time.time())
        if invalid and not timed_out:
            status["conditions"] = [
                condition(
                    "False",
                    "CouldntGetPipelineResult",
                    f"Failed to get PipelineResult from TaskRun Results for PipelineRun {name}: "
                    f"invalid pipelineresults [{' '.join(invalid)}], the referenced results "
                    "don't exist",
                    time.time(),
                )
            ]
            return run, False
        if timed_out:
            status["conditions"] = [
                condition(
                    "False",
                    "PipelineRunTimeout",
                    f'PipelineRun "{name}" failed to finish within "{format_duration(total)}"',
                    time.time(),
                )
            ]
            return run, False
        failed = sum(1 for s in everything.values() if s.counts_as_failed)
        skips = len(skipped)
        reason = "Failed" if failed else "Completed" if skips else "Succeeded"
        message = (
            f"Tasks Completed: {len(everything) - skips} (Failed: {failed}, "
            f"Cancelled 0), Skipped: {skips}"
        )
        status["conditions"] = [
            condition("False" if failed else "True", reason, message, time.time())
        ]
        return run, not failed

    def _save_progress(self) -> None:
        """Rewrite pipelinerun.yaml as the run stands, Running (one write per finished
        TaskRun); `tekton-mlops run` writes the finished object over it at the end."""
        run, tasks, children = self._progress
        done = [s for s in tasks.values() if s.state in ("succeeded", "failed")]
        skipped = _skipped(tasks)
        failed = sum(1 for s in done if s.counts_as_failed)
        incomplete = len(tasks) - len(done) - len(skipped)
        status = {
            key: value
            for key, value in run["status"].items()
            if key not in ("childReferences", "skippedTasks", "conditions")
        }
        status["childReferences"] = list(children)
        if skipped:
            status["skippedTasks"] = skipped
        message = (
            f"Tasks Completed: {len(done)} (Failed: {failed}, Cancelled 0), "
            f"Incomplete: {incomplete}, Skipped: {len(skipped)}"
        )
        status["conditions"] = [condition("Unknown", "Running", message, time.time())]
        # JSON, which is YAML too: several times faster to write and to read while it changes.
        atomic_write_text(
            self.run_dir / "pipelinerun.yaml", json.dumps({**run, "status": status}, indent=2)
        )

    # --- scheduling -------------------------------------------------------------------

    def _schedule(
        self,
        run_name: str,
        group: dict[str, TaskState],
        known: dict[str, TaskState],
        table: dict[str, Value],
        workspaces: dict[str, Workspace],
        deadline: float | None,
        children: list[dict[str, Any]],
    ) -> bool:
        """Run a group of tasks to completion; return True when the deadline passed.

        At most ``parallelism`` pipeline tasks are in flight; a ready task beyond that waits
        (Pending) until one finishes, as pods wait for a cluster's capacity. Dependencies
        are computed once per task, and only waiting tasks are looked at again.
        """
        stopping = False
        running: dict[Future[TaskOutcome], TaskState] = {}
        needs = {name: set(dependencies(state.task)) & set(known) for name, state in group.items()}
        waiting = [name for name, state in group.items() if state.state == "pending"]
        limit = self.taskruns.parallelism
        told: set[str] = set()
        with (
            ThreadPoolExecutor(max_workers=max(1, min(len(group), limit))) as pool,
            self.customruns.cancelled_on_error(),  # left first: waiting CustomRuns end
        ):
            while True:
                if deadline is not None and time.monotonic() > deadline:
                    for state in group.values():
                        if state.state == "pending":
                            state.state, state.skip_reason = "skipped", SKIP_TIMEOUT
                    wait(list(running))
                    for future, state in running.items():
                        self._record(state, future.result(), table)
                    return True
                still: list[str] = []
                decided = False  # a task skipped in this pass may free tasks looked at before it
                for name in waiting:
                    state = group[name]
                    if state.state != "pending":
                        continue
                    if any(known[n].state in ("pending", "running") for n in needs[name]):
                        still.append(name)
                        continue
                    if stopping:
                        state.state, state.skip_reason = "skipped", SKIP_STOPPING
                        decided = True
                        continue
                    if len(running) >= limit:
                        if name not in told:
                            told.add(name)
                            self.log(f"task {name} pending ({len(running)} running, "
                                     f"--parallelism {limit})")  # fmt: skip
                        still.append(name)
                        continue
                    plans = self._plans(run_name, state, table, workspaces, deadline)
                    if plans is None:
                        decided = True  # skipped while planning
                        continue
                    state.state = "running"
                    self.log(f"task {state.name} started")
                    for plan in plans:
                        custom = isinstance(plan, CustomRunPlan)
                        child = {
                            "apiVersion": CUSTOM_RUN_API_VERSION if custom else "tekton.dev/v1",
                            "kind": "CustomRun" if custom else "TaskRun",
                            "name": plan.name,
                            "pipelineTaskName": state.name,
                        }
                        if state.task.get("displayName"):
                            child["displayName"] = substitute(state.task["displayName"], table)
                        children.append(child)
                    running[pool.submit(self._run_all, state, plans)] = state
                waiting = still
                if not running:
                    if decided and waiting:
                        continue
                    return False
                done, _ = wait(
                    list(running),
                    return_when=FIRST_COMPLETED,
                    timeout=None if deadline is None else max(0.01, deadline - time.monotonic()),
                )
                for future in done:
                    state = running.pop(future)
                    self._record(state, future.result(), table)
                    if state.counts_as_failed and not state.is_finally:
                        stopping = True
                self._save_progress()

    def _record(self, state: TaskState, outcome: TaskOutcome, table: dict[str, Value]) -> None:
        state.outcome = outcome
        state.state = "succeeded" if outcome.succeeded else "failed"
        # Finally tasks' results are read as $(finally.<task>.results.<name>), by pipeline results.
        group = "finally" if state.is_finally else "tasks"
        for result, value in outcome.results.items():
            table[f"{group}.{state.name}.results.{result}"] = value
            if outcome.matrixed:
                table[f"tasks.{state.name}.matrix.{result}.length"] = str(len(value))
        if outcome.matrixed:
            table[f"tasks.{state.name}.matrix.length"] = str(len(outcome.runs))
        ended = outcome.condition
        self.log(f"task {state.name} {state.state} ({ended['reason']}: {ended['message']})")

    def _resolve(self, state: TaskState, table: dict[str, Value]) -> None:
        if custom_reference(state.task) is not None:
            return  # another controller's kind: Tekton resolves nothing for it
        if "taskSpec" in state.task:
            state.spec, state.task_name = state.task["taskSpec"], state.name
            return
        # Resolver params may use the Pipeline's params (e.g. a catalog revision).
        reference = substitute(state.task.get("taskRef") or {}, table)
        resolved = self.cluster.resolve("Task", reference)
        state.spec = resolved.get("spec") or {}
        state.task_name = resolved["metadata"]["name"]

    def _run_all(self, state: TaskState, plans: list[Plan]) -> TaskOutcome:
        if len(plans) == 1 and "matrix" not in state.task:
            return TaskOutcome([self._run_with_retries(state, plans[0])])
        with ThreadPoolExecutor(max_workers=min(len(plans), self.taskruns.parallelism)) as pool:
            runs = list(pool.map(lambda plan: self._run_with_retries(state, plan), plans))
        return TaskOutcome(runs, matrixed=True)

    def _run_with_retries(self, state: TaskState, plan: Plan) -> TaskRunOutcome:
        if isinstance(plan, CustomRunPlan):
            return self.customruns.execute(plan)  # retries are the custom controller's
        retries = int(state.task.get("retries") or 0)
        history: list[dict[str, Any]] = []
        outcome = self.taskruns.execute(plan)
        while not outcome.succeeded and plan.retry_count < retries:
            history.append(outcome.object["status"])
            plan.retry_count += 1
            self.log(f"task {state.name} retry {plan.retry_count} of {retries}")
            outcome = self.taskruns.execute(plan)
        if history:
            outcome.object["status"]["retriesStatus"] = history
            self.taskruns.save(outcome)
        return outcome

    def _plans(
        self,
        run_name: str,
        state: TaskState,
        table: dict[str, Value],
        workspaces: dict[str, Workspace],
        deadline: float | None,
    ) -> list[Plan] | None:
        """One TaskRun (or CustomRun) plan, or one per matrix combination; None when the
        task is skipped."""
        task = state.task
        # What a pipeline task's own fields may read beyond the run's table.
        table = {**table, "context.pipelineTask.retries": str(int(task.get("retries") or 0))}
        used = references({k: task.get(k) for k in ("params", "when", "matrix")})
        lookup = lookup_in(table)
        try:
            # A task whose inputs read results that were never written is skipped; any other
            # unknown variable stays as written, as Tekton leaves it.
            for expression in used:
                if RESULT_REF.match(expression) and expression.startswith("tasks."):
                    lookup(expression)
            when = substitute(task.get("when") or [], table)
            params = substitute(task.get("params") or [], table)
            combos = combinations(task["matrix"], table) if "matrix" in task else [{}]
        except Unresolved:
            self._skip(state, SKIP_RESULTS)
            return None
        if not _evaluate_when(when):
            self._skip(state, SKIP_WHEN)
            return None
        if not combos:
            self._skip(state, SKIP_EMPTY_MATRIX)
            return None
        if (custom := custom_reference(task)) is not None:
            return [
                CustomRunPlan(
                    name=f"{run_name}-{state.name}" + (f"-{index}" if "matrix" in task else ""),
                    api_version=custom[0],
                    kind=custom[1],
                    task=task,
                    params={p["name"]: p["value"] for p in params} | combo,
                    labels={
                        "tekton.dev/pipelineRun": run_name,
                        "tekton.dev/pipelineTask": state.name,
                    },
                    deadline=deadline,
                )
                for index, combo in enumerate(combos)
            ]
        bound: dict[str, Workspace] = {}
        for binding in task.get("workspaces") or []:
            source = workspaces.get(binding.get("workspace", binding["name"]))
            if source is None or source.root is None:
                continue
            # The subPath may use params and results; it is checked when the pod is made.
            sub_path = substitute_string(str(binding.get("subPath") or ""), table)
            bound[binding["name"]] = source.within(sub_path)
        timeout = parse_duration(task["timeout"]) if task.get("timeout") else 3600.0
        spec = (
            self._propagate(state, table, {p["name"] for p in params})
            if "taskSpec" in task
            else state.spec
        )
        passed = {p["name"]: p["value"] for p in params}
        if "taskSpec" in task:
            declared = {p["name"] for p in state.spec.get("params") or []}
            for name, value in passed.items():
                outer = table.get(f"params.{name}")
                if name not in declared and isinstance(value, dict) and isinstance(outer, dict):
                    # A propagated object merges key by key; the task's keys win.
                    passed[name] = {**outer, **value}
        plans: list[Plan] = []
        for index, combo in enumerate(combos):
            given = passed | combo
            suffix = f"-{index}" if "matrix" in task else ""
            plans.append(
                TaskRunPlan(
                    name=f"{run_name}-{state.name}{suffix}",
                    task_name=state.task_name,
                    spec=spec,
                    params=given,
                    workspaces=bound,
                    timeout=timeout,
                    deadline=deadline,
                    labels={
                        "tekton.dev/pipelineRun": run_name,
                        "tekton.dev/pipelineTask": state.name,
                        "tekton.dev/task": state.task_name,
                    },
                    run_spec={
                        "params": [{"name": k, "value": v} for k, v in given.items()],
                        "taskRef" if "taskRef" in task else "taskSpec": task.get("taskRef")
                        or task.get("taskSpec"),
                    },
                    extra_context={"context.pipelineRun.name": run_name},
                    by_reference="taskRef" in task,
                    pod_template=self._pod_template(state.name),
                )
            )
        return plans

    def _pod_template(self, task: str) -> dict[str, Any]:
        """The run's podTemplate for this pipeline task: taskRunSpecs' own, else the
        taskRunTemplate's."""
        spec = self.run_spec
        for entry in spec.get("taskRunSpecs") or []:
            if entry.get("pipelineTaskName") == task and entry.get("podTemplate"):
                return dict(entry["podTemplate"])
        return dict((spec.get("taskRunTemplate") or {}).get("podTemplate") or {})

    @staticmethod
    def _propagate(state: TaskState, table: dict[str, Value], passed: set[str]) -> dict[str, Any]:
        """Resolve what an embedded taskSpec uses without declaring: Pipeline params,
        task results and context. What the Task declares or is passed keeps precedence."""
        own = {p["name"] for p in state.spec.get("params") or []} | passed
        visible = {
            key: value
            for key, value in table.items()
            if key.startswith(("tasks.", "context.pipeline"))
            or (key.startswith("params.") and key.split(".", 1)[1] not in own)
        }
        return substitute(state.spec, visible)  # type: ignore[no-any-return]

    def _skip(self, state: TaskState, reason: str) -> None:
        state.state, state.skip_reason = "skipped", reason
        self.log(f"task {state.name} skipped ({reason})")

    @staticmethod
    def _pipeline_results(
        spec: dict[str, Any], states: dict[str, TaskState], table: dict[str, Value]
    ) -> tuple[list[dict[str, Any]], list[str]]:
        """Pipeline results, and the names of those a *succeeded* task failed to provide.

        A result that reads a failed or skipped task is left out quietly; one that reads a
        task which succeeded without writing it fails the PipelineRun, as in Tekton.
        """
        results = []
        invalid = []
        for declared in spec.get("results") or []:
            try:
                value = substitute(declared.get("value"), table, strict=True)
            except Unresolved:
                sources = {
                    match.group(2)
                    for expression in references(declared.get("value"))
                    if (match := RESULT_REF.match(expression))
                }
                if all(n in states and states[n].state == "succeeded" for n in sources):
                    invalid.append(str(declared["name"]))
                continue
            results.append({"name": declared["name"], "value": value})
        return results, invalid
