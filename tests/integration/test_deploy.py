"""deploy-model (local and kserve) and check-slo, end to end.

The kserve target runs against tests/kube_api_double.py, a TEST DOUBLE of the
Kubernetes API server (none can run here); every InferenceService it receives is
validated against KServe's own CRD schema (tests/schemas/kserve).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import KeyPair, answers_200
from tests.kube_api_double import KubeApiDouble, crd_violations

pytestmark = pytest.mark.integration


def train_and_sign(data: Path, keys: KeyPair, model: Path, estimator: str, hyper: str) -> str:
    """Train and sign a model as the Pipeline does; return sign-artifact's root-digest."""
    from click.testing import CliRunner

    from tekton_mlops.cli import main

    results = model.parent / f"{model.name}-results"
    for args in (
        ["train-model", f"--data={data}", "--target-column=target", f"--output={model}",
         f"--estimator={estimator}", f"--hyperparameters={hyper}"],
        ["sign-artifact", f"--path={model}", f"--private-key={keys.private}"],
    ):  # fmt: skip
        outcome = CliRunner().invoke(main, [*args, f"--results-dir={results}"])
        assert outcome.exit_code == 0, outcome.output
    return (results / "root-digest").read_text()


@pytest.fixture(scope="module")
def signed_iris(datasets, keys, tmp_path_factory) -> Path:  # type: ignore[no-untyped-def]
    model = tmp_path_factory.mktemp("deploy") / "model"
    train_and_sign(datasets["iris"], keys, model, "logistic-regression", '{"max_iter": 500}')
    return model


@pytest.fixture(scope="module")
def signed_root(signed_iris: Path) -> str:
    """sign-artifact's root-digest of signed_iris."""
    return (signed_iris.parent / "model-results" / "root-digest").read_text()


def root_digest_of(model: Path) -> str:
    """The model's root digest computed here, from its bytes: sha256 over the sha256 of each
    file in path order, the runtime's metadata (.mlops) and the signature left out."""
    files = sorted(
        p.relative_to(model).as_posix()
        for p in model.rglob("*")
        if p.is_file() and p.name != "model.sig" and ".mlops" not in p.relative_to(model).parts
    )
    digests = b"".join(hashlib.sha256((model / f).read_bytes()).digest() for f in files)
    return "sha256:" + hashlib.sha256(digests).hexdigest()


def lineage(folder: Path, step: str) -> dict:  # type: ignore[type-arg]
    record = json.loads((folder / ".mlops" / "lineage" / f"{step}.intoto.json").read_text())
    assert record["_type"] == "https://in-toto.io/Statement/v1"
    assert record["predicate"]["buildDefinition"]["buildType"].endswith(f"/{step}")
    return record  # type: ignore[no-any-return]


def deploy_local(run_step, model: Path, keys: KeyPair | None, state: Path, *extra: str):  # type: ignore[no-untyped-def]
    key = [f"--public-key={keys.public}"] if keys else []
    return run_step(
        "deploy-model", f"--model-uri={model.as_uri()}", "--target=local", "--name=iris",
        f"--state-dir={state}", *key, *extra,
    )  # fmt: skip


def answers(url: str) -> bool:
    return answers_200(f"{url}/v2/models/iris/ready")


def check_slo(run_step, url: str, out: Path, slos: str, *extra: str):  # type: ignore[no-untyped-def]
    return run_step(
        "check-slo", f"--url={url}", "--model=iris", "--requests=300", "--concurrency=4",
        f"--slos={slos}", f"--output={out}", *extra,
    )  # fmt: skip


def test_local_deploy_then_slo_pass_and_fail(  # type: ignore[no-untyped-def]
    run_step, signed_iris, signed_root, keys, state, tmp_path
) -> None:
    deployed = deploy_local(run_step, signed_iris, keys, state)
    assert deployed.exit_code == 0, deployed.output
    url = deployed.results["url"]
    assert deployed.results["revision"] == "stable"
    # The digest reported is the one signed, and the one of the model's bytes.
    assert deployed.results["model-digest"] == signed_root == root_digest_of(signed_iris)
    assert answers(url)
    # The record of the deploy: the signed model in, the endpoint serving it out.
    record = lineage(state / "iris" / "stable", "deploy-model")
    digest = {"sha256": signed_root.removeprefix("sha256:")}
    assert record["subject"] == [{"name": "deployment", "digest": digest}]
    deps = record["predicate"]["buildDefinition"]["resolvedDependencies"]
    assert deps == [{"name": "model", "uri": signed_iris.as_uri(), "digest": digest}]
    # The deployed copy is the model that was signed, byte for byte.
    assert root_digest_of(state / "iris" / "stable" / "model") == signed_root

    loose = check_slo(
        run_step, url, tmp_path / "pass", '{"latency_p99_ms": "<=2000", "error_rate": "<=0.01"}'
    )
    assert loose.exit_code == 0, loose.output
    assert loose.results["passed"] == "true"
    summary = json.loads(loose.results["summary"])
    assert summary["requests"] == 300
    assert summary["error_rate"] == 0
    assert 0 < summary["latency_p50_ms"] <= summary["latency_p95_ms"] <= summary["latency_p99_ms"]
    report = json.loads((tmp_path / "pass" / "slo-report.json").read_text())
    assert report["passed"] is True
    assert "| latency_p99_ms |" in (tmp_path / "pass" / "slo-report.md").read_text()

    strict = check_slo(run_step, url, tmp_path / "fail", '{"latency_p50_ms": "<=0.0001"}')
    assert strict.exit_code == 0
    assert strict.results["passed"] == "false"
    failing = check_slo(
        run_step, url, tmp_path / "fail2", '{"latency_p50_ms": "<=0.0001"}', "--fail-on-slo"
    )
    assert failing.exit_code == 1
    assert "SLOs not met: latency_p50_ms" in failing.output


def test_errors_count_against_the_error_rate(run_step, signed_iris, keys, state, tmp_path) -> None:  # type: ignore[no-untyped-def]
    url = deploy_local(run_step, signed_iris, keys, state).results["url"]
    wrong = '{"inputs": [{"name": "X", "datatype": "FP32", "shape": [1, 3], "data": [1, 2, 3]}]}'
    measured = check_slo(
        run_step, url, tmp_path / "r", '{"error_rate": "<=0.01"}', f"--payload={wrong}"
    )
    assert measured.results["passed"] == "false"
    assert json.loads(measured.results["summary"])["error_rate"] == 1.0
    assert "HTTP 400" in (tmp_path / "r" / "slo-report.md").read_text()


def test_local_canary_rollback_and_promote(run_step, signed_iris, keys, state, tmp_path) -> None:  # type: ignore[no-untyped-def]
    stable = deploy_local(run_step, signed_iris, keys, state).results["url"]
    canary = deploy_local(run_step, signed_iris, keys, state, "--canary-traffic-percent=10")
    assert canary.results["revision"] == "canary"
    assert answers(stable)
    assert answers(canary.results["url"])

    rolled = run_step(
        "deploy-model", "--target=local", "--name=iris", f"--state-dir={state}", "--rollback"
    )
    assert rolled.exit_code == 0, rolled.output
    assert rolled.results["url"] == stable
    assert not answers(canary.results["url"])
    assert answers(stable)

    again = deploy_local(run_step, signed_iris, keys, state, "--canary-traffic-percent=10")
    promoted = run_step(
        "deploy-model", "--target=local", "--name=iris", f"--state-dir={state}", "--promote"
    )
    assert promoted.exit_code == 0, promoted.output
    assert promoted.results["url"] == again.results["url"]
    assert answers(again.results["url"])
    assert not answers(stable)

    stopped = run_step(
        "deploy-model", "--target=local", "--name=iris", f"--state-dir={state}", "--stop"
    )
    assert stopped.exit_code == 0
    assert not answers(again.results["url"])


@pytest.fixture(scope="module")
def signed_forest(datasets, keys, tmp_path_factory) -> Path:  # type: ignore[no-untyped-def]
    """A much slower model of the same data: a forest of deep trees, each row through all."""
    model = tmp_path_factory.mktemp("forest") / "model"
    train_and_sign(
        datasets["iris"], keys, model, "random-forest-classifier",
        '{"n_estimators": 1500, "max_depth": null, "min_samples_leaf": 1}',
    )  # fmt: skip
    return model


def many_rows(count: int) -> str:
    """One request of ``count`` iris rows: the model's work grows with it, the HTTP part not."""
    rows = [[5.1 + (i % 7) / 10, 3.5 - (i % 5) / 10, 1.4 + (i % 40) / 10, 0.2 + (i % 20) / 10]
            for i in range(count)]  # fmt: skip
    data = [v for row in rows for v in row]
    return json.dumps(
        {"inputs": [{"name": "X", "datatype": "FP32", "shape": [count, 4], "data": data}]}
    )


@pytest.mark.parametrize(
    ("metric", "candidate_is_fast"),
    [("latency_p50_ms", True), ("throughput_rps", True), ("latency_p95_ms", False)],
)
def test_ab_names_the_measurably_faster_endpoint(  # type: ignore[no-untyped-def]
    run_step, signed_iris, signed_forest, keys, state, tmp_path, metric, candidate_is_fast
) -> None:
    # One endpoint serves a logistic regression, the other 1,500 trees: on 2,000 rows per
    # request the forest is several times slower, so the winner is not a matter of noise.
    fast, slow = signed_iris, signed_forest
    stable, canary = (slow, fast) if candidate_is_fast else (fast, slow)
    baseline = deploy_local(run_step, stable, keys, state)
    candidate = deploy_local(run_step, canary, keys, state, "--canary-traffic-percent=50")
    assert baseline.exit_code == candidate.exit_code == 0, baseline.output + candidate.output
    compared = run_step(
        "check-slo", f"--url={candidate.results['url']}", "--model=iris", "--requests=60",
        "--concurrency=2", f"--payload={many_rows(2000)}", f"--output={tmp_path / 'ab'}",
        f"--baseline-url={baseline.results['url']}", f"--compare-metric={metric}",
        '--slos={"error_rate": "<=0"}',
    )  # fmt: skip
    assert compared.exit_code == 0, compared.output
    report = json.loads((tmp_path / "ab" / "slo-report.json").read_text())
    assert report["measured"]["error_rate"] == report["baseline"]["measured"]["error_rate"] == 0
    slow_side, fast_side = (
        (report["baseline"]["measured"], report["measured"])
        if candidate_is_fast
        else (report["measured"], report["baseline"]["measured"])
    )
    # The gap the verdict rests on is large (3 to 5 times here), not a few percent.
    assert slow_side["latency_p50_ms"] > 1.5 * fast_side["latency_p50_ms"], report
    assert compared.results["winner"] == ("candidate" if candidate_is_fast else "baseline")


def test_unverified_models_are_not_deployed(  # type: ignore[no-untyped-def]
    run_step, signed_iris, keys, other_keys, state, tmp_path
) -> None:
    unkeyed = deploy_local(run_step, signed_iris, None, state)
    assert unkeyed.exit_code == 2
    assert "refusing to deploy an unverified model" in unkeyed.output
    wrong = deploy_local(run_step, signed_iris, other_keys, state)
    assert wrong.exit_code == 1
    assert "signed with another key" in wrong.output
    assert not (state / "iris" / "stable" / "url").exists()
    allowed = deploy_local(run_step, signed_iris, None, state, "--allow-unverified")
    assert allowed.exit_code == 0
    assert "WITHOUT signature verification" in allowed.output
    assert allowed.results["model-digest"] == ""
    # Nothing vouches for a digest: the record names the model by URI and has no subject.
    record = lineage(state / "iris" / "stable", "deploy-model")
    assert record["subject"] == []
    deps = record["predicate"]["buildDefinition"]["resolvedDependencies"]
    assert deps == [{"name": "model", "uri": signed_iris.as_uri()}]


# KServe, against the Kubernetes API double --------------------------------------------------


@pytest.fixture
def kube(tmp_path: Path) -> Iterator[tuple[KubeApiDouble, Path]]:
    double = KubeApiDouble().start()
    yield double, double.kubeconfig(tmp_path)
    double.stop()


@pytest.fixture(scope="module")
def pushed_uri(signed_iris, registry) -> str:  # type: ignore[no-untyped-def]
    import tempfile

    from click.testing import CliRunner

    from tekton_mlops.cli import main

    results = Path(tempfile.mkdtemp())
    outcome = CliRunner().invoke(
        main,
        ["push-model", f"--path={signed_iris}", f"--destination=oci://{registry}/models/iris:1",
         f"--results-dir={results}"],
    )  # fmt: skip
    assert outcome.exit_code == 0, outcome.output
    return (results / "model-uri").read_text()


def validate_isvc(document: dict) -> None:  # type: ignore[type-arg]
    assert crd_violations(document) == []


def kserve(run_step, kubeconfig: Path, *args: str):  # type: ignore[no-untyped-def]
    return run_step(
        "deploy-model", "--target=kserve", "--name=iris", "--namespace=models",
        f"--kubeconfig={kubeconfig}", "--timeout=5", *args,
    )  # fmt: skip


def test_kserve_canary_deploy_rollback_and_promote(  # type: ignore[no-untyped-def]
    run_step, kube, pushed_uri, keys, signed_root, tmp_path
) -> None:
    double, kubeconfig = kube
    deployments = tmp_path / "deployments"
    deployed = kserve(
        run_step, kubeconfig, f"--model-uri={pushed_uri}", f"--public-key={keys.public}",
        "--canary-traffic-percent=10", "--service-account=models-sa",
        '--resources={"requests": {"cpu": "100m", "memory": "256Mi"}}',
        f"--state-dir={deployments}",
    )  # fmt: skip
    assert deployed.exit_code == 0, deployed.output
    # Pulled back from the registry and verified: the digest signing reported, no other.
    assert deployed.results["model-digest"] == signed_root
    record = lineage(deployments / "iris", "deploy-model")
    digest = {"sha256": signed_root.removeprefix("sha256:")}
    assert record["subject"] == [{"name": "deployment", "digest": digest}]
    assert record["predicate"]["buildDefinition"]["resolvedDependencies"] == [
        {"name": "model", "uri": pushed_uri, "digest": digest}
    ]
    assert deployed.results["url"] == "http://iris.models.example.com"
    assert deployed.results["revision"] == "iris-predictor-00001"
    applied = double.applied[-1]
    validate_isvc(applied)
    predictor = applied["spec"]["predictor"]
    assert predictor["canaryTrafficPercent"] == 10
    assert predictor["serviceAccountName"] == "models-sa"
    assert predictor["model"] == {
        "modelFormat": {"name": "onnx"},
        "protocolVersion": "v2",
        "storageUri": pushed_uri,
        "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}},
    }
    annotations = applied["metadata"]["annotations"]
    assert annotations["tekton-mlops.dev/model-digest"] == deployed.results["model-digest"]
    assert ("PATCH", "application/apply-patch+yaml") in {(m, t) for m, _, t in double.requests}

    rolled = kserve(run_step, kubeconfig, "--rollback")
    assert rolled.exit_code == 0, rolled.output
    validate_isvc(double.applied[-1])
    assert double.applied[-1]["spec"]["predictor"]["canaryTrafficPercent"] == 0
    assert double.applied[-1]["spec"]["predictor"]["model"]["storageUri"] == pushed_uri

    promoted = kserve(run_step, kubeconfig, "--promote")
    assert promoted.exit_code == 0, promoted.output
    validate_isvc(double.applied[-1])
    assert "canaryTrafficPercent" not in double.applied[-1]["spec"]["predictor"]


def test_kserve_api_server_refusal_fails_the_step_and_nothing_is_applied(  # type: ignore[no-untyped-def]
    run_step, kube, pushed_uri, keys
) -> None:
    double, kubeconfig = kube
    # resources is passed through as given; KServe's CRD knows requests, limits and claims only.
    refused = kserve(
        run_step, kubeconfig, f"--model-uri={pushed_uri}", f"--public-key={keys.public}",
        '--resources={"requets": {"cpu": "100m"}}',
    )  # fmt: skip
    assert refused.exit_code == 1
    assert len(double.rejected) == 1
    assert double.applied == []
    assert "requets" in refused.output
    assert "Traceback" not in refused.output


def test_kserve_refuses_unverified_and_applies_nothing(
    run_step, kube, pushed_uri, other_keys
) -> None:  # type: ignore[no-untyped-def]
    double, kubeconfig = kube
    failed = kserve(
        run_step, kubeconfig, f"--model-uri={pushed_uri}", f"--public-key={other_keys.public}"
    )
    assert failed.exit_code == 1
    assert "signed with another key" in failed.output
    unkeyed = kserve(run_step, kubeconfig, f"--model-uri={pushed_uri}")
    assert unkeyed.exit_code == 2
    assert double.applied == []


def test_kserve_not_ready_in_time_fails_clearly(run_step, kube, pushed_uri, keys) -> None:  # type: ignore[no-untyped-def]
    double, kubeconfig = kube
    double.never_ready = True
    failed = kserve(
        run_step, kubeconfig, f"--model-uri={pushed_uri}", f"--public-key={keys.public}",
        "--timeout=2",
    )  # fmt: skip
    assert failed.exit_code == 1
    assert "InferenceService models/iris not Ready after 2 s: RevisionMissing" in failed.output


def test_kserve_rollback_of_a_missing_service_fails_clearly(run_step, kube) -> None:  # type: ignore[no-untyped-def]
    _, kubeconfig = kube
    failed = kserve(run_step, kubeconfig, "--rollback")
    assert failed.exit_code == 1
    assert "reading InferenceService models/iris: HTTP 404" in failed.output


def test_rendered_inference_services_match_the_kserve_crd() -> None:
    from tekton_mlops.deploy.kserve import Deployment, render, with_traffic

    for deployment in (
        Deployment("iris", "default", "s3://models/iris/sha256-ab/"),
        Deployment("iris", "models", "oci://r.example/m@sha256:" + "a" * 64, canary=25,
                   service_account="sa", deployment_mode="RawDeployment",
                   resources={"limits": {"memory": "1Gi"}}, model_digest="sha256:" + "b" * 64),
    ):  # fmt: skip
        isvc = render(deployment)
        validate_isvc(isvc)
        validate_isvc(with_traffic(isvc, 0))
        validate_isvc(with_traffic(isvc, None))


@pytest.mark.parametrize(
    ("args", "phrase"),
    [
        (["--target=local", "--promote", "--rollback"], "--rollback='true': cannot be combined"),
        (["--target=kserve", "--stop"], "applies to the local target only"),
        (["--target=kserve", "--model-uri=file:///m", "--allow-unverified"], "cannot read file://"),
        (["--target=local"], "--model-uri='': is required to deploy"),
    ],
)
def test_contradictory_requests_exit_2_and_do_nothing(run_step, state, args, phrase) -> None:  # type: ignore[no-untyped-def]
    refused = run_step("deploy-model", "--name=iris", f"--state-dir={state}", *args)
    assert refused.exit_code == 2
    assert phrase in refused.output
    assert not state.exists()
