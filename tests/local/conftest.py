"""Run YAML through ``tekton-mlops run`` and read back the finished object."""

from __future__ import annotations

import re
import shutil
import subprocess
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from tekton_mlops import __version__
from tekton_mlops.cli import main
from tests.conftest import REPO, need

IMAGE = f"localhost/tekton-mlops-runtime:{__version__}"


@dataclass
class Finished:
    exit_code: int
    object: dict[str, Any]
    log: str

    @property
    def condition(self) -> dict[str, Any]:
        return self.object["status"]["conditions"][0]  # type: ignore[no-any-return]

    @property
    def results(self) -> dict[str, Any]:
        return {r["name"]: r["value"] for r in self.object["status"].get("results") or []}

    @property
    def skipped(self) -> dict[str, str]:
        return {s["name"]: s["reason"] for s in self.object["status"].get("skippedTasks") or []}

    def taskrun(self, run_dir: Path, task: str) -> dict[str, Any]:
        """The TaskRun object a pipeline task produced (kept in the run directory)."""
        name = self.object["metadata"]["name"]
        return yaml.safe_load((run_dir / name / f"{name}-{task}" / "taskrun.yaml").read_text())


@pytest.fixture
def tekton(tmp_path: Path):  # type: ignore[no-untyped-def]
    """``tekton(yaml_text, *cli_args)`` -> Finished."""

    def run(text: str, *args: str) -> Finished:
        path = tmp_path / "run.yaml"
        documents = re.split(r"(?m)^\s*---\s*$", text)
        path.write_text("---\n".join(textwrap.dedent(d) for d in documents))
        outcome = CliRunner().invoke(
            main,
            ["run", str(path), "--run-dir", str(tmp_path / "runs"), *args],
            catch_exceptions=False,
        )
        documents = list(yaml.safe_load_all(outcome.stdout)) if outcome.stdout.strip() else []
        # Several runs in one file print one document each; `object` is the first.
        return Finished(outcome.exit_code, documents[0] if documents else {}, outcome.stderr)

    return run


@pytest.fixture(scope="session")
def runtime_image() -> str:
    for tool in ("podman", "runc", "debootstrap"):
        need(
            shutil.which(tool) is not None, f"{tool} is not installed (hack/system-deps.sh --image)"
        )
    built = subprocess.run(
        [str(REPO / "hack" / "image.sh")], capture_output=True, text=True, cwd=REPO
    )
    assert built.returncode == 0, built.stderr[-3000:]
    assert built.stdout.strip().splitlines()[-1] == IMAGE
    return IMAGE


@pytest.fixture
def cluster_secrets(tmp_path: Path) -> Path:
    """Secrets as a cluster would hold them: the moto server's test credentials and a
    model signing key pair."""
    from tests.conftest import make_key_pair

    root = tmp_path / "secrets"
    for name in ("s3-test-credentials", "s3-credentials"):
        (root / name).mkdir(parents=True)
        (root / name / "credentials").write_text(
            "[default]\naws_access_key_id = testing\naws_secret_access_key = testing\n"
        )
        (root / name / "config").write_text("[default]\nregion = us-east-1\n")
    pair = make_key_pair(tmp_path / "keys")
    (root / "model-signing-key").mkdir()
    (root / "model-signing-key" / "private.pem").write_bytes(pair.private.read_bytes())
    (root / "model-verification-key").mkdir()
    (root / "model-verification-key" / "public.pem").write_bytes(pair.public.read_bytes())
    return root
