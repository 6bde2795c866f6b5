"""check-mirror against a real mirroring deployment: router and servers on 127.0.0.1.

The deployment is made by deploy/local_routes.py as deploy-model makes it (one
``tekton-mlops serve`` per version, ``tekton-mlops route serve`` in front); clients send
requests to the router only, the router copies them to the mirrored version and records
both answers. Models are trained by train-model: the same model twice agrees on every
request; two logistic regressions of different strength answer with different
probabilities, so they never agree.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tekton_mlops.deploy import local_routes
from tests.integration.routing import train
from tests.integration.test_local_strategies import answered_by

pytestmark = pytest.mark.integration

REQUESTS = 40


@pytest.fixture(scope="module")
def models(datasets, tmp_path_factory) -> dict[str, Path]:  # type: ignore[no-untyped-def]
    root = tmp_path_factory.mktemp("mirror-models")
    return {
        "lr": train(datasets["iris"], root / "lr", "logistic-regression", '{"max_iter": 500}'),
        "weak": train(
            datasets["iris"], root / "weak", "logistic-regression", '{"max_iter": 500, "C": 0.05}'
        ),
    }


@pytest.fixture
def state(tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / "deployments"
    yield folder
    local_routes.stop(folder, "iris")


@pytest.fixture(scope="module")
def mirroring(models, tmp_path_factory) -> Iterator[Path]:  # type: ignore[no-untyped-def]
    """One deployment, v1 live and v2 mirrored, for the tests that must leave it alone."""
    state = tmp_path_factory.mktemp("mirroring") / "deployments"
    try:
        mirrored(state, models["lr"], models["lr"])
        yield state
    finally:
        local_routes.stop(state, "iris")


def mirrored(state: Path, live: Path, candidate: Path, version: str = "v2") -> str:
    """v1 live, ``version`` mirrored at 100%, REQUESTS sent through the router: its URL."""
    if not local_routes.status(state, "iris").versions:
        local_routes.deploy_version(state, "iris", "v1", live)
    local_routes.deploy_version(state, "iris", version, candidate)
    url = local_routes.mirror(state, "iris", version, 100).url
    assert answered_by(url, REQUESTS) == {"v1": REQUESTS}  # clients only get live answers
    return url


def check(run_step, state: Path, out: Path, *args: str):  # type: ignore[no-untyped-def]
    """check-mirror on the deployment, waiting for every copy's record."""
    return run_step(
        "check-mirror", f"--state-dir={state}", "--name=iris", f"--output={out}",
        f"--min-requests={REQUESTS}", "--wait-seconds=20", *args,
    )  # fmt: skip


def lineage(out: Path) -> dict:  # type: ignore[type-arg]
    return json.loads((out / ".mlops" / "lineage" / "check-mirror.intoto.json").read_text())  # type: ignore[no-any-return]


def test_the_same_model_agrees_and_passes(run_step, models, state, tmp_path) -> None:  # type: ignore[no-untyped-def]
    mirrored(state, models["lr"], models["lr"])
    out = tmp_path / "report"
    done = check(run_step, state, out, "--max-latency-ratio=50")
    assert done.exit_code == 0, done.output
    assert done.results["passed"] == "true"
    assert done.results["agreement"] == "1"
    assert done.results["requests"] == str(REQUESTS)
    assert done.results["mirror-error-rate"] == "0"
    summary = json.loads(done.results["summary"])
    assert (summary["version"], summary["requests"], summary["agreement"]) == ("v2", REQUESTS, 1)
    report = json.loads((out / "mirror-report.json").read_text())
    assert report["summary"]["live_versions"] == ["v1"]
    assert [c["metric"] for c in report["checks"]] == [
        "agreement", "latency_ratio_p50", "mirror_error_rate",
    ]  # fmt: skip
    assert all(c["passed"] for c in report["checks"])
    # The lineage names the records by the digest of the bytes judged: the whole file, as
    # no request came after the last record.
    records = state / "iris" / "router" / "table.mirror.jsonl"
    statement = lineage(out)
    assert statement["predicate"]["buildDefinition"]["resolvedDependencies"][0]["digest"] == {
        "sha256": hashlib.sha256(records.read_bytes()).hexdigest()
    }
    subjects = {s["name"]: s["digest"]["sha256"] for s in statement["subject"]}
    assert (
        subjects["mirror-report.json"]
        == hashlib.sha256((out / "mirror-report.json").read_bytes()).hexdigest()
    )
    assert "**passed**" in (out / "mirror-report.md").read_text()


def test_a_model_that_answers_differently_fails_on_agreement(  # type: ignore[no-untyped-def]
    run_step, models, state, tmp_path
) -> None:
    mirrored(state, models["lr"], models["weak"])
    reported = check(run_step, state, tmp_path / "report")
    assert reported.exit_code == 0, reported.output
    assert reported.results["passed"] == "false"
    assert reported.results["agreement"] == "0"
    assert reported.results["mirror-error-rate"] == "0"  # it answered, differently
    failing = check(run_step, state, tmp_path / "failing", "--fail-on-mismatch")
    assert failing.exit_code == 1
    assert "error: mirrored version v2 failed: agreement 0 fails >=0.99" in failing.output
    assert (tmp_path / "failing" / "mirror-report.json").is_file()  # written before it fails


def test_too_few_records_fail_with_the_count_and_write_nothing(  # type: ignore[no-untyped-def]
    run_step, models, state, tmp_path
) -> None:
    mirrored(state, models["lr"], models["lr"])
    out = tmp_path / "report"
    done = run_step(
        "check-mirror", f"--state-dir={state}", "--name=iris", f"--output={out}",
        f"--min-requests={REQUESTS + 10}", "--wait-seconds=0.5",
    )  # fmt: skip
    assert done.exit_code == 1
    assert f"only {REQUESTS} mirrored request(s) of v2 recorded in" in done.output
    assert f"min-requests {REQUESTS + 10}, after waiting 0.5 s" in done.output
    assert not out.exists()
    assert done.results == {}


def test_records_of_an_earlier_candidate_of_the_same_name_do_not_count(  # type: ignore[no-untyped-def]
    run_step, models, state, tmp_path
) -> None:
    mirrored(state, models["lr"], models["weak"])
    local_routes.rollback_mirror(state, "iris")  # v2 goes; its records stay in the file
    mirrored(state, models["lr"], models["lr"])  # v2 again, now the same model as v1
    done = check(run_step, state, tmp_path / "report")
    assert done.exit_code == 0, done.output
    assert (done.results["requests"], done.results["agreement"]) == (str(REQUESTS), "1")


def test_records_given_as_a_folder_name_their_one_version(  # type: ignore[no-untyped-def]
    run_step, models, state, tmp_path
) -> None:
    mirrored(state, models["lr"], models["weak"], version="shadow")
    done = run_step(
        "check-mirror", f"--records={state / 'iris' / 'router'}", "--name=iris",
        f"--output={tmp_path / 'report'}", f"--min-requests={REQUESTS}", "--wait-seconds=20",
        "--min-agreement=0",
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    assert json.loads(done.results["summary"])["version"] == "shadow"
    assert done.results["passed"] == "true"  # no agreement asked for


def test_no_mirror_in_the_deployment_is_named(run_step, models, state, tmp_path) -> None:  # type: ignore[no-untyped-def]
    local_routes.deploy_version(state, "iris", "v1", models["lr"])
    done = run_step("check-mirror", f"--state-dir={state}", "--name=iris",
                    f"--output={tmp_path / 'report'}")  # fmt: skip
    assert done.exit_code == 1
    assert "iris: no version is mirrored now (v1=100)" in done.output
    assert not (tmp_path / "report").exists()


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--min-agreement=2"], "--min-agreement"),
        (["--max-error-rate=-0.1"], "--max-error-rate"),
        (["--version=Not_A_Label"], "--version"),
        (["--min-requests=0"], "--min-requests"),
        (["--records={records}"], "--records"),  # beside state-dir: one of the two
    ],
)
def test_bad_params_exit_2_naming_them_and_write_nothing(  # type: ignore[no-untyped-def]
    run_step, mirroring, tmp_path, args, named
) -> None:
    state = mirroring
    records = state / "iris" / "router" / "table.mirror.jsonl"
    out = tmp_path / "report"
    done = run_step("check-mirror", f"--state-dir={state}", "--name=iris", f"--output={out}",
                    *(a.format(records=records) for a in args))  # fmt: skip
    assert done.exit_code == 2, done.output
    assert "check-mirror: 1 invalid parameter(s)" in done.output
    assert named in done.output
    assert not out.exists()
    assert done.results == {}
    # The deployment is as it was: v1 live, v2 still mirrored.
    routing = local_routes.status(state, "iris")
    assert (routing.weights, routing.mirror and routing.mirror.version) == (
        {"v1": 100, "v2": 0},
        "v2",
    )
