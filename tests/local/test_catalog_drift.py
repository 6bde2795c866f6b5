"""detect-drift's catalog test (tests/run.yaml) through the local executor: train, then
detect drift on a CSV dataset and on payload logs, with the Task resolved from the catalog."""

from __future__ import annotations

import json

import pytest

from tests.local.test_catalog_runs import CATALOG, catalog_file

pytestmark = pytest.mark.integration


def test_detect_drift_tests_run_yaml(tekton, tmp_path) -> None:  # type: ignore[no-untyped-def]
    run = tekton(catalog_file("task/detect-drift/0.1/tests/run.yaml"), "--catalog", str(CATALOG))
    assert run.exit_code == 0, run.log
    assert run.condition["reason"] == "Succeeded"
    shifted = run.taskrun(tmp_path / "runs", "detect-shifted")
    results = {r["name"]: r["value"] for r in shifted["status"]["results"]}
    assert results["drifted"] == "true"
    assert json.loads(results["drifted-columns"]) == {
        "count": 2,
        "of": 3,
        "columns": ["age", "city"],
    }
    report = json.loads(
        (tmp_path / "runs" / run.object["metadata"]["name"] / "workspaces")
        .joinpath("shared", "drift-shifted", "drift-report.json")
        .read_text()
    )
    assert report["current"]["format"] == "payload-logs"
    assert report["current"]["requests"] == 20
