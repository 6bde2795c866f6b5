"""A run going, as the executor leaves it on disk and the dashboard reads it.

`tekton-mlops run` writes pipelinerun.yaml when the run starts (Running, with its spec)
and again, whole, as each TaskRun ends; each TaskRun's taskrun.yaml exists from its
start. The pipeline here holds each task at a gate (a file the step waits for, in a
folder shared with --host-path), so every state is looked at while it lasts, not raced.
"""

from __future__ import annotations

import subprocess
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tekton_mlops.dashboard.runs import RunsFolder
from tests.conftest import CLI

pytestmark = pytest.mark.integration


def gated_pipeline(gates: Path) -> str:
    """first and second, one after the other, each waiting for its file in ``gates``."""
    return textwrap.dedent(
        f"""
        apiVersion: tekton.dev/v1
        kind: PipelineRun
        metadata: {{name: gated}}
        spec:
          pipelineSpec:
            tasks:
              - name: first
                taskSpec:
                  steps:
                    - name: wait
                      image: busybox
                      script: |
                        echo waiting for the first gate
                        while [ ! -e {gates}/first ]; do sleep 0.05; done
                        echo through
              - name: second
                runAfter: [first]
                taskSpec:
                  steps:
                    - name: prepare
                      image: busybox
                      script: echo prepared
                    - name: wait
                      image: busybox
                      script: |
                        while [ ! -e {gates}/second ]; do sleep 0.05; done
        """
    )


def until(what: str, check: Callable[[], Any], seconds: float = 60) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        found = check()
        if found:
            return found
        assert time.monotonic() < deadline, f"never: {what}"
        time.sleep(0.05)  # a poll interval: what is waited for is check()


def read(path: Path) -> dict[str, Any] | None:
    try:
        document = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return None
    return document if isinstance(document, dict) else None


def condition(document: dict[str, Any] | None) -> dict[str, Any]:
    conditions = ((document or {}).get("status") or {}).get("conditions") or [{}]
    return conditions[0]  # type: ignore[no-any-return]


def test_pipelinerun_yaml_says_running_while_a_task_works_and_follows_each_taskrun(
    tmp_path: Path,
) -> None:
    gates = tmp_path / "gates"
    gates.mkdir()
    file = tmp_path / "gated.yaml"
    file.write_text(gated_pipeline(gates))
    runs = tmp_path / "runs"
    process = subprocess.Popen(
        [CLI, "run", str(file), "--run-dir", str(runs), "--host-path", str(gates), "-o", "none"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        here = runs / "gated"
        first_log = here / "gated-first" / "logs" / "wait.log"
        until(
            "the first step is waiting",
            lambda: "waiting" in (first_log.read_text() if first_log.exists() else ""),
        )
        running = read(here / "pipelinerun.yaml")
        assert running is not None
        assert condition(running) | {"lastTransitionTime": ""} == {
            "type": "Succeeded",
            "status": "Unknown",
            "reason": "Running",
            "message": "Tasks Completed: 0 (Failed: 0, Cancelled 0), Incomplete: 2, Skipped: 0",
            "lastTransitionTime": "",
        }
        assert [t["name"] for t in running["status"]["pipelineSpec"]["tasks"]] == [
            "first",
            "second",
        ]
        assert running["status"]["startTime"]
        first = read(here / "gated-first" / "taskrun.yaml")
        assert condition(first)["reason"] == "Running"
        assert first is not None
        assert first["status"]["startTime"]

        view = RunsFolder(runs).run("gated")
        assert view.summary.status.reason == "Running"
        assert [(t.name, t.status.state) for t in view.tasks] == [
            ("first", "running"),
            ("second", "pending"),
        ]
        assert [(s.name, s.status.state) for s in view.tasks[0].runs[0].steps] == [
            ("wait", "running")
        ]

        (gates / "first").touch()
        second_log = here / "gated-second" / "logs" / "wait.log"
        until("the second task waits at its gate", second_log.exists)
        after_first = read(here / "pipelinerun.yaml")
        assert condition(after_first)["reason"] == "Running"
        assert condition(after_first)["message"].startswith("Tasks Completed: 1 (Failed: 0")
        assert [c["name"] for c in after_first["status"]["childReferences"]] == ["gated-first"]  # type: ignore[index]
        view = RunsFolder(runs).run("gated")
        assert [(t.name, t.status.state) for t in view.tasks] == [
            ("first", "succeeded"),
            ("second", "running"),
        ]
        assert [(s.name, s.status.state) for s in view.tasks[1].runs[0].steps] == [
            ("prepare", "succeeded"),
            ("wait", "running"),
        ]

        (gates / "second").touch()
        assert process.wait(timeout=60) == 0, process.stderr.read() if process.stderr else ""
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    final = read(here / "pipelinerun.yaml")
    assert condition(final)["reason"] == "Succeeded"
    assert (here / "pipelinerun.yaml").read_text().startswith("apiVersion:")  # the final YAML
    assert RunsFolder(runs).run("gated").summary.status.state == "succeeded"
    leftovers = [p.name for p in here.rglob(".*.tmp")]
    assert leftovers == []  # every write was renamed into place
