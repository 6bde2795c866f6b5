"""The strict-decoding walk agrees with jsonschema, the reference implementation.

`tekton/schema.py` walks Tekton's API schemas itself (importing jsonschema costs every
run 70 ms). Here jsonschema's Draft 2020-12 validator judges the same documents: every
Task, Pipeline and run in the catalog, and each of them broken one place at a time
(a value of another JSON type, an unknown field, a field in the wrong case, a wrong
apiVersion). Both must find the same violations, at the same paths, with the same
messages.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from functools import cache
from typing import Any

import jsonschema
import pytest
import yaml

from tekton_mlops.tekton import schema
from tests.conftest import REPO

WRONG_TYPES: list[Any] = [7, 1.5, True, None, "text", ["x"], {"x": "y"}]


def catalog_documents() -> list[dict[str, Any]]:
    documents = []
    for path in sorted((REPO / "catalog").rglob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            if isinstance(document, dict) and schema.has_schema(document):
                documents.append(document)
    return documents


@cache
def _validator(key: str) -> jsonschema.Draft202012Validator:
    everything = schema._schemas()
    return jsonschema.Draft202012Validator(
        {"$defs": everything["$defs"], **everything["kinds"][key]}
    )


def reference(document: dict[str, Any]) -> list[tuple[str, tuple[Any, ...], str]]:
    validator = _validator(f"{document['apiVersion']}/{document['kind']}")
    return sorted(
        (error.validator, tuple(error.absolute_path), _message(error.validator, error.message))
        for error in validator.iter_errors(document)
    )


def ours(document: dict[str, Any]) -> list[tuple[str, tuple[Any, ...], str]]:
    return sorted(
        (v.keyword, v.path, _message(v.keyword, v.message)) for v in schema.violations(document)
    )


def _message(keyword: str, message: str) -> str:
    # Messages are shown for these keywords only; the others are worded by decode_errors.
    return message if keyword in ("anyOf", "oneOf", "const", "pattern") else ""


def mutations(document: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """The document broken at one place at a time.

    One place per shape of path: list positions are alike to the schema (the tenth
    param of a task meets the rules the first met), and judging every copy of a
    Pipeline's twenty tasks would only repeat verdicts, at a quadratic cost.
    """
    seen: set[tuple[Any, ...]] = set()
    for path, value in _places(document, ()):
        shape = tuple("[]" if isinstance(part, int) else part for part in path)
        if not path or (shape, type(value)) in seen:
            continue
        seen.add((shape, type(value)))
        for wrong in WRONG_TYPES:
            if type(wrong) is not type(value):
                yield f"{path} = {wrong!r}", _replaced(document, path, wrong)
                break
        if isinstance(value, dict):
            yield f"{path} + unknown", _replaced(document, path, {**value, "stpes": 1})
            for name in value:
                if name.lower() != name:
                    renamed = {(k.lower() if k == name else k): v for k, v in value.items()}
                    yield f"{path} {name} lowercased", _replaced(document, path, renamed)
                    break
    yield "apiVersion", {**document, "kind": document["kind"]} | {"apiVersion": "tekton.dev/v1"}


def _places(value: Any, path: tuple[Any, ...]) -> Iterator[tuple[tuple[Any, ...], Any]]:
    yield path, value
    if isinstance(value, dict):
        for name, item in value.items():
            yield from _places(item, (*path, name))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _places(item, (*path, index))


def _replaced(document: dict[str, Any], path: tuple[Any, ...], new: Any) -> dict[str, Any]:
    result = copy.deepcopy(document)
    target = result
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = new
    return result


DOCUMENTS = catalog_documents()


def test_the_catalog_is_a_real_corpus() -> None:
    kinds = {d["kind"] for d in DOCUMENTS}
    assert {"Task", "Pipeline", "PipelineRun"} <= kinds
    assert len(DOCUMENTS) >= 20


@pytest.mark.parametrize(
    "document", DOCUMENTS, ids=[f"{d['kind']}-{d['metadata'].get('name', '')}" for d in DOCUMENTS]
)
def test_every_broken_variant_gets_the_reference_verdict(document: dict[str, Any]) -> None:
    checked = 0
    for what, variant in mutations(document):
        if not schema.has_schema(variant):
            continue
        assert ours(variant) == reference(variant), what
        checked += 1
    assert ours(document) == reference(document) == []
    assert checked > 10


@pytest.mark.parametrize(
    ("value", "valid"),
    [("1Gi", True), (2, True), (0.5, True), (None, False), (True, False), ([1], False)],
)
def test_one_of_quantity_and_any_of_param_values(value: Any, valid: bool) -> None:
    task = {
        "apiVersion": "tekton.dev/v1",
        "kind": "Task",
        "metadata": {"name": "t"},
        "spec": {
            "params": [{"name": "p", "default": value}],
            "steps": [
                {"name": "s", "image": "bash", "computeResources": {"limits": {"cpu": value}}}
            ],
        },
    }
    assert ours(task) == reference(task)
    assert (ours(task) == []) is valid
