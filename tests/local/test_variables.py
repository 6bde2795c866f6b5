"""Every variable of Tekton's variables.md, in a place the docs say it works: one case a row.

Each case runs a small TaskRun or PipelineRun that writes what the variable became
into a result, and compares it with what Tekton gives.
"""

from __future__ import annotations

import json
import re

import pytest

pytestmark = pytest.mark.integration

TASK_RUN = """
apiVersion: tekton.dev/v1
kind: TaskRun
metadata: {{name: vars}}
spec:
  params:
    - {{name: text, value: hello}}
    - {{name: list, value: [a, b, c]}}
    - {{name: map, value: {{url: example.org, port: "80"}}}}
  workspaces: [{{name: data, emptyDir: {{}}}}]
  taskSpec:
    params:
      - {{name: text}}
      - {{name: list, type: array}}
      - {{name: map, type: object, properties: {{url: {{}}, port: {{}}}}}}
    workspaces: [{{name: data}}, {{name: absent, optional: true}}]
    results: [{{name: out}}]
    steps:
      - name: first
        image: bash
        onError: continue
        script: exit 3
      - name: show
        image: bash
        command: [bash, -c, 'printf "%s" "$*" > $(results.out.path)', --]
        args: [{args}]
"""

# variable (as written in args) -> what Tekton substitutes (None: compared by pattern)
TASK_ROWS: dict[str, str] = {
    "$(params.text)": "hello",
    "$(params['text'])": "hello",
    '$(params["text"])': "hello",
    "$(params.list[*])": "a b c",
    "$(params.list[1])": "b",
    "$(params.map.url)": "example.org",
    "$(params['map'].port)": "80",
    "$(inputs.params.text)": "hello",
    "$(workspaces.data.bound)": "true",
    "$(workspaces.absent.bound)": "false",
    "$(workspaces.absent.path)": "",
    "$(workspaces.data.claim)": "",
    "$(workspaces.data.volume)": "ws-data",
    "$(context.taskRun.name)": "vars",
    "$(context.taskRun.namespace)": "default",
    "$(context.task.name)": "vars",
    "$(context.task.retry-count)": "0",
}
TASK_PATTERNS: dict[str, str] = {
    "$(context.taskRun.uid)": r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
    "$(workspaces.data.path)": r"/\S+/data",
    "$(credentials.path)": r"/\S+",
    "$(results.out.path)": r"/\S+/out",
    "$(results['out'].path)": r"/\S+/out",
}


@pytest.mark.parametrize("variable", sorted(TASK_ROWS))
def test_task_variable(tekton, variable: str) -> None:  # type: ignore[no-untyped-def]
    run = tekton(TASK_RUN.format(args=json.dumps(variable)))
    assert run.exit_code == 0, run.log
    assert run.results["out"] == TASK_ROWS[variable]


@pytest.mark.parametrize("variable", sorted(TASK_PATTERNS))
def test_task_variable_shape(tekton, variable: str) -> None:  # type: ignore[no-untyped-def]
    run = tekton(TASK_RUN.format(args=json.dumps(variable)))
    assert run.exit_code == 0, run.log
    assert re.fullmatch(TASK_PATTERNS[variable], run.results["out"]), run.results["out"]


def test_step_exit_code_path(tekton) -> None:  # type: ignore[no-untyped-def]
    run = tekton(
        TASK_RUN.format(args="'$(steps.step-first.exitCode.path)'").replace(
            'printf "%s" "$*" > $(results.out.path)', "cat $1 > $(results.out.path)"
        )
    )
    assert run.exit_code == 0, run.log
    assert run.results["out"] == "3"


def test_step_results_feed_later_steps_and_task_results(tekton) -> None:  # type: ignore[no-untyped-def]
    run = tekton(
        """
    apiVersion: tekton.dev/v1
    kind: TaskRun
    metadata: {name: step-results}
    spec:
      taskSpec:
        results:
          - {name: digest, value: $(steps.make.results.digest)}
          - {name: seen}
        steps:
          - name: make
            image: bash
            results: [{name: digest}, {name: parts, type: array}]
            script: |
              printf sha256:abc > $(step.results.digest.path)
              printf '["x","y"]' > $(step.results.parts.path)
          - name: use
            image: bash
            command: [bash, -c, 'printf "%s|%s" "$1" "$2" > $(results.seen.path)', --]
            args: ["$(steps.make.results.digest)", "$(steps.make.results.parts[1])"]
    """
    )
    assert run.exit_code == 0, run.log
    assert run.results == {"digest": "sha256:abc", "seen": "sha256:abc|y"}


PIPELINE_RUN = """
apiVersion: tekton.dev/v1
kind: PipelineRun
metadata: {{name: pvars}}
spec:
  params:
    - {{name: text, value: hello}}
    - {{name: list, value: [a, b, c]}}
    - {{name: map, value: {{url: example.org}}}}
  workspaces: [{{name: data, emptyDir: {{}}}}]
  pipelineSpec:
    params:
      - {{name: text}}
      - {{name: list, type: array}}
      - {{name: map, type: object, properties: {{url: {{}}}}}}
    workspaces: [{{name: data}}, {{name: spare, optional: true}}]
    results: [{{name: out, value: $(tasks.show.results.out)}}]
    tasks:
      - name: produce
        taskSpec:
          results:
            - {{name: word}}
            - {{name: items, type: array}}
            - {{name: info, type: object, properties: {{k: {{}}}}}}
          steps:
            - name: write
              image: bash
              script: |
                printf w > $(results.word.path)
                printf '["i","j"]' > $(results.items.path)
                printf '{{"k":"v"}}' > $(results.info.path)
      - name: fan
        matrix:
          params: [{{name: n, value: ["1", "2", "3"]}}]
        taskSpec:
          params: [{{name: n}}]
          results: [{{name: sq}}]
          steps:
            - {{name: s, image: bash, script: 'printf "$(params.n)" > $(results.sq.path)'}}
      - name: show
        retries: 2
        params:
          - {{name: value, value: {value}}}
        taskSpec:
          params: [{{name: value}}]
          results: [{{name: out}}]
          steps:
            - name: s
              image: bash
              command: [bash, -c, 'printf "%s" "$1" > $(results.out.path)', --]
              args: ["$(params.value)"]
"""

# value of a pipeline task param -> what the task receives
PIPELINE_ROWS: dict[str, str] = {
    "$(params.text)": "hello",
    "$(params['text'])": "hello",
    '$(params["text"])': "hello",
    "$(params.list[2])": "c",
    "$(params.map.url)": "example.org",
    "$(tasks.produce.results.word)": "w",
    "$(tasks.produce.results.items[1])": "j",
    "$(tasks.produce.results.info.k)": "v",
    "$(tasks.fan.matrix.length)": "3",
    "$(tasks.fan.matrix.sq.length)": "3",
    "$(workspaces.data.bound)": "true",
    "$(workspaces.spare.bound)": "false",
    "$(context.pipelineRun.name)": "pvars",
    "$(context.pipelineRun.namespace)": "default",
    "$(context.pipeline.name)": "pvars",
    "$(context.pipelineTask.retries)": "2",
}


@pytest.mark.parametrize("variable", sorted(PIPELINE_ROWS))
def test_pipeline_variable(tekton, variable: str) -> None:  # type: ignore[no-untyped-def]
    run = tekton(PIPELINE_RUN.format(value=json.dumps(variable)))
    assert run.exit_code == 0, run.log
    assert run.results["out"] == PIPELINE_ROWS[variable]


def test_pipeline_run_uid(tekton) -> None:  # type: ignore[no-untyped-def]
    run = tekton(PIPELINE_RUN.format(value="'$(context.pipelineRun.uid)'"))
    assert run.exit_code == 0, run.log
    assert run.results["out"] == run.object["metadata"]["uid"]
    assert re.fullmatch(r"[0-9a-f-]{36}", run.results["out"])


def test_whole_arrays_and_objects_pass_to_task_params(tekton) -> None:  # type: ignore[no-untyped-def]
    run = tekton(
        """
    apiVersion: tekton.dev/v1
    kind: PipelineRun
    metadata: {name: whole}
    spec:
      params:
        - {name: list, value: [a, b]}
        - {name: map, value: {url: example.org, port: "80"}}
      pipelineSpec:
        params:
          - {name: list, type: array}
          - {name: map, type: object, properties: {url: {}, port: {}}}
        results:
          - {name: all, value: "$(tasks.produce.results.items[*])"}
          - {name: seen, value: $(tasks.take.results.seen)}
        tasks:
          - name: produce
            taskSpec:
              results: [{name: items, type: array}]
              steps:
                - name: s
                  image: bash
                  script: printf '["i","j"]' > $(results.items.path)
          - name: take
            params:
              - {name: list, value: "$(params.list[*])"}
              - {name: map, value: "$(params.map[*])"}
              - {name: items, value: "$(tasks.produce.results.items[*])"}
            taskSpec:
              params:
                - {name: list, type: array}
                - {name: map, type: object, properties: {url: {}, port: {}}}
                - {name: items, type: array}
              results: [{name: seen}]
              steps:
                - name: s
                  image: bash
                  command: [bash, -c, 'printf "%s " "$@" > $(results.seen.path)', --]
                  args: ["$(params.list[*])", "$(params.map.port)", "$(params.items[*])"]
    """
    )
    assert run.exit_code == 0, run.log
    assert run.results == {"all": ["i", "j"], "seen": "a b 80 i j "}


def test_status_reason_and_finally_results(tekton) -> None:  # type: ignore[no-untyped-def]
    run = tekton(
        """
    apiVersion: tekton.dev/v1
    kind: PipelineRun
    metadata: {name: fin}
    spec:
      pipelineSpec:
        results: [{name: report, value: $(finally.report.results.line)}]
        tasks:
          - name: ok
            taskSpec: {steps: [{name: s, image: bash, script: "true"}]}
          - name: bad
            onError: continue
            taskSpec: {steps: [{name: s, image: bash, script: "exit 1"}]}
        finally:
          - name: report
            params:
              - {name: all, value: $(tasks.status)}
              - {name: ok, value: $(tasks.ok.status)}
              - {name: bad, value: $(tasks.bad.status)}
              - {name: why, value: $(tasks.bad.reason)}
            taskSpec:
              params: [{name: all}, {name: ok}, {name: bad}, {name: why}]
              results: [{name: line}]
              steps:
                - name: s
                  image: bash
                  command: [bash, -c, 'printf "%s %s %s %s" "$@" > $(results.line.path)', --]
                  args: ["$(params.all)", "$(params.ok)", "$(params.bad)", "$(params.why)"]
    """
    )
    assert run.exit_code == 0, run.log
    # A failure ignored by onError: continue does not make the run fail or "Completed".
    assert run.results["report"] == "Succeeded Succeeded Failed FailureIgnored"


def test_propagated_results_and_context_in_embedded_steps(tekton) -> None:  # type: ignore[no-untyped-def]
    run = tekton(
        """
    apiVersion: tekton.dev/v1
    kind: PipelineRun
    metadata: {name: prop}
    spec:
      params: [{name: greeting, value: hi}]
      pipelineSpec:
        results: [{name: out, value: $(tasks.use.results.out)}]
        tasks:
          - name: make
            taskSpec:
              results: [{name: id}]
              steps: [{name: s, image: bash, script: "printf 42 > $(results.id.path)"}]
          - name: use
            taskSpec:
              results: [{name: out}]
              steps:
                - name: s
                  image: bash
                  script: |
                    printf "%s %s %s" "$(params.greeting)" "$(tasks.make.results.id)" \\
                      "$(context.pipelineRun.name)" > $(results.out.path)
    """
    )
    assert run.exit_code == 0, run.log
    assert run.results["out"] == "hi 42 prop"


def test_workspace_sub_path_with_run_context(tekton, tmp_path) -> None:  # type: ignore[no-untyped-def]
    run = tekton(
        """
    apiVersion: tekton.dev/v1
    kind: PipelineRun
    metadata: {name: ctx}
    spec:
      workspaces: [{name: data, emptyDir: {}, subPath: $(context.pipelineRun.name)}]
      pipelineSpec:
        workspaces: [{name: data}]
        tasks:
          - name: write
            workspaces: [{name: out, workspace: data}]
            taskSpec:
              workspaces: [{name: out}]
              steps: [{name: s, image: bash, script: "echo x > $(workspaces.out.path)/f"}]
    """
    )
    assert run.exit_code == 0, run.log
    assert (tmp_path / "runs" / "ctx" / "workspaces" / "data" / "ctx" / "f").is_file()


def test_step_artifacts_land_in_the_step_status(tekton) -> None:  # type: ignore[no-untyped-def]
    run = tekton(
        """
    apiVersion: tekton.dev/v1
    kind: TaskRun
    metadata: {name: artifacts}
    spec:
      taskSpec:
        steps:
          - name: build
            image: bash
            script: |
              printf '{"outputs":[{"name":"image","values":[{"uri":"oci://r/i",
              "digest":{"sha256":"ab"}}]}]}' > $(step.artifacts.path)
    """
    )
    assert run.exit_code == 0, run.log
    step = run.object["status"]["steps"][0]
    assert step["outputs"] == [
        {"name": "image", "values": [{"uri": "oci://r/i", "digest": {"sha256": "ab"}}]}
    ]
