"""Run a custom pipeline task as a CustomRun, with the one controller this machine has.

Tekton creates a ``tekton.dev/v1beta1`` CustomRun for a pipeline task that references
another controller's kind and waits for that controller to write its ``Succeeded``
condition: Unknown while it runs (reason Started, then Running), then True or False.
Here the controller of openshift-pipelines' ``ApprovalTask`` is built in: the CustomRun
waits, without holding a TaskRun slot, until ``tekton-mlops approve`` decides it, its
timeout rejects it, or the PipelineRun ends it (reason CustomRunCancelled). Any other kind
fails at once: on a cluster without its controller the CustomRun would stay unanswered
until the PipelineRun timed out, which helps nobody on a laptop.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tekton_mlops.local import approval, approval_store
from tekton_mlops.local.status import TaskRunOutcome, condition
from tekton_mlops.tekton import defaults
from tekton_mlops.tekton.custom_tasks import CUSTOM_RUN_API_VERSION, custom_run_spec
from tekton_mlops.tekton.durations import timestamp
from tekton_mlops.tekton.variables import Value

#: How often a waiting CustomRun looks at its ApprovalTask: a decision shows within this.
POLL_SECONDS = 0.25
#: Tekton's spec.statusMessage when a PipelineRun cancels its CustomRuns.
CANCELLED_BY_PIPELINE = "CustomRun cancelled as the PipelineRun it belongs to has been cancelled."
CANCELLED_BY_TIMEOUT = "CustomRun cancelled as the PipelineRun it belongs to has timed out."


@dataclass
class CustomRunPlan:
    """One CustomRun a pipeline task makes (one per matrix combination)."""

    name: str
    api_version: str
    kind: str
    task: dict[str, Any]  # the pipeline task, for its reference, timeout and retries
    params: dict[str, Value]
    labels: dict[str, str] = field(default_factory=dict)
    deadline: float | None = None  # monotonic deadline of the PipelineRun


class CustomRunExecutor:
    def __init__(
        self,
        run_dir: Path,
        log: Callable[[str], None],
        durations: dict[str, float] | None = None,
    ) -> None:
        self.run_dir = run_dir
        self.log = log
        self.durations = durations if durations is not None else {}
        #: Set when the PipelineRun stops early (an interrupt): waiting CustomRuns end.
        self.cancelled = threading.Event()

    @contextmanager
    def cancelled_on_error(self) -> Iterator[None]:
        """End every waiting CustomRun when the code inside raises (Ctrl-C included), so
        the threads waiting on approvals let the process exit."""
        try:
            yield
        except BaseException:
            self.cancelled.set()
            raise

    def execute(self, plan: CustomRunPlan) -> TaskRunOutcome:
        started = time.time()
        here = self.run_dir / plan.name
        here.mkdir(parents=True, exist_ok=True)
        timeout = plan.task.get("timeout")
        custom_run: dict[str, Any] = {
            "apiVersion": CUSTOM_RUN_API_VERSION,
            "kind": "CustomRun",
            "metadata": {
                "name": plan.name,
                "namespace": defaults.NAMESPACE,
                "uid": str(uuid.uuid4()),
                "labels": plan.labels,
            },
            "spec": custom_run_spec(plan.task, plan.params, str(timeout) if timeout else None),
            "status": {
                "startTime": timestamp(started),
                "conditions": [condition("Unknown", "Started", "", started)],
            },
        }
        approval_store.write(here / approval_store.RUN_FILE, custom_run)
        if (plan.api_version, plan.kind) == (approval.API_VERSION, approval.KIND):
            ok, reason, message = self._approval(plan, custom_run, here, started)
        else:
            ok, reason, message = (
                False,
                "Failed",
                f"no controller for {plan.api_version}/{plan.kind} here: the local executor "
                f"runs {approval.API_VERSION} {approval.KIND} custom tasks only (on a cluster, "
                "install that kind's controller)",
            )
            self._end(here, custom_run, ok, reason, message)
        self.durations[plan.name] = time.time() - started
        return TaskRunOutcome(custom_run, ok, reason, {})

    def _end(
        self, here: Path, custom_run: dict[str, Any], ok: bool, reason: str, message: str
    ) -> None:
        now = time.time()
        status = custom_run["status"]
        status["completionTime"] = timestamp(now)
        status["conditions"] = [condition("True" if ok else "False", reason, message, now)]
        approval_store.write(here / approval_store.RUN_FILE, custom_run)

    def _approval(
        self, plan: CustomRunPlan, custom_run: dict[str, Any], here: Path, started: float
    ) -> tuple[bool, str, str]:
        """Create the ApprovalTask, then wait for its decision, the timeout or a cancel."""
        try:
            limit = approval.timeout_seconds(custom_run["spec"])
            task = approval.create(plan.name, plan.params, plan.labels)
        except approval.InvalidApproval as exc:
            invalid = (
                False,
                "ApprovalTaskValidationFailed",
                f"ApprovalTask validation failed: {exc}",
            )
            self._end(here, custom_run, *invalid)
            return invalid
        task["status"]["startTime"] = timestamp(started)
        with approval_store.locked(here):
            approval_store.write(here / approval_store.TASK_FILE, task)
            custom_run["status"]["conditions"] = [
                condition(
                    "Unknown",
                    "Running",
                    f"Waiting for {task['spec']['numberOfApprovalsRequired']} approval(s) from "
                    + ", ".join(task["status"]["approvers"]),
                    time.time(),
                )
            ]
            approval_store.write(here / approval_store.RUN_FILE, custom_run)
        labels = plan.labels
        self.log(
            f"task {labels.get('tekton.dev/pipelineTask', plan.name)} waits for approval: "
            f"tekton-mlops approve {labels.get('tekton.dev/pipelineRun', '')} "
            f"{labels.get('tekton.dev/pipelineTask', plan.name)} --approve --user NAME"
        )
        expires = time.monotonic() + limit
        while True:
            now = time.monotonic()
            cancel = (
                CANCELLED_BY_PIPELINE
                if self.cancelled.is_set()
                else CANCELLED_BY_TIMEOUT
                if plan.deadline is not None and now >= plan.deadline
                else ""
            )
            # The decision and the end of the CustomRun are made under the lock that
            # `approve` takes, so no approval lands on a CustomRun that has just ended.
            with approval_store.locked(here):
                task = approval_store.read(here / approval_store.TASK_FILE)
                state = task["status"]["state"]
                result: tuple[bool, str, str] | None
                if state == approval.PENDING and not cancel and now >= expires:
                    task["status"]["state"] = approval.REJECTED  # what the controller does
                    approval_store.write(here / approval_store.TASK_FILE, task)
                    result = (
                        False,
                        "Failed",
                        f"Approval task {plan.name} is failed because of timeout",
                    )
                else:
                    result = _verdict(state, cancel)
                if result is not None:
                    self._end(here, custom_run, *result)
                    return result
            wake = min(expires, plan.deadline or expires) - time.monotonic()
            self.cancelled.wait(max(0.0, min(POLL_SECONDS, wake)))


def _verdict(state: str, cancel: str) -> tuple[bool, str, str] | None:
    """The CustomRun's end for an ApprovalTask state (None: still waiting)."""
    if state == approval.APPROVED:
        return True, "Succeeded", "TaskRun succeeded"  # the controller's own words
    if state == approval.REJECTED:
        return False, "Failed", "Approval Task denied"
    if cancel:
        return False, "CustomRunCancelled", cancel
    return None
