"""One error hierarchy for the runtime; the CLI turns it into exit codes once.

Library code raises a subclass of :class:`MlopsError`; nothing below the CLI
prints or exits. Exit code 2 means "bad parameters, nothing was done", exit
code 1 means "the step ran and failed".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


class MlopsError(Exception):
    """A failure the user can act on; the message is one clear line."""

    exit_code = 1


@dataclass(frozen=True)
class Violation:
    """One broken rule of a step's parameter schema."""

    param: str
    value: object
    rule: str

    def __str__(self) -> str:
        shown = repr(self.value)
        if len(shown) > 80:
            shown = shown[:77] + "..."
        return f"--{self.param}={shown}: {self.rule}"


class ParameterError(MlopsError):
    """Parameters that break the step's schema; carries every violation at once."""

    exit_code = 2

    def __init__(self, step: str, violations: Sequence[Violation]) -> None:
        self.step = step
        self.violations = list(violations)
        lines = "\n".join(f"  {v}" for v in self.violations)
        super().__init__(f"{step}: {len(self.violations)} invalid parameter(s):\n{lines}")


class IntegrityError(MlopsError):
    """Content does not match the digest it was promised to have."""


class SourceError(MlopsError):
    """A source (S3, HTTP, file) could not be read."""


class DataError(MlopsError):
    """Input data is present but unusable (wrong columns, wrong types, too small)."""


class ModelError(MlopsError):
    """A model could not be built, exported, loaded or checked."""


class ResultsError(MlopsError):
    """Results could not be written as Tekton expects them (e.g. over the size budget)."""


class DestinationError(MlopsError):
    """The output location cannot take the step's output (exists, not writable)."""
