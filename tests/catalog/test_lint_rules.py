"""One broken fixture per lint rule: each mutation of a clean catalog must fire its rule."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from tekton_mlops.catalog import contract_rules
from tekton_mlops.catalog.lint import lint_tree
from tekton_mlops.catalog.rules import RULES
from tekton_mlops.cli import main
from tekton_mlops.params import ResultSpec, StepSchema, load_schema
from tests.conftest import REPO

FETCH = "task/fetch-data/0.1/fetch-data.yaml"
TRAIN = "task/train-model/0.1/train-model.yaml"
PIPELINE = "pipeline/train-and-deploy/0.1/train-and-deploy.yaml"
TRAIN_TEST = "task/train-model/0.1/tests/run.yaml"
FETCH_SAMPLE = "task/fetch-data/0.1/samples/fetch-from-s3.yaml"

Doc = dict[str, Any]


def edit(relative: str, change: Callable[[Doc], None]) -> Callable[[Path], None]:
    def apply(root: Path) -> None:
        path = root / relative
        doc = yaml.safe_load(path.read_text())
        change(doc)
        path.write_text(yaml.safe_dump(doc, sort_keys=False))

    return apply


def step(doc: Doc) -> Doc:
    return doc["spec"]["steps"][0]  # type: ignore[no-any-return]


def annotations(doc: Doc) -> Doc:
    return doc["metadata"]["annotations"]  # type: ignore[no-any-return]


def pipeline_task(doc: Doc, name: str) -> Doc:
    return next(t for t in doc["spec"]["tasks"] if t["name"] == name)


def setup_step(doc: Doc) -> Doc:
    return doc["spec"]["pipelineSpec"]["tasks"][0]["taskSpec"]["steps"][0]  # type: ignore[no-any-return]


MUTATIONS: dict[str, Callable[[Path], None]] = {
    "yaml": lambda root: (root / FETCH).write_text("spec: [unclosed\n"),
    "api-version": edit(FETCH, lambda d: d.update(apiVersion="tekton.dev/v1beta1")),
    "layout": lambda root: (root / "task/fetch-data/0.1/tests/run.yaml").unlink(),
    "name": edit(FETCH, lambda d: step(d).update(name="Fetch_Data")),
    "unique": edit(
        TRAIN, lambda d: d["spec"]["workspaces"].append(dict(d["spec"]["workspaces"][0]))
    ),
    "reference": edit(FETCH, lambda d: step(d)["args"].append("--x=$(params.no-such-param)")),
    "param-type": edit(FETCH, lambda d: d["spec"]["params"][2].update(type="array")),
    "param-access": edit(FETCH, lambda d: step(d)["args"].append("$(params.source[*])")),
    "catalog-reference": edit(
        FETCH, lambda d: step(d)["args"].append("--y=$(workspaces.nope.path)")
    ),
    "decode": edit(FETCH, lambda d: step(d).update(imagePullPolcy="Always")),
    "on-error": edit(FETCH, lambda d: step(d).update(onError="ignore")),
    "volume-mount": edit(
        FETCH, lambda d: step(d).update(volumeMounts=[{"name": "x", "mountPath": "/tekton/x"}])
    ),
    "feature-gate": edit(
        PIPELINE, lambda d: pipeline_task(d, "train-model").update(pipelineRef={"name": "p"})
    ),
    "timeout": edit(
        TRAIN_TEST, lambda d: d["spec"].update(timeouts={"pipeline": "1h", "tasks": "2h"})
    ),
    "run-after": edit(
        PIPELINE, lambda d: pipeline_task(d, "train-model").update(runAfter=["nope"])
    ),
    "dag": edit(
        PIPELINE, lambda d: pipeline_task(d, "fetch-data").update(runAfter=["evaluate-model"])
    ),
    "finally-only": edit(
        PIPELINE,
        lambda d: pipeline_task(d, "train-model")["params"].append(
            {"name": "seed", "value": "$(tasks.status)"}
        ),
    ),
    "script-command": edit(FETCH, lambda d: step(d).update(script="#!/bin/sh\necho hi\n")),
    "step-image": edit(FETCH, lambda d: step(d).pop("image")),
    "path": edit(
        FETCH, lambda d: d["metadata"]["labels"].update({"app.kubernetes.io/version": "0.2"})
    ),
    "metadata": edit(FETCH, lambda d: annotations(d).pop("tekton.dev/displayName")),
    "category": edit(
        FETCH, lambda d: annotations(d).update({"tekton.dev/categories": "Machine Learning"})
    ),
    "description": edit(FETCH, lambda d: d["spec"].update(description="One line only.")),
    "image": edit(TRAIN_TEST, lambda d: setup_step(d).update(image="python:latest")),
    "platforms": edit(
        FETCH, lambda d: annotations(d).update({"tekton.dev/platforms": "linux-amd64"})
    ),
    "min-version": edit(
        FETCH, lambda d: annotations(d).update({"tekton.dev/pipelines.minVersion": "v0.50.0"})
    ),
    "schema-params": edit(FETCH, lambda d: d["spec"]["params"][2].update(default="true")),
    "schema-args": edit(FETCH, lambda d: step(d)["args"].remove("--sha256=$(params.sha256)")),
    "param-used": edit(
        FETCH, lambda d: d["spec"]["params"].append({"name": "unused", "type": "string"})
    ),
    "results-match": edit(FETCH, lambda d: d["spec"]["results"].pop(0)),
    "results-budget": lambda root: None,  # the schema side is made oversized by the fixture below
    "script-params": edit(TRAIN_TEST, lambda d: setup_step(d).update(script="echo $(params.x)")),
    "security-context": edit(FETCH, lambda d: step(d)["securityContext"].update(runAsUser=0)),
    "compute-resources": edit(FETCH, lambda d: step(d)["computeResources"].pop("limits")),
    "runtime-image": edit(
        FETCH,
        lambda d: step(d).update(image="ghcr.io/tekton-mlops/runtime:0.1.0@sha256:" + "1" * 64),
    ),
    "step-command": edit(FETCH, lambda d: step(d).update(command=["tekton-mlops", "fetch-all"])),
    "run-params": edit(
        FETCH_SAMPLE, lambda d: d["spec"]["params"].append({"name": "bogus", "value": "1"})
    ),
}


def test_every_rule_has_a_fixture() -> None:
    assert set(MUTATIONS) == set(RULES)


@pytest.fixture
def catalog_copy(tmp_path: Path) -> Path:
    root = tmp_path / "catalog"
    shutil.copytree(REPO / "catalog", root)
    assert lint_tree(root) == []
    return root


@pytest.fixture
def oversized_results(monkeypatch: pytest.MonkeyPatch) -> None:
    real = load_schema("fetch-data")
    huge = StepSchema(
        real.step,
        real.document,
        tuple(
            ResultSpec(r.name, r.description, r.type, r.properties, max_bytes=2000)
            for r in real.results
        ),
    )
    monkeypatch.setattr(
        contract_rules,
        "load_schema",
        lambda step: huge if step == "fetch-data" else load_schema(step),
    )


@pytest.mark.parametrize("rule", sorted(MUTATIONS))
def test_rule_fires(rule: str, catalog_copy: Path, request: pytest.FixtureRequest) -> None:
    if rule == "results-budget":
        request.getfixturevalue("oversized_results")
    MUTATIONS[rule](catalog_copy)
    findings = lint_tree(catalog_copy)
    assert rule in {f.rule for f in findings}, [f.format() for f in findings]
    finding = next(f for f in findings if f.rule == rule)
    assert finding.path.is_relative_to(catalog_copy)
    assert finding.line >= 1


def test_cli_reports_file_line_rule_and_exit_1(catalog_copy: Path) -> None:
    MUTATIONS["category"](catalog_copy)
    runner = CliRunner()
    text = runner.invoke(main, ["catalog", "lint", "--root", str(catalog_copy)])
    assert text.exit_code == 1
    line = next(row for row in text.output.splitlines() if ": category:" in row)
    path, number, rule, message = line.split(":", 3)
    assert path.endswith("fetch-data.yaml")
    yaml_line = (catalog_copy / FETCH).read_text().splitlines()[int(number) - 1]
    assert "tekton.dev/categories" in yaml_line
    assert "'Machine Learning' is not a Tekton Hub category" in message
    github = runner.invoke(
        main, ["catalog", "lint", "--root", str(catalog_copy), "--format", "github"]
    )
    assert f"::error file={catalog_copy / FETCH},line={number},title=category::" in github.output


def test_docs_check_detects_drift(catalog_copy: Path) -> None:
    readme = catalog_copy / "task/fetch-data/0.1/README.md"
    readme.write_text(readme.read_text().replace("| `source` |", "| `src` |"))
    runner = CliRunner()
    stale = runner.invoke(main, ["catalog", "docs", "--root", str(catalog_copy), "--check"])
    assert stale.exit_code == 1
    assert "fetch-data/0.1/README.md: stale" in stale.output
    hand = readme.read_text().split("Written by hand below")[1]
    assert runner.invoke(main, ["catalog", "docs", "--root", str(catalog_copy)]).exit_code == 0
    assert "| `source` |" in readme.read_text()
    assert readme.read_text().split("Written by hand below")[1] == hand
