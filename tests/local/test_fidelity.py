"""Classes of Tekton's own examples the executor must run with Tekton's outcome.

Each test is this project's own, written for one class of failure seen against Tekton's
examples/v1: interpreters the host lacks, results read from sidecar logs (feature flags),
several runs in one file, values that reach volumes through params.
"""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.integration

BIG = 'head -c 6000 /dev/zero | tr "\\\\0" x > $(results.big.path)'


def test_ash_scripts_of_alpine_images_run_under_busybox(tekton) -> None:  # type: ignore[no-untyped-def]
    run = tekton(
        """
    apiVersion: tekton.dev/v1
    kind: TaskRun
    metadata: {name: ash}
    spec:
      taskSpec:
        results: [{name: out}]
        steps:
          - name: env-ash
            image: alpine
            script: |
              #!/usr/bin/env ash
              [[ "a" == "a" ]] && printf "ash " > $(results.out.path)
          - name: bin-ash
            image: docker.io/library/alpine:3.20
            script: |
              #!/bin/ash
              printf "bin-ash" >> $(results.out.path)
    """
    )
    assert run.exit_code == 0, run.log
    assert run.results["out"] == "ash bin-ash"


def large_result_run() -> str:
    return f"""
    apiVersion: tekton.dev/v1
    kind: TaskRun
    metadata: {{name: large}}
    spec:
      taskSpec:
        results: [{{name: big}}]
        steps:
          - {{name: s, image: bash, script: '{BIG}'}}
    """


def test_results_over_4096_bytes_fail_through_the_termination_message(tekton) -> None:  # type: ignore[no-untyped-def]
    run = tekton(large_result_run())
    assert run.exit_code == 1
    assert run.condition["message"] == (
        "Termination message is above max allowed size 4096, caused by large task result."
    )


def test_results_from_sidecar_logs_lift_the_limit_to_max_result_size(tekton, tmp_path) -> None:  # type: ignore[no-untyped-def]
    flags = tmp_path / "flags.yaml"
    flags.write_text("results-from: sidecar-logs\nmax-result-size: '8192'\n")
    run = tekton(large_result_run(), "--feature-flags", str(flags))
    assert run.exit_code == 0, run.log
    assert run.results["big"] == "x" * 6000
    # The same flags as a feature-flags ConfigMap beside the run, with a smaller limit.
    small = tekton(
        large_result_run()
        + """
    ---
    apiVersion: v1
    kind: ConfigMap
    metadata: {name: feature-flags, namespace: tekton-pipelines}
    data: {results-from: sidecar-logs, max-result-size: "5000"}
    """
    )
    assert small.exit_code == 1
    assert "larger than the maximum allowed size of 5000 bytes" in small.condition["message"]


def test_bad_feature_flags_are_refused(tekton, tmp_path) -> None:  # type: ignore[no-untyped-def]
    flags = tmp_path / "flags.yaml"
    flags.write_text("results-from: carrier-pigeon\n")
    run = tekton(large_result_run(), "--feature-flags", str(flags))
    assert run.exit_code == 2
    assert 'invalid value for feature flag "results-from": "carrier-pigeon"' in run.log


def test_every_run_in_a_file_runs(tekton) -> None:  # type: ignore[no-untyped-def]
    runs = "\n    ---\n".join(
        f"""
    apiVersion: tekton.dev/v1
    kind: TaskRun
    metadata: {{name: run-{n}}}
    spec:
      taskSpec:
        steps: [{{name: s, image: bash, script: "exit {code}"}}]"""
        for n, code in ((1, 0), (2, 0), (3, 1))
    )
    run = tekton(runs)
    assert run.exit_code == 1  # one of the three failed
    for n, reason in ((1, "Succeeded"), (2, "Succeeded"), (3, "Failed")):
        assert f"TaskRun run-{n}: {reason}" in run.log


def test_volumes_named_by_params(tekton, tmp_path) -> None:  # type: ignore[no-untyped-def]
    run = tekton(
        """
    apiVersion: v1
    kind: ConfigMap
    metadata: {name: settings}
    data: {mode: fast}
    ---
    apiVersion: tekton.dev/v1
    kind: TaskRun
    metadata: {name: named}
    spec:
      params: [{name: config, value: settings}]
      taskSpec:
        params: [{name: config}]
        results: [{name: mode}]
        volumes:
          - name: cfg
            configMap: {name: $(params.config)}
        steps:
          - name: read
            image: bash
            volumeMounts: [{name: cfg, mountPath: /etc/cfg}]
            script: cat /etc/cfg/mode > $(results.mode.path)
    """
    )
    assert run.exit_code == 0, run.log
    assert run.results["mode"] == "fast"


def test_a_step_action_through_the_git_resolver(tekton, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import subprocess

    repo = tmp_path / "actions"
    (repo / "actions").mkdir(parents=True)
    (repo / "actions" / "greet.yaml").write_text(
        "apiVersion: tekton.dev/v1beta1\nkind: StepAction\nmetadata: {name: greet}\n"
        "spec:\n  params: [{name: who}]\n  results: [{name: said}]\n  image: bash\n"
        '  script: printf "hi $(params.who)" > $(step.results.said.path)\n'
    )
    for command in (["init", "-q"], ["add", "."], ["commit", "-qm", "action"]):
        subprocess.run(
            ["git", "-c", "user.email=t@t", "-c", "user.name=t", *command], cwd=repo, check=True
        )
    run = tekton(
        f"""
    apiVersion: tekton.dev/v1
    kind: TaskRun
    metadata: {{name: via-git}}
    spec:
      params: [{{name: path, value: actions/greet.yaml}}]
      taskSpec:
        params: [{{name: path}}]
        results: [{{name: out, value: $(steps.greet.results.said)}}]
        steps:
          - name: greet
            ref:
              resolver: git
              params:
                - {{name: url, value: "file://{repo}"}}
                - {{name: revision, value: HEAD}}
                - {{name: pathInRepo, value: $(params.path)}}
            params: [{{name: who, value: tekton}}]
    """
    )
    assert run.exit_code == 0, run.log
    assert run.results["out"] == "hi tekton"


def test_a_task_listed_before_the_skipped_task_it_runs_after_still_runs(tekton) -> None:  # type: ignore[no-untyped-def]
    """Order in the YAML is not order of execution: `after` comes first and waits on
    `guarded`, which its when expression skips; `after` then runs (ordering only),
    and `reader`, which needs a result of `guarded`, is skipped, as Tekton does."""
    run = tekton(
        """
    apiVersion: tekton.dev/v1
    kind: PipelineRun
    metadata: {name: out-of-order}
    spec:
      pipelineSpec:
        tasks:
          - name: after
            runAfter: [guarded]
            taskSpec: {steps: [{name: s, image: bash, script: "true"}]}
          - name: reader
            params: [{name: v, value: $(tasks.guarded.results.out)}]
            taskSpec:
              params: [{name: v}]
              steps: [{name: s, image: bash, script: "echo $(params.v)"}]
          - name: guarded
            when: [{input: "a", operator: in, values: ["b"]}]
            taskSpec:
              results: [{name: out}]
              steps: [{name: s, image: bash, script: "printf x > $(results.out.path)"}]
    """
    )
    assert run.exit_code == 0, run.log
    ran = {c["pipelineTaskName"] for c in run.object["status"]["childReferences"]}
    skipped = {s["name"]: s["reason"] for s in run.object["status"]["skippedTasks"]}
    assert ran == {"after"}
    assert skipped == {
        "guarded": "When Expressions evaluated to false",
        "reader": "Results were missing",
    }


def test_the_downward_api_gives_a_step_its_pod_name_namespace_and_labels(tekton) -> None:  # type: ignore[no-untyped-def]
    run = tekton(
        """
    apiVersion: tekton.dev/v1
    kind: PipelineRun
    metadata: {name: downward}
    spec:
      pipelineSpec:
        results:
          - {name: seen, value: $(tasks.look.results.seen)}
        tasks:
          - name: look
            taskSpec:
              results: [{name: seen}]
              steps:
                - name: s
                  image: bash
                  env:
                    - name: RUN
                      valueFrom:
                        fieldRef: {fieldPath: "metadata.labels['tekton.dev/pipelineRun']"}
                    - name: TASK
                      valueFrom:
                        fieldRef: {fieldPath: "metadata.labels['tekton.dev/pipelineTask']"}
                    - name: ABSENT
                      valueFrom: {fieldRef: {fieldPath: "metadata.labels['no-such-label']"}}
                    - name: POD
                      valueFrom: {fieldRef: {fieldPath: metadata.name}}
                    - name: NS
                      valueFrom: {fieldRef: {fieldPath: metadata.namespace}}
                  script: printf "%s" "$RUN $TASK [$ABSENT] $POD $NS" > $(results.seen.path)
    """
    )
    assert run.exit_code == 0, run.log
    assert run.results["seen"] == "downward look [] downward-look-pod default"


def test_a_field_path_the_kubelet_does_not_know_fails_the_pod(tekton) -> None:  # type: ignore[no-untyped-def]
    run = tekton(
        """
    apiVersion: tekton.dev/v1
    kind: TaskRun
    metadata: {name: unknown-field}
    spec:
      taskSpec:
        steps:
          - name: s
            image: bash
            env:
              - name: X
                valueFrom: {fieldRef: {fieldPath: spec.nothing}}
            script: "true"
    """
    )
    assert run.exit_code == 1
    assert "unsupported fieldPath 'spec.nothing'" in run.condition["message"], run.log
