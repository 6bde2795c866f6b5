"""quickcheck agrees with jsonschema on every step schema, valid and invalid params alike.

Instances start from each schema's defaults and examples and are mutated one property at
a time with values of every JSON type, boundary numbers, the schema's own enum values and
examples, strings that do and do not match patterns, and objects built from nested
schemas (the estimators' hyper-parameters, SLO maps). A disagreement would let invalid
params through quickcheck's fast path, so every one is a failure.
"""

from __future__ import annotations

import json
import random
from typing import Any

import jsonschema
import pytest

from tekton_mlops import quickcheck
from tekton_mlops.params import load_schema, step_names

BASICS: list[Any] = [
    None, True, False, 0, 1, -1, 0.5, 1.0, 1e9, -1e-9, "", "x", "0", "true", "a" * 300,
    "s3://bucket/key", "oci://registry/repo:tag", "file:///tmp/x", "https://h/p",
    "sha256:" + "a" * 64,
    [], ["a"], [1, 2], {}, {"a": 1}, {"accuracy": ">=0.9"}, {"max_iter": 500}, {"n_estimators": 0},
    {"latency_p99_ms": "<=10"}, {"unknown": "x"},
]  # fmt: skip


def candidates(schema: dict[str, Any], rng: random.Random) -> list[Any]:
    values = list(BASICS)
    for key in ("enum", "examples"):
        values += list(schema.get(key) or [])
    for key in ("default", "const", "minimum", "maximum", "exclusiveMinimum"):
        if key in schema:
            values.append(schema[key])
            if isinstance(schema[key], int | float) and not isinstance(schema[key], bool):
                values += [schema[key] - 1, schema[key] + 1, schema[key] + 0.5]
    if "maxLength" in schema:
        values += ["y" * schema["maxLength"], "y" * (schema["maxLength"] + 1)]
    properties = schema.get("properties") or {}
    if properties:
        for _ in range(8):
            picked = rng.sample(sorted(properties), k=min(len(properties), rng.randint(1, 3)))
            values.append({name: rng.choice(candidates(properties[name], rng)) for name in picked})
    return values


@pytest.mark.parametrize("step", step_names())
def test_agrees_with_jsonschema(step: str) -> None:
    schema = load_schema(step).document
    validator = jsonschema.Draft202012Validator(schema)
    rng = random.Random(step)
    defaults = {k: v["default"] for k, v in schema["properties"].items() if "default" in v}
    base = {k: v for k, v in defaults.items() if v != ""}
    for name in schema.get("required") or []:
        examples = schema["properties"][name].get("examples") or ["x"]
        base.setdefault(name, examples[0])
    checked = 0
    for name, prop in schema["properties"].items():
        for value in candidates(prop, rng):
            for instance in ({**base, name: value}, {name: value}):
                expected = validator.is_valid(instance)
                assert quickcheck.valid(schema, instance) is expected, (step, json.dumps(instance))
                checked += 1
    assert checked > 100


def test_a_keyword_it_does_not_know_leaves_the_answer_to_jsonschema() -> None:
    assert quickcheck.valid({"type": "string", "format": "uri"}, "x") is None
    assert quickcheck.valid({"type": "integer"}, 2.0) is True
    assert quickcheck.valid({"type": "integer"}, True) is False
    assert quickcheck.valid({"enum": [1]}, True) is False
