"""Every catalog tests/run.yaml and sample, run through the executor.

S3 is the moto server; Secrets come from --secrets-dir; the git resolver reads
this repository at HEAD (committed content), mirrored for the project's URL.
"""

from __future__ import annotations

import csv
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


def iris_in_bucket(s3, bucket: str, key: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    s3.create_bucket(Bucket=bucket)
    s3.upload_file(str(write_iris(tmp_path / "iris.csv")), bucket, key)


@pytest.mark.parametrize("task", ["train-model", "evaluate-model"])
def test_task_tests_run_yaml(tekton, task: str) -> None:  # type: ignore[no-untyped-def]
    run = tekton(catalog_file(f"task/{task}/0.1/tests/run.yaml"), "--catalog", str(CATALOG))
    assert run.exit_code == 0, run.log
    assert run.condition["reason"] == "Succeeded"


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
    run = tekton(
        catalog_file("pipeline/train-and-deploy/0.1/tests/run.yaml", revision_to_head=True),
        "--git-mirror",
        f"{PROJECT_URL}={REPO}",
        "--param",
        "catalog-revision=HEAD",
        "--param",
        f"s3-endpoint-url={s3_server.endpoint}",
        "--secrets-dir",
        str(cluster_secrets),
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
        *(part for param in args for part in ("--param", param)),
    )


def test_pipeline_local_sample(tekton, tmp_path, cluster_secrets) -> None:  # type: ignore[no-untyped-def]
    run = run_local_sample(tekton, tmp_path, cluster_secrets)
    assert run.exit_code == 0, run.log
    assert run.results["passed"] == "true"
    assert run.results["signed-digest"].startswith("sha256:")
    assert "model-uri" not in run.results  # no destination: the push is skipped
    assert run.skipped == {"push-model": "When Expressions evaluated to false"}


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
    assert set(run.skipped) == {"sign-model", "verify-model", "push-model"}
    assert "signed-digest" not in run.results
    assert "model-uri" not in run.results


def test_pipeline_s3_sample(tekton, s3, s3_server, cluster_secrets, tmp_path) -> None:  # type: ignore[no-untyped-def]
    iris_in_bucket(s3, "datasets", "iris/iris.csv", tmp_path)
    s3.create_bucket(Bucket="models")
    run = tekton(
        catalog_file(
            "pipeline/train-and-deploy/0.1/samples/train-from-s3.yaml", revision_to_head=True
        ),
        "--git-mirror",
        f"{PROJECT_URL}={REPO}",
        "--param",
        "catalog-revision=HEAD",
        "--param",
        f"s3-endpoint-url={s3_server.endpoint}",
        "--secrets-dir",
        str(cluster_secrets),
    )
    assert run.exit_code == 0, run.log
    assert run.condition["reason"] == "Succeeded"
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
