"""The run's store in the ``kfp`` workspace: what KFP keeps in ML Metadata and object storage.

Every task of a run mounts the same workspace, so one folder per run holds what
tasks hand each other::

    <workspace>/<run>/run.json                       when the run's first step started
    <workspace>/<run>/<task>[/<iteration>]/          one task instance (a TaskRun)
        plan.json, executor_input.json                what the instance was asked to do
        executor_output.json                          what the component reported
        parameters/<name>                             output parameter files
        artifacts/<name>                              output artifacts (file or folder)
        outputs.json                                  the record consumers read
    <workspace>/<run>/<driver>/iterations.json        the iterations a loop or condition let run
    <workspace>/<run>/.workspace/                     KFP's workspace ({{$.workspace_path}})
    <workspace>/<run>/.slots/                         ParallelFor parallelism slots (slots.py)

An instance inside loops is keyed by its iteration indices, outermost first, joined
with dots (``2.0``); Tekton passes the key as the matrix param ``kfp-iteration``.
``outputs.json`` is written last and atomically: it exists only for an instance that
succeeded, which is how a consumer tells "did not run" from "produced nothing".
Task folders are DNS labels; what is not a task's starts with a dot, so no task name
can collide with it.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path
from typing import Any

Key = tuple[int, ...]
OUTPUTS = "outputs.json"


def key_text(key: Key) -> str:
    return ".".join(str(i) for i in key)


def parse_key(text: str) -> Key:
    text = text.strip()
    if not text:
        return ()
    try:
        return tuple(int(part) for part in text.split("."))
    except ValueError:
        raise ValueError(f"{text!r} is not an iteration key (indices joined with dots)") from None


def _write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(data, indent=1, sort_keys=True))
    os.replace(partial, path)


class Store:
    """One run's folder in the workspace."""

    def __init__(self, workspace: Path, run: str) -> None:
        self.workspace = workspace
        self.root = workspace / run
        self.run = run

    def instance(self, task: str, key: Key) -> Path:
        folder = self.root / task
        return folder / key_text(key) if key else folder

    def prepare_instance(self, task: str, key: Key) -> Path:
        """The instance folder, emptied of a previous attempt's record (a retry starts over)
        and writable by every container of the pod, whatever user it runs as."""
        folder = self.instance(task, key)
        for sub in ("", "parameters", "artifacts"):
            target = folder / sub
            target.mkdir(parents=True, exist_ok=True)
            _share(target)
        (folder / OUTPUTS).unlink(missing_ok=True)
        return folder

    def started(self) -> float:
        """When the run's first step started (recorded by the first to ask)."""
        marker = self.root / "run.json"
        if not marker.exists():
            self.root.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(FileExistsError), marker.open("x") as handle:
                json.dump({"started": time.time()}, handle)
        for _ in range(50):
            try:
                return float(json.loads(marker.read_text())["started"])
            except (ValueError, KeyError):
                time.sleep(0.01)  # another step is writing it this very moment
        return time.time()

    def workspace_dir(self) -> Path:
        """KFP's pipeline workspace (``dsl.WORKSPACE_PATH_PLACEHOLDER``): one folder per run
        that every task may read and write, whatever user its container runs as."""
        return self.shared_dir(self.root / ".workspace")

    def slots_dir(self, loop: str, prefix: Key) -> Path:
        """The slots of one loop instance (an inner loop has one per outer iteration)."""
        return self.shared_dir(self.root / ".slots" / loop / key_text(prefix))

    def slots_marker(self, holder: str) -> Path:
        """Where a slots sidecar tells its pod's steps that it holds their slots."""
        return self.shared_dir(self.root / ".slots" / ".held") / holder

    def shared_dir(self, folder: Path) -> Path:
        """``folder`` and its parents up to the run's folder, made and writable by all."""
        chain = [folder, *folder.parents]
        for path in reversed(chain[: chain.index(self.root) + 1]):
            if not path.is_dir():
                path.mkdir(exist_ok=True)
                _share(path)
        return folder

    def write_outputs(self, task: str, key: Key, record: dict[str, Any]) -> None:
        _write_json(self.instance(task, key) / OUTPUTS, record)

    def outputs(self, task: str, key: Key) -> dict[str, Any] | None:
        path = self.instance(task, key) / OUTPUTS
        if not path.is_file():
            return None
        data = json.loads(path.read_text())
        return data if isinstance(data, dict) else None

    def write_iterations(self, driver: str, keys: list[Key]) -> None:
        _write_json(self.root / driver / "iterations.json", [key_text(k) for k in keys])

    def iterations(self, driver: str) -> list[Key] | None:
        path = self.root / driver / "iterations.json"
        if not path.is_file():
            return None
        return [parse_key(text) for text in json.loads(path.read_text())]


def _share(path: Path) -> None:
    # The user's container may run as any user: what it must write stays writable to all
    # (the workspace itself belongs to the pod's fsGroup on a cluster).
    with contextlib.suppress(OSError):
        path.chmod(0o777)
