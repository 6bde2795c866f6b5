"""check-mirror's catalog test (tests/run.yaml) and sample, through the local executor."""

from __future__ import annotations

import json

import pytest

from tests.local.test_catalog_runs import CATALOG, catalog_file

pytestmark = pytest.mark.integration


def test_check_mirror_tests_run_yaml(tekton) -> None:  # type: ignore[no-untyped-def]
    run = tekton(catalog_file("task/check-mirror/0.1/tests/run.yaml"), "--catalog", str(CATALOG))
    assert run.exit_code == 0, run.log
    assert run.condition["reason"] == "Succeeded"
    assert run.results["agreement"] == "0.995"  # 199 of the 200 copies agreed
    assert run.results["disagreeing-passed"] == "false"
    summary = json.loads(run.results["summary"])
    assert (summary["requests"], summary["latency_ratio_p50"]) == (200, 1.1)
