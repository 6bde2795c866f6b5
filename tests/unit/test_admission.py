"""Admission, rule by rule: a document Tekton accepts, and one it refuses with its message.

The messages are those of Tekton's validating webhook (knative FieldErrors: message, then
the field path) and of the API server's strict decoding; see tekton_mlops/tekton/.
"""

from __future__ import annotations

import textwrap
from typing import Any

import pytest
import yaml

from tekton_mlops.tekton.admission import admit, rejection
from tekton_mlops.tekton.flags import FeatureFlags
from tekton_mlops.tekton.problems import WEBHOOK

STEP = "{name: s, image: bash, script: 'true'}"


def doc(text: str) -> dict[str, Any]:
    return yaml.safe_load(textwrap.dedent(text))  # type: ignore[no-any-return]


def task(spec: str) -> dict[str, Any]:
    return doc("apiVersion: tekton.dev/v1\nkind: Task\nmetadata: {name: t}\nspec:\n" + spec)


def pipeline(spec: str) -> dict[str, Any]:
    return doc("apiVersion: tekton.dev/v1\nkind: Pipeline\nmetadata: {name: p}\nspec:\n" + spec)


def pipeline_run(spec: str) -> dict[str, Any]:
    return doc("apiVersion: tekton.dev/v1\nkind: PipelineRun\nmetadata: {name: r}\nspec:\n" + spec)


def task_run(spec: str) -> dict[str, Any]:
    return doc("apiVersion: tekton.dev/v1\nkind: TaskRun\nmetadata: {name: r}\nspec:\n" + spec)


# rule -> (accepted, refused, the line Tekton prints for the refused one)
CASES: dict[str, tuple[dict[str, Any], dict[str, Any], str]] = {
    "decode: unknown field": (
        pipeline(f"  tasks: [{{name: a, runAfter: [], taskSpec: {{steps: [{STEP}]}}}}]"),
        pipeline(f"  tasks: [{{name: a, runAftr: [], taskSpec: {{steps: [{STEP}]}}}}]"),
        'strict decoding error: unknown field "spec.tasks[0].runAftr"',
    ),
    "decode: wrong type": (
        task(f"  steps: [{STEP}]"),
        task("  steps: [{name: s, image: bash, script: 1}]"),
        'spec.steps[0].script: Invalid value: "integer": spec.steps[0].script in body must be '
        'of type string: "integer"',
    ),
    "no steps": (
        task(f"  steps: [{STEP}]"),
        task("  params: [{name: x}]"),
        "missing field(s): spec.steps",
    ),
    "step image": (
        task("  stepTemplate: {image: bash}\n  steps: [{name: s, script: 'true'}]"),
        task("  steps: [{name: s, script: 'true'}]"),
        "missing field(s): spec.steps[0].Image",
    ),
    "script and command": (
        task("  steps: [{name: s, image: bash, command: [echo], args: [hi]}]"),
        task("  steps: [{name: s, image: bash, command: [echo], script: echo}]"),
        "script cannot be used with command: spec.steps[0].script",
    ),
    "step name": (
        task("  steps: [{name: fetch-data, image: bash, script: 'true'}]"),
        task("  steps: [{name: Fetch_Data, image: bash, script: 'true'}]"),
        'invalid value "Fetch_Data": spec.steps[0].name',
    ),
    "duplicate step": (
        task(f"  steps: [{STEP}, {{name: s2, image: bash, script: 'true'}}]"),
        task(f"  steps: [{STEP}, {STEP}]"),
        "invalid value: s: spec.steps[1].name",
    ),
    "step onError": (
        task("  steps: [{name: s, image: bash, script: 'true', onError: continue}]"),
        task("  steps: [{name: s, image: bash, script: 'true', onError: ignore}]"),
        'invalid value: "ignore": spec.steps[0].onError',
    ),
    "volume under /tekton": (
        task(
            "  volumes: [{name: v, emptyDir: {}}]\n"
            "  steps: [{name: s, image: bash, script: 'true', volumeMounts: "
            "[{name: v, mountPath: /cache}]}]"
        ),
        task(
            "  volumes: [{name: v, emptyDir: {}}]\n"
            "  steps: [{name: s, image: bash, script: 'true', volumeMounts: "
            "[{name: v, mountPath: /tekton/cache}]}]"
        ),
        'volumeMount cannot be mounted under /tekton/ (volumeMount "v" mounted at '
        '"/tekton/cache"): spec.steps[0].volumeMounts[0].mountPath',
    ),
    "undeclared param in a step": (
        task("  params: [{name: x}]\n  steps: [{name: s, image: bash, args: ['$(params.x)']}]"),
        task("  params: [{name: x}]\n  steps: [{name: s, image: bash, args: ['$(params.y)']}]"),
        'non-existent variable in "$(params.y)": spec.steps[0].args[0]',
    ),
    "array param not isolated": (
        task(
            "  params: [{name: a, type: array}]\n"
            "  steps: [{name: s, image: bash, command: [echo], args: ['$(params.a[*])']}]"
        ),
        task(
            "  params: [{name: a, type: array}]\n"
            "  steps: [{name: s, image: bash, command: [echo], args: ['-x $(params.a[*])']}]"
        ),
        'variable is not properly isolated in "-x $(params.a[*])": spec.steps[0].args[0]',
    ),
    "array param in a string field": (
        task(
            "  params: [{name: a, type: array}]\n"
            "  steps: [{name: s, image: bash, script: 'echo $(params.a[0])'}]"
        ),
        task(
            "  params: [{name: a, type: array}]\n"
            "  steps: [{name: s, image: bash, script: 'echo $(params.a[*])'}]"
        ),
        'variable type invalid in "echo $(params.a[*])": spec.steps[0].script',
    ),
    "object key": (
        task(
            "  params: [{name: o, type: object, properties: {url: {}}}]\n"
            "  steps: [{name: s, image: bash, args: ['$(params.o.url)']}]"
        ),
        task(
            "  params: [{name: o, type: object, properties: {url: {}}}]\n"
            "  steps: [{name: s, image: bash, args: ['$(params.o.uri)']}]"
        ),
        'non-existent variable in "$(params.o.uri)": spec.steps[0].args[0]',
    ),
    "task context": (
        task("  steps: [{name: s, image: bash, args: ['$(context.taskRun.uid)']}]"),
        task("  steps: [{name: s, image: bash, args: ['$(context.taskRun.id)']}]"),
        'non-existent variable in "$(context.taskRun.id)": spec.steps[0].args[0]',
    ),
    "result in a script": (
        task(
            "  results: [{name: out}]\n"
            "  steps: [{name: s, image: bash, script: 'echo > $(results.out.path)'}]"
        ),
        task(
            "  results: [{name: out}]\n"
            "  steps: [{name: s, image: bash, script: 'echo > $(results.outt.path)'}]"
        ),
        'non-existent variable in "echo > $(results.outt.path)": spec.steps[0].script',
    ),
    "result name": (
        task(f"  results: [{{name: model_digest}}]\n  steps: [{STEP}]"),
        task(f"  results: [{{name: -digest}}]\n  steps: [{STEP}]"),
        'invalid key name "-digest": spec.results[0].name',
    ),
    "param default type": (
        task(f"  params: [{{name: a, type: array, default: [x]}}]\n  steps: [{STEP}]"),
        task(f"  params: [{{name: a, type: array, default: x}}]\n  steps: [{STEP}]"),
        '"array" type does not match default value\'s type: "string": '
        "spec.params.a.default.type, spec.params.a.type",
    ),
    "duplicate param": (
        task(f"  params: [{{name: a}}, {{name: b}}]\n  steps: [{STEP}]"),
        task(f"  params: [{{name: a}}, {{name: a}}]\n  steps: [{STEP}]"),
        "parameter appears more than once: spec.params[a]",
    ),
    "duplicate workspace": (
        task(f"  workspaces: [{{name: a}}, {{name: b}}]\n  steps: [{STEP}]"),
        task(f"  workspaces: [{{name: a}}, {{name: a}}]\n  steps: [{STEP}]"),
        'workspace name "a" must be unique: spec.workspaces[1].name',
    ),
    "pipeline task name": (
        pipeline(f"  tasks: [{{name: train-model, taskSpec: {{steps: [{STEP}]}}}}]"),
        pipeline(f"  tasks: [{{name: Train, taskSpec: {{steps: [{STEP}]}}}}]"),
        'invalid value "Train": spec.tasks[0].name',
    ),
    "duplicate pipeline task": (
        pipeline(
            f"  tasks: [{{name: a, taskSpec: {{steps: [{STEP}]}}}}]\n"
            f"  finally: [{{name: b, taskSpec: {{steps: [{STEP}]}}}}]"
        ),
        pipeline(
            f"  tasks: [{{name: a, taskSpec: {{steps: [{STEP}]}}}}]\n"
            f"  finally: [{{name: a, taskSpec: {{steps: [{STEP}]}}}}]"
        ),
        "expected exactly one, got both: spec.finally[0].name",
    ),
    "taskRef and taskSpec": (
        pipeline("  tasks: [{name: a, taskRef: {name: t}}]"),
        pipeline(f"  tasks: [{{name: a, taskRef: {{name: t}}, taskSpec: {{steps: [{STEP}]}}}}]"),
        "expected exactly one, got multiple: spec.tasks[0].taskRef, spec.tasks[0].taskSpec",
    ),
    "runAfter an unknown task": (
        pipeline(
            f"  tasks: [{{name: a, taskSpec: {{steps: [{STEP}]}}}}, "
            f"{{name: b, runAfter: [a], taskSpec: {{steps: [{STEP}]}}}}]"
        ),
        pipeline(
            f"  tasks: [{{name: a, taskSpec: {{steps: [{STEP}]}}}}, "
            f"{{name: b, runAfter: [c], taskSpec: {{steps: [{STEP}]}}}}]"
        ),
        "invalid value: couldn't add link between b and c: task b depends on c but c wasn't "
        "present in Pipeline: spec.tasks",
    ),
    "cycle": (
        pipeline(
            f"  tasks: [{{name: foo, taskSpec: {{steps: [{STEP}]}}}}, "
            f"{{name: bar, runAfter: [foo], taskSpec: {{steps: [{STEP}]}}}}]"
        ),
        pipeline(
            f"  tasks: [{{name: foo, runAfter: [bar], taskSpec: {{steps: [{STEP}]}}}}, "
            f"{{name: bar, runAfter: [foo], taskSpec: {{steps: [{STEP}]}}}}]"
        ),
        'invalid value: cycle detected; task "bar" depends on "foo": spec.tasks',
    ),
    "status outside finally": (
        pipeline(
            f"  tasks: [{{name: a, taskSpec: {{steps: [{STEP}]}}}}]\n"
            "  finally: [{name: f, params: [{name: s, value: $(tasks.a.status)}], "
            f"taskSpec: {{params: [{{name: s}}], steps: [{STEP}]}}}}]"
        ),
        pipeline(
            f"  tasks: [{{name: a, taskSpec: {{steps: [{STEP}]}}}}, "
            "{name: b, params: [{name: s, value: $(tasks.status)}], "
            f"taskSpec: {{params: [{{name: s}}], steps: [{STEP}]}}}}]"
        ),
        "invalid value: pipeline tasks can not refer to execution status of any other pipeline "
        "task or aggregate status of tasks: spec.tasks[1].params[s].value",
    ),
    "finally runAfter": (
        pipeline(
            f"  tasks: [{{name: a, taskSpec: {{steps: [{STEP}]}}}}]\n"
            f"  finally: [{{name: f, taskSpec: {{steps: [{STEP}]}}}}]"
        ),
        pipeline(
            f"  tasks: [{{name: a, taskSpec: {{steps: [{STEP}]}}}}]\n"
            f"  finally: [{{name: f, runAfter: [a], taskSpec: {{steps: [{STEP}]}}}}]"
        ),
        "invalid value: no runAfter allowed under spec.finally, final task f has runAfter "
        "specified: spec.finally[0]",
    ),
    "undeclared pipeline param": (
        pipeline(
            "  params: [{name: x}]\n"
            "  tasks: [{name: a, params: [{name: x, value: $(params.x)}], taskRef: {name: t}}]"
        ),
        pipeline(
            "  params: [{name: x}]\n"
            "  tasks: [{name: a, params: [{name: x, value: $(params.y)}], taskRef: {name: t}}]"
        ),
        'non-existent variable in "$(params.y)": spec.tasks[0].params[x].value',
    ),
    "undeclared pipeline workspace": (
        pipeline(
            "  workspaces: [{name: shared}]\n"
            "  tasks: [{name: a, workspaces: [{name: w, workspace: shared}], taskRef: {name: t}}]"
        ),
        pipeline(
            "  workspaces: [{name: shared}]\n"
            "  tasks: [{name: a, workspaces: [{name: w, workspace: other}], taskRef: {name: t}}]"
        ),
        'invalid value: pipeline task "a" expects workspace with name "other" but none exists '
        "in pipeline spec: spec.tasks[0].workspaces[0]",
    ),
    "pipeline result": (
        pipeline(
            "  results: [{name: r, value: $(tasks.a.results.out)}]\n"
            "  tasks: [{name: a, taskRef: {name: t}}]"
        ),
        pipeline(
            "  results: [{name: r, value: $(tasks.b.results.out)}]\n"
            "  tasks: [{name: a, taskRef: {name: t}}]"
        ),
        "invalid value: referencing a nonexistent task: spec.results[0].value",
    ),
    "pipeline task onError": (
        pipeline("  tasks: [{name: a, onError: continue, taskRef: {name: t}}]"),
        pipeline("  tasks: [{name: a, onError: continue, retries: 2, taskRef: {name: t}}]"),
        'PipelineTask OnError cannot be set to "continue" when Retries is greater than 0: '
        "spec.tasks[0]",
    ),
    "run ref and spec": (
        pipeline_run("  pipelineRef: {name: p}"),
        pipeline_run(
            "  pipelineRef: {name: p}\n"
            f"  pipelineSpec: {{tasks: [{{name: a, taskSpec: {{steps: [{STEP}]}}}}]}}"
        ),
        "expected exactly one, got both: spec.pipelineRef, spec.pipelineSpec",
    ),
    "run param with a result": (
        pipeline_run("  pipelineRef: {name: p}\n  params: [{name: x, value: '1'}]"),
        pipeline_run(
            "  pipelineRef: {name: p}\n  params: [{name: x, value: $(tasks.a.results.b)}]"
        ),
        "invalid value: cannot use result expressions in [tasks.a.results.b] as PipelineRun "
        "parameter values: spec.params[x].value",
    ),
    "run timeouts": (
        pipeline_run("  pipelineRef: {name: p}\n  timeouts: {pipeline: 1h, tasks: 30m}"),
        pipeline_run("  pipelineRef: {name: p}\n  timeouts: {pipeline: 1h, tasks: 2h}"),
        "invalid value: 2h should be <= pipeline duration: spec.timeouts.tasks",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_accepted_and_refused_as_tekton(case: str) -> None:
    accepted, refused, line = CASES[case]
    assert admit(accepted) == [], rejection(admit(accepted))
    problems = admit(refused)
    assert problems, f"{case}: refused document was admitted"
    text = rejection(problems)
    assert line in text.removeprefix(f"{WEBHOOK}: validation failed: ").splitlines(), text


def test_field_names_match_without_regard_to_case_as_go_decodes_them() -> None:
    document = pipeline(f"  Tasks: [{{name: a, runafter: [], TaskSpec: {{steps: [{STEP}]}}}}]")
    assert admit(document) == []
    assert document["spec"]["tasks"][0]["taskSpec"]["steps"][0]["name"] == "s"
    assert "runAfter" in document["spec"]["tasks"][0]


def test_webhook_wording_merges_and_sorts_like_knative() -> None:
    refused = pipeline(
        f"  tasks: [{{name: A, taskSpec: {{steps: [{STEP}]}}}}, "
        f"{{name: B, taskSpec: {{steps: [{STEP}]}}}}]"
    )
    text = rejection(admit(refused))
    assert text.startswith(f"{WEBHOOK}: validation failed: ")
    assert 'invalid value "A": spec.tasks[0].name' in text
    assert text.index('"A"') < text.index('"B"')


@pytest.mark.parametrize(
    ("where", "document"),
    [
        # Tekton propagates pipeline context into embedded specs and accepts it there.
        (
            "context in an embedded taskSpec",
            pipeline_run(
                "  pipelineSpec:\n    tasks:\n      - name: a\n        taskSpec:\n"
                "          steps: [{name: s, image: bash, args: ['$(context.pipelineRun.name)', "
                "'$(context.pipelineRun.namespace)', '$(context.pipelineRun.uid)', "
                "'$(context.pipeline.name)']}]"
            ),
        ),
        (
            "a PipelineRun param used by an embedded step without declaring it",
            pipeline_run(
                "  params: [{name: greeting, value: hi}]\n"
                "  pipelineSpec:\n    tasks:\n      - name: a\n        taskSpec:\n"
                "          steps: [{name: s, image: bash, args: ['$(params.greeting)']}]"
            ),
        ),
        (
            "a TaskRun param used by its embedded step",
            task_run(
                "  params: [{name: greeting, value: hi}]\n"
                "  taskSpec:\n    steps: [{name: s, image: bash, args: ['$(params.greeting)']}]"
            ),
        ),
        (
            "finally results as pipeline results",
            pipeline(
                "  results: [{name: r, value: $(finally.f.results.out)}]\n"
                f"  tasks: [{{name: a, taskSpec: {{steps: [{STEP}]}}}}]\n"
                "  finally: [{name: f, taskRef: {name: t}}]"
            ),
        ),
        (
            "sidecars are not variable-checked",
            task(
                f"  steps: [{STEP}]\n"
                "  sidecars: [{name: c, image: bash, args: ['$(params.anything)']}]"
            ),
        ),
    ],
)
def test_no_false_rejections(where: str, document: dict[str, Any]) -> None:
    assert admit(document) == [], f"{where}: {rejection(admit(document))}"


def test_feature_flags_gate_beta_fields() -> None:
    document = pipeline("  tasks: [{name: a, onError: continue, taskRef: {name: t}}]")
    assert admit(document, FeatureFlags()) == []
    stable = FeatureFlags(enable_api_fields="stable")
    assert (
        'OnError requires "enable-api-fields" feature gate to be "alpha" or "beta" but it is '
        '"stable": spec.tasks[0].onError' in rejection(admit(document, stable))
    )


def test_pipeline_context_is_checked_in_the_last_task_only_as_tekton_does() -> None:
    bad = "$(context.pipelineRun.id)"
    first = pipeline(
        f"  tasks: [{{name: a, params: [{{name: x, value: '{bad}'}}], taskRef: {{name: t}}}}, "
        "{name: b, taskRef: {name: t}}]"
    )
    last = pipeline(
        "  tasks: [{name: a, taskRef: {name: t}}, "
        f"{{name: b, params: [{{name: x, value: '{bad}'}}], taskRef: {{name: t}}}}]"
    )
    assert admit(first) == []
    assert f'non-existent variable in "{bad}": spec.tasks.value' in rejection(admit(last))
