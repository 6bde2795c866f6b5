"""The podman runner: steps in real containers from the runtime image built here.

The image is built once per test session from the working tree (about 35 s warm, 80 s
with a fresh base), so these tests never run stale code.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tekton_mlops import __version__
from tests.conftest import REPO, need
from tests.local.conftest import IMAGE
from tests.local.test_catalog_runs import (
    CATALOG,
    iris_in_bucket,
    run_pipeline_from_git,
)

pytestmark = pytest.mark.integration


def podman(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CONTAINERS_CONF": str(REPO / "hack" / "containers.conf")}
    return subprocess.run(
        ["podman", "--runtime", "runc", *args], capture_output=True, text=True, env=env
    )


def test_every_step_runs_in_the_image_as_non_root(runtime_image: str) -> None:
    who = podman("run", "--rm", "--entrypoint", "id", runtime_image, "-u")
    assert who.stdout.strip() == "65532"
    for step in ("fetch-data", "prepare-data", "train-model", "tune-model", "evaluate-model"):
        shown = podman("run", "--rm", runtime_image, step, "--help")
        assert shown.returncode == 0, shown.stderr
        assert f"Usage: tekton-mlops {step}" in shown.stdout
    labels = podman(
        "image",
        "inspect",
        runtime_image,
        "--format",
        '{{index .Labels "org.opencontainers.image.version"}}',
    )
    assert labels.stdout.strip() == __version__


def test_catalog_pipeline_in_containers(  # type: ignore[no-untyped-def]
    tekton, runtime_image, s3, s3_server, cluster_secrets, tmp_path
) -> None:
    iris_in_bucket(s3, "tekton-mlops-test", "iris/iris.csv", tmp_path)
    run = run_pipeline_from_git(
        tekton,
        "pipeline/train-and-deploy/0.1/tests/run.yaml",
        s3_server.endpoint,
        cluster_secrets,
        "--runner",
        "podman",
    )
    assert run.exit_code == 0, run.log
    assert run.results["passed"] == "true"
    name = run.object["metadata"]["name"]
    model = tmp_path / "runs" / name / "workspaces" / "shared" / "model" / "model.onnx"
    assert model.stat().st_uid == 65532  # written inside the container, as the Task's user


def test_tune_and_train_in_containers(  # type: ignore[no-untyped-def]
    tekton, runtime_image, s3, s3_server, cluster_secrets, tmp_path
) -> None:
    """The image carries the experiment loop: Optuna's study shared by two worker pods on
    the workspace, matplotlib's figures for the report, as the Task's user."""
    iris_in_bucket(s3, "tekton-mlops-test", "iris/iris.csv", tmp_path)
    run = run_pipeline_from_git(
        tekton,
        "pipeline/tune-and-train/0.1/tests/run.yaml",
        s3_server.endpoint,
        cluster_secrets,
        "--runner",
        "podman",
    )
    assert run.exit_code == 0, run.log
    assert run.results["model-uri"].startswith("s3://tekton-mlops-test/models/iris-tuned/")
    shared = tmp_path / "runs" / run.object["metadata"]["name"] / "workspaces" / "shared"
    trials = (shared / "tuning" / "trials.csv").read_text().splitlines()
    assert len(trials) == 1 + 6  # header and the budget of the two workers together
    report = shared / "model" / "report" / "report.html"
    assert report.stat().st_uid == 65532
    assert (shared / "model" / "report" / "roc.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_read_only_workspace_is_enforced(tekton, runtime_image, tmp_path) -> None:  # type: ignore[no-untyped-def]
    run = tekton(
        f"""
    apiVersion: tekton.dev/v1
    kind: TaskRun
    metadata: {{name: read-only}}
    spec:
      workspaces:
        - {{name: input, emptyDir: {{}}}}
        - {{name: output, emptyDir: {{}}}}
      taskSpec:
        workspaces:
          - {{name: input, readOnly: true}}
          - {{name: output}}
        steps:
          - name: write-output
            image: {runtime_image}
            script: |
              #!/bin/sh
              echo ok > $(workspaces.output.path)/file
          - name: write-input
            image: {runtime_image}
            script: |
              #!/bin/sh
              echo nope > $(workspaces.input.path)/file
    """,
        "--runner",
        "podman",
    )
    assert run.exit_code == 1
    assert run.condition["message"] == '"step-write-input" exited with code 2'
    assert "Read-only file system" in run.log
    steps = run.object["status"]["steps"]
    assert steps[0]["terminated"]["exitCode"] == 0


def test_an_image_that_is_not_local_is_named(tekton, tmp_path) -> None:  # type: ignore[no-untyped-def]
    need(shutil.which("podman") is not None, "podman is not installed")
    run = tekton(
        """
    apiVersion: tekton.dev/v1
    kind: TaskRun
    metadata: {name: no-image}
    spec:
      taskSpec:
        steps:
          - {name: s, image: "registry.example/absent:1.0", script: "true"}
    """,
        "--runner",
        "podman",
    )
    assert run.exit_code == 1
    assert "image registry.example/absent:1.0 is not available locally" in run.log


def test_catalog_tasks_map_to_the_local_image() -> None:
    pinned = (CATALOG / "runtime-image.txt").read_text().strip()
    from tekton_mlops.local.cli import make_runner

    assert make_runner("podman", {}).image_map[pinned] == IMAGE


VOLUMES = """
apiVersion: v1
kind: ConfigMap
metadata: {{name: settings}}
data: {{mode: fast, level: "3"}}
---
apiVersion: v1
kind: Secret
metadata: {{name: token}}
stringData: {{value: s3cr3t}}
---
apiVersion: tekton.dev/v1
kind: TaskRun
metadata: {{name: volumes}}
spec:
  taskSpec:
    results: [{{name: seen}}]
    volumes:
      - {{name: cache, emptyDir: {{}}}}
      - {{name: settings, configMap: {{name: settings}}}}
      - {{name: token, secret: {{secretName: token}}}}
    steps:
      - name: fill
        image: {image}
        volumeMounts: [{{name: cache, mountPath: /cache}}]
        script: |
          #!/bin/sh
          echo warm > /cache/entry
      - name: read
        image: {image}
        volumeMounts:
          - {{name: cache, mountPath: /cache}}
          - {{name: settings, mountPath: /etc/settings, readOnly: true}}
          - {{name: token, mountPath: /run/token, subPath: value}}
        script: |
          #!/bin/sh
          printf "%s %s %s" "$(cat /cache/entry)" "$(cat /etc/settings/mode)" "$(cat /run/token)" \\
            > $(results.seen.path)
          touch /etc/settings/new 2>/dev/null && exit 9 || true
"""


def test_volumes_and_volume_mounts(tekton, runtime_image) -> None:  # type: ignore[no-untyped-def]
    run = tekton(VOLUMES.format(image=runtime_image), "--runner", "podman")
    assert run.exit_code == 0, run.log
    assert run.results == {"seen": "warm fast s3cr3t"}


def test_process_runner_mounts_volumes_in_a_namespace(tekton) -> None:  # type: ignore[no-untyped-def]
    # The same Task without containers: each step in its own mount namespace (bubblewrap).
    run = tekton(VOLUMES.format(image="alpine"), "--require-confinement")
    assert run.exit_code == 0, run.log
    assert run.results == {"seen": "warm fast s3cr3t"}
    assert not Path("/cache").exists()
    assert not Path("/etc/settings").exists()


def test_process_runner_without_a_namespace_refuses_volume_mounts(  # type: ignore[no-untyped-def]
    tekton, monkeypatch
) -> None:
    from tekton_mlops.local import sandbox

    monkeypatch.setattr(sandbox, "find", lambda: None)
    run = tekton(VOLUMES.format(image="alpine"))
    assert run.exit_code == 1
    assert run.condition["reason"] == "TaskRunValidationFailed"
    assert "install bubblewrap" in run.condition["message"]
    assert "warning: steps are not confined" in run.log
    refused = tekton(VOLUMES.format(image="alpine"), "--require-confinement")
    assert refused.exit_code == 2
    assert "cannot run in their own mount namespace" in refused.log


def test_parallel_tasks_keep_their_own_mounts(tekton, runtime_image, tmp_path) -> None:  # type: ignore[no-untyped-def]
    task = """
          - name: {me}
            workspaces: [{{name: out, workspace: shared, subPath: {me}}}]
            taskSpec:
              workspaces: [{{name: out}}]
              steps:
                - name: write
                  image: {image}
                  script: |
                    #!/bin/sh
                    sleep 1
                    echo {me} > $(workspaces.out.path)/owner
    """
    run = tekton(
        """
    apiVersion: tekton.dev/v1
    kind: PipelineRun
    metadata: {name: mounts}
    spec:
      workspaces: [{name: shared, emptyDir: {}}]
      pipelineSpec:
        workspaces: [{name: shared}]
        tasks:"""
        + "".join(task.format(me=me, image=runtime_image) for me in ("left", "right")),
        "--runner",
        "podman",
    )
    assert run.exit_code == 0, run.log
    shared = tmp_path / "runs" / "mounts" / "workspaces" / "shared"
    assert (shared / "left" / "owner").read_text() == "left\n"
    assert (shared / "right" / "owner").read_text() == "right\n"


KFP_PIPELINE = """\
from kfp import dsl

@dsl.component(base_image="python:3.11")
def greet(name: str, times: int, out: dsl.Output[dsl.Dataset]) -> str:
    with open(out.path, "w") as handle:
        handle.write(name * times)
    return f"hello {name}"

@dsl.pipeline(name="hello-in-containers")
def hello(name: str, times: int = 3) -> dsl.Dataset:
    return greet(name=name, times=times).outputs["out"]
"""


def _kfp_run_in_podman(image: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    from tests.conftest import CLI

    tmp_path.mkdir()
    pipeline = tmp_path / "hello.py"
    pipeline.write_text(KFP_PIPELINE)
    env = {**os.environ, "CONTAINERS_CONF": str(REPO / "hack" / "containers.conf")}
    return subprocess.run(
        [CLI, "kfp", "run", f"{pipeline}:hello", "--param", "name=ab", "-o", "json",
         "--runner", "podman", "--runtime-image", image, "--run-dir", str(tmp_path / "runs")],
        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=600,
    )  # fmt: skip


def test_kfp_lightweight_components_run_in_the_kfp_variant(  # type: ignore[no-untyped-def]
    runtime_image, tmp_path
) -> None:
    # The kfp variant: the same image with the kfp extra, built by `make image-kfp`.
    built = subprocess.run(
        [str(REPO / "hack" / "image.sh")],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "VARIANT": "kfp"},
    )
    assert built.returncode == 0, built.stderr[-3000:]
    variant = built.stdout.strip().splitlines()[-1]
    assert variant == f"{IMAGE}-kfp"
    done = _kfp_run_in_podman(variant, tmp_path / "variant")
    assert done.returncode == 0, done.stderr[-3000:]
    shown = json.loads(done.stdout)
    assert shown["pipelineRun"]["status"]["conditions"][0]["reason"] == "Succeeded"
    written = Path(shown["outputs"]["artifacts"]["Output"])
    assert written.read_text() == "ababab"
    assert written.stat().st_uid == 65532  # written in the container, as the image's user
    # The default image leaves kfp out to keep its size: the step says so in one line.
    plain = _kfp_run_in_podman(runtime_image, tmp_path / "plain")
    assert plain.returncode == 1
    assert "lacks the kfp package" in plain.stderr
    assert "make image-kfp" in plain.stderr
