"""TaskRun and PipelineRun status as Tekton writes it: conditions and outcomes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tekton_mlops.tekton.durations import timestamp
from tekton_mlops.tekton.variables import Value


def condition(status: str, reason: str, message: str, when: float) -> dict[str, Any]:
    """The ``Succeeded`` condition."""
    return {
        "type": "Succeeded",
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": timestamp(when),
    }


@dataclass
class TaskRunOutcome:
    """A finished TaskRun: its object (as ``kubectl get -o yaml`` shows it) and results."""

    object: dict[str, Any]
    succeeded: bool
    reason: str
    results: dict[str, Value]

    @property
    def condition(self) -> dict[str, Any]:
        return self.object["status"]["conditions"][0]  # type: ignore[no-any-return]
