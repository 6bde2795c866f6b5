"""``kfp run``: a compiled pipeline run by the local executor, and its outputs read back.

The executor is called through its command line (``python -m tekton_mlops run``), as a
user would call it: ``kfp/`` never imports ``local/``. The finished PipelineRun comes
back as JSON; the pipeline's outputs are its results (``kfp-outputs``), decoded by the
types the IR declares, and artifact URIs, which are paths inside the steps' mount of
the ``kfp`` workspace, are shown as the paths where the run left them on this machine.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from tekton_mlops.kfp.compiler import WORKSPACE, Compiled
from tekton_mlops.kfp.names import result_name
from tekton_mlops.kfp.values import parse

#: Where a step sees the kfp workspace (Tekton's default mount path for it).
MOUNT_PATH = f"/workspace/{WORKSPACE}"


def execute(
    file: Path, params: dict[str, str], run_dir: Path, passthrough: list[str]
) -> tuple[dict[str, Any] | None, int]:
    """Run FILE with ``tekton-mlops run``; the finished PipelineRun and the exit code."""
    command = [sys.executable, "-m", "tekton_mlops", "run", str(file), "-o", "json"]
    command += [f"--param={k}={v}" for k, v in params.items()]
    command += ["--run-dir", str(run_dir), *passthrough]
    done = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=False)
    if not done.stdout.strip():
        return None, done.returncode
    try:
        finished = json.loads(done.stdout)
    except ValueError:
        sys.stdout.write(done.stdout)
        return None, done.returncode
    return finished, done.returncode


def host_path(uri: str, run_dir: Path, run_name: str) -> str:
    """Where an artifact URI of a step is on this machine."""
    if uri.startswith(MOUNT_PATH + "/"):
        base = run_dir.resolve() / run_name / "workspaces" / WORKSPACE
        return str(base / uri[len(MOUNT_PATH) + 1 :])
    return uri


def outputs(finished: dict[str, Any], compiled: Compiled, run_dir: Path) -> dict[str, Any]:
    """The pipeline's outputs: parameters typed, artifacts as local paths."""
    status = finished.get("status") or {}
    conditions = status.get("conditions") or [{}]
    if conditions[0].get("status") != "True":
        return {}  # a failed run has no outputs (its results are left empty)
    results = {r["name"]: r.get("value") for r in status.get("results") or []}
    name = str((finished.get("metadata") or {}).get("name", ""))
    parameters: dict[str, Any] = {}
    artifacts: dict[str, Any] = {}
    for key, spec in compiled.graph.outputs.items():
        text = results.get(result_name(key))
        if not isinstance(text, str):
            continue
        if spec["artifact"]:
            uris = json.loads(text) if spec["list"] else text
            artifacts[key] = (
                [host_path(u, run_dir, name) for u in uris]
                if isinstance(uris, list)
                else host_path(uris, run_dir, name)
            )
        else:
            try:
                parameters[key] = parse(text, str(spec["type"]))
            except ValueError:
                parameters[key] = text
    found: dict[str, Any] = {}
    if parameters:
        found["parameters"] = parameters
    if artifacts:
        found["artifacts"] = artifacts
    return found
