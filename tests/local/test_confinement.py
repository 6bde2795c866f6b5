"""The process runner confines every step to what a pod would give it.

A step that tries to change the machine (write to /, /etc, $HOME, the host's /workspace)
or to read past its mounts with `..` finds a read-only host and a private /tmp, and the
host is unchanged afterwards; its environment holds what Tekton sets and what --pass-env
names, nothing else of the caller's.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import tekton_mlops

pytestmark = pytest.mark.integration

ATTEMPTS = """
apiVersion: tekton.dev/v1
kind: TaskRun
metadata: {{name: hostile}}
spec:
  workspaces: [{{name: data, emptyDir: {{}}}}]
  taskSpec:
    workspaces: [{{name: data}}]
    results: [{{name: report}}]
    steps:
      - name: try
        image: bash
        script: |
          report=""
          # Writes may land in the step's own namespace (its root and /workspace are its
          # own, as a container's are) or fail (the host is read-only): never on the host.
          for target in /confinement-{tag} /etc/confinement-{tag} {home}/confinement-{tag} \\
                        /workspace/confinement-{tag} {outside}/confinement-{tag}; do
            echo x > "$target" 2>/dev/null || true
          done
          # Up and out of the workspace with ..: the host's file is not there to read.
          if cat "$(workspaces.data.path)/../../../../..{secret}" 2>/dev/null; then
            report="$report read-secret"
          fi
          echo inside > /tmp/confinement-{tag}  # a private /tmp takes writes
          [ -f /tmp/confinement-{tag} ] || report="$report no-private-tmp"
          echo mine > $(workspaces.data.path)/kept
          printf "%s" "${{report:-confined}}" > $(results.report.path)
"""


def test_a_step_cannot_change_the_host(tekton, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    tag = tmp_path.name
    outside = tmp_path / "outside"
    outside.mkdir()
    secret = tmp_path / "secret.txt"  # under /tmp: only a private /tmp is visible to steps
    secret.write_text("s3cr3t")
    home = Path.home()
    run = tekton(
        ATTEMPTS.format(tag=tag, home=home, outside=outside, secret=secret),
        "--require-confinement",
    )
    assert run.exit_code == 0, run.log
    assert run.results["report"] == "confined"
    for path in (Path("/"), Path("/etc"), home, Path("/workspace"), outside, Path("/tmp")):
        assert not (path / f"confinement-{tag}").exists(), path
    # What the step wrote to its workspace is kept, in the run directory.
    kept = tmp_path / "runs" / "hostile" / "workspaces" / "data" / "kept"
    assert kept.read_text() == "mine\n"


def test_steps_see_only_what_tekton_sets_and_what_is_passed(  # type: ignore[no-untyped-def]
    tekton, monkeypatch
) -> None:
    monkeypatch.setenv("DEVELOPER_TOKEN", "do-not-leak")
    monkeypatch.setenv("AWS_PROFILE", "research")
    text = """
    apiVersion: tekton.dev/v1
    kind: TaskRun
    metadata: {name: env}
    spec:
      taskSpec:
        results: [{name: env}]
        steps:
          - name: show
            image: bash
            script: |
              printf "%s|%s|%s" "${DEVELOPER_TOKEN:-}" "${AWS_PROFILE:-}" "$HOME" \\
                > $(results.env.path)
    """
    run = tekton(text, "--pass-env", "AWS_PROFILE")
    assert run.exit_code == 0, run.log
    assert run.results["env"] == "|research|/tekton/home"
    assert "do-not-leak" not in run.log


def test_paths_a_task_mounts_are_made_inside_the_namespace_only(tekton) -> None:  # type: ignore[no-untyped-def]
    run = tekton(
        """
    apiVersion: tekton.dev/v1
    kind: TaskRun
    metadata: {name: mounts}
    spec:
      workspaces: [{name: data, emptyDir: {}}]
      taskSpec:
        workspaces: [{name: data, mountPath: /srv/confined-data}]
        volumes: [{name: cache, emptyDir: {}}]
        results: [{name: seen}]
        steps:
          - name: s
            image: bash
            volumeMounts: [{name: cache, mountPath: /var/lib/confined-cache}]
            script: |
              echo a > /srv/confined-data/f && echo b > /var/lib/confined-cache/f
              printf "%s%s" "$(cat /srv/confined-data/f)" "$(cat /var/lib/confined-cache/f)" \\
                > $(results.seen.path)
    """,
        "--require-confinement",
    )
    assert run.exit_code == 0, run.log
    assert run.results["seen"] == "ab"
    assert not Path("/srv/confined-data").exists()
    assert not Path("/var/lib/confined-cache").exists()
    assert os.access("/var/lib", os.W_OK)  # the host's own directory is untouched, still there


def test_an_installation_under_tmp_stays_visible_to_steps(tmp_path: Path) -> None:
    """A checkout (or an editable install's source) under /tmp is hidden by the step's
    private /tmp unless the runner keeps it: the step must import the same package."""
    source = tmp_path / "src"
    shutil.copytree(Path(tekton_mlops.__file__).parent, source / "tekton_mlops")
    taskrun = tmp_path / "taskrun.yaml"
    taskrun.write_text(
        """
apiVersion: tekton.dev/v1
kind: TaskRun
metadata: {name: installed-under-tmp}
spec:
  taskSpec:
    results: [{name: package}]
    steps:
      - name: s
        image: ghcr.io/tekton-mlops/runtime:0.1.0
        script: |
          #!/bin/sh
          python3 -c "import tekton_mlops; print(tekton_mlops.__file__, end='')" \\
            > $(results.package.path)
"""
    )
    ran = subprocess.run(
        [sys.executable, "-m", "tekton_mlops", "run", str(taskrun), "-o", "json",
         "--run-dir", str(tmp_path / "runs"), "--pass-env", "PYTHONPATH",
         "--require-confinement"],
        env={**os.environ, "PYTHONPATH": str(source)},
        cwd="/",
        capture_output=True,
        text=True,
        timeout=120,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr[-3000:]
    results = {r["name"]: r["value"] for r in json.loads(ran.stdout)["status"]["results"]}
    assert results["package"] == str(source / "tekton_mlops" / "__init__.py")
