"""The README's commands, copied into a shell on a fresh clone after `make demo`, work.

`make demo` itself (hack/demo.sh) runs here, not a stand-in; then the sh blocks of
"Running Tekton YAML without a cluster" run verbatim in the same clone. `make demo-tune`
(hack/demo-tune.sh, with its own MLflow server) runs there too.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import re
import signal
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO

pytestmark = pytest.mark.integration


def sh_blocks(section: str) -> list[str]:
    text = (REPO / "README.md").read_text()
    start = text.index(f"## {section}")
    end = text.index("\n## ", start + 1)
    return re.findall(r"```sh\n(.*?)```", text[start:end], re.S)


@pytest.fixture(scope="module")
def clone(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("readme") / "tekton-mlops"
    subprocess.run(["git", "clone", "-q", str(REPO), str(root)], check=True)
    (root / ".venv").symlink_to(REPO / ".venv")  # `make` would create it; the same install
    yield root
    # A failed assertion skips the README's stop command: do not leave its model servers behind.
    _stop_processes_under(root)


def shell(clone: Path, script: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": f"{clone / '.venv' / 'bin'}:{os.environ['PATH']}"}
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_make_demo_then_the_readme_commands(clone: Path) -> None:
    demo = shell(clone, "hack/demo.sh")
    assert demo.returncode == 0, demo.stderr[-3000:]
    assert "PipelineRun  train-and-deploy-local-" in demo.stdout
    assert ": Succeeded (" in demo.stdout or ": Completed (" in demo.stdout
    run = json.loads((clone / ".demo" / "pipelinerun.json").read_text())
    results = {r["name"]: r["value"] for r in run["status"]["results"]}
    assert results["passed"] == "true"
    assert results["slo-passed"] == "true"
    # The demo stops the model server it started.
    assert not _serving(results["deployed-url"])

    run_block, stop_block = sh_blocks("Running Tekton YAML without a cluster")
    ran = shell(clone, run_block)
    assert ran.returncode == 0, ran.stderr[-3000:]
    # `keys` prints the two key paths, then `run` prints the finished PipelineRun.
    assert "private key  .secrets/model-signing-key/private.pem" in ran.stdout
    finished = yaml.safe_load(ran.stdout[ran.stdout.index("apiVersion:") :])
    url = {r["name"]: r["value"] for r in finished["status"]["results"]}["deployed-url"]
    assert _serving(url), "the README says the promoted model is still served"
    assert any((clone / ".tekton-mlops" / "models").iterdir())

    name = finished["metadata"]["name"]
    stopped = shell(clone, stop_block.replace("<name>", name))
    assert stopped.returncode == 0, stopped.stderr
    assert not _serving(url)


def test_make_demo_tune_runs_the_experiment_loop_tracked_in_mlflow(clone: Path) -> None:
    (clone / ".venv-mlflow").symlink_to(REPO / ".venv-mlflow")  # `make demo-tune` makes it
    demo = shell(clone, "hack/demo-tune.sh")
    assert demo.returncode == 0, demo.stderr[-3000:]
    assert "PipelineRun  tune-and-train-local-" in demo.stdout
    run = json.loads((clone / ".demo-tune" / "pipelinerun.json").read_text())
    assert run["status"]["conditions"][0]["status"] == "True"
    results = {r["name"]: r["value"] for r in run["status"]["results"]}
    assert results["passed"] == "true"
    shared = next((clone / ".demo-tune" / "runs").glob("*/workspaces/shared"))
    # Two matrix workers shared the sample's budget of 12 trials, numbered once each.
    with (shared / "tuning" / "trials.csv").open(newline="") as handle:
        numbers = sorted(int(row["number"]) for row in csv.DictReader(handle))
    assert numbers == list(range(12))
    # The model was trained with the best trial's hyper-parameters.
    metadata = json.loads((shared / "model" / "metadata.json").read_text())
    assert metadata["hyperparameters"] == json.loads(results["best-params"])
    # What the demo prints is there: the report, and the training run in MLflow's store
    # (the demo's server has stopped; its SQLite file is MLflow's own record).
    report = shared / "model" / "report" / "report.html"
    assert f"report       {report}" in demo.stdout
    assert report.is_file()
    assert f"MLflow run   {results['mlflow-run-id']} in experiment wine" in demo.stdout
    run_id = results["mlflow-run-id"]
    with contextlib.closing(sqlite3.connect(clone / ".demo-tune" / "mlflow" / "mlflow.db")) as db:
        tags = dict(db.execute("SELECT key, value FROM tags WHERE run_uuid = ?", (run_id,)))
        (experiment,) = db.execute(
            "SELECT e.name FROM runs r JOIN experiments e USING (experiment_id) "
            "WHERE r.run_uuid = ?",
            (run_id,),
        ).fetchone()
    assert experiment == "wine"
    assert tags["tekton.dev/pipelineRun"] == run["metadata"]["name"]
    assert tags["tekton-mlops.dataset.digest"] == results["train-digest"]


def _serving(url: str) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(f"{url}/v2/health/ready", timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def _stop_processes_under(root: Path) -> None:
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if str(root) in cmdline:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(proc.name), signal.SIGTERM)
