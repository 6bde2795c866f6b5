"""The README's commands, copied into a shell on a fresh clone after `make demo`, work.

`make demo` itself (hack/demo.sh) runs here, not a stand-in; then the sh blocks of
"Running Tekton YAML without a cluster" run verbatim in the same clone.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
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
