"""Tekton bundles: pushed to a real registry (docker-registry), resolved by the executor."""

from __future__ import annotations

import copy
import json
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner

from tekton_mlops.cli import main
from tekton_mlops.errors import SourceError
from tekton_mlops.storage.oci import parse_reference
from tekton_mlops.tekton.bundles import MAX_LAYERS, push
from tekton_mlops.yamlio import load
from tests.local.test_catalog_runs import CATALOG, write_iris

pytestmark = pytest.mark.integration
TASKS = sorted(str(p) for p in CATALOG.glob("task/*/0.1/*.yaml"))


def push_catalog(registry: str, repository: str = "catalog/tasks") -> str:
    outcome = CliRunner().invoke(
        main,
        [
            "catalog",
            "bundle",
            f"{registry}/{repository}:0.1",
            *TASKS,
            "--annotate",
            "org.opencontainers.image.version=0.1",
        ],
        catch_exceptions=False,
    )
    assert outcome.exit_code == 0, outcome.output
    return outcome.stdout.strip()


def test_bundle_layout_follows_the_tekton_contract(registry) -> None:  # type: ignore[no-untyped-def]
    pinned = push_catalog(registry)
    assert pinned == push_catalog(registry)  # the same resources give the same digest
    digest = pinned.split("@")[1]
    request = urllib.request.Request(
        f"http://{registry}/v2/catalog/tasks/manifests/{digest}",
        headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
    )
    manifest = json.load(urllib.request.urlopen(request))
    notes = [layer["annotations"] for layer in manifest["layers"]]
    assert sorted(n["dev.tekton.image.name"] for n in notes) == sorted(
        Path(task).parent.parent.name for task in TASKS
    )
    assert {n["dev.tekton.image.kind"] for n in notes} == {"task"}
    assert {n["dev.tekton.image.apiVersion"] for n in notes} == {"v1"}
    assert manifest["annotations"] == {"org.opencontainers.image.version": "0.1"}
    digests = [layer["digest"] for layer in manifest["layers"]]
    assert digests == sorted(digests)


def train_from_bundle(tekton, bundle: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    """Run train-model resolved from ``bundle`` on the iris table; return the finished run."""
    write_iris(tmp_path / "data" / "iris.csv")
    return tekton(
        f"""
    apiVersion: tekton.dev/v1
    kind: TaskRun
    metadata: {{name: from-bundle}}
    spec:
      taskRef:
        resolver: bundles
        params:
          - {{name: bundle, value: "{bundle}"}}
          - {{name: name, value: train-model}}
          - {{name: kind, value: task}}
      params:
        - {{name: target-column, value: species}}
      workspaces:
        - {{name: data, emptyDir: {{}}}}
        - {{name: model, emptyDir: {{}}}}
    """,
        "--workspace",
        f"data={tmp_path / 'data'}",
    )


def test_a_task_runs_from_a_pushed_bundle(tekton, registry, tmp_path) -> None:  # type: ignore[no-untyped-def]
    run = train_from_bundle(tekton, push_catalog(registry), tmp_path)
    assert run.exit_code == 0, run.log
    assert run.results["model-digest"].startswith("sha256:")


def test_missing_resource_in_a_bundle(tekton, registry) -> None:  # type: ignore[no-untyped-def]
    pinned = push_catalog(registry)
    run = tekton(f"""
    apiVersion: tekton.dev/v1
    kind: TaskRun
    metadata: {{name: absent}}
    spec:
      taskRef:
        resolver: bundles
        params:
          - {{name: bundle, value: "{pinned}"}}
          - {{name: name, value: no-such-task}}
    """)
    assert run.exit_code == 1
    assert run.condition["reason"] == "CouldntGetTask"
    assert "holds no task named 'no-such-task'" in run.condition["message"]


def test_bundle_limits() -> None:
    task = load((CATALOG / "task/fetch-data/0.1/fetch-data.yaml").read_text())
    many = []
    for index in range(MAX_LAYERS + 1):
        copied = copy.deepcopy(task)
        copied["metadata"]["name"] = f"task-{index}"
        many.append(copied)
    # Refused before anything is sent: the registry named does not exist.
    target = parse_reference("registry.invalid/catalog/too-many:0.1")
    with pytest.raises(SourceError, match="at most 20 resources"):
        push(target, many)
    with pytest.raises(SourceError, match="appears twice"):
        push(target, [task, task])
