"""Kubernetes-safe, stable names for what the compiler makes.

KFP names (pipeline names, task names, output keys) allow spaces, capitals and
underscores; Tekton wants DNS-1123 labels for Pipelines and pipeline tasks and its own
patterns for params and results. A name is lowered and cleaned; one too long keeps its
start and a short hash of the original. Two KFP names that clean to the same label get
``-2``, ``-3`` ... in the order the IR lists them, so a compile is repeatable.
"""

from __future__ import annotations

import hashlib
import re

from tekton_mlops.tekton.problems import DNS_LABEL, PARAM_NAME, RESULT_NAME

LABEL_MAX = 63
#: Tekton names a TaskRun ``<PipelineRun>-<task>``; short task names keep TaskRun names
#: readable instead of hashed.
TASK_MAX = 50


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:6]


def dns_label(text: str, limit: int = LABEL_MAX) -> str:
    """A DNS-1123 label for ``text`` (lower case, digits, ``-``), at most ``limit`` long;
    a longer one keeps its start and gets a hash of the whole."""
    cleaned = re.sub(r"[^a-z0-9-]+", "-", text.lower())
    cleaned = re.sub(r"-{2,}", "-", cleaned).strip("-") or "x"
    if len(cleaned) <= limit and DNS_LABEL.match(cleaned):
        return cleaned
    suffix = _hash(text)
    return f"{cleaned[: limit - len(suffix) - 1].rstrip('-')}-{suffix}"


def param_name(text: str) -> str:
    """A Tekton param name (letters, digits, ``_.-``, not starting with a digit or ``-``)."""
    if PARAM_NAME.match(text):
        return text
    cleaned = re.sub(r"[^a-zA-Z0-9_.-]+", "-", text).strip("-") or "p"
    if not re.match(r"[a-zA-Z_]", cleaned):
        cleaned = "p-" + cleaned
    return f"{cleaned}-{_hash(text)}"


def result_name(text: str) -> str:
    """A Tekton result name (starts and ends with a letter or digit)."""
    if RESULT_NAME.match(text):
        return text
    cleaned = re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-_.") or "r"
    return f"{cleaned}-{_hash(text)}"


class Namer:
    """Unique DNS-label names within one Pipeline, stable for the same inputs."""

    def __init__(self, reserved: tuple[str, ...] = ()) -> None:
        self.taken: set[str] = set(reserved)

    def name(self, wanted: str, limit: int = TASK_MAX) -> str:
        base = dns_label(wanted, limit)
        if base not in self.taken:
            self.taken.add(base)
            return base
        for attempt in range(2, 1000):
            suffix = f"-{attempt}"
            candidate = base[: limit - len(suffix)].rstrip("-") + suffix
            if candidate not in self.taken:
                self.taken.add(candidate)
                return candidate
        raise ValueError(f"no free name for {wanted}")
