"""Lineage records are in-toto v1 statements with an SLSA v1 provenance predicate."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tekton_mlops.lineage import Artifact, descriptor_digest, statement


def test_statement_shape(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEKTON_MLOPS_SOURCE_URL", "https://git.example/ml/repo")
    monkeypatch.setenv("TEKTON_MLOPS_SOURCE_REVISION", "7f2f46e" + "0" * 33)
    monkeypatch.setenv("TEKTON_MLOPS_INVOCATION_ID", "train-run-1")
    start = datetime(2026, 1, 1, tzinfo=UTC)
    record = statement(
        "train-model",
        {"seed": 1},
        inputs=[Artifact("dataset", "s3://b/iris/", "1" * 64)],
        outputs=[Artifact("model", "file:///m/model.onnx", "2" * 64)],
        started=start,
        finished=start + timedelta(seconds=3),
    )
    assert record["_type"] == "https://in-toto.io/Statement/v1"
    assert record["predicateType"] == "https://slsa.dev/provenance/v1"
    assert record["subject"] == [{"name": "model", "digest": {"sha256": "2" * 64}}]
    build = record["predicate"]["buildDefinition"]
    assert build["externalParameters"]["params"] == {"seed": 1}
    deps = build["resolvedDependencies"]
    assert deps[0] == {"name": "dataset", "uri": "s3://b/iris/", "digest": {"sha256": "1" * 64}}
    assert deps[1]["digest"] == {"gitCommit": "7f2f46e" + "0" * 33}
    assert deps[1]["uri"] == "git+https://git.example/ml/repo"
    run = record["predicate"]["runDetails"]["metadata"]
    assert run["invocationId"] == "train-run-1"
    assert datetime.fromisoformat(run["finishedOn"]) - datetime.fromisoformat(
        run["startedOn"]
    ) == timedelta(seconds=3)


def test_what_has_no_digest_is_named_by_uri_and_never_a_subject() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    record = statement(
        "check-slo",
        {},
        inputs=[
            Artifact("endpoint", "http://iris.models", ""),
            Artifact("repository", "git+https://git.example/r", "a" * 40, "gitCommit"),
        ],
        outputs=[
            Artifact("deployment", "http://iris.models", ""),
            Artifact("slo-report.json", "file:///r/slo-report.json", "3" * 64),
        ],
        started=start,
        finished=start,
    )
    deps = record["predicate"]["buildDefinition"]["resolvedDependencies"]
    assert deps[:2] == [
        {"name": "endpoint", "uri": "http://iris.models"},
        {
            "name": "repository",
            "uri": "git+https://git.example/r",
            "digest": {"gitCommit": "a" * 40},
        },
    ]
    assert record["subject"] == [{"name": "slo-report.json", "digest": {"sha256": "3" * 64}}]


@pytest.mark.parametrize(
    ("digests", "expected"),
    [
        ({"sha512": "bb", "sha256": "aa"}, "sha256:aa"),  # sha256 wins whatever the order
        ({"gitCommit": "c0", "md5": "dd"}, "gitCommit:c0"),
        ({"sha512": "bb", "md5": "dd"}, "md5:dd"),  # else the first by name, not by order
        ({}, ""),
        (None, ""),
    ],
)
def test_every_reader_joins_records_by_one_digest_choice(
    digests: dict[str, str] | None, expected: str
) -> None:
    # The lineage graph, the policy inputs and the dashboard all call this one function,
    # so `lineage show` and the dashboard's lineage page join records alike.
    assert descriptor_digest({"name": "model", "digest": digests}) == expected
