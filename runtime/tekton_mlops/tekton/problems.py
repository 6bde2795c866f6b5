"""Admission problems: where in a document, which rule, and the webhook's own words.

Tekton builds its errors with knative's ``apis.FieldError``: a message, the field
paths it applies to and optional details. Errors with the same message are merged
(their paths joined, sorted), lines are sorted by message and joined with newlines,
and the webhook prefixes the lot with its name. :func:`denial` renders exactly that.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tekton_mlops.tekton.schema import field_path

WEBHOOK = 'admission webhook "validation.webhook.pipeline.tekton.dev" denied the request'
Path = tuple[str | int, ...]

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
#: Tekton's param names (ParamSpec, and keys of object params).
PARAM_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_.-]*$")
RESULT_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
NAMES_URL = "https://kubernetes.io/docs/concepts/overview/working-with-objects/names/#names"
RESULT_NAME_DETAILS = (
    "Name must consist of alphanumeric characters, '-', '_', and must start and end with an "
    "alphanumeric character (e.g. 'MyName',  or 'my-name',  or 'my_name', regex used for "
    "validation is '^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$')"
)


@dataclass(frozen=True)
class Problem:
    """One thing the webhook refuses.

    ``path`` is where it is in the document (a linter turns it into a line); ``shown``
    is the field path as Tekton prints it, when that differs (Tekton's paths drop a
    segment in a few places; see the callers).
    """

    rule: str
    path: Path
    message: str
    details: str = ""
    shown: str | None = None

    @property
    def where(self) -> str:
        return field_path(self.path) if self.shown is None else self.shown

    def format(self) -> str:
        text = f"{self.message}: {self.where}" if self.where else self.message
        return f"{text}\n{self.details}" if self.details else text


def denial(problems: list[Problem]) -> str:
    """The webhook's answer to a document with these problems, as kubectl prints it."""
    merged: dict[tuple[str, str], list[str]] = {}
    for problem in problems:
        paths = merged.setdefault((problem.message, problem.details), [])
        if problem.where and problem.where not in paths:
            paths.append(problem.where)
    lines = []
    for (message, details), paths in sorted(merged.items()):
        text = f"{message}: {', '.join(sorted(paths))}" if paths else message
        lines.append(f"{text}\n{details}" if details else text)
    return f"{WEBHOOK}: validation failed: " + "\n".join(lines)
