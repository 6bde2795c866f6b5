"""The Mermaid diagrams the generated READMEs carry: every task, every edge, finally apart."""

from __future__ import annotations

import re

import yaml

from tekton_mlops.catalog.diagrams import pipeline_flowchart, trigger_flowchart
from tests.conftest import REPO

SPEC = yaml.safe_load(
    """
tasks:
  - {name: fetch, taskRef: {name: t}}
  - name: train
    runAfter: [fetch]
    params: [{name: d, value: $(tasks.fetch.results.digest)}]
    taskRef: {name: t}
  - {name: lint, runAfter: [fetch], taskRef: {name: t}}
  - name: deploy
    runAfter: [lint]
    when: [{input: $(tasks.train.results.passed), operator: in, values: ["true"]}]
    taskRef: {name: t}
finally:
  - {name: report, taskRef: {name: t}}
"""
)


def edges(chart: str) -> set[tuple[str, str, str]]:
    found = set()
    for line in chart.splitlines():
        solid = re.fullmatch(r"\s+(\S+) --> (\S+)", line)
        dotted = re.fullmatch(r"\s+(\S+) -\. (.+) \.-> (\S+)", line)
        if solid:
            found.add((solid.group(1), "", solid.group(2)))
        elif dotted:
            found.add((dotted.group(1), dotted.group(2), dotted.group(3)))
    return found


def test_pipeline_graph_has_every_task_edge_gate_and_finally() -> None:
    chart = pipeline_flowchart(SPEC)
    assert chart.startswith("flowchart TD\n")
    for name in ("fetch", "train", "lint", "deploy", "report"):
        assert f'n_{name}["{name}' in chart
    assert edges(chart) == {
        ("n_fetch", "digest", "n_train"),  # a result read is drawn once, labelled
        ("n_fetch", "", "n_lint"),
        ("n_lint", "", "n_deploy"),
        ("n_train", "passed", "n_deploy"),
        ("n_deploy", "", "finally"),  # the last tasks lead into finally
    }
    assert "<i>when train.passed in true</i>" in chart
    report = chart.index('n_report["report')
    assert chart.index("subgraph finally") < report < chart.index("    end")


def test_trigger_flow_follows_interceptors_binding_and_template() -> None:
    documents = [
        d
        for d in yaml.safe_load_all(
            (REPO / "catalog/trigger/train-on-push/0.1/train-on-push.yaml").read_text()
        )
        if d
    ]
    chart = trigger_flowchart(documents)
    github = [line.strip() for line in chart.splitlines() if "n_train_on_push_0" in line]
    assert github[0].startswith('n_train_on_push_0_event(["train-on-push: webhook event"])')
    assert any("github<br/><i>events push</i>" in line for line in github)
    order = [line for line in github if "-->" in line or "--" in line]
    assert "i0 --> n_train_on_push_0_i1" in order[1]
    assert "creates" in order[-1]
    assert '("PipelineRun of train-and-deploy")' in chart


def test_a_cronjob_posting_to_the_listener_starts_its_flow() -> None:
    path = REPO / "catalog/trigger/retrain-on-schedule/0.1/retrain-on-schedule.yaml"
    documents = [d for d in yaml.safe_load_all(path.read_text()) if d]
    chart = trigger_flowchart(documents)
    cron = 'n_retrain_on_schedule_0_cron0[/"CronJob retrain-on-schedule<br/><i>0 3 * * *</i>"/]'
    assert cron in chart
    assert "n_retrain_on_schedule_0_cron0 -- posts --> n_retrain_on_schedule_0_event" in chart
    # A CronJob that posts elsewhere is not part of this listener's flow.
    job = next(d for d in documents if d["kind"] == "CronJob")
    job["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["args"][0] = (
        "http://el-another.default.svc.cluster.local:8080"
    )
    assert "CronJob" not in trigger_flowchart(documents)


def test_generated_readmes_carry_the_diagrams() -> None:
    pipeline = (REPO / "catalog/pipeline/train-and-deploy/0.1/README.md").read_text()
    assert "## Graph" in pipeline
    assert "```mermaid\nflowchart TD" in pipeline
    trigger = (REPO / "catalog/trigger/train-on-push/0.1/README.md").read_text()
    assert "```mermaid\nflowchart LR" in trigger
