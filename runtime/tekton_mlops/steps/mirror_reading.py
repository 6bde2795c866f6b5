"""What check-mirror reads, from the router's records or from payload logs: one Reading.

Its own module so that the two readers (check_mirror for the router's records,
check_mirror_logs for KServe's payload logs) share it without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

STEP = "check-mirror"


@dataclass(frozen=True)
class Reading:
    """The records as read once: the summary of the candidate's and their digest."""

    version: str
    summary: dict[str, Any]
    digest: str
    pairing: dict[str, int] | None = None  # payload logs: what was paired, what not


class Named(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def version(self) -> str: ...
    @property
    def candidate_service(self) -> str: ...


def candidate_service(params: Named) -> str:
    """The InferenceService judged from payload logs: candidate-service, or <name>-<version>."""
    return params.candidate_service or f"{params.name}-{params.version}"
