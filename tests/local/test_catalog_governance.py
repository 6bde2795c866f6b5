"""cut-out's and revoke-dataset's catalog tests (tests/run.yaml), run through the executor.

KServe is tests/kube_api_double.py, a TEST DOUBLE of the Kubernetes API server (none can run
here); S3 is the moto server; Secrets (S3 credentials, the signing key pair) come from
--secrets-dir.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.kube_api_double import KubeApiDouble
from tests.local.test_catalog_runs import CATALOG, catalog_file

pytestmark = pytest.mark.integration


@pytest.fixture
def kube() -> Iterator[tuple[KubeApiDouble, Path]]:
    double = KubeApiDouble(ready_after_reads=1).start()
    # Where a kubeconfig lives on a workstation (as ~/.kube/config does): outside /tmp, which
    # a confined step sees as its own, private /tmp.
    folder = Path(tempfile.mkdtemp(prefix="kube-", dir=Path.home()))
    try:
        yield double, double.kubeconfig(folder)
    finally:
        double.stop()
        shutil.rmtree(folder, ignore_errors=True)


def test_cut_out_tests_run_yaml(tekton, kube, tmp_path) -> None:  # type: ignore[no-untyped-def]
    double, kubeconfig = kube
    run = tekton(
        catalog_file("task/cut-out/0.1/tests/run.yaml"),
        "--catalog", str(CATALOG),
        "--param", f"kubeconfig={kubeconfig}",
    )  # fmt: skip
    assert run.exit_code == 0, run.log
    assert run.condition["reason"] == "Succeeded"
    assert sorted(run.results["stopped"].strip("[]").replace('"', "").split(",")) == [
        "InferenceGraph default/cut-out-test",
        "InferenceService default/cut-out-test-blue",
        "InferenceService default/cut-out-test-green",
    ]
    assert run.results["already"] == "true"
    assert double.objects == {}  # nothing of the deployment is left on the cluster
    # Who: the TaskRun's service account, as the pod's downward API gives it; why: the param.
    (record,) = (tmp_path / "runs").glob(
        "*/workspaces/deployments/cut-out-test/.mlops/lineage/cut-out.intoto.json"
    )
    params = json.loads(record.read_text())["predicate"]["buildDefinition"]["externalParameters"]
    assert params["params"]["actor"] == "system:serviceaccount:default:default"
    assert params["params"]["reason"] == "catalog test of cut-out"


def test_revoke_dataset_tests_run_yaml(tekton, kube, s3, s3_server, cluster_secrets) -> None:  # type: ignore[no-untyped-def]
    double, kubeconfig = kube
    s3.create_bucket(Bucket="tekton-mlops-test")
    run = tekton(
        catalog_file("task/revoke-dataset/0.1/tests/run.yaml"),
        "--catalog", str(CATALOG),
        "--param", f"s3-endpoint={s3_server.endpoint}",
        "--param", f"kubeconfig={kubeconfig}",
        "--secrets-dir", str(cluster_secrets),
    )  # fmt: skip
    assert run.exit_code == 0, run.log
    assert run.condition["reason"] == "Succeeded"
    assert (run.results["models"], run.results["deployments"]) == ("1", "1")
    # Exactly the model trained on the revoked dataset left the cluster.
    assert double.deleted == [("inferenceservices", "default", "revoke-test-a")]
    assert double.get("inferenceservices", "default", "revoke-test-b") is not None
    marks = [o["Key"] for o in s3.list_objects_v2(Bucket="tekton-mlops-test")["Contents"]
             if "/.mlops/attestations/revoke-dataset-" in o["Key"]]  # fmt: skip
    assert len(marks) == 1
    assert marks[0].endswith(".sigstore.json")
