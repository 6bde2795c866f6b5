"""The ApprovalTask of openshift-pipelines' manual-approval-gate, as plain data.

On a cluster, the manual-approval-gate controller answers each CustomRun of
``openshift-pipelines.org/v1alpha1`` ``ApprovalTask``: it creates an ApprovalTask named
after the CustomRun from the params ``approvers`` (``group:<name>`` for a group),
``numberOfApprovalsRequired`` (1 by default) and ``description``; its webhook lets each
approver change only their own ``input``; and it decides: any reject -> ``rejected``, as
many distinct approving users as required -> ``approved``, no decision before the timeout
(the CustomRun's ``spec.timeout``, else the ``timeout`` param, else 60 minutes) ->
``rejected``. This module holds the same object and rules, with no files and no clock of
its own: ``approval_store`` keeps it on disk, ``customrun`` waits on it.

Example::

    task = create("run-1-gate", {"approvers": ["alice", "bob"], "numberOfApprovalsRequired": "2"})
    apply(task, "alice", approve=True, message="metrics look right")
    task["status"]["state"]  # "pending": one of two approvals
"""

from __future__ import annotations

from typing import Any

from tekton_mlops.errors import MlopsError
from tekton_mlops.tekton import defaults
from tekton_mlops.tekton.durations import parse_duration

API_VERSION = "openshift-pipelines.org/v1alpha1"
KIND = "ApprovalTask"
#: The controller's timeout when neither the CustomRun nor the params give one.
DEFAULT_TIMEOUT_SECONDS = 3600.0
PENDING, APPROVED, REJECTED = "pending", "approved", "rejected"
GROUP_PREFIX = "group:"


class InvalidApproval(MlopsError):
    """The CustomRun's params make no ApprovalTask (the controller's validation)."""


class Refused(MlopsError):
    """A decision the webhook would refuse; the message says why."""


def create(
    name: str, params: dict[str, Any], labels: dict[str, str] | None = None
) -> dict[str, Any]:
    """The ApprovalTask the controller makes for a CustomRun with these params."""
    approvers = _approvers(params.get("approvers"))
    required = _required(params.get("numberOfApprovalsRequired", "1"))
    entries: list[dict[str, Any]] = []
    for approver in approvers:
        is_group = approver.startswith(GROUP_PREFIX)
        entry_name = approver[len(GROUP_PREFIX) :] if is_group else approver
        # A name listed twice is one approver (the controller keeps the first).
        if all(e["name"] != entry_name for e in entries):
            entries.append(
                {"name": entry_name, "input": PENDING, "type": "Group" if is_group else "User"}
            )
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {
            "name": name,
            "namespace": defaults.NAMESPACE,
            "labels": {**(labels or {}), "tekton.dev/customRun": name},
        },
        "spec": {
            "approvers": entries,
            "numberOfApprovalsRequired": required,
            "description": str(params.get("description") or ""),
        },
        "status": {
            "state": PENDING,
            "approvers": [e["name"] for e in entries],
            "approvalsRequired": required,
            "approvalsReceived": 0,
            "approversResponse": [],
        },
    }


def _approvers(value: Any) -> list[str]:
    if value is None:
        raise InvalidApproval("no valid approvers found - at least one approver is required")
    if not isinstance(value, list):
        raise InvalidApproval(
            f"invalid approvers parameter: expected an array of approvers, got {value!r}"
        )
    for index, approver in enumerate(value):
        problem = _approver_problem(approver, index)
        if problem:
            raise InvalidApproval(f"invalid approvers parameter: {problem}")
    if not value:
        raise InvalidApproval("no valid approvers found - at least one approver is required")
    return [str(a) for a in value]


def _approver_problem(approver: Any, index: int) -> str:
    if not isinstance(approver, str):
        return f"approvers[{index}]: approver must be a string, not {approver!r}"
    if not approver.strip():
        return f"approvers[{index}]: approver name cannot be empty"
    if " :" in approver or ": " in approver:
        return (
            f"approvers[{index}]: invalid group format '{approver}' - use 'group:groupname' "
            "format (remove spaces around colon)"
        )
    if approver.startswith(GROUP_PREFIX):
        group = approver[len(GROUP_PREFIX) :]
        if not group.strip():
            return (
                f"approvers[{index}]: invalid group format '{approver}' - group name cannot be "
                "empty after 'group:'"
            )
        if ":" in group or " " in group:
            return f"approvers[{index}]: group name '{group}' cannot contain colons or spaces"
    return ""


def _required(value: Any) -> int:
    try:
        required = int(str(value))
    except ValueError:
        raise InvalidApproval(
            f"invalid numberOfApprovalsRequired parameter: '{value}' is not a valid integer"
        ) from None
    if required <= 0:
        raise InvalidApproval(
            f"invalid numberOfApprovalsRequired parameter: must be greater than 0, got {required}"
        )
    return required


def timeout_seconds(custom_run_spec: dict[str, Any]) -> float:
    """How long the approvers have: the CustomRun's timeout (the pipeline task's), else the
    ``timeout`` param (a Go duration), else 60 minutes."""
    given = custom_run_spec.get("timeout")
    if not given:
        params = {p["name"]: p["value"] for p in custom_run_spec.get("params") or []}
        given = params.get("timeout")
    if not given:
        return DEFAULT_TIMEOUT_SECONDS
    try:
        seconds = parse_duration(str(given))
    except ValueError:
        raise InvalidApproval(
            f"invalid timeout {given!r}: not a duration such as 30m or 2h"
        ) from None
    return seconds if seconds > 0 else DEFAULT_TIMEOUT_SECONDS


def apply(
    task: dict[str, Any],
    user: str,
    approve: bool,
    message: str = "",
    groups: tuple[str, ...] = (),
) -> None:
    """Record ``user``'s decision in ``task`` as the webhook allows it, then decide.

    ``groups`` are the groups the user acts as a member of (on a cluster, what the API
    server knows of the user). Raises :class:`Refused` for a finished task, a user who is
    not an approver, and an approval given twice.
    """
    name = task["metadata"]["name"]
    state = task["status"]["state"]
    if state != PENDING:
        raise Refused(f"ApprovalTask {name} has already reached its final state ({state})")
    entries = task["spec"]["approvers"]
    own = next((e for e in entries if e["type"] == "User" and e["name"] == user), None)
    group = next(
        (
            e
            for e in entries
            if e["type"] == "Group"
            and (e["name"] in groups or any(u["name"] == user for u in e.get("users") or []))
        ),
        None,
    )
    if own is None and group is None:
        raise Refused(_not_an_approver(name, user, entries, groups))
    word = "approve" if approve else "reject"
    if own is not None:
        _check_not_twice(name, user, own["input"], word)
        own["input"] = word
        _set_message(own, message)
    else:
        assert group is not None
        members = group.setdefault("users", [])
        member = next((u for u in members if u["name"] == user), None)
        if member is None:
            members.append({"name": user, "input": word})
        else:
            _check_not_twice(name, user, member["input"], word)
            member["input"] = word
        # The group's own input says whether its members count: a member's reject rejects.
        group["input"] = "reject" if any(u["input"] == "reject" for u in members) else "approve"
        _set_message(group, message)
    decide(task)


def _not_an_approver(
    name: str, user: str, entries: list[dict[str, Any]], groups: tuple[str, ...]
) -> str:
    listed = ", ".join((GROUP_PREFIX if e["type"] == "Group" else "") + e["name"] for e in entries)
    text = f"{user} is not among the approvers of {name} ({listed})"
    if any(e["type"] == "Group" for e in entries) and not groups:
        text += "; a member of a group approver says so with --group NAME"
    return text


def _check_not_twice(name: str, user: str, before: str, word: str) -> None:
    # An approver may still turn an approval into a reject while the task is pending.
    if before == "approve" and word == "approve":
        raise Refused(f"{user} has already approved {name}: an approval counts once per user")


def _set_message(entry: dict[str, Any], message: str) -> None:
    if message:
        entry["message"] = message
    else:
        entry.pop("message", None)


def approving_users(task: dict[str, Any]) -> set[str]:
    """Distinct users whose approval counts: user approvers, and members of a group whose
    input is approve."""
    users: set[str] = set()
    for entry in task["spec"]["approvers"]:
        if entry["input"] != "approve":
            continue
        if entry["type"] == "User":
            users.add(entry["name"])
        else:
            users |= {u["name"] for u in entry.get("users") or [] if u["input"] == "approve"}
    return users


def decide(task: dict[str, Any]) -> None:
    """The controller's pass over ``spec.approvers``: responses, counts and the state."""
    status = task["status"]
    responses = []
    for entry in task["spec"]["approvers"]:
        if entry["input"] not in ("approve", "reject"):
            continue
        response: dict[str, Any] = {
            "name": entry["name"],
            "type": entry["type"],
            "response": APPROVED if entry["input"] == "approve" else REJECTED,
        }
        if entry.get("message"):
            response["message"] = entry["message"]
        if entry["type"] == "Group":
            response["groupMembers"] = [
                {"name": u["name"], "response": APPROVED if u["input"] == "approve" else REJECTED}
                for u in entry.get("users") or []
                if u["input"] in ("approve", "reject")
            ]
        responses.append(response)
    status["approversResponse"] = responses
    status["approvalsReceived"] = len(approving_users(task))
    if any(e["input"] == "reject" for e in task["spec"]["approvers"]):
        status["state"] = REJECTED
    elif status["approvalsReceived"] >= task["spec"]["numberOfApprovalsRequired"]:
        status["state"] = APPROVED
