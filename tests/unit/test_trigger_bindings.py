"""Trigger bindings and templates substitute through the one engine in tekton/variables."""

from __future__ import annotations

import pytest

from tekton_mlops.triggers.event import Event
from tekton_mlops.triggers.resources import TriggerError, _substitute_params, substitute_event

EVENT = Event(
    body={"ref": "refs/heads/main", "head_commit": {"id": "abc"}, "a.b": "dotted", "n": [1, 2]},
    raw=b"",
    headers={"X-Github-Event": ["push"], "X-Hub-Signature-256": ["sha256=x"]},
    extensions={"short_sha": "abc1234"},
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("$(body.head_commit.id)", "abc"),
        ("$(body['a.b'])", "dotted"),
        ("$(body.n[1])", "2"),
        ("$(body.n)", "[1,2]"),
        ("$(body.head_commit)", '{"id":"abc"}'),
        ("$(header.X-Github-Event)", "push"),
        ("$(header.x-github-event)", "push"),  # header names are matched canonically
        ("$(extensions.short_sha)", "abc1234"),
        ("rev-$(body.head_commit.id)-$(extensions.short_sha)", "rev-abc-abc1234"),
        ("$(params.revision)", "$(params.revision)"),  # the run's own variable stays
    ],
)
def test_binding_values(text: str, expected: str) -> None:
    assert substitute_event(text, EVENT) == expected


def test_a_missing_body_field_is_an_error_naming_it() -> None:
    with pytest.raises(TriggerError, match=r"\$\(body\.after\): no 'after' in the event"):
        substitute_event("$(body.after)", EVENT)


def test_template_params_and_the_runs_own_variables() -> None:
    template = {
        "metadata": {"generateName": "train-$(tt.params.short-sha)-"},
        "spec": {"params": [{"name": "revision", "value": "$(tt.params.revision)"}],
                 "other": "$(params.revision) $(context.pipelineRun.name)"},
    }  # fmt: skip
    rendered = _substitute_params(template, {"revision": "abc", "short-sha": "abc1234"})
    assert rendered["metadata"]["generateName"] == "train-abc1234-"
    assert rendered["spec"]["params"][0]["value"] == "abc"
    assert rendered["spec"]["other"] == "$(params.revision) $(context.pipelineRun.name)"
    with pytest.raises(TriggerError, match=r"\$\(tt\.params\.nope\) is not a template param"):
        _substitute_params({"x": "$(tt.params.nope)"}, {})
