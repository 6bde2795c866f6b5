"""Conformance: small runs per feature, checked against the statuses Tekton documents."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

TASKRUN = """
apiVersion: tekton.dev/v1
kind: TaskRun
metadata:
  name: {name}
spec:
"""


def test_taskrun_success_with_results_of_each_type(tekton) -> None:  # type: ignore[no-untyped-def]
    run = tekton(
        TASKRUN.format(name="results")
        + """
      taskSpec:
        results:
          - name: text
          - name: list
            type: array
          - name: map
            type: object
            properties: {a: {type: string}}
        steps:
          - name: write
            image: alpine
            script: |
              printf hello > $(results.text.path)
              printf '["x","y"]' > $(results.list.path)
              printf '{"a":"b"}' > $(results.map.path)
    """
    )
    assert run.exit_code == 0, run.log
    assert run.condition == {
        **run.condition,
        "type": "Succeeded",
        "status": "True",
        "reason": "Succeeded",
        "message": "All Steps have completed executing",
    }
    assert run.results == {"text": "hello", "list": ["x", "y"], "map": {"a": "b"}}
    step = run.object["status"]["steps"][0]
    assert step["name"] == "write"
    assert step["container"] == "step-write"
    assert step["terminated"]["exitCode"] == 0
    assert run.object["status"]["startTime"] <= run.object["status"]["completionTime"]


def test_failing_step_fails_the_taskrun_and_skips_the_rest(tekton) -> None:  # type: ignore[no-untyped-def]
    run = tekton(
        TASKRUN.format(name="fails")
        + """
      taskSpec:
        steps:
          - name: fail
            image: alpine
            script: exit 3
          - name: after
            image: alpine
            script: echo never
    """
    )
    assert run.exit_code == 1
    assert run.condition["status"] == "False"
    assert run.condition["reason"] == "Failed"
    assert run.condition["message"] == '"step-fail" exited with code 3'
    steps = run.object["status"]["steps"]
    assert [s["terminationReason"] for s in steps] == ["Error", "Skipped"]


def test_on_error_continue(tekton) -> None:  # type: ignore[no-untyped-def]
    run = tekton(
        TASKRUN.format(name="continue")
        + """
      taskSpec:
        steps:
          - name: flaky
            image: alpine
            onError: continue
            script: exit 7
          - name: after
            image: alpine
            script: echo ran
    """
    )
    assert run.exit_code == 0, run.log
    steps = run.object["status"]["steps"]
    assert steps[0]["terminated"]["exitCode"] == 7
    assert steps[0]["terminationReason"] == "Continued"
    assert steps[1]["terminationReason"] == "Completed"


def test_params_string_array_object_and_defaults(tekton) -> None:  # type: ignore[no-untyped-def]
    run = tekton(
        TASKRUN.format(name="params")
        + """
      params:
        - name: flags
          value: ["-a", "-b c"]
        - name: config
          value: {url: example.org}
      taskSpec:
        params:
          - name: greeting
            default: hi
          - name: flags
            type: array
          - name: config
            type: object
            properties: {url: {type: string}, port: {type: string}}
            default: {url: default.org, port: "80"}
        results: [{name: out}]
        steps:
          - name: show
            image: bash
            command: [bash, -c, 'printf "%s|" "$@" > $(results.out.path)', --]
            args: ["$(params.greeting)", "$(params.flags[*])", "$(params.flags[1])",
                   "$(params.config.url):$(params.config.port)"]
    """
    )
    assert run.exit_code == 0, run.log
    assert run.results["out"] == "hi|-a|-b c|-b c|example.org:80|"


def test_missing_param_fails_validation(tekton) -> None:  # type: ignore[no-untyped-def]
    run = tekton(
        TASKRUN.format(name="missing")
        + """
      taskSpec:
        params:
          - name: needed
        steps:
          - name: s
            image: alpine
            script: echo "$(params.needed)"
    """
    )
    assert run.exit_code == 1
    assert run.condition["reason"] == "TaskRunValidationFailed"
    assert run.condition["message"] == (
        "invalid input params for task missing: "
        "missing values for these params which have no default values: [needed]"
    )


def test_results_over_4096_bytes_fail(tekton) -> None:  # type: ignore[no-untyped-def]
    run = tekton(
        TASKRUN.format(name="big")
        + """
      taskSpec:
        results:
          - name: big
        steps:
          - name: write
            image: python
            script: |
              #!/usr/bin/env python3
              open("$(results.big.path)", "w").write("x" * 5000)
    """
    )
    assert run.exit_code == 1
    assert run.condition["message"] == (
        "Termination message is above max allowed size 4096, caused by large task result."
    )


def test_step_template_env_secrets_and_working_dir(tekton, tmp_path) -> None:  # type: ignore[no-untyped-def]
    secrets = tmp_path / "secrets" / "token"
    secrets.mkdir(parents=True)
    (secrets / "value").write_text("s3cr3t")
    run = tekton(
        TASKRUN.format(name="env")
        + """
      taskSpec:
        results: [{name: out}]
        stepTemplate:
          env:
            - name: COLOR
              value: blue
            - name: SIZE
              value: small
        steps:
          - name: show
            image: alpine
            workingDir: /data/wd
            env:
              - name: SIZE
                value: large
              - name: TOKEN
                valueFrom:
                  secretKeyRef: {name: token, key: value}
              - name: FROM_DOC
                valueFrom:
                  configMapKeyRef: {name: settings, key: mode}
            script: printf "$COLOR $SIZE $TOKEN $FROM_DOC $(pwd)" > $(results.out.path)
    ---
    apiVersion: v1
    kind: ConfigMap
    metadata:
      name: settings
    data:
      mode: fast
    """,
        "--secrets-dir",
        str(tmp_path / "secrets"),
    )
    assert run.exit_code == 0, run.log
    # A working directory the host lacks is made inside the step's namespace only.
    assert run.results["out"] == "blue large s3cr3t fast /data/wd"
    assert not Path("/data/wd").exists()


def test_missing_secret_is_a_config_error(tekton) -> None:  # type: ignore[no-untyped-def]
    run = tekton(
        TASKRUN.format(name="nosecret")
        + """
      taskSpec:
        steps:
          - name: s
            image: alpine
            env:
              - name: T
                valueFrom:
                  secretKeyRef: {name: absent, key: k}
            script: echo
    """
    )
    assert run.exit_code == 1
    assert run.condition["reason"] == "CreateContainerConfigError"


def test_workspaces_empty_dir_optional_local_and_secret(tekton, tmp_path) -> None:  # type: ignore[no-untyped-def]
    local = tmp_path / "mine"
    run = tekton(
        TASKRUN.format(name="ws")
        + """
      workspaces:
        - name: scratch
          emptyDir: {}
        - name: mine
          emptyDir: {}
        - name: creds
          secret:
            secretName: creds
      taskSpec:
        workspaces:
          - name: scratch
          - name: mine
          - name: creds
            readOnly: true
          - name: extra
            optional: true
        steps:
          - name: write
            image: alpine
            script: echo shared > $(workspaces.scratch.path)/f
          - name: read
            image: alpine
            script: |
              out=$(workspaces.mine.path)/copy
              cat $(workspaces.scratch.path)/f > $out
              cat $(workspaces.creds.path)/user >> $out
              echo "[$(workspaces.extra.bound)][$(workspaces.extra.path)]" >> $out
    ---
    apiVersion: v1
    kind: Secret
    metadata:
      name: creds
    stringData:
      user: alice
    """,
        "--workspace",
        f"mine={local}",
    )
    assert run.exit_code == 0, run.log
    # The secret value has no newline of its own, as `kubectl create secret` stores it.
    assert (local / "copy").read_text() == "shared\nalice[false][]\n"


def test_taskrun_timeout(tekton) -> None:  # type: ignore[no-untyped-def]
    run = tekton(
        TASKRUN.format(name="slow")
        + """
      timeout: 1s
      taskSpec:
        steps:
          - name: sleep
            image: alpine
            script: sleep 30
    """
    )
    assert run.exit_code == 1
    assert run.condition["reason"] == "TaskRunTimeout"
    assert run.condition["message"] == 'TaskRun "slow" failed to finish within "1s"'
    assert run.object["status"]["steps"][0]["terminationReason"] == "TimeoutExceeded"


def test_script_shebangs_and_context(tekton, tmp_path) -> None:  # type: ignore[no-untyped-def]
    # Steps of one TaskRun share the pod's /workspace (an emptyDir kept in the run directory).
    out = tmp_path / "runs" / "scripts" / "scripts" / "workspace" / "out"
    run = tekton(
        TASKRUN.format(name="scripts")
        + """
      taskSpec:
        steps:
          - name: python
            image: python
            script: |
              #!/usr/bin/env python3
              line = "py:$(context.taskRun.name):$(context.task.name)\\n"
              open("/workspace/out", "w").write(line)
          - name: shell
            image: busybox
            script: |
              echo "sh:$0" | sed 's|/.*/|/|' >> /workspace/out
    """
    )
    assert run.exit_code == 0, run.log
    lines = out.read_text().splitlines()
    assert lines[0] == "py:scripts:scripts"
    assert lines[1].startswith("sh:")


def test_stepaction_by_ref(tekton, tmp_path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "runs" / "with-action" / "with-action" / "workspace" / "out"
    run = tekton("""
    apiVersion: tekton.dev/v1beta1
    kind: StepAction
    metadata:
      name: greet
    spec:
      params:
        - name: who
          default: nobody
      image: alpine
      script: echo "hello $(params.who)" > /workspace/out
    ---
    apiVersion: tekton.dev/v1
    kind: TaskRun
    metadata:
      name: with-action
    spec:
      taskSpec:
        steps:
          - name: hello
            ref:
              name: greet
            params:
              - name: who
                value: tekton
    """)
    assert run.exit_code == 0, run.log
    assert out.read_text() == "hello tekton\n"


# --- PipelineRuns ---------------------------------------------------------------------

PIPELINERUN = """
apiVersion: tekton.dev/v1
kind: PipelineRun
metadata:
  name: {name}
spec:
"""


def test_results_flow_between_tasks_and_into_pipeline_results(tekton) -> None:  # type: ignore[no-untyped-def]
    run = tekton(
        PIPELINERUN.format(name="flow")
        + """
      params:
        - name: word
          value: tekton
      pipelineSpec:
        params:
          - name: word
        results:
          - name: final
            value: $(tasks.second.results.out)
        tasks:
          - name: first
            params:
              - {name: w, value: $(params.word)}
            taskSpec:
              params: [{name: w}]
              results: [{name: out}]
              steps:
                - name: s
                  image: alpine
                  script: printf "%s" "$(params.w)-1" > $(results.out.path)
          - name: second
            params:
              - {name: w, value: $(tasks.first.results.out)}
            taskSpec:
              params: [{name: w}]
              results: [{name: out}]
              steps:
                - name: s
                  image: alpine
                  script: printf "%s" "$(params.w)-2" > $(results.out.path)
    """
    )
    assert run.exit_code == 0, run.log
    assert run.condition["reason"] == "Succeeded"
    assert run.condition["message"] == "Tasks Completed: 2 (Failed: 0, Cancelled 0), Skipped: 0"
    assert run.results == {"final": "tekton-1-2"}
    refs = run.object["status"]["childReferences"]
    assert [(r["kind"], r["name"], r["pipelineTaskName"]) for r in refs] == [
        ("TaskRun", "flow-first", "first"),
        ("TaskRun", "flow-second", "second"),
    ]


def test_independent_tasks_run_in_parallel(tekton) -> None:  # type: ignore[no-untyped-def]
    # Each task waits for the other's flag in a shared workspace: only concurrency succeeds.
    task = """
          - name: {me}
            workspaces: [{{name: flags, workspace: flags}}]
            taskSpec:
              workspaces: [{{name: flags}}]
              steps:
                - name: meet
                  image: alpine
                  script: |
                    touch $(workspaces.flags.path)/{me}
                    for i in $(seq 100); do
                      [ -e $(workspaces.flags.path)/{other} ] && exit 0; sleep 0.1
                    done
                    exit 1
    """
    run = tekton(
        PIPELINERUN.format(name="parallel")
        + """
      workspaces: [{name: flags, emptyDir: {}}]
      pipelineSpec:
        workspaces: [{name: flags}]
        tasks:"""
        + task.format(me="a", other="b")
        + task.format(me="b", other="a")
    )
    assert run.exit_code == 0, run.log


def test_when_expressions_skip_with_reason(tekton) -> None:  # type: ignore[no-untyped-def]
    run = tekton(
        PIPELINERUN.format(name="when")
        + """
      params:
        - {name: env, value: dev}
      pipelineSpec:
        params: [{name: env}]
        tasks:
          - name: prod-only
            when:
              - {input: $(params.env), operator: in, values: [prod]}
            taskSpec:
              steps: [{name: s, image: alpine, script: exit 1}]
          - name: not-prod
            when:
              - {input: $(params.env), operator: notin, values: [prod]}
            taskSpec:
              steps: [{name: s, image: alpine, script: "true"}]
          - name: after-skipped
            runAfter: [prod-only]
            taskSpec:
              steps: [{name: s, image: alpine, script: "true"}]
    """
    )
    assert run.exit_code == 0, run.log
    assert run.condition["reason"] == "Completed"
    assert run.condition["message"] == "Tasks Completed: 2 (Failed: 0, Cancelled 0), Skipped: 1"
    assert run.skipped == {"prod-only": "When Expressions evaluated to false"}


def test_failure_stops_the_dag_and_finally_sees_statuses(tekton, tmp_path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "runs" / "stop" / "stop-report" / "workspace" / "out"
    run = tekton(
        PIPELINERUN.format(name="stop")
        + """
      pipelineSpec:
        tasks:
          - name: ok
            taskSpec:
              steps: [{name: s, image: alpine, script: "true"}]
          - name: broken
            runAfter: [ok]
            taskSpec:
              steps: [{name: s, image: alpine, script: exit 2}]
          - name: never
            runAfter: [broken]
            taskSpec:
              steps: [{name: s, image: alpine, script: "true"}]
        finally:
          - name: report
            params:
              - {name: all, value: $(tasks.status)}
              - {name: ok, value: $(tasks.ok.status)}
              - {name: broken, value: $(tasks.broken.status)}
              - {name: never, value: $(tasks.never.status)}
            taskSpec:
              params: [{name: all}, {name: ok}, {name: broken}, {name: never}]
              steps:
                - name: s
                  image: alpine
                  script: |
                    echo "$(params.all) $(params.ok) $(params.broken) $(params.never)" \\
                      > /workspace/out
    """
    )
    assert run.exit_code == 1
    assert run.condition["reason"] == "Failed"
    assert run.condition["message"] == "Tasks Completed: 3 (Failed: 1, Cancelled 0), Skipped: 1"
    assert run.skipped == {"never": "PipelineRun was stopping"}
    assert out.read_text() == "Failed Succeeded Failed None\n"


def test_retries(tekton, tmp_path) -> None:  # type: ignore[no-untyped-def]
    # A retry is a new pod: only a workspace outlives an attempt.
    marker = tmp_path / "runs" / "retry" / "workspaces" / "log" / "attempted"
    run = tekton(
        PIPELINERUN.format(name="retry")
        + """
      workspaces: [{name: log, emptyDir: {}}]
      pipelineSpec:
        workspaces: [{name: log}]
        tasks:
          - name: flaky
            retries: 2
            workspaces: [{name: log, workspace: log}]
            taskSpec:
              workspaces: [{name: log}]
              steps:
                - name: s
                  image: alpine
                  script: |
                    echo "$(context.task.retry-count)" >> $(workspaces.log.path)/attempted
                    [ "$(context.task.retry-count)" = 1 ]
    """
    )
    assert run.exit_code == 0, run.log
    assert marker.read_text() == "0\n1\n"
    taskrun = run.taskrun(tmp_path / "runs", "flaky")
    assert len(taskrun["status"]["retriesStatus"]) == 1


def test_pipeline_timeout(tekton) -> None:  # type: ignore[no-untyped-def]
    run = tekton(
        PIPELINERUN.format(name="late")
        + """
      timeouts:
        pipeline: 2s
      pipelineSpec:
        tasks:
          - name: slow
            taskSpec:
              steps: [{name: s, image: alpine, script: sleep 30}]
          - name: later
            runAfter: [slow]
            taskSpec:
              steps: [{name: s, image: alpine, script: "true"}]
    """
    )
    assert run.exit_code == 1
    assert run.condition["reason"] == "PipelineRunTimeout"
    assert run.condition["message"] == 'PipelineRun "late" failed to finish within "2s"'
    assert run.skipped == {"later": "PipelineRun timeout has been reached"}


def test_missing_pipeline_param(tekton) -> None:  # type: ignore[no-untyped-def]
    run = tekton(
        PIPELINERUN.format(name="noparam")
        + """
      pipelineSpec:
        params: [{name: needed}]
        tasks:
          - name: t
            taskSpec:
              steps: [{name: s, image: alpine, script: "true"}]
    """
    )
    assert run.exit_code == 1
    assert run.condition["reason"] == "ParameterMissing"


# --- references ------------------------------------------------------------------------


def test_task_applied_from_the_same_file(tekton) -> None:  # type: ignore[no-untyped-def]
    run = tekton("""
    apiVersion: tekton.dev/v1
    kind: Task
    metadata:
      name: echo
    spec:
      params: [{name: text}]
      results: [{name: said}]
      steps:
        - name: s
          image: alpine
          script: printf "%s" "$(params.text)" > $(results.said.path)
    ---
    apiVersion: tekton.dev/v1
    kind: TaskRun
    metadata:
      name: by-name
    spec:
      taskRef:
        name: echo
      params:
        - {name: text, value: hi}
    """)
    assert run.exit_code == 0, run.log
    assert run.results == {"said": "hi"}


def test_unknown_task_and_hub_resolver(tekton) -> None:  # type: ignore[no-untyped-def]
    unknown = tekton(
        TASKRUN.format(name="nope")
        + """
      taskRef:
        name: does-not-exist
    """
    )
    assert unknown.exit_code == 1
    assert unknown.condition["reason"] == "CouldntGetTask"
    hub = tekton(
        TASKRUN.format(name="hub")
        + """
      taskRef:
        resolver: hub
        params:
          - {name: name, value: git-clone}
          - {name: version, value: "0.9"}
    """
    )
    assert hub.exit_code == 1
    assert "Artifact Hub on the internet" in hub.condition["message"]


def test_git_resolver_on_a_local_repository(tekton, tmp_path) -> None:  # type: ignore[no-untyped-def]
    repo = tmp_path / "repo"
    (repo / "task").mkdir(parents=True)
    (repo / "task" / "hello.yaml").write_text(
        "apiVersion: tekton.dev/v1\nkind: Task\nmetadata: {name: hello}\nspec:\n"
        "  results: [{name: out}]\n  steps:\n    - name: s\n      image: alpine\n"
        "      script: printf v1 > $(results.out.path)\n"
    )
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.org"]
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "v1"], check=True)
    text = (
        TASKRUN.format(name="from-git")
        + f"""
      taskRef:
        resolver: git
        params:
          - {{name: url, value: "file://{repo}"}}
          - {{name: revision, value: main}}
          - {{name: pathInRepo, value: task/hello.yaml}}
    """
    )
    run = tekton(text)
    assert run.exit_code == 0, run.log
    assert run.results == {"out": "v1"}
    mirrored = tekton(
        text.replace(f"file://{repo}", "https://git.example.org/r.git"),
        "--git-mirror",
        f"https://git.example.org/r.git={repo}",
    )
    assert mirrored.results == {"out": "v1"}
    unmapped = tekton(text.replace(f"file://{repo}", "https://git.example.org/r.git"))
    assert unmapped.condition["reason"] == "CouldntGetTask"
    assert "--git-mirror" in unmapped.condition["message"]


# --- what Tekton rejects ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            """
      taskSpec:
        steps:
          - {name: s, image: alpine, script: echo $(params.nothing)}
""",
            'non-existent variable in "echo $(params.nothing)": spec.taskSpec.steps[0].script',
        ),
        (
            """
      taskRef: {name: a}
      taskSpec:
        steps: [{name: s, image: alpine, script: "true"}]
""",
            "expected exactly one, got both: spec.taskRef, spec.taskSpec",
        ),
        (
            """
      taskSpec:
        steps:
          - {name: s, image: alpine, script: "true", command: [echo]}
""",
            "script cannot be used with command: spec.taskSpec.steps[0].script",
        ),
    ],
)
def test_rejected_as_tekton_would(tekton, spec: str, message: str) -> None:  # type: ignore[no-untyped-def]
    run = tekton(TASKRUN.format(name="bad") + spec)
    assert run.exit_code == 2
    assert 'admission webhook "validation.webhook.pipeline.tekton.dev" denied' in run.log
    assert message in run.log


def test_cycle_is_rejected(tekton) -> None:  # type: ignore[no-untyped-def]
    run = tekton(
        PIPELINERUN.format(name="cycle")
        + """
      pipelineSpec:
        tasks:
          - name: a
            runAfter: [b]
            taskSpec: {steps: [{name: s, image: alpine, script: "true"}]}
          - name: b
            runAfter: [a]
            taskSpec: {steps: [{name: s, image: alpine, script: "true"}]}
    """
    )
    assert run.exit_code == 2
    assert 'invalid value: cycle detected; task "a" depends on "b": spec.pipelineSpec.tasks' in (
        run.log
    )


def test_v1beta1_runs_are_refused_with_a_reason(tekton) -> None:  # type: ignore[no-untyped-def]
    run = tekton("""
    apiVersion: tekton.dev/v1beta1
    kind: TaskRun
    metadata: {name: old}
    spec:
      taskSpec: {steps: [{name: s, image: alpine, script: "true"}]}
    """)
    assert run.exit_code == 2
    assert "the local executor runs tekton.dev/v1 TaskRuns and PipelineRuns" in run.log


def test_matrix_fan_out_include_and_aggregated_results(tekton, tmp_path) -> None:  # type: ignore[no-untyped-def]
    run = tekton(
        PIPELINERUN.format(name="mx")
        + """
      pipelineSpec:
        results:
          - name: squares
            value: $(tasks.square.results.out)
        tasks:
          - name: square
            displayName: squares of a few numbers
            matrix:
              params:
                - {name: n, value: ["1", "2", "3"]}
              include:
                - name: note-two
                  params: [{name: n, value: "2"}, {name: note, value: even}]
                - name: add-ten
                  params: [{name: n, value: "10"}]
            taskSpec:
              params: [{name: n}, {name: note, default: "-"}]
              results: [{name: out}]
              steps:
                - name: s
                  image: alpine
                  script: |
                    n=$(params.n)
                    printf "%s%s" "$((n * n))" "$(params.note)" > $(results.out.path)
          - name: count
            params:
              - {name: len, value: $(tasks.square.matrix.length)}
              - {name: results-len, value: $(tasks.square.matrix.out.length)}
            taskSpec:
              params: [{name: len}, {name: results-len}]
              results: [{name: both}]
              steps:
                - name: s
                  image: alpine
                  script: |
                    printf "%s/%s" "$(params.len)" "$(params.results-len)" \
                      > $(results.both.path)
    """
    )
    assert run.exit_code == 0, run.log
    assert run.results == {"squares": ["1-", "4even", "9-", "100-"]}
    refs = run.object["status"]["childReferences"]
    assert [r["name"] for r in refs] == [
        "mx-square-0",
        "mx-square-1",
        "mx-square-2",
        "mx-square-3",
        "mx-count",
    ]
    assert refs[0]["displayName"] == "squares of a few numbers"
    assert run.taskrun(tmp_path / "runs", "count")["status"]["results"][0]["value"] == "4/4"


def test_matrix_with_an_empty_array_is_skipped(tekton) -> None:  # type: ignore[no-untyped-def]
    run = tekton(
        PIPELINERUN.format(name="empty")
        + """
      params:
        - {name: items, value: []}
      pipelineSpec:
        params: [{name: items, type: array}]
        tasks:
          - name: each
            matrix:
              params: [{name: item, value: "$(params.items[*])"}]
            taskSpec:
              params: [{name: item}]
              steps: [{name: s, image: alpine, script: "true"}]
    """
    )
    assert run.exit_code == 0, run.log
    assert run.skipped == {"each": "Matrix Parameters have an empty array"}


def test_sidecar_ready_before_steps_and_stopped_after(tekton, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from tests.conftest import free_port

    port = free_port()
    run = tekton(
        TASKRUN.format(name="sidecar")
        + f"""
      taskSpec:
        results: [{{name: status}}]
        sidecars:
          - name: web
            image: python
            command: [python3, -m, http.server, "{port}", --bind, 127.0.0.1]
            readinessProbe:
              tcpSocket: {{port: {port}}}
        steps:
          - name: get
            image: python
            script: |
              #!/usr/bin/env python3
              import urllib.request
              status = urllib.request.urlopen("http://127.0.0.1:{port}/").status
              open("$(results.status.path)", "w").write(str(status))
    """
    )
    assert run.exit_code == 0, run.log
    assert run.results == {"status": "200"}
    sidecar = run.object["status"]["sidecars"][0]
    assert sidecar["container"] == "sidecar-web"
    assert sidecar["terminated"] == {"exitCode": 0, "reason": "Completed"}
    import socket

    with pytest.raises(ConnectionRefusedError):  # stopped once the steps were done
        socket.create_connection(("127.0.0.1", port), timeout=1)


def test_args_only_steps_use_the_image_entrypoint(tekton, tmp_path) -> None:  # type: ignore[no-untyped-def]
    # Tekton runs the image's ENTRYPOINT, or its CMD when it has none, with the step's args.
    out = tmp_path / "runs" / "entry" / "entry" / "workspace" / "out"
    run = tekton(
        TASKRUN.format(name="entry")
        + """
      taskSpec:
        steps:
          - name: bash-option
            image: docker.io/library/bash:5.2@sha256:"""
        + "a" * 64
        + """
            args: [-c, "echo via-bash > /workspace/out"]
          - name: bash-command
            image: bash
            args: [bash, -c, "echo via-bash-command >> /workspace/out"]
          - name: busybox
            image: mirror.gcr.io/busybox
            args: [-c, "echo via-busybox >> /workspace/out"]
          - name: ubuntu
            image: mirror.gcr.io/ubuntu@sha256:"""
        + "b" * 64
        + """
            args: [-c, "echo via-ubuntu >> /workspace/out"]
          - name: nop
            image: ghcr.io/tektoncd/pipeline/nop-8eac7c133edad5df719dc37b36b62482:latest
    """
    )
    assert run.exit_code == 0, run.log
    assert out.read_text() == "via-bash\nvia-bash-command\nvia-busybox\nvia-ubuntu\n"
    unknown = tekton(
        TASKRUN.format(name="unknown")
        + """
      taskSpec:
        steps:
          - name: s
            image: registry.example/tools/mystery:1.0
            args: [--flag]
    """
    )
    assert unknown.exit_code == 1
    assert "cannot tell what image registry.example/tools/mystery:1.0 runs" in unknown.log


def test_propagated_params_and_results_in_embedded_specs(tekton, tmp_path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "runs" / "propagate" / "propagate-second" / "workspace" / "out"
    run = tekton(
        PIPELINERUN.format(name="propagate")
        + """
      params:
        - {name: greeting, value: hello}
        - {name: shadowed, value: from-pipeline}
      pipelineSpec:
        params: [{name: greeting}, {name: shadowed}]
        tasks:
          - name: first
            taskSpec:
              results: [{name: word}]
              steps:
                - name: s
                  image: alpine
                  script: printf world > $(results.word.path)
          - name: second
            params:
              - {name: shadowed, value: from-task}
            taskSpec:
              params: [{name: shadowed}]
              steps:
                - name: s
                  image: alpine
                  script: |
                    echo "$(params.greeting) $(tasks.first.results.word) $(params.shadowed)" \\
                      > /workspace/out
    """
    )
    assert run.exit_code == 0, run.log
    assert out.read_text() == "hello world from-task\n"


def test_scripts_may_write_to_tekton_paths_and_use_their_images_shell(tekton) -> None:  # type: ignore[no-untyped-def]
    # Tekton's own examples write /tekton/results/<name> directly, and use [[ ]] in alpine
    # scripts without a shebang (busybox ash accepts it; dash would not).
    run = tekton(
        TASKRUN.format(name="paths")
        + """
      taskSpec:
        results: [{name: answer}]
        steps:
          - name: s
            image: alpine
            script: |
              if [[ "a" == "a" ]]; then printf yes > /tekton/results/answer; fi
    """
    )
    assert run.exit_code == 0, run.log
    assert run.results == {"answer": "yes"}
