"""check-golden's catalog test (tests/run.yaml), run through the executor against a real server."""

from __future__ import annotations

import subprocess
import time

import pytest

from tests.conftest import CLI, wait_http
from tests.local.test_catalog_runs import CATALOG, catalog_file

pytestmark = pytest.mark.integration


def test_check_golden_tests_run_yaml(tekton, tmp_path, datasets) -> None:  # type: ignore[no-untyped-def]
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
        run = tekton(
            catalog_file("task/check-golden/0.1/tests/run.yaml"),
            "--catalog", str(CATALOG),
            "--param", f"url={url}",
        )  # fmt: skip
    finally:
        server.terminate()
        server.wait(timeout=10)
    assert run.exit_code == 0, run.log
    assert run.condition["reason"] == "Succeeded"
    assert run.results["rows"] == "150"
    # The served model learnt iris: most rows, not all, carry the true species.
    assert 0.9 <= float(run.results["agreement"]) < 1
    assert run.results["baseline-agreement"] == "1"  # the endpoint against itself
