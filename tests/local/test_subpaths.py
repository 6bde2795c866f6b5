"""Workspace and volume subPaths stay inside their volume, as on Kubernetes.

The API server refuses an absolute subPath or one with a ``..`` element when the pod
is created (the TaskRun fails with PodCreationFailed before any step runs); the kubelet
refuses a subPath that leaves its volume through a symbolic link (CreateContainerConfigError).
Each case checks the reason, the message, that no step ran and that nothing was written
outside the workspace.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

WRITER = """
            taskSpec:
              workspaces: [{{name: out}}]
              steps:
                - name: write
                  image: {image}
                  script: |
                    #!/bin/sh
                    echo escaped > $(workspaces.out.path)/marker
"""


def pipeline_run(binding: str, task_binding: str, params: str = "", image: str = "alpine") -> str:
    return f"""
    apiVersion: tekton.dev/v1
    kind: PipelineRun
    metadata: {{name: sub}}
    spec:
      params: [{params}]
      workspaces: [{{name: shared, emptyDir: {{}}{binding}}}]
      pipelineSpec:
        params: [{{name: dir, default: ok}}]
        workspaces: [{{name: shared}}]
        tasks:
          - name: write
            workspaces: [{{name: out, workspace: shared{task_binding}}}]
""" + WRITER.format(image=image)


def refused(run, runs: Path, reason: str, detail: str) -> dict:  # type: ignore[no-untyped-def,type-arg]
    assert run.exit_code == 1, run.log
    taskrun = run.taskrun(runs, "write")
    condition = taskrun["status"]["conditions"][0]
    assert condition["reason"] == reason, condition
    assert detail in condition["message"]
    assert taskrun["status"]["steps"] == []  # no step ran
    return condition  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("binding", "task_binding", "params", "detail"),
    [
        (", subPath: {outside}", "", "", "must be a relative path"),
        (", subPath: ../../etc", "", "", "must not contain '..'"),
        ("", ", subPath: ../../..", "", "must not contain '..'"),
        ("", ", subPath: $(params.dir)", "{name: dir, value: ../..}", "must not contain '..'"),
        (", subPath: a/..", ", subPath: ../b", "", "must not contain '..'"),
    ],
    ids=["absolute", "dotdot-run", "dotdot-task", "dotdot-param", "dotdot-joined"],
)
def test_escaping_sub_paths_fail_the_pod(  # type: ignore[no-untyped-def]
    tekton, tmp_path: Path, binding: str, task_binding: str, params: str, detail: str
) -> None:
    outside = tmp_path / "outside"
    run = tekton(pipeline_run(binding.format(outside=outside), task_binding, params))
    condition = refused(run, tmp_path / "runs", "PodCreationFailed", detail)
    assert condition["message"].startswith(
        'failed to create task run pod "sub-write": Pod "sub-write-pod" is invalid: '
        "spec.containers[0].volumeMounts.subPath: Invalid value: "
    )
    assert condition["message"].endswith(". Maybe invalid TaskSpec")
    assert not outside.exists()
    assert not list(tmp_path.rglob("marker"))
    assert run.condition["reason"] == "Failed"


def test_joined_sub_paths_that_stay_inside_run(tekton, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    # filepath.Join("a", "../b") is "b": Tekton joins the run's and the task's subPaths.
    run = tekton(pipeline_run(", subPath: a", ", subPath: ../b"))
    assert run.exit_code == 0, run.log
    shared = tmp_path / "runs" / "sub" / "workspaces" / "shared"
    assert (shared / "b" / "marker").read_text() == "escaped\n"


def test_symlink_planted_by_an_earlier_task_does_not_lead_out(tekton, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    outside = tmp_path / "outside"
    outside.mkdir()
    run = tekton(
        f"""
    apiVersion: tekton.dev/v1
    kind: PipelineRun
    metadata: {{name: sub}}
    spec:
      workspaces: [{{name: shared, emptyDir: {{}}}}]
      pipelineSpec:
        workspaces: [{{name: shared}}]
        tasks:
          - name: plant
            workspaces: [{{name: out, workspace: shared}}]
            taskSpec:
              workspaces: [{{name: out}}]
              steps:
                - name: link
                  image: alpine
                  script: ln -s {outside} $(workspaces.out.path)/link
          - name: write
            runAfter: [plant]
            workspaces: [{{name: out, workspace: shared, subPath: link}}]
"""
        + WRITER.format(image="alpine")
    )
    condition = refused(
        run, tmp_path / "runs", "CreateContainerConfigError", "failed to prepare subPath"
    )
    assert 'for volumeMount "ws-shared" of container "step-write"' in condition["message"]
    assert list(outside.iterdir()) == []


def test_taskrun_binding_sub_path(tekton, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    run = tekton(
        """
    apiVersion: tekton.dev/v1
    kind: TaskRun
    metadata: {name: write}
    spec:
      workspaces: [{name: out, emptyDir: {}, subPath: ../up}]
      taskSpec:
        workspaces: [{name: out}]
        steps:
          - name: write
            image: alpine
            script: echo escaped > $(workspaces.out.path)/marker
"""
    )
    assert run.exit_code == 1
    assert run.condition["reason"] == "PodCreationFailed"
    assert "must not contain '..'" in run.condition["message"]
    assert run.object["status"]["steps"] == []
    assert not list(tmp_path.rglob("marker"))


def test_volume_mount_sub_path_under_podman(tekton, runtime_image, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    run = tekton(
        f"""
    apiVersion: tekton.dev/v1
    kind: TaskRun
    metadata: {{name: write}}
    spec:
      taskSpec:
        volumes: [{{name: cache, emptyDir: {{}}}}]
        steps:
          - name: write
            image: {runtime_image}
            volumeMounts: [{{name: cache, mountPath: /cache, subPath: ../../escape}}]
            script: |
              #!/bin/sh
              echo escaped > /cache/marker
""",
        "--runner",
        "podman",
    )
    assert run.exit_code == 1
    assert run.condition["reason"] == "PodCreationFailed"
    assert (
        'spec.containers[0].volumeMounts.subPath: Invalid value: "../../escape"'
        in (run.condition["message"])
    )
    assert not list(tmp_path.rglob("marker"))


def test_parallel_taskruns_making_the_same_sub_path_all_get_it(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A matrix starts its TaskRuns together; each binds the same new subPath."""
    from concurrent.futures import ThreadPoolExecutor

    from tekton_mlops.local.workspaces import resolve_sub_path

    for attempt in range(20):
        root = tmp_path / f"volume-{attempt}"
        root.mkdir()
        with ThreadPoolExecutor(8) as pool:
            made = list(
                pool.map(
                    lambda volume: resolve_sub_path(volume, "study/shared", "shared", "step-tune"),
                    [root] * 8,
                )
            )
        assert made == [root.resolve() / "study" / "shared"] * 8
