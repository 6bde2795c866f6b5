"""check-golden's catalog test (tests/run.yaml), run through the executor against a real server."""

from __future__ import annotations

import pytest

from tests.local.test_catalog_runs import CATALOG, catalog_file, served_iris

pytestmark = pytest.mark.integration


def test_check_golden_tests_run_yaml(tekton, tmp_path, datasets) -> None:  # type: ignore[no-untyped-def]
    with served_iris(tmp_path, datasets) as url:
        run = tekton(
            catalog_file("task/check-golden/0.1/tests/run.yaml"),
            "--catalog", str(CATALOG),
            "--param", f"url={url}",
        )  # fmt: skip
    assert run.exit_code == 0, run.log
    assert run.condition["reason"] == "Succeeded"
    assert run.results["rows"] == "150"
    # The served model learnt iris: most rows, not all, carry the true species.
    assert 0.9 <= float(run.results["agreement"]) < 1
    assert run.results["baseline-agreement"] == "1"  # the endpoint against itself
