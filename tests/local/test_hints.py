"""What the executor tells a user who made a mistake: Tekton's refusal, then a hint."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.integration

PIPELINE = """
apiVersion: tekton.dev/v1
kind: Pipeline
metadata: {name: greet}
spec:
  params: [{name: dataset-uri, default: none}]
  tasks:
    - name: say
      params: [{name: uri, value: $(params.dataset-uri)}]
      taskSpec:
        params: [{name: uri}]
        steps: [{name: s, image: bash, args: ["$(params.uri)"], command: [echo]}]
---
apiVersion: tekton.dev/v1
kind: PipelineRun
metadata: {name: greet-run}
spec:
  pipelineRef: {name: greet}
"""


def test_an_undeclared_param_runs_with_a_warning_naming_the_closest(tekton) -> None:  # type: ignore[no-untyped-def]
    run = tekton(PIPELINE, "--param", "datset-uri=s3://b/k")
    assert run.exit_code == 0, run.log
    assert (
        "warning: --param datset-uri: the Pipeline declares no such param "
        "(did you mean dataset-uri?)" in run.log
    )


def test_a_declared_param_gets_no_warning(tekton) -> None:  # type: ignore[no-untyped-def]
    run = tekton(PIPELINE, "--param", "dataset-uri=s3://b/k")
    assert run.exit_code == 0, run.log
    assert "warning" not in run.log


def test_a_missing_reference_names_the_closest_and_the_catalog_option(tekton) -> None:  # type: ignore[no-untyped-def]
    run = tekton(PIPELINE.replace("pipelineRef: {name: greet}", "pipelineRef: {name: gret}"))
    assert run.exit_code == 1
    assert run.condition["reason"] == "CouldntGetPipeline"
    assert run.condition["message"].startswith('pipelines.tekton.dev "gret" not found')
    assert 'did you mean "greet"?' in run.condition["message"]
    assert "--catalog DIR" in run.condition["message"]
    # Nothing started, so there are no logs to point at.
    assert "logs:" not in run.log


def test_a_standalone_pipeline_is_admitted_before_anything_runs(tekton, tmp_path) -> None:  # type: ignore[no-untyped-def]
    run = tekton(PIPELINE.replace("    - name: say\n", "    - name: say\n      runAfter: [nope]\n"))
    assert run.exit_code == 2
    assert (
        'error: Pipeline greet: admission webhook "validation.webhook.pipeline.tekton.dev" '
        "denied the request: validation failed: invalid value: couldn't add link between say "
        "and nope: task say depends on nope but nope wasn't present in Pipeline: spec.tasks"
    ) in run.log
    assert not (tmp_path / "runs").exists()
