"""Runs: create one in an experiment, log to it in batches, end it FINISHED or FAILED.

:func:`run_for` is what a step uses; with an empty tracking URI it yields a run that
does nothing, so a step calls the same methods either way::

    with tracking.run_for(params.mlflow_tracking_uri, params.mlflow_experiment,
                          step="train-model", tags=...) as run:
        run.log_params(hyperparameters)
        run.log_metrics(metrics)
        run.log_artifacts(model_dir, "model")

A block that raises ends its run FAILED (KILLED when the step was stopped) and the
error goes on; one that returns ends it
FINISHED. Child runs (``run.child("trial-3")``) carry ``mlflow.parentRunId``, as MLflow's
nested runs do, so its UI shows them under their parent.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tekton_mlops.tracking.context import PARENT_RUN, context_tags

if TYPE_CHECKING:
    # Imported when a run is tracked: with tracking off a step loads no HTTP client.
    from tekton_mlops.tracking.client import RestClient

#: log-batch limits of MLflow's API (per request).
MAX_PARAMS = 100
MAX_METRICS = 1000
MAX_TAGS = 100
MAX_ENTRIES = 1000
log = logging.getLogger("tekton_mlops.tracking")


def _now_ms() -> int:
    return int(time.time() * 1000)


def _text(value: Any) -> str:
    # Structured values (a hyperparameter grid, a list of columns) as compact JSON, so they
    # read back as what they were; strings as they are.
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def experiment_id(client: RestClient, name: str) -> str:
    """The id of the experiment called ``name``, created when there is none."""
    from tekton_mlops.tracking.client import ApiError

    try:
        found = client.call("GET", "experiments/get-by-name", query={"experiment_name": name})
        return str(found["experiment"]["experiment_id"])
    except ApiError as exc:
        if exc.code != "RESOURCE_DOES_NOT_EXIST":
            raise
    try:
        return str(client.call("POST", "experiments/create", {"name": name})["experiment_id"])
    except ApiError as exc:
        if exc.code != "RESOURCE_ALREADY_EXISTS":  # another step created it meanwhile
            raise
    found = client.call("GET", "experiments/get-by-name", query={"experiment_name": name})
    return str(found["experiment"]["experiment_id"])


class Run:
    """One MLflow run; with no client (tracking off) every method does nothing."""

    def __init__(
        self, client: RestClient | None, run_id: str = "", experiment: str = "", artifacts: str = ""
    ) -> None:
        self.client = client
        self.run_id = run_id
        self.experiment_id = experiment
        self.artifact_uri = artifacts
        self.ended = False
        # Params, metrics and tags wait here and go in as few log-batch calls as MLflow's
        # limits allow: each call costs a round trip and a database transaction.
        self._pending: dict[str, list[dict[str, Any]]] = {"params": [], "metrics": [], "tags": []}

    @property
    def active(self) -> bool:
        """True when this run is tracked (a tracking URI was given)."""
        return self.client is not None

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Log parameters (structured values as compact JSON). Like metrics and tags, they
        are sent in batches: at the latest when the run ends, or on :meth:`flush`."""
        self._add("params", [{"key": k, "value": _text(v)} for k, v in params.items()])

    def log_metrics(self, metrics: Mapping[str, float], step: int = 0) -> None:
        """Log numeric metrics; a value that is not finite is left out, with a log line
        (JSON cannot carry it, and MLflow's UI would not plot it)."""
        stamp = _now_ms()
        entries = []
        for key, value in metrics.items():
            number = float(value)
            if not math.isfinite(number):
                log.warning("metric %s is %s: not logged", key, number)
                continue
            entries.append({"key": key, "value": number, "timestamp": stamp, "step": step})
        self._add("metrics", entries)

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        self._add("tags", [{"key": k, "value": _text(v)} for k, v in tags.items()])

    def flush(self) -> None:
        """Send what was logged and not sent yet (a tuning parent's progress, say)."""
        pending, self._pending = self._pending, {"params": [], "metrics": [], "tags": []}
        if self.client is None or not any(pending.values()):
            return
        self.client.call("POST", "runs/log-batch", {"run_id": self.run_id, **pending})

    def log_artifact(self, path: Path, artifact_path: str = "") -> None:
        """One file, as ``<artifact_path>/<name>`` among the run's artifacts."""
        if self.client is not None:
            from tekton_mlops.tracking.artifacts import ArtifactStore

            ArtifactStore(self.client, self.artifact_uri).log_file(path, artifact_path)

    def log_artifacts(self, folder: Path, artifact_path: str = "") -> None:
        """Every file under ``folder``, its layout kept, under ``artifact_path``."""
        if self.client is not None:
            from tekton_mlops.tracking.artifacts import ArtifactStore

            ArtifactStore(self.client, self.artifact_uri).log_folder(folder, artifact_path)

    @contextmanager
    def child(self, name: str, tags: Mapping[str, str] | None = None) -> Iterator[Run]:
        """A nested run (a tuning trial) in the same experiment, ended with its block."""
        if self.client is None:
            yield Run(None)
            return
        run = start_run(
            self.client, self.experiment_id, name, {**(tags or {}), PARENT_RUN: self.run_id}
        )
        with _ending(run):
            yield run

    def end(self, status: str = "FINISHED") -> None:
        """End the run (FINISHED, FAILED or KILLED); ending twice does nothing."""
        if self.client is None or self.ended:
            return
        try:
            self.flush()
        except BaseException:
            self._update("FAILED")  # what was logged last did not make it: not a finished run
            raise
        self._update(status)

    def _update(self, status: str) -> None:
        assert self.client is not None
        self.ended = True
        self.client.call(
            "POST", "runs/update", {"run_id": self.run_id, "status": status, "end_time": _now_ms()}
        )

    def _add(self, kind: str, entries: list[dict[str, Any]]) -> None:
        if self.client is None:
            return
        limit = {"params": MAX_PARAMS, "metrics": MAX_METRICS, "tags": MAX_TAGS}[kind]
        for entry in entries:
            total = sum(len(v) for v in self._pending.values())
            if len(self._pending[kind]) == limit or total == MAX_ENTRIES:
                self.flush()
            self._pending[kind].append(entry)


def start_run(client: RestClient, experiment: str, name: str, tags: Mapping[str, str]) -> Run:
    """Create a run in the experiment with id ``experiment``."""
    body: dict[str, Any] = {
        "experiment_id": experiment,
        "start_time": _now_ms(),
        "tags": [{"key": k, "value": v} for k, v in tags.items()],
    }
    if name:
        body["run_name"] = name
    info = client.call("POST", "runs/create", body)["run"]["info"]
    log.info("tracking to MLflow run %s in %s", info["run_id"], client.uri)
    return Run(client, str(info["run_id"]), experiment, str(info.get("artifact_uri", "")))


@contextmanager
def _ending(run: Run) -> Iterator[None]:
    try:
        yield
    except BaseException as exc:
        # Tekton stops a cancelled or timed-out step with SIGTERM (a KeyboardInterrupt here).
        status = "KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED"
        try:
            run.end(status)
        except Exception as failure:  # noqa: BLE001 - the step's own error matters more
            log.warning("could not mark run %s %s: %s", run.run_id, status, failure)
        raise
    run.end("FINISHED")


@contextmanager
def run_for(
    tracking_uri: str,
    experiment: str = "",
    *,
    step: str,
    run_name: str = "",
    params: Mapping[str, Any] | None = None,
    tags: Mapping[str, str] | None = None,
) -> Iterator[Run]:
    """A run of ``step`` in ``experiment`` (empty: MLflow's ``Default``), for one block.

    ``params`` are the step's parameters as the lineage record has them (for the code
    revision in the tags); ``tags`` add to the Tekton context tags. With an empty
    ``tracking_uri`` nothing is contacted and the run does nothing.
    """
    if not tracking_uri:
        yield Run(None)
        return
    from tekton_mlops.tracking.client import RestClient

    client = RestClient(tracking_uri)
    try:
        found = experiment_id(client, experiment or "Default")
        run = start_run(client, found, run_name, {**context_tags(step, params), **(tags or {})})
        with _ending(run):
            yield run
    finally:
        client.close()
