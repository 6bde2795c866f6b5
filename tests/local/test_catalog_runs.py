"""Every catalog tests/run.yaml and sample, run through the executor.

S3 is the moto server; Secrets come from --secrets-dir; the git resolver reads
this repository at HEAD (committed content), mirrored for the project's URL.
"""

from __future__ import annotations

import contextlib
import csv
import json
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.integration

CATALOG = REPO / "catalog"
PROJECT_URL = "https://github.com/tekton-mlops/tekton-mlops.git"


def catalog_file(relative: str, revision_to_head: bool = False) -> str:
    text = (CATALOG / relative).read_text()
    if revision_to_head:  # the committed catalog of this checkout, whatever its branch
        text = text.replace("value: main\n", "value: HEAD\n")
    return text


def write_iris(path: Path) -> Path:
    from sklearn.datasets import load_iris

    iris = load_iris()
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["sepal_length", "sepal_width", "petal_length", "petal_width", "species"])
        writer.writerows([*row, int(t)] for row, t in zip(iris.data, iris.target, strict=True))
    return path


def run_pipeline_from_git(  # type: ignore[no-untyped-def]
    tekton, relative: str, s3_endpoint: str, secrets: Path, *args: str
):
    """Run a PipelineRun of the catalog whose Pipeline and Tasks resolve from this checkout's
    HEAD through the git resolver, against the S3 endpoint, with the cluster's Secrets."""
    return tekton(
        catalog_file(relative, revision_to_head=True),
        *args,
        "--git-mirror", f"{PROJECT_URL}={REPO}",
        "--param", "catalog-revision=HEAD",
        "--param", f"s3-endpoint-url={s3_endpoint}",
        "--secrets-dir", str(secrets),
    )  # fmt: skip


def iris_in_bucket(s3, bucket: str, key: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    s3.create_bucket(Bucket=bucket)
    s3.upload_file(str(write_iris(tmp_path / "iris.csv")), bucket, key)


@pytest.mark.parametrize("task", ["train-model", "evaluate-model", "prepare-data", "tune-model"])
def test_task_tests_run_yaml(tekton, task: str) -> None:  # type: ignore[no-untyped-def]
    run = tekton(catalog_file(f"task/{task}/0.1/tests/run.yaml"), "--catalog", str(CATALOG))
    assert run.exit_code == 0, run.log
    assert run.condition["reason"] == "Succeeded"


def test_deploy_model_tests_run_yaml(tekton, s3, s3_server, cluster_secrets, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Against tests/kube_api_double.py, a TEST DOUBLE of the Kubernetes API server."""
    from tests.kube_api_double import KubeApiDouble

    s3.create_bucket(Bucket="tekton-mlops-test")
    double = KubeApiDouble().start()
    # Where a kubeconfig lives on a workstation (as ~/.kube/config does): outside /tmp, which
    # a confined step sees as its own, private /tmp.
    kube_dir = Path(tempfile.mkdtemp(prefix="kube-", dir=Path.home()))
    try:
        run = tekton(
            catalog_file("task/deploy-model/0.1/tests/run.yaml"),
            "--catalog", str(CATALOG),
            "--param", f"s3-endpoint={s3_server.endpoint}",
            "--param", f"kubeconfig={double.kubeconfig(kube_dir)}",
            "--secrets-dir", str(cluster_secrets),
        )  # fmt: skip
    finally:
        double.stop()
        shutil.rmtree(kube_dir, ignore_errors=True)
    assert run.exit_code == 0, run.log
    assert run.results["url"] == "http://deploy-test.default.example.com"
    assert [a["spec"]["predictor"].get("canaryTrafficPercent") for a in double.applied] == [
        10,
        None,
    ]


def test_read_config_tests_run_yaml(tekton) -> None:  # type: ignore[no-untyped-def]
    run = tekton(
        catalog_file("task/read-config/0.1/tests/run.yaml"),
        "--catalog", str(CATALOG),
        "--param", f"repo-url={REPO}",
        "--param", "revision=HEAD",
    )  # fmt: skip
    assert run.exit_code == 0, run.log
    assert len(run.results["commit"]) == 40


@contextlib.contextmanager
def served_iris(tmp_path: Path, datasets: dict[str, Path]) -> Iterator[str]:
    """An iris model trained by train-model and served by `tekton-mlops serve`: its URL."""
    import subprocess

    from tests.conftest import CLI, wait_http

    model = tmp_path / "model"
    trained = subprocess.run(
        [CLI, "train-model", f"--data={datasets['iris']}", "--target-column=target",
         f"--output={model}", f"--results-dir={tmp_path / 'r'}"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert trained.returncode == 0, trained.stderr
    # Port 0: the server binds a free port itself and writes its URL to the ready file.
    ready = tmp_path / "url"
    server = subprocess.Popen(
        [CLI, "serve", f"--model-path={model}", "--model-name=model", "--port=0",
         f"--ready-file={ready}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        # The file is written in one go but not atomically: wait for its closing newline.
        while not (ready.is_file() and ready.read_text().endswith("\n")):
            assert server.poll() is None, "serve exited before it was ready"
            assert time.monotonic() < deadline, "serve did not start in 60 s"
            time.sleep(0.02)  # a poll interval: what is waited for is the file
        url = ready.read_text().strip()
        wait_http(f"{url}/v2/health/ready")
        yield url
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_check_slo_tests_run_yaml(tekton, tmp_path, datasets) -> None:  # type: ignore[no-untyped-def]
    with served_iris(tmp_path, datasets) as url:
        run = tekton(
            catalog_file("task/check-slo/0.1/tests/run.yaml"),
            "--catalog", str(CATALOG),
            "--param", f"url={url}",
        )  # fmt: skip
    assert run.exit_code == 0, run.log
    assert run.results["passed"] == "true"
    assert json.loads(run.results["summary"])["requests"] == 300


@pytest.mark.parametrize("task", ["sign-artifact", "verify-artifact"])
def test_signing_tests_run_yaml(tekton, cluster_secrets, task: str) -> None:  # type: ignore[no-untyped-def]
    run = tekton(
        catalog_file(f"task/{task}/0.1/tests/run.yaml"),
        "--catalog",
        str(CATALOG),
        "--secrets-dir",
        str(cluster_secrets),
    )
    assert run.exit_code == 0, run.log
    assert run.condition["reason"] == "Succeeded"


def test_push_model_tests_run_yaml(tekton, registry, cluster_secrets) -> None:  # type: ignore[no-untyped-def]
    run = tekton(
        catalog_file("task/push-model/0.1/tests/run.yaml"),
        "--catalog",
        str(CATALOG),
        "--param",
        f"registry={registry}",
        "--secrets-dir",
        str(cluster_secrets),
    )
    assert run.exit_code == 0, run.log
    assert run.results["model-uri"].startswith(f"oci://{registry}/tekton-mlops-test/model@sha256:")
    assert run.results["pulled-digest"] == run.results["pushed-digest"]


def test_fetch_data_tests_run_yaml(tekton, s3_server, cluster_secrets) -> None:  # type: ignore[no-untyped-def]
    run = tekton(
        catalog_file("task/fetch-data/0.1/tests/run.yaml"),
        "--catalog",
        str(CATALOG),
        "--param",
        f"s3-endpoint={s3_server.endpoint}",
        "--secrets-dir",
        str(cluster_secrets),
    )
    assert run.exit_code == 0, run.log
    assert run.condition["message"] == "Tasks Completed: 3 (Failed: 0, Cancelled 0), Skipped: 0"


def test_pipeline_tests_run_yaml(tekton, s3, s3_server, cluster_secrets, tmp_path) -> None:  # type: ignore[no-untyped-def]
    iris_in_bucket(s3, "tekton-mlops-test", "iris/iris.csv", tmp_path)
    run = run_pipeline_from_git(
        tekton,
        "pipeline/train-and-deploy/0.1/tests/run.yaml",
        s3_server.endpoint,
        cluster_secrets,
    )
    assert run.exit_code == 0, run.log
    assert run.results["passed"] == "true"
    assert run.results["model-digest"].startswith("sha256:")
    assert run.results["model-uri"].startswith("s3://tekton-mlops-test/models/iris/sha256-")


def run_local_sample(tekton, tmp_path: Path, secrets: Path, *params: str):  # type: ignore[no-untyped-def]
    data = write_iris(tmp_path / "data" / "iris.csv")
    args = [f"dataset-uri={data.as_uri()}", "target-column=species", *params]
    return tekton(
        catalog_file("pipeline/train-and-deploy/0.1/samples/run-locally.yaml"),
        "--git-mirror",
        f"{PROJECT_URL}={REPO}",
        "--secrets-dir",
        str(secrets),
        # The data and the file:// model store live on this machine, outside any workspace.
        "--host-path",
        str(tmp_path),
        *(part for param in args for part in ("--param", param)),
    )


def served(url: str) -> bool:
    from tests.conftest import answers_200

    return answers_200(f"{url}/v2/health/ready")


def report_log(run_dir: Path) -> str:
    """What the pipeline's finally report task printed."""
    return next(run_dir.glob("*/*-report/logs/report.log")).read_text()


def stop_local_servers(run_dir: Path) -> None:
    from tekton_mlops.deploy import local

    for state in run_dir.glob("*/workspaces/shared/deployments"):
        for name in state.iterdir():
            for which in (local.CANARY, local.STABLE):
                local.stop(local.slot(state, name.name, which))


def test_pipeline_local_sample(tekton, tmp_path, cluster_secrets) -> None:  # type: ignore[no-untyped-def]
    store = tmp_path / "models"
    try:
        run = run_local_sample(
            tekton, tmp_path, cluster_secrets, f"model-destination={store.as_uri()}"
        )
        assert run.exit_code == 0, run.log
        assert run.results["passed"] == "true"
        assert run.results["signed-digest"].startswith("sha256:")
        assert run.results["model-uri"].startswith(f"{store.as_uri()}/sha256-")
        assert run.results["slo-passed"] == "true"
        assert "rollback-model" in run.skipped  # promoted: nothing to take back
        assert "deployment: canary promoted (every SLO met)" in report_log(tmp_path / "runs")
        assert served(run.results["deployed-url"])  # the promoted canary keeps serving
    finally:
        stop_local_servers(tmp_path / "runs")


def test_pipeline_rolls_back_a_canary_that_fails_its_slos(  # type: ignore[no-untyped-def]
    tekton, tmp_path, cluster_secrets
) -> None:
    try:
        run = run_local_sample(
            tekton, tmp_path, cluster_secrets,
            f"model-destination={(tmp_path / 'models').as_uri()}",
            'slos={"latency_p50_ms": "<=0.0001"}',
        )  # fmt: skip
        assert run.exit_code == 0, run.log
        assert run.results["slo-passed"] == "false"
        assert "promote-model" in run.skipped
        assert "rollback-model" not in run.skipped
        assert "deployment: canary rolled back (SLOs not met)" in report_log(tmp_path / "runs")
        assert not served(run.results["deployed-url"])
    finally:
        stop_local_servers(tmp_path / "runs")


def test_pipeline_signs_and_pushes_nothing_that_failed_its_thresholds(  # type: ignore[no-untyped-def]
    tekton, tmp_path, cluster_secrets, registry
) -> None:
    run = run_local_sample(
        tekton,
        tmp_path,
        cluster_secrets,
        'thresholds={"accuracy": ">=1.5"}',
        f"model-destination=oci://{registry}/gate/never:1",
    )
    assert run.exit_code == 0, run.log
    assert run.results["passed"] == "false"
    assert set(run.skipped) == {
        "sign-model", "verify-model", "push-model",
        "deploy-model", "check-slo", "approve-promotion", "promote-model", "rollback-model",
    }  # fmt: skip
    assert "signed-digest" not in run.results
    assert "model-uri" not in run.results


def test_pipeline_s3_sample(tekton, s3, s3_server, cluster_secrets, tmp_path) -> None:  # type: ignore[no-untyped-def]
    iris_in_bucket(s3, "datasets", "iris/iris.csv", tmp_path)
    s3.create_bucket(Bucket="models")
    run = run_pipeline_from_git(
        tekton,
        "pipeline/train-and-deploy/0.1/samples/train-from-s3.yaml",
        s3_server.endpoint,
        cluster_secrets,
    )
    assert run.exit_code == 0, run.log
    # No deploy-target in this sample: the run ends after the push, Completed with skips.
    assert run.condition["reason"] == "Completed"
    assert set(run.skipped) == {
        "deploy-model", "check-slo", "approve-promotion", "promote-model", "rollback-model",
    }  # fmt: skip
    pushed = run.results["model-uri"].removeprefix("s3://models/")
    listed = s3.list_objects_v2(Bucket="models", Prefix=pushed)["Contents"]
    assert {o["Key"].removeprefix(pushed) for o in listed} >= {"model.onnx", "model.sig"}


def test_fetch_samples(tekton, s3, s3_server, cluster_secrets, tmp_path) -> None:  # type: ignore[no-untyped-def]
    iris_in_bucket(s3, "datasets", "iris/iris.csv", tmp_path)
    single = tekton(
        catalog_file("task/fetch-data/0.1/samples/fetch-from-s3.yaml"),
        "--catalog",
        str(CATALOG),
        "--param",
        f"endpoint-url={s3_server.endpoint}",
        "--secrets-dir",
        str(cluster_secrets),
    )
    assert single.exit_code == 0, single.log
    digest = single.results["dataset-digest"]
    # The prefix sample pins a root digest: that of this store's iris/ prefix.
    prefix = tekton(
        catalog_file("task/fetch-data/0.1/samples/fetch-prefix-archive.yaml"),
        "--catalog",
        str(CATALOG),
        "--param",
        f"sha256={digest}",
        "--param",
        f"endpoint-url={s3_server.endpoint}",
        "--param",
        "addressing-style=path",
        "--secrets-dir",
        str(cluster_secrets),
    )
    assert prefix.exit_code == 0, prefix.log
    assert prefix.results["dataset-digest"] == digest


def test_train_and_evaluate_samples_share_a_claim(tekton, tmp_path) -> None:  # type: ignore[no-untyped-def]
    write_iris(tmp_path / "pvcs" / "ml-workspace" / "dataset" / "iris.csv")
    train = tekton(
        catalog_file("task/train-model/0.1/samples/train-random-forest.yaml"),
        "--catalog",
        str(CATALOG),
    )
    assert train.exit_code == 0, train.log
    evaluate = tekton(
        catalog_file("task/evaluate-model/0.1/samples/evaluate-with-thresholds.yaml"),
        "--catalog",
        str(CATALOG),
    )
    assert evaluate.exit_code == 0, evaluate.log
    assert evaluate.results["passed"] == "true"


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    from tests.integration.mlflow_server import running_mlflow

    with running_mlflow(tmp_path_factory.mktemp("mlflow")) as server:
        yield server


def test_tune_and_train_tests_run_yaml_registers_the_pushed_model(  # type: ignore[no-untyped-def]
    tekton, s3, s3_server, cluster_secrets, tmp_path, mlflow_server
) -> None:
    iris_in_bucket(s3, "tekton-mlops-test", "iris/iris.csv", tmp_path)
    run = run_pipeline_from_git(
        tekton,
        "pipeline/tune-and-train/0.1/tests/run.yaml",
        s3_server.endpoint,
        cluster_secrets,
        "--param", f"mlflow-tracking-uri={mlflow_server.uri}",
    )  # fmt: skip
    assert run.exit_code == 0, run.log
    assert run.results["model-uri"].startswith("s3://tekton-mlops-test/models/iris-tuned/sha256-")
    # The search is one MLflow run with a child run per trial of the shared budget.
    summarize = run.taskrun(tmp_path / "runs", "summarize")
    tuning = {r["name"]: r["value"] for r in summarize["status"]["results"]}
    assert len(mlflow_server.read("children", run_id=tuning["mlflow-run-id"])) == 6
    # The pushed model is a registered version whose source is the pushed URI, linked to
    # the training run that produced it.
    versions = mlflow_server.read("versions", name="iris-tuned")
    assert [(v["source"], v["run_id"]) for v in versions] == [
        (run.results["model-uri"], run.results["mlflow-run-id"])
    ]
