"""verify-policy's catalog test (tests/run.yaml), run through the executor: iris in moto S3,
fetched, trained, evaluated, signed; judged by the built-in default policy, by the catalog's
default policy from a ConfigMap, and by an inline policy the model breaks."""

from __future__ import annotations

import shutil

import pytest

from tests.local.test_catalog_runs import CATALOG, catalog_file

pytestmark = pytest.mark.integration


def test_verify_policy_tests_run_yaml(tekton, s3_server, cluster_secrets) -> None:  # type: ignore[no-untyped-def]
    # The ConfigMap the test's header asks for, made from the catalog's file as kubectl would.
    config_map = cluster_secrets / "model-policy"
    config_map.mkdir()
    shutil.copyfile(
        CATALOG / "task/verify-policy/0.1/policy/default-policy.yaml", config_map / "policy.yaml"
    )
    run = tekton(
        catalog_file("task/verify-policy/0.1/tests/run.yaml"),
        "--catalog", str(CATALOG),
        "--param", f"s3-endpoint={s3_server.endpoint}",
        "--secrets-dir", str(cluster_secrets),
    )  # fmt: skip
    assert run.exit_code == 0, run.log
    assert run.condition["reason"] == "Succeeded"
    # The steps of a local run name no image (TEKTON_MLOPS_IMAGE): the default policy warns.
    assert run.results == {"default-warnings": "1", "strict-passed": "false",
                           "strict-failures": "1"}  # fmt: skip
