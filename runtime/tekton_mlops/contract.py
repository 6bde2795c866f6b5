"""The step contract: validate, run, write results.

A step is a module ``tekton_mlops.steps.<name>`` with a ``Params`` dataclass
whose fields are the schema's properties, and ``run(params, ctx)`` returning
its results. This module is the only place that strings them together, so every
step gets the same guarantees: nothing happens before validation, only declared
results are written, and the result budget is enforced.
"""

from __future__ import annotations

import errno
import importlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from tekton_mlops.errors import ResultsError
from tekton_mlops.lineage import Artifact, statement, write_statement
from tekton_mlops.params import StepSchema, load_schema, validate
from tekton_mlops.results import ResultValue, write_results


@dataclass
class StepContext:
    """What a running step knows about its invocation."""

    step: str
    params: Mapping[str, Any]
    started: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def log(self) -> logging.Logger:
        return logging.getLogger(f"tekton_mlops.{self.step}")

    def write_lineage(
        self, artifact_dir: Path, inputs: Sequence[Artifact], outputs: Sequence[Artifact]
    ) -> Path:
        """Record this run's lineage inside the artifact it produces."""
        record = statement(self.step, self.params, inputs, outputs, self.started, datetime.now(UTC))
        return write_statement(artifact_dir, self.step, record)

    def write_lineage_beside(
        self, folder: Path, inputs: Sequence[Artifact], outputs: Sequence[Artifact]
    ) -> Path | None:
        """Record this run's lineage beside an artifact the step only reads.

        Such a folder may be mounted read-only (a workspace with ``readOnly: true``): the
        step's work does not depend on metadata, so it goes on without the record and
        says so in one log line instead of failing a verification or a push over it.
        """
        try:
            return self.write_lineage(folder, inputs, outputs)
        except OSError as exc:
            if exc.errno not in (errno.EROFS, errno.EACCES, errno.EPERM):
                raise
            self.log.warning(
                "no lineage record: %s is not writable (%s)",
                folder / ".mlops" / "lineage",
                exc.strerror,
            )
            return None


class StepModule(Protocol):
    Params: type

    def run(self, params: Any, ctx: StepContext) -> dict[str, ResultValue]: ...


def step_module(step: str) -> StepModule:
    module: Any = importlib.import_module(f"tekton_mlops.steps.{step.replace('-', '_')}")
    return module  # type: ignore[no-any-return]


def execute(
    step: str, raw: Mapping[str, str | None], results_dir: Path | None
) -> dict[str, ResultValue]:
    """Run one step end to end; raise an MlopsError subclass on failure."""
    schema = load_schema(step)
    values = validate(schema, raw)
    module = step_module(step)
    results = module.run(module.Params(**values), StepContext(step, values))
    _check_declared(schema, results)
    write_results(results_dir, results)
    return results


def _check_declared(schema: StepSchema, results: Mapping[str, ResultValue]) -> None:
    declared = {r.name for r in schema.results}
    if undeclared := sorted(set(results) - declared):
        raise ResultsError(f"{schema.step} produced undeclared result(s): {', '.join(undeclared)}")
