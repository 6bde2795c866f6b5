"""Execute one TaskRun: params, workspaces, steps, results, and a Tekton-shaped status."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tekton_mlops.local.cluster import Cluster, ResolutionError
from tekton_mlops.local.probes import wait_ready
from tekton_mlops.local.runner import Mount, StepInvocation, StepRunner
from tekton_mlops.local.timing import format_duration, timestamp
from tekton_mlops.local.variables import Value, substitute
from tekton_mlops.results import RESULTS_BUDGET, termination_message_size

DEFAULT_TIMEOUT = 3600.0


@dataclass
class Workspace:
    """A workspace as a step sees it; path None means optional and not bound."""

    path: Path | None
    claim: str = ""
    volume: str = ""


@dataclass
class TaskRunPlan:
    name: str
    task_name: str
    spec: dict[str, Any]
    params: dict[str, Value]
    workspaces: dict[str, Workspace]
    timeout: float = DEFAULT_TIMEOUT  # seconds, 0 = none
    deadline: float | None = None  # monotonic deadline imposed by a PipelineRun
    labels: dict[str, str] = field(default_factory=dict)
    retry_count: int = 0
    run_spec: dict[str, Any] = field(default_factory=dict)  # spec as the TaskRun object shows it
    extra_context: dict[str, Value] = field(default_factory=dict)


@dataclass
class TaskRunOutcome:
    object: dict[str, Any]
    succeeded: bool
    reason: str
    results: dict[str, Value]

    @property
    def condition(self) -> dict[str, Any]:
        return self.object["status"]["conditions"][0]  # type: ignore[no-any-return]


def _type_of(value: Any) -> str:
    return "array" if isinstance(value, list) else "object" if isinstance(value, dict) else "string"


def resolve_params(
    spec: dict[str, Any], given: dict[str, Value]
) -> tuple[dict[str, Value], list[str]]:
    """Declared params with defaults and given values; problems in Tekton's words."""
    values: dict[str, Value] = dict(given)  # undeclared ones propagate, as in Tekton
    problems: list[str] = []
    missing = []
    for param in spec.get("params") or []:
        name = param["name"]
        declared = param.get("type") or _type_of(param.get("default", ""))
        if name in given:
            if _type_of(given[name]) != declared:
                problems.append(f"param types don't match the user-specified type: [{name}]")
            elif declared == "object" and isinstance(param.get("default"), dict):
                values[name] = {**param["default"], **given[name]}  # type: ignore[dict-item]
        elif "default" in param:
            values[name] = param["default"]
        else:
            missing.append(name)
    if missing:
        problems.append(f"missing parameters: [{' '.join(missing)}]")
    return values, problems


def _merge_template(step: dict[str, Any], template: dict[str, Any]) -> dict[str, Any]:
    merged = {**template, **step}
    env = {e["name"]: e for e in template.get("env") or []}
    env.update({e["name"]: e for e in step.get("env") or []})
    if env:
        merged["env"] = list(env.values())
    return merged


def _step_action(step: dict[str, Any], cluster: Cluster) -> dict[str, Any]:
    """Inline a StepAction referenced by ``ref``, its params substituted."""
    action = cluster.get("StepAction", step["ref"].get("name", ""))
    if action is None:
        raise ResolutionError(
            "TaskRunResolutionFailed",
            f'stepactions.tekton.dev "{step["ref"].get("name")}" not found',
        )
    spec = action.get("spec") or {}
    given = {p["name"]: p["value"] for p in step.get("params") or []}
    values, problems = resolve_params(spec, given)
    if problems:
        raise ResolutionError("TaskRunValidationFailed", "; ".join(problems))
    table: dict[str, Value] = {f"params.{k}": v for k, v in values.items()}
    body = substitute({k: v for k, v in spec.items() if k not in ("params", "results")}, table)
    return {
        **body,
        "name": step.get("name", ""),
        **{k: v for k, v in step.items() if k in ("onError", "timeout", "workingDir")},
    }


def _env(step: dict[str, Any], cluster: Cluster) -> dict[str, str]:
    env: dict[str, str] = {}
    for entry in step.get("env") or []:
        if "value" in entry:
            env[entry["name"]] = str(entry["value"])
            continue
        source = entry.get("valueFrom") or {}
        if "secretKeyRef" in source:
            ref, lookup = source["secretKeyRef"], cluster.secret
        elif "configMapKeyRef" in source:
            ref, lookup = source["configMapKeyRef"], cluster.config_map
        else:
            continue
        try:
            data = lookup(ref["name"])
        except ResolutionError:
            if ref.get("optional"):
                continue
            raise
        if ref["key"] not in data:
            if ref.get("optional"):
                continue
            raise ResolutionError(
                "CreateContainerConfigError", f"couldn't find key {ref['key']} in {ref['name']}"
            )
        env[entry["name"]] = data[ref["key"]].decode()
    return env


def _mount_path(workspace: dict[str, Any]) -> str:
    return str(workspace.get("mountPath") or f"/workspace/{workspace['name']}")


def _condition(status: str, reason: str, message: str, when: float) -> dict[str, Any]:
    return {
        "type": "Succeeded",
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": timestamp(when),
    }


@dataclass
class _Pod:
    """One TaskRun's own directories and mounts: never shared between parallel TaskRuns."""

    here: Path
    home: Path
    results_dir: Path
    scripts: Path
    mounts: tuple[Mount, ...] = ()
    volumes: dict[str, Path] = field(default_factory=dict)


class TaskRunExecutor:
    def __init__(
        self, cluster: Cluster, runner: StepRunner, run_dir: Path, log: Callable[[str], None]
    ) -> None:
        self.cluster = cluster
        self.runner = runner
        self.durations: dict[str, float] = {}  # TaskRun name -> seconds, for the summary
        self.run_dir = run_dir
        self.log = log

    def execute(self, plan: TaskRunPlan) -> TaskRunOutcome:
        started = time.time()
        here = self.run_dir / plan.name
        results_dir, home, scripts = here / "results", here / "home", here / "scripts"
        for directory in (results_dir, home, scripts, here / "logs"):
            directory.mkdir(parents=True, exist_ok=True)
        status: dict[str, Any] = {
            "podName": f"{plan.name}-pod",
            "startTime": timestamp(started),
            "steps": [],
            "taskSpec": plan.spec,
        }
        obj = {
            "apiVersion": "tekton.dev/v1",
            "kind": "TaskRun",
            "metadata": {
                "name": plan.name,
                "namespace": "default",
                "uid": os.urandom(8).hex(),
                "labels": plan.labels,
            },
            "spec": plan.run_spec,
            "status": status,
        }

        def finish(
            ok: bool, reason: str, message: str, results: dict[str, Value] | None = None
        ) -> TaskRunOutcome:
            done = time.time()
            status["completionTime"] = timestamp(done)
            status["conditions"] = [_condition("True" if ok else "False", reason, message, done)]
            if results:
                status["results"] = [
                    {"name": k, "type": _type_of(v), "value": v} for k, v in results.items()
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
                f"invalid input params for task {plan.task_name}: {'; '.join(problems)}",
            )
        for declared in plan.spec.get("workspaces") or []:
            bound = plan.workspaces.get(declared["name"])
            if (bound is None or bound.path is None) and not declared.get("optional"):
                return finish(
                    False,
                    "TaskRunValidationFailed",
                    f'declared workspace "{declared["name"]}" is required but has not been bound',
                )
        table = self._table(plan, values, results_dir, home)
        pod = _Pod(here, home, results_dir, scripts, self._mounts(plan, results_dir, home))
        mounting = [
            s.get("name")
            for s in [*(plan.spec.get("steps") or []), *(plan.spec.get("sidecars") or [])]
            if s.get("volumeMounts")
        ]
        if mounting and not self.runner.in_container:
            return finish(
                False,
                "TaskRunValidationFailed",
                f"steps {mounting} mount volumes at absolute paths, which the process "
                "runner cannot do; run with --runner podman",
            )
        try:
            pod.volumes = self._make_volumes(plan.spec, here)
        except ResolutionError as exc:
            return finish(False, exc.reason, f"Failed to create pod due to config error: {exc}")
        deadline = plan.deadline
        if plan.timeout:
            own = time.monotonic() + plan.timeout
            deadline = own if deadline is None else min(deadline, own)

        template = plan.spec.get("stepTemplate") or {}
        try:
            steps = [
                _merge_template(_step_action(s, self.cluster) if "ref" in s else s, template)
                for s in plan.spec.get("steps") or []
            ]
        except ResolutionError as exc:
            return finish(False, exc.reason, str(exc))
        sidecars = []
        for raw in plan.spec.get("sidecars") or []:
            sidecar = substitute(raw, table)
            name = sidecar.get("name", "sidecar")
            invocation = self._invocation(pod, sidecar, name, None, log_name=f"sidecar-{name}")
            process = self.runner.start(invocation, scripts)
            sidecars.append((name, process))
            if process is None or not wait_ready(sidecar.get("readinessProbe"), process):
                self._stop(sidecars, status)
                return finish(False, "Failed", f'sidecar "{name}" did not become ready')
            self.log(f"  sidecar {plan.name}/{name} ready")
        try:
            failed_step, timed_out = self._steps(plan, pod, steps, table, deadline, status)
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
        results = self._results(plan.spec, results_dir)
        if termination_message_size(results) > RESULTS_BUDGET:
            return finish(
                False,
                "Failed",
                f"Termination message is above max allowed size {RESULTS_BUDGET}, "
                "caused by large task result.",
            )
        if failed_step:
            return finish(False, "Failed", failed_step, results)
        return finish(True, "Succeeded", "All Steps have completed executing", results)

    def _invocation(
        self,
        pod: _Pod,
        step: dict[str, Any],
        name: str,
        deadline: float | None,
        log_name: str = "",
    ) -> StepInvocation:
        env = self.runner.base_env(pod.home, pod.results_dir) | _env(step, self.cluster)
        default_dir = "/workspace" if self.runner.in_container else str(pod.here / "workspace")
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
            mounts=pod.mounts + self._volume_mounts(step, pod.volumes),
            user="" if user is None else str(user),
        )

    @staticmethod
    def _volume_mounts(step: dict[str, Any], volumes: dict[str, Path]) -> tuple[Mount, ...]:
        mounts = []
        for mount in step.get("volumeMounts") or []:
            source = volumes.get(mount["name"])
            if source is None:
                raise ResolutionError(
                    "CreateContainerConfigError",
                    f'volume "{mount["name"]}" is not declared by the Task',
                )
            if mount.get("subPath"):
                source = source / mount["subPath"]  # one key of a configMap/secret is a file
                if not source.exists():
                    source.mkdir(parents=True)
            mounts.append(Mount(source, mount["mountPath"], bool(mount.get("readOnly"))))
        return tuple(mounts)

    def _make_volumes(self, spec: dict[str, Any], here: Path) -> dict[str, Path]:
        """Task volumes (emptyDir, configMap, secret) as directories to mount."""
        from tekton_mlops.local.workspaces import write_items

        volumes = {}
        for volume in spec.get("volumes") or []:
            target = here / "volumes" / volume["name"]
            target.mkdir(parents=True, exist_ok=True)
            if "configMap" in volume:
                source = volume["configMap"]
                write_items(target, self.cluster.config_map(source["name"]), source.get("items"))
            elif "secret" in volume:
                source = volume["secret"]
                write_items(target, self.cluster.secret(source["secretName"]), source.get("items"))
            elif "emptyDir" not in volume:
                raise ResolutionError(
                    "CreateContainerConfigError",
                    f'volume "{volume["name"]}": only emptyDir, configMap and '
                    "secret volumes run locally",
                )
            target.chmod(0o777)
            volumes[volume["name"]] = target
        return volumes

    def _mounts(self, plan: TaskRunPlan, results_dir: Path, home: Path) -> tuple[Mount, ...]:
        """Where a container sees the TaskRun's directories, as Tekton mounts them."""
        if not self.runner.in_container:
            return ()
        # Tekton gives every pod an emptyDir at /workspace; workspaces mount beneath it.
        internal = results_dir.parent / "workspace"
        internal.mkdir(exist_ok=True)
        mounts = [
            Mount(internal, "/workspace"),
            Mount(results_dir, "/tekton/results"),
            Mount(home, "/tekton/home"),
        ]
        for declared in plan.spec.get("workspaces") or []:
            bound = plan.workspaces.get(declared["name"])
            if bound is None or bound.path is None:
                continue
            mounts.append(
                Mount(bound.path, _mount_path(declared), read_only=bool(declared.get("readOnly")))
            )
        for mount in mounts:  # steps run as non-root users: let them write, as fsGroup would
            if not mount.read_only:
                mount.source.chmod(0o777)
        return tuple(mounts)

    @staticmethod
    def _stop(sidecars: list[tuple[str, Any]], status: dict[str, Any]) -> None:
        """Stop sidecars once the steps are done, as Tekton does, and record how they ended."""
        states = []
        for name, process in sidecars:
            code = 1 if process is None else process.poll()
            if code is None:  # still running: stopped the way Tekton stops it, ending with 0
                assert process is not None
                process.terminate()
                try:
                    process.wait(timeout=10)
                except Exception:  # noqa: BLE001 - a sidecar that ignores SIGTERM gets killed
                    process.kill()
                    process.wait()
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
        pod: _Pod,
        steps: list[dict[str, Any]],
        table: dict[str, Value],
        deadline: float | None,
        status: dict[str, Any],
    ) -> tuple[str, bool]:
        """Run the steps in order; return the failure message (or "") and whether time ran out."""
        failed_step = ""
        timed_out = False
        for index, raw in enumerate(steps):
            name = raw.get("name") or f"unnamed-{index}"
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
            step = substitute(raw, table)
            invocation = self._invocation(pod, step, name, deadline)
            self.log(f"  step {plan.name}/{name} started")
            outcome = self.runner.run(invocation, pod.scripts)
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
        name = outcome.object["metadata"]["name"]
        (self.run_dir / name / "taskrun.yaml").write_text(json.dumps(outcome.object, indent=2))

    def _table(
        self, plan: TaskRunPlan, values: dict[str, Value], results_dir: Path, home: Path
    ) -> dict[str, Value]:
        table: dict[str, Value] = {f"params.{k}": v for k, v in values.items()}
        table |= {
            "context.taskRun.name": plan.name,
            "context.taskRun.namespace": "default",
            "context.taskRun.uid": plan.name,
            "context.task.name": plan.task_name,
            "context.task.retry-count": str(plan.retry_count),
            "credentials.path": "/tekton/creds" if self.runner.in_container else str(home),
        }
        inside = self.runner.in_container
        for declared in plan.spec.get("workspaces") or []:
            bound = plan.workspaces.get(declared["name"]) or Workspace(None)
            prefix = f"workspaces.{declared['name']}"
            where = _mount_path(declared) if inside else str(bound.path)
            table[f"{prefix}.path"] = where if bound.path else ""
            table[f"{prefix}.bound"] = "true" if bound.path else "false"
            table[f"{prefix}.claim"] = bound.claim
            table[f"{prefix}.volume"] = bound.volume
        for result in plan.spec.get("results") or []:
            results_root = Path("/tekton/results") if inside else results_dir
            table[f"results.{result['name']}.path"] = str(results_root / result["name"])
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
            if _type_of(parsed) == kind:
                results[declared["name"]] = parsed
        return results
