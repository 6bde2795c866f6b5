"""An incoming webhook event as Triggers sees it: body, raw bytes, headers, extensions.

Header names are kept in Go's canonical MIME form (``X-Github-Event``), which is how
Triggers' interceptors, CEL and ``$(header.…)`` bindings look them up.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


def canonical(name: str) -> str:
    """Go's canonical MIME header key, which Triggers uses: x-github-event -> X-Github-Event."""
    return "-".join(part[:1].upper() + part[1:].lower() for part in name.split("-"))


@dataclass
class Event:
    body: Any
    raw: bytes
    headers: dict[str, list[str]]  # canonical names (X-Github-Event), every value
    extensions: dict[str, Any] = field(default_factory=dict)

    def header(self, name: str) -> str:
        return ",".join(self.headers.get(canonical(name), []))
