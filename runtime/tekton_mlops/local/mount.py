"""A directory of this machine and where a step sees it (a bind mount)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Mount:
    """A local directory and where a container (or a step's namespace) sees it."""

    source: Path
    target: str
    read_only: bool = False
