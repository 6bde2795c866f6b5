"""Approvals kept in a run's folder: find them, list them, decide them atomically.

Each CustomRun of an ApprovalTask lives in ``<run-dir>/<pipelinerun>/<customrun>/`` as
``customrun.yaml`` (the CustomRun, as ``kubectl get -o yaml`` would show it) and
``approvaltask.yaml`` (the ApprovalTask). Every change to either is made under one lock
file and written whole to a temporary file renamed over the old one, so two approvers
deciding at the same moment both count, and a decision never lands on a CustomRun the
executor has already ended (timeout, cancel).

Example::

    folder = find(Path(".tekton-mlops/runs"), "train-and-deploy-x1y2z", "approve-promotion")
    decide(folder, "alice", approve=True, message="SLOs met")
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from tekton_mlops.errors import MlopsError
from tekton_mlops.local import approval
from tekton_mlops.tekton.durations import timestamp

TASK_FILE = "approvaltask.yaml"
RUN_FILE = "customrun.yaml"
LOCK_FILE = "approval.lock"


class NotFound(MlopsError):
    """No such run, task or approval in the runs folder."""


@contextmanager
def locked(folder: Path) -> Iterator[None]:
    """Hold the folder's lock: one writer at a time, across processes."""
    with (folder / LOCK_FILE).open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def read(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())  # type: ignore[no-any-return]


def write(path: Path, document: dict[str, Any]) -> None:
    """Replace ``path`` whole: a reader sees the old file or the new one, never half."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}")
    temporary.write_text(json.dumps(document, indent=2))
    os.replace(temporary, path)


def condition(custom_run: dict[str, Any]) -> dict[str, Any]:
    return ((custom_run.get("status") or {}).get("conditions") or [{}])[0]  # type: ignore[no-any-return]


def decide(
    folder: Path, user: str, approve: bool, message: str = "", groups: tuple[str, ...] = ()
) -> dict[str, Any]:
    """Record one approver's decision; the ApprovalTask as it now stands."""
    with locked(folder):
        custom_run = read(folder / RUN_FILE)
        ended = condition(custom_run)
        name = custom_run["metadata"]["name"]
        if ended.get("status") != "Unknown":
            raise approval.Refused(
                f"CustomRun {name} has ended ({ended.get('reason')}: {ended.get('message')}); "
                "there is nothing left to decide"
            )
        if not (folder / TASK_FILE).is_file():
            raise approval.Refused(f"CustomRun {name} has no ApprovalTask yet; try again")
        task = read(folder / TASK_FILE)
        approval.apply(task, user, approve, message, groups)
        write(folder / TASK_FILE, task)
    return task


def _kind(custom_run: dict[str, Any]) -> str:
    spec = custom_run.get("spec") or {}
    ref = spec.get("customRef") or spec.get("customSpec") or {}
    return f"{ref.get('apiVersion', '')}/{ref.get('kind', '')}"


def find(run_dir: Path, run: str, task: str) -> Path:
    """The folder of the approval of pipeline task ``task`` (or of the CustomRun named
    ``task``) in PipelineRun ``run``."""
    here = run_dir / run
    if not here.is_dir():
        known = sorted(p.name for p in run_dir.iterdir() if p.is_dir()) if run_dir.is_dir() else []
        shown = f" (runs there: {', '.join(known[-5:])})" if known else ""
        raise NotFound(f"no PipelineRun {run} in {run_dir}{shown}")
    runs = []
    for path in sorted(here.glob(f"*/{RUN_FILE}")):
        child = read(path)
        labels = child["metadata"].get("labels") or {}
        if task in (labels.get("tekton.dev/pipelineTask"), child["metadata"]["name"]):
            runs.append((path, child))
    if not runs:
        # TaskRuns are named <run>-<task> (and -<n> in a matrix); their files are not read,
        # as a TaskRun still running may be writing its own.
        own = re.compile(rf"^{re.escape(run)}-{re.escape(task)}(-\d+)?$")
        if any(own.match(p.parent.name) for p in here.glob("*/taskrun.yaml")):
            raise approval.Refused(f"task {task} of {run} is a TaskRun, not an approval")
        raise NotFound(
            f"PipelineRun {run} has no task {task} waiting for approval (not started yet, "
            "skipped, or no such task)"
        )
    wanted = f"{approval.API_VERSION}/{approval.KIND}"
    gates = [(p, c) for p, c in runs if _kind(c) == wanted]
    if not gates:
        raise approval.Refused(
            f"task {task} of {run} is a CustomRun of {_kind(runs[0][1])}, not an {approval.KIND}"
        )
    if len(gates) > 1:
        names = ", ".join(c["metadata"]["name"] for _, c in gates)
        raise NotFound(f"task {task} of {run} has several approvals ({names}): name one")
    return gates[0][0].parent


@dataclass(frozen=True)
class Pending:
    """An approval still waiting, as ``approve --list`` shows it."""

    run: str
    task: str
    name: str
    received: int
    required: int
    approvers: list[str]
    description: str
    expires: str


def pending(run_dir: Path) -> list[Pending]:
    """Every approval still waiting for a decision under ``run_dir``, the first to
    expire first."""
    found = []
    for path in sorted(run_dir.glob(f"*/*/{TASK_FILE}")):
        custom_run = read(path.with_name(RUN_FILE))
        task = read(path)
        if condition(custom_run).get("status") != "Unknown":
            continue
        status = task["status"]
        if status["state"] != approval.PENDING:
            continue
        started = datetime.fromisoformat(str(status["startTime"]).replace("Z", "+00:00"))
        expires = started.timestamp() + approval.timeout_seconds(custom_run["spec"])
        labels = custom_run["metadata"].get("labels") or {}
        found.append(
            Pending(
                run=path.parent.parent.name,
                task=str(labels.get("tekton.dev/pipelineTask", "")),
                name=custom_run["metadata"]["name"],
                received=int(status["approvalsReceived"]),
                required=int(status["approvalsRequired"]),
                approvers=[
                    ("group:" if e["type"] == "Group" else "") + e["name"]
                    for e in task["spec"]["approvers"]
                ],
                description=str(task["spec"].get("description") or ""),
                expires=timestamp(expires),
            )
        )
    return sorted(found, key=lambda p: p.expires)
