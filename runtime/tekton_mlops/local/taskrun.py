"""Execute one TaskRun: params, its pod, sidecars, steps in order, results and status."""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tekton_mlops.local.cluster import Cluster, ResolutionError
from tekton_mlops.local.mount import Mount
from tekton_mlops.local.pod import (
    Pod,
    check_sub_paths,
    container_mounts,
    make_volumes,
    resolve_workspaces,
    step_workspace_mounts,
    volume_mounts,
)
from tekton_mlops.local.probes import wait_ready
from tekton_mlops.local.runner import StepInvocation, StepRunner
from tekton_mlops.local.status import TaskRunOutcome, condition
from tekton_mlops.local.steps import (
    find_step_action,
    inline_step_action,
    merge_template,
    step_env,
)
from tekton_mlops.local.workspaces import PodInvalid, Workspace
from tekton_mlops.results import termination_message_size
from tekton_mlops.storage.publish import atomic_write_text
from tekton_mlops.tekton import defaults
from tekton_mlops.tekton.defaults import step_name, value_type, workspace_mount_path
from tekton_mlops.tekton.durations import format_duration, timestamp
from tekton_mlops.tekton.flags import FeatureFlags
from tekton_mlops.tekton.resolution import resolve_params
from tekton_mlops.tekton.variables import (
    Value,
    substitute,
    substitute_in_passes,
    substitute_string,
)


@dataclass
class TaskRunPlan:
    name: str
    task_name: str
    spec: dict[str, Any]
    params: dict[str, Value]
    workspaces: dict[str, Workspace]
    timeout: float = defaults.TIMEOUT_SECONDS  # seconds, 0 = none
    deadline: float | None = None  # monotonic deadline imposed by a PipelineRun
    labels: dict[str, str] = field(default_factory=dict)
    retry_count: int = 0
    run_spec: dict[str, Any] = field(default_factory=dict)  # spec as the TaskRun object shows it
    extra_context: dict[str, Value] = field(default_factory=dict)
    by_reference: bool = False  # the Task came through taskRef (it shows in pod errors)
    pod_template: dict[str, Any] = field(default_factory=dict)  # the run's podTemplate


def pod_fields(plan: TaskRunPlan, uid: str) -> dict[str, Any]:
    """What the downward API reads of the TaskRun's pod: its name, namespace and labels.

    Tekton copies the TaskRun's labels onto the pod and adds its own (the TaskRun and, from a
    Pipeline, the PipelineRun and pipeline task), so a step can learn where it runs from
    ``fieldRef: metadata.labels['tekton.dev/pipelineRun']`` locally as on a cluster.
    """
    labels = {
        **plan.labels,
        "app.kubernetes.io/managed-by": "tekton-pipelines",
        "tekton.dev/taskRun": plan.name,
        "tekton.dev/taskRunUID": uid,
    }
    return {
        "metadata.name": defaults.pod_name(plan.name, plan.retry_count),
        "metadata.namespace": defaults.NAMESPACE,
        "metadata.uid": str(uuid.uuid5(uuid.NAMESPACE_URL, uid)),
        "metadata.labels": labels,
        "metadata.annotations": {},
        "spec.serviceAccountName": str(plan.run_spec.get("serviceAccountName") or "default"),
        "spec.nodeName": "localhost",
        "status.hostIP": "127.0.0.1",
        "status.podIP": "127.0.0.1",
    }


class TaskRunExecutor:
    def __init__(
        self,
        cluster: Cluster,
        runner: StepRunner,
        run_dir: Path,
        log: Callable[[str], None],
        flags: FeatureFlags | None = None,
        parallelism: int = 0,
    ) -> None:
        self.cluster = cluster
        self.runner = runner
        #: How many TaskRuns run at once (a cluster's capacity); 0 means 4 per core.
        self.parallelism = parallelism or 4 * (os.cpu_count() or 1)
        self._slots = threading.BoundedSemaphore(self.parallelism)
        self.durations: dict[str, float] = {}  # TaskRun name -> seconds, for the summary
        self.run_dir = run_dir
        self.log = log
        self.flags = flags or FeatureFlags()

    def execute(self, plan: TaskRunPlan) -> TaskRunOutcome:
        # A TaskRun holds one slot from its pod to its end (matrix combinations and retries
        # each take their own), so a full machine queues TaskRuns instead of starting them.
        with self._slots:
            return self._execute(plan)

    def _execute(self, plan: TaskRunPlan) -> TaskRunOutcome:
        started = time.time()
        uid = str(uuid.uuid4())
        pod = Pod.directories(self.run_dir / plan.name)
        pod.spec = plan.spec
        pod.fields = pod_fields(plan, uid)
        status: dict[str, Any] = {
            "podName": defaults.pod_name(plan.name, plan.retry_count),
            "startTime": timestamp(started),
            "steps": [],
            "taskSpec": plan.spec,
        }
        obj = {
            "apiVersion": "tekton.dev/v1",
            "kind": "TaskRun",
            "metadata": {
                "name": plan.name,
                "namespace": defaults.NAMESPACE,
                "uid": uid,
                "labels": plan.labels,
            },
            "spec": plan.run_spec,
            "status": status,
        }
        # The TaskRun exists from its start, as on a cluster: Running until finish() replaces
        # it (tekton-mlops dashboard shows it; one small write per TaskRun).
        running = {
            **obj,
            "status": {
                **status,
                "conditions": [
                    condition(
                        "Unknown",
                        "Running",
                        "Not all Steps in the Task have finished executing",
                        started,
                    )
                ],
            },
        }
        self._write(running)

        def finish(
            ok: bool, reason: str, message: str, results: dict[str, Value] | None = None
        ) -> TaskRunOutcome:
            done = time.time()
            status["completionTime"] = timestamp(done)
            status["conditions"] = [condition("True" if ok else "False", reason, message, done)]
            if results:
                status["results"] = [
                    {"name": k, "type": value_type(v), "value": v} for k, v in results.items()
                ]
            outcome = TaskRunOutcome(obj, ok, reason, results or {})
            self.durations[plan.name] = done - started
            self.save(outcome)
            return outcome

        values, problems = resolve_params(plan.spec, plan.params)
        if problems:
            return finish(
                False,
                "TaskRunValidationFailed",
                f"invalid input params for task {plan.task_name}: " + "; ".join(problems),
            )
        for declared in plan.spec.get("workspaces") or []:
            bound = plan.workspaces.get(declared["name"])
            if (bound is None or bound.root is None) and not declared.get("optional"):
                return finish(
                    False,
                    "TaskRunValidationFailed",
                    f'declared workspace "{declared["name"]}" is required but has not been bound',
                )
        param_table: dict[str, Value] = {f"params.{k}": v for k, v in values.items()}
        template = plan.spec.get("stepTemplate") or {}
        # A step that references a StepAction is made when it runs: its params may read the
        # results of the steps before it. That the action exists is checked now.
        steps = [
            s if "ref" in s else merge_template(s, template) for s in plan.spec.get("steps") or []
        ]
        try:
            for step in steps:
                if "ref" in step:  # a resolver's params may use the TaskRun's params
                    step["ref"] = substitute(step["ref"], param_table)
                    find_step_action(self.cluster, step["ref"])
        except ResolutionError as exc:
            return finish(False, exc.reason, str(exc))
        workspaces = {
            name: Workspace(w.root, w.claim, w.volume, substitute_string(w.sub_path, param_table))
            for name, w in plan.workspaces.items()
        }
        try:
            # The pod: what the API server checks, then what the kubelet prepares.
            check_sub_paths(plan.spec, workspaces, substitute(steps, param_table))
            first = f"step-{step_name(steps[0], 0)}" if steps else "step-unnamed-0"
            pod.workspace_paths = resolve_workspaces(plan.spec, workspaces, first)
            # Volume names and sources may use params ($(params.config) as a ConfigMap name).
            # The run's podTemplate may add volumes the Task's steps mount.
            declared = [
                *(plan.spec.get("volumes") or []),
                *(plan.pod_template.get("volumes") or []),
            ]
            volumes_spec = {"volumes": substitute(declared, param_table)}
            pod.volumes = make_volumes(volumes_spec, pod.here, self.cluster)
            # A workspace is a pod volume too: volumeMounts may name it ($(workspaces.w.volume)).
            for name, path in pod.workspace_paths.items():
                volume = workspaces[name].volume or f"ws-{name}"
                pod.volumes.setdefault(volume, path)
        except PodInvalid as exc:
            maybe = (
                f"missing or invalid Task {defaults.NAMESPACE}/{plan.task_name}"
                if plan.by_reference
                else "invalid TaskSpec"
            )
            errors = exc.errors[0] if len(exc.errors) == 1 else f"[{', '.join(exc.errors)}]"
            pod_name = status["podName"]
            return finish(
                False,
                "PodCreationFailed",
                f'failed to create task run pod "{plan.name}": Pod "{pod_name}" is invalid: '
                f"{errors}. Maybe {maybe}",
            )
        except ResolutionError as exc:
            return finish(False, exc.reason, f"Failed to create pod due to config error: {exc}")
        unsupported = self.runner.unsupported(plan.spec, steps)
        if unsupported:
            return finish(False, "TaskRunValidationFailed", unsupported)
        if self.runner.pod_paths:
            pod.mounts = container_mounts(plan.spec, pod)
        table = self._table(plan, param_table, pod, uid)
        # Later steps see earlier steps' results: the table grows as steps finish.
        deadline = plan.deadline
        if plan.timeout:
            own = time.monotonic() + plan.timeout
            deadline = own if deadline is None else min(deadline, own)

        sidecars = []
        try:
            for index, raw in enumerate(plan.spec.get("sidecars") or []):
                sidecar = substitute_in_passes(raw, table)
                name = sidecar.get("name", "sidecar")
                invocation = self._invocation(
                    pod, sidecar, -1 - index, name, None, log_name=f"sidecar-{name}"
                )
                process = self.runner.start(invocation, pod.scripts)
                sidecars.append((name, process))
                probe = self.runner.probe(invocation, pod.scripts)
                if process is None or not wait_ready(sidecar.get("readinessProbe"), process, probe):
                    return finish(False, "Failed", f'sidecar "{name}" did not become ready')
                self.log(f"  sidecar {plan.name}/{name} ready")
            failed_step, timed_out = self._steps(
                plan, pod, steps, table, deadline, status, template
            )
        except ResolutionError as exc:
            return finish(False, exc.reason, f"Failed to create pod due to config error: {exc}")
        finally:
            self._stop(sidecars, status)
        if timed_out:
            return finish(
                False,
                "TaskRunTimeout",
                f'TaskRun "{plan.name}" failed to finish within "{format_duration(plan.timeout)}"',
            )
        results = self._results(plan.spec, pod.results_dir)
        results.update(_results_from_steps(plan.spec, table))
        budget = self.flags.result_budget
        too_large = self._too_large(results, budget)
        if too_large:
            return finish(False, "Failed", too_large)
        if failed_step:
            return finish(False, "Failed", failed_step, results)
        return finish(True, "Succeeded", "All Steps have completed executing", results)

    def _too_large(self, results: dict[str, Value], budget: int) -> str:
        """Tekton's message when results do not fit where the flags say they travel."""
        if self.flags.results_from == "termination-message":
            if termination_message_size(results) > budget:
                return (
                    f"Termination message is above max allowed size {budget}, caused by large "
                    "task result."
                )
            return ""
        for name, value in results.items():
            size = len(value if isinstance(value, str) else json.dumps(value))
            if size > budget:
                return (
                    f"Result {name} of size {size} bytes is larger than the maximum allowed "
                    f"size of {budget} bytes (max-result-size)."
                )
        return ""

    def _invocation(
        self,
        pod: Pod,
        step: dict[str, Any],
        index: int,
        name: str,
        deadline: float | None,
        log_name: str = "",
    ) -> StepInvocation:
        env = self.runner.base_env(pod.home, pod.results_dir) | step_env(
            step, self.cluster, pod.fields
        )
        default_dir = "/workspace" if self.runner.pod_paths else str(pod.here / "workspace")
        user = (step.get("securityContext") or {}).get("runAsUser")
        return StepInvocation(
            name=name,
            image=str(step.get("image", "")),
            command=list(step.get("command") or []),
            args=[str(a) for a in step.get("args") or []],
            script=str(step.get("script") or ""),
            env=env,
            working_dir=Path(step.get("workingDir") or default_dir),
            log_file=pod.here / "logs" / f"{log_name or name}.log",
            deadline=deadline,
            mounts=self._mounts(pod, step, index, pod.spec),
            user="" if user is None else str(user),
            tmp_dir=pod.here / "tmp",
        )

    def _mounts(
        self, pod: Pod, step: dict[str, Any], index: int, spec: dict[str, Any]
    ) -> tuple[Mount, ...]:
        """The pod's mounts, the step's isolated workspaces and its volumeMounts; a
        volumeMount at a pod path (a home volume at /tekton/home) replaces the pod's."""
        own = volume_mounts(step, index, pod.volumes)
        if self.runner.pod_paths:
            own = step_workspace_mounts(step, spec, pod) + own
            if index >= 0:  # a step (sidecars have no folders of their own)
                own = pod.own_mounts(index, f"step-{step_name(step, index)}") + own
        replaced = {mount.target for mount in own}
        return tuple(m for m in pod.mounts if m.target not in replaced) + own

    def _stop(self, sidecars: list[tuple[str, Any]], status: dict[str, Any]) -> None:
        """Stop sidecars once the steps are done, as Tekton does, and record how they ended."""
        states = []
        for name, process in sidecars:
            code = 1 if process is None else process.poll()
            if code is None:  # still running: stopped the way Tekton stops it, ending with 0
                assert process is not None
                self.runner.stop(process)
                code = 0
            states.append(
                {
                    "name": name,
                    "container": f"sidecar-{name}",
                    "terminated": {
                        "exitCode": code if code >= 0 else 128 - code,
                        "reason": "Completed" if code == 0 else "Error",
                    },
                }
            )
        if states:
            status["sidecars"] = states

    def _steps(
        self,
        plan: TaskRunPlan,
        pod: Pod,
        steps: list[dict[str, Any]],
        table: dict[str, Value],
        deadline: float | None,
        status: dict[str, Any],
        template: dict[str, Any],
    ) -> tuple[str, bool]:
        """Run the steps in order; return the failure message (or "") and whether time ran out."""
        failed_step = ""
        timed_out = False
        for index, raw in enumerate(steps):
            name = step_name(raw, index)
            container = f"step-{name}"
            if failed_step or timed_out:
                status["steps"].append(
                    {
                        "name": name,
                        "container": container,
                        "terminated": {"exitCode": 1, "reason": "Error"},
                        "terminationReason": "Skipped",
                    }
                )
                continue
            if "ref" in raw:
                raw = merge_template(inline_step_action(raw, self.cluster, table), template)
            own = pod.steps_dir / container
            (own / "results").mkdir(parents=True, exist_ok=True)
            by_index = pod.steps_dir / str(index)  # Tekton also names each step's folder by index
            if not by_index.exists():
                by_index.symlink_to(container)
            inside = Path(defaults.STEPS_DIR) / container if self.runner.pod_paths else own
            (own / "artifacts").mkdir(exist_ok=True)
            step_table = {
                **table,
                **{
                    f"step.results.{r['name']}.path": str(inside / "results" / r["name"])
                    for r in raw.get("results") or []
                },
                "step.artifacts.path": str(inside / "artifacts" / "provenance.json"),
            }
            step = substitute_in_passes(raw, step_table)
            invocation = self._invocation(pod, step, index, name, deadline)
            self.log(f"  step {plan.name}/{name} started")
            outcome = self.runner.run(invocation, pod.scripts)
            # What later steps read: $(steps.step-<name>.exitCode.path), $(steps.<name>.results.<r>)
            (own / "exitCode").write_text(str(outcome.exit_code))
            table.update(_step_results(name, raw.get("results") or [], own / "results"))
            continued = outcome.exit_code != 0 and step.get("onError") == "continue"
            reason = (
                "TimeoutExceeded"
                if outcome.timed_out
                else "Continued"
                if continued
                else "Completed"
                if outcome.exit_code == 0
                else "Error"
            )
            status["steps"].append(
                {
                    "name": name,
                    "container": container,
                    "imageID": invocation.image,
                    "terminated": {
                        "exitCode": outcome.exit_code,
                        "reason": "Completed" if outcome.exit_code == 0 else "Error",
                        "startedAt": timestamp(outcome.started),
                        "finishedAt": timestamp(outcome.finished),
                    },
                    "terminationReason": reason,
                }
            )
            _record_artifacts(status["steps"][-1], own / "artifacts" / "provenance.json")
            took = outcome.finished - outcome.started
            self.log(
                f"  step {plan.name}/{name} {reason.lower()} "
                f"(exit {outcome.exit_code}, {took:.2f} s)"
            )
            if outcome.exit_code != 0 and not continued:
                # The step's own last words say why; the full log stays in the run directory.
                tail = invocation.log_file.read_text(errors="replace").splitlines()[-5:]
                for line in tail:
                    self.log(f"    | {line}")
            if outcome.timed_out:
                timed_out = True
            elif outcome.exit_code != 0 and not continued:
                failed_step = f'"{container}" exited with code {outcome.exit_code}'

        return failed_step, timed_out

    def save(self, outcome: TaskRunOutcome) -> None:
        """Keep the TaskRun readable, as `kubectl get taskrun -o yaml` would show it."""
        self._write(outcome.object)

    def _write(self, taskrun: dict[str, Any]) -> None:
        name = taskrun["metadata"]["name"]
        atomic_write_text(self.run_dir / name / "taskrun.yaml", json.dumps(taskrun, indent=2))

    def _table(
        self, plan: TaskRunPlan, param_table: dict[str, Value], pod: Pod, uid: str
    ) -> dict[str, Value]:
        table: dict[str, Value] = dict(param_table)
        # $(inputs.params.x): the v1beta1 spelling Tekton still substitutes.
        table |= {f"inputs.{k}": v for k, v in param_table.items()}
        inside = self.runner.pod_paths
        table |= {
            "context.taskRun.name": plan.name,
            "context.taskRun.namespace": defaults.NAMESPACE,
            "context.taskRun.uid": uid,
            "context.task.name": plan.task_name,
            "context.task.retry-count": str(plan.retry_count),
            "credentials.path": defaults.CREDS_DIR if inside else str(pod.home),
        }
        for declared in plan.spec.get("workspaces") or []:
            name = declared["name"]
            bound = plan.workspaces.get(name) or Workspace(None)
            path = pod.workspace_paths.get(name)
            prefix = f"workspaces.{name}"
            where = workspace_mount_path(declared) if inside else str(path)
            table[f"{prefix}.path"] = where if path is not None else ""
            table[f"{prefix}.bound"] = "true" if path is not None else "false"
            table[f"{prefix}.claim"] = bound.claim
            table[f"{prefix}.volume"] = bound.volume
        results_root = Path(defaults.RESULTS_DIR) if inside else pod.results_dir
        for result in plan.spec.get("results") or []:
            table[f"results.{result['name']}.path"] = str(results_root / result["name"])
        steps_root = Path(defaults.STEPS_DIR) if inside else pod.steps_dir
        for index, step in enumerate(plan.spec.get("steps") or []):
            container = f"step-{step_name(step, index)}"
            table[f"steps.{container}.exitCode.path"] = str(steps_root / container / "exitCode")
        table |= plan.extra_context
        return table

    @staticmethod
    def _results(spec: dict[str, Any], results_dir: Path) -> dict[str, Value]:
        results: dict[str, Value] = {}
        for declared in spec.get("results") or []:
            path = results_dir / declared["name"]
            if not path.is_file():
                continue
            text = path.read_text()
            kind = declared.get("type", "string")
            if kind == "string":
                results[declared["name"]] = text
                continue
            try:
                parsed = json.loads(text)
            except ValueError:
                continue  # Tekton drops a structured result that does not parse
            if value_type(parsed) == kind:
                results[declared["name"]] = parsed
        return results


def _parsed(text: str, kind: str) -> Value | None:
    """A result file's value as its declared type; None when it does not parse as one."""
    if kind == "string":
        return text
    try:
        parsed = json.loads(text)
    except ValueError:
        return None
    return parsed if value_type(parsed) == kind else None


def _record_artifacts(step_status: dict[str, Any], provenance: Path) -> None:
    """Artifacts a step wrote to $(step.artifacts.path), in its status as Tekton keeps them."""
    if not provenance.is_file():
        return
    try:
        artifacts = json.loads(provenance.read_text())
    except ValueError:
        return
    if isinstance(artifacts, dict):
        for kind in ("inputs", "outputs"):
            if isinstance(artifacts.get(kind), list):
                step_status[kind] = artifacts[kind]


def _step_results(step: str, declared: list[dict[str, Any]], folder: Path) -> dict[str, Value]:
    """``steps.<step>.results.<name>`` for each result a step wrote."""
    found: dict[str, Value] = {}
    for result in declared:
        path = folder / result["name"]
        if path.is_file():
            value = _parsed(path.read_text(), result.get("type", "string"))
            if value is not None:
                found[f"steps.{step}.results.{result['name']}"] = value
    return found


def _results_from_steps(spec: dict[str, Any], table: dict[str, Value]) -> dict[str, Value]:
    """Task results declared with a ``value`` (a step's result), as Tekton fills them."""
    from tekton_mlops.tekton.variables import Unresolved

    results: dict[str, Value] = {}
    for declared in spec.get("results") or []:
        if "value" not in declared:
            continue
        try:
            results[declared["name"]] = substitute(declared["value"], table, strict=True)
        except Unresolved:
            continue
    return results
