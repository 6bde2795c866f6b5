"""The real catalog: lint-clean, valid against Tekton's strict schemas, docs in sync."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from tekton_mlops.catalog.docs import sync
from tekton_mlops.catalog.lint import lint_tree
from tekton_mlops.catalog.rules import RULES
from tekton_mlops.cli import main
from tekton_mlops.tekton.schema import decode_errors, has_schema
from tests.conftest import REPO

CATALOG = REPO / "catalog"
DOCUMENTS = [
    (path, index, doc)
    for path in sorted(CATALOG.rglob("*.yaml"))
    for index, doc in enumerate(yaml.safe_load_all(path.read_text()))
    # Tekton's own kinds (Pipelines and Triggers); the RBAC beside a trigger is Kubernetes'.
    if doc and doc["apiVersion"].split("/")[0].endswith("tekton.dev")
]
#: The PipelineRuns a TriggerTemplate creates, checked like any other document.
DOCUMENTS += [
    (path, index * 100 + number, template)
    for path, index, doc in list(DOCUMENTS)
    if doc["kind"] == "TriggerTemplate"
    for number, template in enumerate(doc["spec"]["resourcetemplates"])
]


def test_catalog_has_no_findings() -> None:
    assert [f.format() for f in lint_tree(CATALOG)] == []


def test_readmes_are_in_sync() -> None:
    assert sync(CATALOG, check=True) == []


@pytest.mark.parametrize(
    ("path", "index", "doc"),
    DOCUMENTS,
    ids=[f"{p.relative_to(CATALOG)}#{i}" for p, i, _ in DOCUMENTS],
)
def test_valid_against_tekton_strict_schema(path: Path, index: int, doc: dict) -> None:  # type: ignore[type-arg]
    # Tekton's own API definitions, as the API server decodes documents (unknown fields fail).
    assert has_schema(doc), f"no Tekton schema for {doc['apiVersion']}/{doc['kind']}"
    assert decode_errors(doc) == []


def test_every_step_uses_the_one_pinned_image() -> None:
    pinned = (CATALOG / "runtime-image.txt").read_text().strip()
    assert "@sha256:" in pinned
    images = {step["image"] for _, _, doc in DOCUMENTS for step in _all_steps(doc)}
    # A step whose image is a param runs the user's own (train-custom's training step).
    assert {image for image in images if not image.startswith("$(params.")} == {pinned}


def _all_steps(doc: dict) -> list[dict]:  # type: ignore[type-arg]
    spec = doc.get("spec") or {}
    steps = list(spec.get("steps") or [])
    inner = spec.get("pipelineSpec") or spec
    for task in list(inner.get("tasks") or []) + list(inner.get("finally") or []):
        steps += (task.get("taskSpec") or {}).get("steps") or []
    return steps


def test_lint_cli_formats() -> None:
    runner = CliRunner()
    clean = runner.invoke(main, ["catalog", "lint", "--root", str(CATALOG)])
    assert clean.exit_code == 0, clean.output
    files = [p for p in CATALOG.rglob("*.y*ml") if not p.name.startswith("artifacthub")]
    documents = sum(1 for p in files for d in yaml.safe_load_all(p.read_text()) if d)
    assert clean.output == (
        f"{documents} documents in {len(files)} files, {len(RULES)} rules, 0 problem(s)\n"
    )
    docs = runner.invoke(main, ["catalog", "docs", "--root", str(CATALOG), "--check"])
    assert docs.exit_code == 0
    assert docs.output == f"{len(list(CATALOG.glob('*/*/*/README.md')))} READMEs in sync\n"
    rules = runner.invoke(main, ["catalog", "rules"])
    assert "schema-params" in rules.output
