"""Typed views of Tekton documents, read strictly."""

from __future__ import annotations

import pytest
import yaml

from tekton_mlops.tekton.resources import Rejected, read

PIPELINE = yaml.safe_load(
    """
apiVersion: tekton.dev/v1
kind: Pipeline
metadata: {name: p}
spec:
  params:
    - {name: text}
    - {name: list, default: [a]}
    - {name: obj, properties: {url: {}}}
  workspaces: [{name: shared, optional: true}]
  tasks:
    - name: a
      taskSpec:
        params: [{name: n}]
        results: [{name: out}]
        steps: [{image: bash, script: "true"}, {name: named, image: bash, script: "true"}]
    - name: b
      runAfter: [a]
      retries: 2
      params: [{name: n, value: $(tasks.a.results.out)}]
      taskRef: {name: t}
  finally:
    - {name: f, taskRef: {name: t}}
  results: [{name: r, value: $(tasks.a.results.out)}]
"""
)


def test_views_name_what_code_reads() -> None:
    pipeline = read(PIPELINE).pipeline
    assert [(p.name, p.type, p.has_default) for p in pipeline.params] == [
        ("text", "string", False),
        ("list", "array", True),
        ("obj", "object", False),
    ]
    a, b = pipeline.tasks
    assert a.task_spec is not None
    assert a.task_ref is None
    assert [s.container for s in a.task_spec.steps] == ["step-unnamed-0", "step-named"]
    assert a.task_spec.results == ["out"]
    assert (b.run_after, b.retries, b.task_ref) == (["a"], 2, {"name": "t"})
    assert [(p.name, p.value) for p in b.params] == [("n", "$(tasks.a.results.out)")]
    assert [t.in_finally for t in pipeline.finally_tasks] == [True]
    assert pipeline.workspaces[0].optional
    assert pipeline.workspaces[0].mount_path == "/workspace/shared"


def test_read_refuses_what_the_api_server_refuses() -> None:
    broken = {**PIPELINE, "spec": {**PIPELINE["spec"], "taks": []}}
    with pytest.raises(Rejected, match='unknown field "spec.taks"'):
        read(broken)
    with pytest.raises(TypeError, match="a Pipeline is not a Task"):
        _ = read(PIPELINE).task


def test_runs_expose_their_reference_or_spec() -> None:
    run = read(
        {
            "apiVersion": "tekton.dev/v1",
            "kind": "PipelineRun",
            "metadata": {"name": "r"},
            "spec": {"pipelineRef": {"name": "p"}, "params": [{"name": "x", "value": "1"}]},
        }
    ).run
    assert run.reference == {"name": "p"}
    assert run.pipeline_spec is None
    assert [(p.name, p.value) for p in run.params] == [("x", "1")]
