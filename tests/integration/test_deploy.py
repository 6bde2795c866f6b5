"""deploy-model (local and kserve) and check-slo, end to end.

The kserve target runs against tests/kube_api_double.py, a TEST DOUBLE of the
Kubernetes API server (none can run here); every InferenceService it receives is
validated against KServe's own CRD schema (tests/schemas/kserve).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import KeyPair, answers_200
from tests.kube_api_double import KubeApiDouble, crd_violations

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def signed_iris(datasets, keys, tmp_path_factory) -> Path:  # type: ignore[no-untyped-def]
    from click.testing import CliRunner

    from tekton_mlops.cli import main

    root = tmp_path_factory.mktemp("deploy")
    model = root / "model"
    for args in (
        ["train-model", f"--data={datasets['iris']}", "--target-column=target",
         f"--output={model}", "--estimator=logistic-regression",
         '--hyperparameters={"max_iter": 500}'],
        ["sign-artifact", f"--path={model}", f"--private-key={keys.private}"],
    ):  # fmt: skip
        outcome = CliRunner().invoke(main, [*args, f"--results-dir={root / 'r'}"])
        assert outcome.exit_code == 0, outcome.output
    return model


@pytest.fixture
def state(tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / "deployments"
    yield folder
    from tekton_mlops.deploy import local

    for name in folder.iterdir() if folder.is_dir() else []:
        for which in (local.CANARY, local.STABLE):
            local.stop(local.slot(folder, name.name, which))


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


def test_local_deploy_then_slo_pass_and_fail(run_step, signed_iris, keys, state, tmp_path) -> None:  # type: ignore[no-untyped-def]
    deployed = deploy_local(run_step, signed_iris, keys, state)
    assert deployed.exit_code == 0, deployed.output
    url = deployed.results["url"]
    assert deployed.results["revision"] == "stable"
    assert deployed.results["model-digest"].startswith("sha256:")
    assert answers(url)

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


def test_ab_mode_names_the_winner(run_step, signed_iris, keys, state, tmp_path) -> None:  # type: ignore[no-untyped-def]
    baseline = deploy_local(run_step, signed_iris, keys, state).results["url"]
    candidate = deploy_local(run_step, signed_iris, keys, state, "--canary-traffic-percent=50")
    compared = check_slo(
        run_step, candidate.results["url"], tmp_path / "ab", '{"error_rate": "<=0"}',
        f"--baseline-url={baseline}", "--compare-metric=throughput_rps",
    )  # fmt: skip
    assert compared.exit_code == 0, compared.output
    report = json.loads((tmp_path / "ab" / "slo-report.json").read_text())
    mine = report["measured"]["throughput_rps"]
    theirs = report["baseline"]["measured"]["throughput_rps"]
    expected = "candidate" if mine > theirs else "baseline" if theirs > mine else "tie"
    assert compared.results["winner"] == expected


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


def test_kserve_canary_deploy_rollback_and_promote(run_step, kube, pushed_uri, keys) -> None:  # type: ignore[no-untyped-def]
    double, kubeconfig = kube
    deployed = kserve(
        run_step, kubeconfig, f"--model-uri={pushed_uri}", f"--public-key={keys.public}",
        "--canary-traffic-percent=10", "--service-account=models-sa",
        '--resources={"requests": {"cpu": "100m", "memory": "256Mi"}}',
    )  # fmt: skip
    assert deployed.exit_code == 0, deployed.output
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
