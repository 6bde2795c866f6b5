"""A release to a local registry: the image pushed and pinned, bundles pushed and run."""

from __future__ import annotations

import json
import shutil
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner

from tekton_mlops.catalog.lint import lint_tree
from tekton_mlops.cli import main
from tekton_mlops.yamlio import load
from tests.local.test_bundles import train_from_bundle
from tests.local.test_catalog_runs import CATALOG

pytestmark = pytest.mark.integration


def release(root: Path, registry: str) -> tuple[int, str]:
    outcome = CliRunner().invoke(
        main,
        ["catalog", "release", "--root", str(root), "--registry", f"{registry}/tekton-mlops"],
        catch_exceptions=False,
    )
    return outcome.exit_code, outcome.output


def test_release_pins_the_image_and_publishes_bundles(  # type: ignore[no-untyped-def]
    runtime_image, registry, tekton, tmp_path
) -> None:
    root = tmp_path / "catalog"
    shutil.copytree(CATALOG, root)  # a release rewrites the catalog: work on a copy
    code, output = release(root, registry)
    assert code == 0, output

    pinned = (root / "runtime-image.txt").read_text().strip()
    assert pinned.startswith(f"{registry}/tekton-mlops/runtime:0.1.0@sha256:")
    for task in root.glob("task/*/0.1/*.yaml"):
        steps = load(task.read_text())["spec"]["steps"]
        mine = {step["image"] for step in steps if not step["image"].startswith("$(params.")}
        assert mine == {pinned}  # a step whose image is a param runs the user's own
    assert [f.format() for f in lint_tree(root)] == []

    repository, digest = pinned.split("@")
    name = repository.split("/", 1)[1].rsplit(":", 1)[0]
    request = urllib.request.Request(
        f"http://{registry}/v2/{name}/manifests/{digest}",
        headers={
            "Accept": "application/vnd.oci.image.manifest.v1+json, "
            "application/vnd.docker.distribution.manifest.v2+json"
        },
    )
    assert json.load(urllib.request.urlopen(request))["layers"]  # the registry has that digest

    bundles = [line.split()[1] for line in output.splitlines() if line.startswith("bundle ")]
    train = next(b for b in bundles if "/catalog/tasks/train-model:0.1@" in b)
    assert any("/catalog/pipelines/train-and-deploy:0.1@" in b for b in bundles)
    run = train_from_bundle(tekton, train, tmp_path)
    assert run.exit_code == 0, run.log
    ran = run.object["status"]["taskSpec"]["steps"][0]["image"]
    assert ran == pinned  # the bundle carries the Task pinned to the released image


def test_release_refuses_a_version_without_changelog(tmp_path) -> None:  # type: ignore[no-untyped-def]
    root = tmp_path / "catalog"
    shutil.copytree(CATALOG, root)
    changelog = root / "task" / "fetch-data" / "CHANGELOG.md"
    changelog.write_text(changelog.read_text().replace("## 0.1", "## 0.0"))
    # Refused before any push: a registry that does not exist is never asked.
    code, output = release(root, "registry.invalid")
    assert code == 1
    assert "no '## 0.1' entry" in output
    assert (root / "runtime-image.txt").read_text() == (CATALOG / "runtime-image.txt").read_text()
